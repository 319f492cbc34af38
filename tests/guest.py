"""Run a command in a Linux guest that has netem: `python -m tests.guest -- COMMAND...`.

The kernels this project's real-device tests run on (this machine's, CI's) are built without
CONFIG_NET_SCH_NETEM, so the `[[wire]]` faults' netem path (delay, jitter, reorder, and loss,
duplicate, corrupt through netem rather than the BPF fallback) cannot run on them. This boots
Debian's own kernel (linux-image-amd64: netem, ifb, tun, veth and 9p as modules) under qemu and
runs COMMAND in it, as root, with this machine's root filesystem as the guest's (over virtio-9p,
read-only, with a tmpfs overlay on top: the guest may write anywhere, nothing reaches the host)
and the project tree at the same path, writable (what a command writes there stays; both are
cached in the guest: what the host changes during a run may go unseen). /tmp and /run are the
guest's own (tmpfs). The command's output is this program's output; its exit status
is this program's exit status (124 when --timeout passed, 125 when the guest failed to run it).

No KVM where there is no hardware virtualisation (no vmx/svm flag: nested guests, as this
machine): qemu then emulates the CPU (TCG), several times slower than the host.

  python -m tests.guest --fetch          download the kernel package once (apt-get download: the
                                         host's /boot and /lib/modules are not touched) and
                                         extract it into the cache (~/.cache/tcpip6-lab/guest)
  python -m tests.guest -- CMD [ARG...]  boot, run CMD in the current directory, power off
  python -m tests.guest --netem-tests    the real-device netem tests in the guest (./lab test's
                                         last step; nothing to do on a kernel with netem)

Needs qemu-system-x86 and kmod (apt); the kernel from --fetch. Stdlib only: this runs before any
venv is wanted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

TREE = Path(__file__).resolve().parent.parent
CACHE_ENV = "TCPIP6LAB_GUEST_CACHE"
KERNEL_META = "linux-image-amd64"  # Debian's current kernel for this architecture
# what the first stage (the initramfs) needs before the root filesystem is there
STAGE1_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_rng"]
# preloaded in the guest (modprobe would load them on demand; this says early if one is missing)
GUEST_MODULES = ["sch_netem", "ifb", "tun", "veth", "sch_tbf", "sch_ingress", "cls_bpf",
                 "act_mirred", "act_bpf"]
# host programs the initramfs carries (with the libraries ldd names)
STAGE1_PROGRAMS = ["sh", "mount", "switch_root", "insmod", "mkdir"]
# what is left out of the environment handed to the command: meaningless in the guest
ENV_DROP = re.compile(r"^(SSH_|DISPLAY$|WAYLAND_|XDG_RUNTIME_DIR$|DBUS_|TMUX|STY$|WINDOW$|"
                      r"OLDPWD$|PWD$|SHLVL$|_$|TERMCAP$|LS_COLORS$)")
EXIT_TIMEOUT = 124
EXIT_GUEST = 125


class GuestError(Exception):
    """Something this machine lacks or the guest did not do: one line for the user."""


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tcpip6-lab" / "guest"


def find_kernel() -> tuple[Path, Path, str]:
    """(vmlinuz, modules dir, release) of the newest kernel in the cache."""
    found = []
    for root in cache_dir().glob("*"):
        for img in (root / "boot").glob("vmlinuz-*"):
            release = img.name.removeprefix("vmlinuz-")
            mods = root / "lib" / "modules" / release
            if (mods / "modules.dep").exists():
                found.append((img, mods, release))
    if not found:
        raise GuestError(f"no guest kernel in {cache_dir()}: run `python -m tests.guest --fetch` "
                         "(or `./lab guest --fetch`) first")
    return max(found, key=lambda f: [int(x) if x.isdigit() else 0
                                     for x in re.split(r"[.-]", f[2])])


def missing_tools() -> list[str]:
    """What this machine lacks to boot the guest (apt packages), empty when nothing."""
    missing = []
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86")
    if shutil.which("modprobe") is None or shutil.which("insmod") is None:
        missing.append("kmod")
    return missing


def fetch() -> Path:
    """Download Debian's current kernel package and extract it into the cache (no install)."""
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "depmod"):
        if shutil.which(tool) is None:
            raise GuestError(f"--fetch needs {tool} (a Debian host with kmod installed)")
    deps = subprocess.run(["apt-cache", "depends", KERNEL_META], capture_output=True, text=True,
                          check=False)
    pkg = re.search(r"Depends: (linux-image-\S+)", deps.stdout)
    if deps.returncode != 0 or pkg is None:
        raise GuestError(f"apt-cache knows no {KERNEL_META} (apt-get update first?): "
                         + (deps.stderr.strip() or deps.stdout.strip()))
    name = pkg[1]
    dest = cache_dir() / name
    if (dest / "boot").exists():
        print(f"guest: {name} already in {dest}", file=sys.stderr)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        os.chmod(tmp, 0o755)  # apt-get download runs as _apt where it can
        print(f"guest: downloading {name}...", file=sys.stderr)
        r = subprocess.run(["apt-get", "download", "-q", name], cwd=tmp, capture_output=True,
                           text=True, check=False)
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or not debs:
            raise GuestError(f"apt-get download {name} failed: {r.stderr.strip()}")
        root = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
        release = next((root / "boot").glob("vmlinuz-*")).name.removeprefix("vmlinuz-")
        subprocess.run(["depmod", "-b", str(root), release], check=True)
        root.rename(dest)
    print(f"guest: {name} ({release}) in {dest}", file=sys.stderr)
    return dest


# --- the initramfs -------------------------------------------------------------------------

def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (path, mode, data) entries (directories: data empty)."""
    out = bytearray()
    for ino, (path, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        name = path.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _libraries(program: str) -> list[str]:
    r = subprocess.run(["ldd", program], capture_output=True, text=True, check=False)
    libs = []
    for line in r.stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m[1])
    return libs


def _module_chain(mods: Path, names: list[str]) -> list[Path]:
    """The .ko files for `names`, each after what it depends on (modules.dep)."""
    deps: dict[str, list[str]] = {}
    for line in (mods / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in reversed(deps[path]):  # modules.dep lists the deepest dependency last
            visit(d)
        order.append(path)

    for n in names:
        if n not in by_name:
            raise GuestError(f"the guest kernel has no module {n}")
        visit(by_name[n])
    return [mods / p for p in order]


STAGE1 = """#!/bin/sh
# stage 1 (the initramfs): virtio and 9p, the root as an overlay, then the host's own tools
export PATH=/bin
mkdir -p /proc /dev /lower /rw /newroot
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" || echo "guest: insmod $m failed" > /dev/ttyS0; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 root /lower
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
mount -t tmpfs -o mode=0755 run /newroot/run
mkdir -p /newroot/run/guest {newroot_tree}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 state /newroot/run/guest
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose tree {newroot_tree}
umount /proc
exec switch_root /newroot /bin/sh /run/guest/stage2
"""

STAGE2 = """#!/bin/sh
# stage 2 (the host's root): the usual mounts, the kernel's modules, then the command
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /lib/modules/{release}
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount --bind {modules} /lib/modules/{release}
hostname tcpip6-lab-guest
ip link set lo up
stty -F /dev/ttyS1 raw -echo 2>/dev/null
for m in {preload}; do
  modprobe "$m" 2>/dev/ttyS1 || echo "guest: modprobe $m failed" > /dev/ttyS1
done
cut -d' ' -f1 /proc/uptime > /run/guest/booted
run() {{
  . /run/guest/env
  cd {cwd} && {command} < /dev/null 2>&1
  echo $? > /run/guest/rc
}}
if [ -e /run/guest/tty ]; then run > /dev/ttyS1; else run | cat > /dev/ttyS1; fi
cut -d' ' -f1 /proc/uptime > /run/guest/done
sync
echo o > /proc/sysrq-trigger
sleep 10
"""


def build_initramfs(state: Path, mods: Path) -> Path:
    entries: list[tuple[str, int, bytes]] = []
    dirs = {"/bin", "/mods"}
    files: dict[str, bytes] = {}
    for prog in STAGE1_PROGRAMS:
        path = shutil.which(prog)
        if path is None:
            raise GuestError(f"the initramfs needs {prog} on this machine")
        real = os.path.realpath(path)
        files[f"/bin/{prog}"] = Path(real).read_bytes()
        for lib in _libraries(real):
            files[lib] = Path(lib).read_bytes()
            dirs.update(str(p) for p in Path(lib).parents if str(p) != "/")
    for ko in _module_chain(mods, STAGE1_MODULES):
        files[f"/mods/{len([f for f in files if f.startswith('/mods/')]):02d}-{ko.name}"] = (
            ko.read_bytes())
    files["/init"] = STAGE1.format(newroot_tree=shlex.quote(f"/newroot{TREE}")).encode()
    for d in sorted(dirs, key=lambda p: p.count("/")):
        entries.append((d.lstrip("/"), 0o40755, b""))
    for path, data in files.items():
        entries.append((path.lstrip("/"), 0o100755, data))
    out = state / "initramfs.cpio"
    out.write_bytes(_cpio(entries))
    return out


# --- running it ------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """preexec_fn: qemu gets SIGKILL when this process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kvm_usable() -> bool:
    """KVM only with hardware virtualisation: /dev/kvm can be there without it (a nested
    guest), and a guest then hangs in its first instructions."""
    flags = Path("/proc/cpuinfo").read_text()
    return os.access("/dev/kvm", os.R_OK | os.W_OK) and bool(re.search(r"\b(vmx|svm)\b", flags))


def run(command: list[str], *, cwd: Path, memory: int, cpus: int, timeout: float,
        verbose: bool) -> int:
    missing = missing_tools()
    if missing:
        raise GuestError("needs " + ", ".join(missing) + " (apt-get install -y "
                         + " ".join(missing) + ")")
    vmlinuz, mods, release = find_kernel()
    if not cwd.is_relative_to(TREE) and cwd.parts[1:2] in (("tmp",), ("run",), ("proc",)):
        raise GuestError(f"{cwd}: the guest has its own /tmp and /run: run from the project "
                         "tree or a directory of the host's root")
    with tempfile.TemporaryDirectory(prefix="tcpip6lab-guest-") as tmp:
        state = Path(tmp)
        initrd = build_initramfs(state, mods)
        env = {k: v for k, v in os.environ.items() if not ENV_DROP.match(k)}
        env.setdefault("HOME", "/root")
        (state / "env").write_text("".join(f"export {k}={shlex.quote(v)}\n"
                                           for k, v in sorted(env.items())
                                           if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)))
        (state / "stage2").write_text(STAGE2.format(
            release=release, modules=shlex.quote(str(mods)), preload=" ".join(GUEST_MODULES),
            cwd=shlex.quote(str(cwd)), command=shlex.join(command)))
        if sys.stdout.isatty():  # the command's output is a terminal where ours is
            (state / "tty").touch()
        console = state / "console.log"
        accel = "kvm" if kvm_usable() else "tcg,thread=multi"
        qemu = [
            "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(cpus), "-m", str(memory),
            "-kernel", str(vmlinuz), "-initrd", str(initrd),
            "-append", "console=ttyS0 loglevel=4 panic=-1 random.trust_cpu=on "
                       "clocksource=tsc tsc=reliable",
            "-serial", f"file:{console}", "-serial", "stdio",
            "-device", "virtio-rng-pci",
            "-fsdev", "local,id=root,path=/,security_model=passthrough,readonly=on,"
                      "multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=root",
            "-fsdev", f"local,id=state,path={state},security_model=passthrough",
            "-device", "virtio-9p-pci,fsdev=state,mount_tag=state",
            "-fsdev", f"local,id=tree,path={TREE},security_model=passthrough,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=tree,mount_tag=tree",
        ]
        started = time.monotonic()
        proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()  # type: ignore[union-attr]
                                                              ), daemon=True)
        drain.start()
        timed_out = False
        try:
            assert proc.stdout is not None
            with _alarm(started + timeout):
                while chunk := os.read(proc.stdout.fileno(), 65536):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            drain.join(5)
        elapsed = time.monotonic() - started
        rc_file = state / "rc"
        if verbose:
            stamps = [_stamp(state / n) for n in ("booted", "done")]
            boot = f"command started {stamps[0]:.1f}s after boot, " if stamps[0] else ""
            ran = f"ran {stamps[1] - stamps[0]:.1f}s, " if stamps[0] and stamps[1] else ""
            print(f"guest: {accel.split(',')[0]}: {boot}{ran}{elapsed:.1f}s in all",
                  file=sys.stderr)
        if timed_out:
            print(f"guest: timed out after {timeout:.0f}s", file=sys.stderr)
            return EXIT_TIMEOUT
        if not rc_file.exists():
            log = console.read_text(errors="replace") if console.exists() else ""
            tail = "\n".join(log.splitlines()[-30:])
            err = b"".join(errors).decode(errors="replace").strip()
            raise GuestError(f"the guest powered off without running the command "
                             f"(qemu exit {proc.returncode}{': ' + err if err else ''}); "
                             f"its console's last lines:\n{tail}")
        return int(rc_file.read_text().strip() or EXIT_GUEST)


def _stamp(path: Path) -> float:
    """A guest uptime the stage-2 script wrote (0 when it did not)."""
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return 0.0


@contextlib.contextmanager
def _alarm(deadline: float) -> Iterator[None]:
    """TimeoutError in the main thread at `deadline` (a blocked read included)."""
    def fire(_sig: int, _frame: object) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, deadline - time.monotonic()))
    try:
        yield None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


NETEM_TESTS = ["tests/tcpip6lab/test_real_faults.py", "-k", "netem and not without_netem"]
NEED_NETEM_ENV = "TCPIP6LAB_NEED_NETEM"  # the netem tests fail rather than skip without netem


def host_has_netem() -> bool:
    """Whether this machine's kernel has netem (then the suite ran the netem tests itself)."""
    r = subprocess.run(["unshare", "--net", sys.executable, "-c",
                        "from ndisemu.backends import netem; netem.probe_netem('.', 'lo')"],
                       capture_output=True, text=True, timeout=60, check=False)
    return r.returncode == 0


def netem_tests(*, memory: int, cpus: int, timeout: float) -> int:
    """The real-device netem tests, in the guest, with this Python (./lab test's last step).
    Nothing to do where the kernel has netem; without qemu, kmod or the kernel: skipped, said
    in one line, except under CI=true, where that is a failure."""
    if host_has_netem():
        print("guest: this kernel has netem: the suite ran the netem tests itself",
              file=sys.stderr)
        return 0
    try:
        missing = missing_tools()
        if missing:
            raise GuestError("needs " + ", ".join(missing))
        find_kernel()
    except GuestError as e:
        if os.environ.get("CI") == "true":
            print(f"guest: error: {e} (CI=true: .ci/run must provide it)", file=sys.stderr)
            return 1
        print(f"guest: the netem tests skipped: {e}", file=sys.stderr)
        return 0
    os.environ[NEED_NETEM_ENV] = "1"
    command = [sys.executable, *(["-P"] if sys.flags.safe_path else []), "-m", "pytest", "-q",
               "-rs", "-p", "no:cacheprovider", "--import-mode=append", *NETEM_TESTS]
    return run(command, cwd=TREE, memory=memory, cpus=cpus, timeout=timeout, verbose=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.guest",
        description="Boot a Linux guest with netem (Debian's kernel under qemu) and run a "
                    "command in it, as root, with this machine's files.")
    p.add_argument("--fetch", action="store_true",
                   help="download and extract the kernel into the cache, then exit (or go on "
                        "with the command)")
    p.add_argument("--memory", type=int, default=2048, help="guest memory in MiB (2048)")
    p.add_argument("--cpus", type=int, default=min(2, os.cpu_count() or 1),
                   help="guest CPUs (this machine's, at most 2)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds before the guest is killed (exit 124); 3600")
    p.add_argument("-q", "--quiet", action="store_true", help="no boot/power-off timings")
    p.add_argument("--netem-tests", action="store_true",
                   help="run the real-device netem tests in the guest with this Python (skipped "
                        "where the kernel has netem, or qemu/kmod/the kernel are missing and "
                        "CI is not true)")
    p.add_argument("command", nargs="*", help="the command (after --) and its arguments")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # finally: qemu is killed
    try:
        if args.fetch:
            fetch()
            if not args.command:
                return 0
        if args.netem_tests:
            return netem_tests(memory=args.memory, cpus=args.cpus, timeout=args.timeout)
        if not args.command:
            p.error("no command (python -m tests.guest -- COMMAND...)")
        return run(args.command, cwd=Path.cwd(), memory=args.memory, cpus=args.cpus,
                   timeout=args.timeout, verbose=not args.quiet)
    except GuestError as e:
        print(f"guest: error: {e}", file=sys.stderr)
        return EXIT_GUEST if not args.fetch else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
