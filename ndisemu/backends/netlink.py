"""Network namespaces, devices and their bookkeeping, through netlink (pyroute2).

Everything this tool creates is named ``t6l-…`` and recorded in a state file under
/run/tcpip6-lab/ before it exists, so that an interrupted run can be cleaned up
(`tcpip6-lab cleanup`). Errors a user can fix (not root, no /dev/net/tun, a name that is taken)
are `BackendError`s with a one-line message.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendError

PREFIX = "t6l-"
STATE_DIR = Path(os.environ.get("TCPIP6_LAB_STATE_DIR", "/run/tcpip6-lab"))
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BackendError(f"{what} needs root (CAP_NET_ADMIN) to create network devices and "
                           "namespaces; run as root, or use --backend memory")


def require_tun() -> None:
    if not os.path.exists("/dev/net/tun"):
        raise BackendError("/dev/net/tun is missing: load the tun module (modprobe tun) or use "
                           "--backend memory or veth")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise BackendError("/dev/net/tun is not readable and writable by this user")


def new_run_id() -> str:
    return secrets.token_hex(2)[:3]


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Registry:
    """What one run created; persisted to a state file before each creation."""

    run_id: str
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    path: Path | None = None

    @classmethod
    def open(cls, run_id: str | None = None) -> Registry:
        reg = cls(run_id or new_run_id())
        try:
            STATE_DIR.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create state directory {STATE_DIR}: {exc.strerror}") \
                from None
        reg.path = STATE_DIR / f"{reg.run_id}.json"
        reg._save()
        return reg

    def _save(self) -> None:
        if self.path is None:
            return
        pid = os.getpid()
        data = {"pid": pid, "run_id": self.run_id, "created": time.time(),
                "netns": self.netns, "links": self.links}
        # Written aside, then renamed over the state file: a reader never sees half a file.
        # The temporary name carries our pid, so that `cleanup` can tell an orphan (SIGKILL
        # between the two steps) from a live run's; a Ctrl-C between them removes it here.
        tmp = self.path.with_name(f"{self.run_id}.{pid}.tmp")
        try:
            tmp.write_text(json.dumps(data))
            tmp.replace(self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def claim_netns(self, name: str) -> None:
        if netns_exists(name):
            raise BackendError(f"network namespace {name!r} already exists (choose another "
                               "--netns, or remove it: tcpip6-lab cleanup)")
        self.netns.append(name)
        self._save()

    def claim_link(self, name: str) -> None:
        if len(name) > IFNAMSIZ:
            raise BackendError(f"device name {name!r} is longer than {IFNAMSIZ} characters")
        if link_exists(name):
            raise BackendError(f"network device {name!r} already exists (tcpip6-lab cleanup "
                               "removes leftovers of earlier runs)")
        self.links.append(name)
        self._save()

    def release_links(self, names: list[str]) -> None:
        """Forget links removed before the end of the run (an adapter's departure)."""
        self.links = [n for n in self.links if n not in names]
        self._save()

    def teardown(self) -> list[str]:
        """Remove everything recorded (links first, then namespaces) and the state file."""
        removed = remove_objects(self.links, self.netns)
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.links.clear()
        self.netns.clear()
        return removed


def remove_objects(links: list[str], namespaces: list[str]) -> list[str]:
    from pyroute2 import IPRoute, netns

    removed: list[str] = []
    with IPRoute() as ipr:
        for name in links:
            idx = ipr.link_lookup(ifname=name)
            if idx:
                with contextlib.suppress(Exception):
                    ipr.link("del", index=idx[0])
                    removed.append(f"link {name}")
    for name in namespaces:
        if netns_exists(name):
            # Deleting a namespace deletes the devices inside it (veth peers go with them).
            with contextlib.suppress(OSError):
                netns.remove(name)
                removed.append(f"netns {name}")
    return removed


def cleanup_leftovers() -> list[str]:
    """Remove what crashed runs left: state files of dead processes, then any t6l-* device
    or namespace that no live run has recorded."""
    live_links: set[str] = set()
    live_ns: set[str] = set()
    removed: list[str] = []
    if STATE_DIR.exists():
        for state in sorted(STATE_DIR.glob("*.json")):
            try:
                data: dict[str, Any] = json.loads(state.read_text())
            except (OSError, ValueError):
                state.unlink(missing_ok=True)
                continue
            if pid_alive(int(data.get("pid", 0))) and int(data.get("pid", 0)) != os.getpid():
                live_links.update(data.get("links", []))
                live_ns.update(data.get("netns", []))
                continue
            removed += remove_objects(list(data.get("links", [])), list(data.get("netns", [])))
            state.unlink(missing_ok=True)
        for tmp in sorted(STATE_DIR.glob("*.tmp")):  # a state file interrupted mid-write
            owner = tmp.name.split(".")
            if len(owner) == 3 and owner[1].isdigit() and pid_alive(int(owner[1])) \
                    and int(owner[1]) != os.getpid():
                continue
            with contextlib.suppress(FileNotFoundError):  # unless its writer just renamed it
                tmp.unlink()
                removed.append(f"state {tmp.name}")
    stray_links = [n for n in _list_links() if n.startswith(PREFIX) and n not in live_links]
    stray_ns = [n for n in _list_netns() if n.startswith(PREFIX) and n not in live_ns]
    removed += remove_objects(stray_links, stray_ns)
    return removed


def _list_links() -> list[str]:
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def _list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except OSError:
        return []


CLONE_NEWNET = 0x40000000
_libc: Any = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with this thread in namespace `name` (setup only, never the packet path).
    Sockets created inside stay in that namespace after the thread switches back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(home)
        raise BackendError(f"no network namespace {name!r}: {exc.strerror}") from None
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def netns_preexec(name: str) -> Callable[[], None]:
    """A `preexec_fn` that moves a child process into namespace `name` before exec."""
    path = str(NETNS_DIR / name)

    def enter() -> None:
        fd = os.open(path, os.O_RDONLY)
        _setns(fd)
        os.close(fd)

    return enter


def write_sysctl(netns_name: str, key: str, value: str) -> None:
    """Set /proc/sys/<key> inside a namespace (e.g. net/ipv6/conf/default/accept_dad)."""
    with in_netns(netns_name):
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise BackendError(f"cannot set {key} in {netns_name}: {exc.strerror}") from None
