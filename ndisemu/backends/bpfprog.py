"""The eBPF program behind `[[wire]]` loss/duplicate on a kernel without netem (sans-IO: bytes).

A direct-action `cls_bpf` classifier on a clsact hook (ndisemu.backends.bpf attaches it); each
frame that crosses the hook runs it once:

    a frame carrying DUP_MARK is a duplicate this program made: clear the mark, let it pass
    loss p:       bpf_get_prandom_u32() < p·2³²  ->  TC_ACT_STOLEN (gone)      (p = 1: always)
    corrupt c:    bpf_get_prandom_u32() < c·2³²  ->  the frame's last byte has its low bit
                  flipped (bpf_skb_load_bytes / bpf_skb_store_bytes; checksums are left wrong,
                  as on a wire: the receiver's check drops it)
    duplicate q:  bpf_get_prandom_u32() < q·2³²  ->  bpf_clone_redirect() a copy, marked, to the
                  same device and direction (the copy meets this program again: the mark lets
                  it through, so nothing loops)
    otherwise TC_ACT_OK (the frame goes on)

A lost frame is TC_ACT_STOLEN, not TC_ACT_SHOT: the kernel consumes it and tells its sender
nothing, as a wire loses a frame (and as netem's loss does); on an egress hook TC_ACT_SHOT turns
into NET_XMIT_DROP, and Linux's ping would see sendmsg fail with ENOBUFS.

The probabilities are immediates of the program: a window edge loads a new program and replaces
the filter (ndisemu.backends.bpf.set_bpf), nothing is kept between them (no maps, no pins).

Each instruction is struct bpf_insn (include/uapi/linux/bpf.h): u8 opcode, u8 dst_reg:4 |
src_reg:4, s16 off, s32 imm, little-endian here (x86-64, arm64: the loader checks the host's
byte order). Opcodes are composed from the classic BPF classes (Documentation/bpf/
standardization/instruction-set.rst).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

# instruction classes and fields (instruction-set.rst §3)
BPF_LDX, BPF_STX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x01, 0x03, 0x04, 0x05, 0x07
BPF_W, BPF_B = 0x00, 0x10  # 32-bit / 8-bit memory access
BPF_MEM = 0x60
BPF_K, BPF_X = 0x00, 0x08  # operand: the immediate / the source register
BPF_ADD, BPF_XOR, BPF_MOV = 0x00, 0xA0, 0xB0
BPF_JNE, BPF_JGE = 0x50, 0x30
BPF_CALL, BPF_EXIT = 0x80, 0x90

# helper ids (enum bpf_func_id)
BPF_FUNC_get_prandom_u32 = 7
BPF_FUNC_skb_store_bytes = 9
BPF_FUNC_clone_redirect = 13
BPF_FUNC_skb_load_bytes = 26
FP = 10  # r10: the frame pointer (read-only); the program's one byte of stack is at fp - 8
SCRATCH = -8
BPF_F_INGRESS = 1  # bpf_clone_redirect: to the device's receive path, not its transmit path

# direct-action verdicts (include/uapi/linux/pkt_cls.h)
TC_ACT_OK, TC_ACT_STOLEN = 0, 4

# struct __sk_buff field offsets (include/uapi/linux/bpf.h)
SKB_LEN = 0
SKB_MARK = 8
SKB_IFINDEX = 40

DUP_MARK = 0x7436_6C64  # "t6ld": a duplicate this program made (never set by anything else here)
ONE = 1 << 32  # probability 1 as a threshold on a u32 draw

INSN = struct.Struct("<BBhi")


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn."""
    return INSN.pack(code, (src << 4) | dst, off, imm)


def _s32(v: int) -> int:
    """A u32 immediate as the s32 the field holds (mov32 zero-extends it back)."""
    return v - ONE if v >= 1 << 31 else v


def mov64_reg(dst: int, src: int) -> bytes:
    return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src)          # dst = src


def mov64_imm(dst: int, imm: int) -> bytes:
    return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, imm=imm)      # dst = imm (sign-extended)


def mov32_imm(dst: int, imm: int) -> bytes:
    return insn(BPF_ALU | BPF_MOV | BPF_K, dst, imm=_s32(imm))  # dst = (u32)imm, zero-extended


def ldx_w(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)       # dst = *(u32 *)(src + off)


def stx_w(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_STX | BPF_MEM | BPF_W, dst, src, off)       # *(u32 *)(dst + off) = src


def ldx_b(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_LDX | BPF_MEM | BPF_B, dst, src, off)       # dst = *(u8 *)(src + off)


def stx_b(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_STX | BPF_MEM | BPF_B, dst, src, off)       # *(u8 *)(dst + off) = src


def add64_imm(dst: int, imm: int) -> bytes:
    return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, imm=imm)      # dst += imm (sign-extended)


def xor32_imm(dst: int, imm: int) -> bytes:
    return insn(BPF_ALU | BPF_XOR | BPF_K, dst, imm=imm)        # dst = (u32)(dst ^ imm)


def jne_imm(dst: int, imm: int, off: int) -> bytes:
    return insn(BPF_JMP | BPF_JNE | BPF_K, dst, off=off, imm=_s32(imm))  # if dst != imm: pc+=off


def jge_reg(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_JMP | BPF_JGE | BPF_X, dst, src, off)       # if dst >= src (unsigned): pc+=off


def call(helper: int) -> bytes:
    return insn(BPF_JMP | BPF_CALL, imm=helper)                 # r0 = helper(r1..r5)


def exit_() -> bytes:
    return insn(BPF_JMP | BPF_EXIT)                             # return r0


def threshold(percent: float) -> int:
    """A percentage as the bound a uniform u32 draw must stay below (ONE: always)."""
    return min(ONE, max(0, round(percent / 100.0 * ONE)))


@dataclass(frozen=True)
class WireProgram:
    """What one program does: percentages 0-100; `ingress` = it sits on the receive hook."""

    loss: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    ingress: bool = False

    def code(self) -> bytes:
        """The instructions (r1 = the struct __sk_buff * on entry; r6 keeps it)."""
        prog = [
            mov64_reg(6, 1),                  # r6 = ctx (r1-r5 are clobbered by calls)
            ldx_w(0, 6, SKB_MARK),            # r0 = skb->mark
            jne_imm(0, DUP_MARK, 4),          # not one of our duplicates: skip the next 4
            mov32_imm(1, 0),                  # r1 = 0
            stx_w(6, 1, SKB_MARK),            # skb->mark = 0 (BPF_ST into ctx is refused)
            mov64_imm(0, TC_ACT_OK),          # r0 = TC_ACT_OK
            exit_(),                          # a duplicate passes untouched
        ]
        loss = threshold(self.loss)
        if loss >= ONE:  # every frame dropped (nothing after it: unreachable code is refused)
            return b"".join([*prog, mov64_imm(0, TC_ACT_STOLEN), exit_()])
        if loss > 0:
            prog += [
                call(BPF_FUNC_get_prandom_u32),   # r0 = a uniform u32
                mov32_imm(1, loss),               # r1 = threshold
                jge_reg(0, 1, 2),                 # r0 >= r1: kept, skip the next 2
                mov64_imm(0, TC_ACT_STOLEN),      # r0 = TC_ACT_STOLEN
                exit_(),                          # lost
            ]
        bad = threshold(self.corrupt)
        if bad > 0:
            flip = [
                ldx_w(2, 6, SKB_LEN),             # r2 = skb->len
                add64_imm(2, -1),                 # r2 = the last byte's offset
                mov64_reg(7, 2),                  # r7 = r2 (r1-r5 are clobbered by calls)
                mov64_reg(1, 6),                  # r1 = ctx
                mov64_reg(3, FP),                 # r3 = fp
                add64_imm(3, SCRATCH),            # r3 = fp - 8
                mov64_imm(4, 1),                  # r4 = 1 byte
                call(BPF_FUNC_skb_load_bytes),    # *(fp - 8) = the last byte
                jne_imm(0, 0, 10),                # failed (an empty frame): skip the next 10
                ldx_b(1, FP, SCRATCH),            # r1 = *(u8 *)(fp - 8)
                xor32_imm(1, 1),                  # r1 ^= 1
                stx_b(FP, 1, SCRATCH),            # *(u8 *)(fp - 8) = r1
                mov64_reg(1, 6),                  # r1 = ctx
                mov64_reg(2, 7),                  # r2 = the offset
                mov64_reg(3, FP),                 # r3 = fp
                add64_imm(3, SCRATCH),            # r3 = fp - 8
                mov64_imm(4, 1),                  # r4 = 1 byte
                mov64_imm(5, 0),                  # r5 = no flags
                call(BPF_FUNC_skb_store_bytes),   # the frame's last byte = r1
            ]
            draw = [] if bad >= ONE else [
                call(BPF_FUNC_get_prandom_u32),   # r0 = a uniform u32
                mov32_imm(1, bad),                # r1 = threshold
                jge_reg(0, 1, len(flip)),         # r0 >= r1: intact, skip the flip
            ]
            prog += [*draw, *flip]
        dup = threshold(self.duplicate)
        if dup > 0:
            draw = [] if dup >= ONE else [
                call(BPF_FUNC_get_prandom_u32),   # r0 = a uniform u32
                mov32_imm(1, dup),                # r1 = threshold
                jge_reg(0, 1, 8),                 # r0 >= r1: no copy, skip the next 8
            ]
            prog += [
                *draw,
                ldx_w(7, 6, SKB_MARK),            # r7 = skb->mark (restored after the copy)
                mov32_imm(1, DUP_MARK),           # r1 = DUP_MARK
                stx_w(6, 1, SKB_MARK),            # skb->mark = DUP_MARK (the copy inherits it)
                ldx_w(2, 6, SKB_IFINDEX),         # r2 = skb->ifindex (this device)
                mov64_reg(1, 6),                  # r1 = ctx
                mov64_imm(3, BPF_F_INGRESS if self.ingress else 0),  # r3 = same direction
                call(BPF_FUNC_clone_redirect),    # the copy goes through the hook again
                stx_w(6, 7, SKB_MARK),            # skb->mark = r7
            ]
        prog += [mov64_imm(0, TC_ACT_OK), exit_()]  # the frame goes on
        return b"".join(prog)

    def describe(self) -> str:
        parts = [f"{name} {v:g}%" for name, v in (("loss", self.loss), ("corrupt", self.corrupt),
                                                  ("duplicate", self.duplicate)) if v]
        return "bpf " + (" ".join(parts) or "(nothing)")


def host_is_little_endian() -> bool:
    return sys.byteorder == "little"
