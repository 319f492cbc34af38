"""The [[wire]] fallback's eBPF program as bytes (sans-IO: no syscall here; the kernel's verifier
and real frames are tests/ndisemu/test_bpf_loader.py and tests/tcpip6lab/test_real_faults.py).

The encodings are checked against struct bpf_insn as the kernel's uapi lays it out, and the
programs are run by a small interpreter of the subset they use: every path ends in `exit`, the
jumps land where the comments say, and the verdicts follow the draws."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from ndisemu.backends import bpfprog as b

WireProgram = b.WireProgram


def test_instruction_encodings_are_struct_bpf_insn() -> None:
    # opcode, dst | src << 4, s16 off, s32 imm — as `llvm-objdump -d` shows them
    assert b.mov64_reg(6, 1) == bytes.fromhex("bf16000000000000")      # r6 = r1
    assert b.ldx_w(0, 6, 8) == bytes.fromhex("6160080000000000")       # r0 = *(u32 *)(r6 + 8)
    assert b.stx_w(6, 7, 8) == bytes.fromhex("6376080000000000")       # *(u32 *)(r6 + 8) = r7
    assert b.mov64_imm(0, 4) == bytes.fromhex("b700000004000000")      # r0 = 4
    assert b.mov32_imm(1, 0xFFFFFFFF) == bytes.fromhex("b4010000ffffffff")  # w1 = -1 (u32 max)
    assert b.jne_imm(0, 0x74366C64, 4) == bytes.fromhex("55000400646c3674")
    assert b.jge_reg(0, 1, 2) == bytes.fromhex("3d10020000000000")     # if r0 >= r1 goto +2
    assert b.call(7) == bytes.fromhex("8500000007000000")              # call get_prandom_u32
    assert b.exit_() == bytes.fromhex("9500000000000000")


def test_thresholds_cover_the_u32_draw() -> None:
    assert b.threshold(0) == 0 and b.threshold(100) == b.ONE
    assert b.threshold(50) == 1 << 31 and b.threshold(25) == 1 << 30
    assert b.threshold(150) == b.ONE and b.threshold(-1) == 0


class Run:
    """Interpret one program for one frame: `draws` feed bpf_get_prandom_u32, clone_redirect
    calls are recorded with the mark the copy carries."""

    def __init__(self, code: bytes, mark: int = 0, ifindex: int = 9,
                 draws: Iterator[int] | None = None, frame: bytes = bytes(60)) -> None:
        self.insns = [b.INSN.unpack_from(code, i) for i in range(0, len(code), 8)]
        self.frame = bytearray(frame)
        self.ctx = {b.SKB_MARK: mark, b.SKB_IFINDEX: ifindex, b.SKB_LEN: len(frame)}
        self.stack = bytearray(8)  # fp - 8 .. fp
        self.draws = draws or iter(())
        self.clones: list[tuple[int, int, int]] = []  # (ifindex, flags, mark of the copy)
        self.visited: set[int] = set()

    def __call__(self) -> int:
        r = [0] * 11
        r[1] = -1  # the ctx pointer
        r[b.FP] = -2  # the frame pointer (stack addresses are -2 + offset)
        pc = 0
        while True:
            assert 0 <= pc < len(self.insns), f"fell off the program at {pc}"
            self.visited.add(pc)
            code, regs, off, imm = self.insns[pc]
            dst, src = regs & 0xF, regs >> 4
            pc += 1
            if code == 0xBF:
                r[dst] = r[src]
            elif code == 0xB7:
                r[dst] = imm
            elif code == 0xB4:
                r[dst] = imm & 0xFFFFFFFF
            elif code == 0x61:
                assert r[src] == -1
                r[dst] = self.ctx[off]
            elif code == 0x63:
                assert r[dst] == -1 and off == b.SKB_MARK
                self.ctx[off] = r[src] & 0xFFFFFFFF
            elif code == 0x07:
                r[dst] += imm
            elif code == 0xA4:
                r[dst] = (r[dst] ^ imm) & 0xFFFFFFFF
            elif code == 0x71:
                assert r[src] == -2 and off == b.SCRATCH
                r[dst] = self.stack[0]
            elif code == 0x73:
                assert r[dst] == -2 and off == b.SCRATCH
                self.stack[0] = r[src] & 0xFF
            elif code == 0x85 and imm in (b.BPF_FUNC_skb_load_bytes, b.BPF_FUNC_skb_store_bytes):
                assert r[1] == -1 and r[3] == -2 + b.SCRATCH and r[4] == 1
                if not 0 <= r[2] < len(self.frame):
                    r[0] = -14  # -EFAULT
                elif imm == b.BPF_FUNC_skb_load_bytes:
                    self.stack[0], r[0] = self.frame[r[2]], 0
                else:
                    assert r[5] == 0
                    self.frame[r[2]], r[0] = self.stack[0], 0
            elif code == 0x55:
                if r[dst] != imm & 0xFFFFFFFF:
                    pc += off
            elif code == 0x3D:
                if r[dst] >= r[src]:
                    pc += off
            elif code == 0x85 and imm == b.BPF_FUNC_get_prandom_u32:
                r[0] = next(self.draws)
            elif code == 0x85 and imm == b.BPF_FUNC_clone_redirect:
                assert r[1] == -1
                self.clones.append((r[2], r[3], self.ctx[b.SKB_MARK]))
                r[0] = 0
            elif code == 0x95:
                return r[0]
            else:
                raise AssertionError(f"unexpected instruction {code:#x} at {pc - 1}")


def test_a_program_without_faults_passes_every_frame() -> None:
    assert Run(WireProgram().code())() == b.TC_ACT_OK


def test_loss_compares_the_draw_with_the_threshold() -> None:
    code = WireProgram(loss=25).code()
    assert Run(code, draws=iter([(1 << 30) - 1]))() == b.TC_ACT_STOLEN  # below: lost
    assert Run(code, draws=iter([1 << 30]))() == b.TC_ACT_OK            # at the bound: kept
    assert Run(code, draws=iter([0xFFFFFFFF]))() == b.TC_ACT_OK


def test_loss_of_100_percent_draws_nothing_and_has_no_unreachable_code() -> None:
    code = WireProgram(loss=100, duplicate=50).code()
    run = Run(code)  # no draws: any call to the helper would raise StopIteration
    assert run() == b.TC_ACT_STOLEN
    guard = Run(code, mark=b.DUP_MARK)
    assert guard() == b.TC_ACT_OK  # a duplicate made before the window passes
    assert run.visited | guard.visited == set(range(len(code) // 8))  # the verifier's rule


@pytest.mark.parametrize("ingress", [False, True])
def test_duplicate_clones_to_the_same_device_and_hook_marked(ingress: bool) -> None:
    code = WireProgram(duplicate=50, ingress=ingress).code()
    run = Run(code, mark=0x11, draws=iter([5]))
    assert run() == b.TC_ACT_OK
    assert run.clones == [(9, b.BPF_F_INGRESS if ingress else 0, b.DUP_MARK)]
    assert run.ctx[b.SKB_MARK] == 0x11  # the original keeps its own mark
    missed = Run(code, draws=iter([1 << 31]))
    assert missed() == b.TC_ACT_OK and missed.clones == []


def test_a_duplicate_meets_the_program_again_and_passes_unmarked() -> None:
    code = WireProgram(loss=30, duplicate=100).code()
    again = Run(code, mark=b.DUP_MARK)  # no draw: neither lost nor copied again
    assert again() == b.TC_ACT_OK and again.clones == [] and again.ctx[b.SKB_MARK] == 0


def test_loss_and_duplicate_draw_independently() -> None:
    code = WireProgram(loss=50, duplicate=100).code()
    lost = Run(code, draws=iter([0]))
    assert lost() == b.TC_ACT_STOLEN and lost.clones == []  # a lost frame is not copied
    kept = Run(code, draws=iter([1 << 31]))
    assert kept() == b.TC_ACT_OK and len(kept.clones) == 1  # duplicate 100 %: no draw


def test_every_instruction_of_every_variant_is_reachable() -> None:
    for p in (WireProgram(loss=30, duplicate=40), WireProgram(loss=30), WireProgram(duplicate=40),
              WireProgram(loss=30, corrupt=20, duplicate=40), WireProgram(corrupt=20)):
        code = p.code()
        seen: set[int] = set()
        for mark in (0, b.DUP_MARK):
            for draws in ([0, 0, 0], [0xFFFFFFFF] * 3, [0xFFFFFFFF, 0, 0], [0xFFFFFFFF, 0]):
                for frame in (bytes(60), b""):
                    run = Run(code, mark=mark, draws=iter([*draws, 0xFFFFFFFF]), frame=frame)
                    run()
                    seen |= run.visited
        assert seen == set(range(len(code) // 8)), p


def test_corrupt_flips_the_low_bit_of_the_last_byte_only() -> None:
    frame = bytes(range(60))
    code = WireProgram(corrupt=50).code()
    hit = Run(code, draws=iter([0]), frame=frame)
    assert hit() == b.TC_ACT_OK
    assert bytes(hit.frame) == frame[:-1] + bytes([frame[-1] ^ 1])
    miss = Run(code, draws=iter([1 << 31]), frame=frame)
    assert miss() == b.TC_ACT_OK and bytes(miss.frame) == frame
    empty = Run(WireProgram(corrupt=100).code(), frame=b"")  # the helper fails: left alone
    assert empty() == b.TC_ACT_OK and empty.frame == b""
    both = Run(WireProgram(corrupt=100, duplicate=100).code(), frame=frame)
    assert both() == b.TC_ACT_OK and both.frame[-1] == frame[-1] ^ 1 and len(both.clones) == 1


def test_describe_names_what_the_program_does() -> None:
    assert WireProgram(loss=100).describe() == "bpf loss 100%"
    assert WireProgram(loss=2.5, duplicate=50).describe() == "bpf loss 2.5% duplicate 50%"
    assert WireProgram(corrupt=1).describe() == "bpf corrupt 1%"
    assert struct.calcsize("<BBhi") == 8
