"""A minimal classic-libpcap writer (no dependencies), for capturing the emulated wire.

Theory of operation: the file is the classic format described in pcap(5) / the IETF draft
"PCAP Capture File Format" (draft-ietf-opsawg-pcap §4, §5): a 24-byte global header — magic
0xa1b2c3d4 (microsecond timestamps), version 2.4, thiszone 0, sigfigs 0, snaplen, LinkType
(1 = LINKTYPE_ETHERNET) — then per packet a 16-byte record header (ts_sec, ts_usec, captured
length, original length) followed by the captured bytes. We write little-endian; readers detect
the byte order from the magic.

Timestamps are virtual seconds (the emulation's clock), converted once to whole microseconds
with round-half-even and then split with ``divmod``, so ``ts_usec`` is always in
[0, 1_000_000) — splitting first and rounding the fraction could yield 1_000_000. Frames longer
than ``snaplen`` are truncated (captured length < original length), as libpcap does. The
default is libpcap's and tcpdump's (MAXIMUM_SNAPLEN, 262144): a TAP device opened for task
offload carries super-frames of up to 64 KiB of TCP payload plus headers, over 65535 bytes.
"""

from __future__ import annotations

import os
import struct
from types import TracebackType
from typing import BinaryIO

MAGIC_USEC = 0xA1B2C3D4
VERSION_MAJOR = 2
VERSION_MINOR = 4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262_144  # libpcap's MAXIMUM_SNAPLEN, tcpdump's default (see the module docstring)

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """Write frames to a classic pcap file. Use as a context manager or call :meth:`close`.

    ``target`` is a path (opened and owned: closed on :meth:`close`) or a binary file object
    (borrowed: flushed but left open on :meth:`close`).
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        snaplen: int = SNAPLEN,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen out of range: {snaplen}")
        self.snaplen = snaplen
        self.linktype = linktype
        self.packets = 0
        self._owned = isinstance(target, str | os.PathLike)
        self._file: BinaryIO = (
            open(target, "wb")  # noqa: SIM115 - lifetime is this object's
            if isinstance(target, str | os.PathLike)
            else target
        )
        self._closed = False
        self._file.write(
            _GLOBAL.pack(MAGIC_USEC, VERSION_MAJOR, VERSION_MINOR, 0, 0, snaplen, linktype)
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame: bytes | bytearray | memoryview, timestamp: float) -> None:
        """Append one frame captured at virtual time ``timestamp`` (seconds, >= 0)."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        usec_total = round(timestamp * 1_000_000)
        if usec_total < 0:
            raise ValueError(f"negative timestamp: {timestamp}")
        sec, usec = divmod(usec_total, 1_000_000)
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp beyond the classic pcap range: {timestamp}")
        orig = len(frame)
        incl = min(orig, self.snaplen)
        self._file.write(_RECORD.pack(sec, usec, incl, orig))
        self._file.write(frame if incl == orig else memoryview(frame)[:incl])
        self.packets += 1

    def flush(self) -> None:
        """Push buffered records to the OS (so a reader can follow a live capture)."""
        if not self._closed:
            self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if we opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._file.flush()
        if self._owned:
            self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
