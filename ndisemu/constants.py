"""NDIS 5.x names and codes, verbatim.

OID values: ReactOS ``sdk/include/psdk/ntddndis.h:208-279`` (reference nt-model §5, source R).
NDIS_STATUS values: the DDK's ``ndis.h`` (identical in ReactOS ``sdk/include/ddk/ndis.h``).
Packet-filter bits: ``ntddndis.h`` NDIS_PACKET_TYPE_*.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Oid(IntEnum):
    """NDIS object identifiers used by the emulation (names without the ``OID_`` prefix)."""

    GEN_SUPPORTED_LIST = 0x00010101
    GEN_HARDWARE_STATUS = 0x00010102
    GEN_MEDIA_SUPPORTED = 0x00010103
    GEN_MEDIA_IN_USE = 0x00010104
    GEN_MAXIMUM_LOOKAHEAD = 0x00010105
    GEN_MAXIMUM_FRAME_SIZE = 0x00010106
    GEN_LINK_SPEED = 0x00010107
    GEN_CURRENT_PACKET_FILTER = 0x0001010E
    GEN_CURRENT_LOOKAHEAD = 0x0001010F
    GEN_MAXIMUM_TOTAL_SIZE = 0x00010111
    GEN_MEDIA_CONNECT_STATUS = 0x00010114
    GEN_MAXIMUM_SEND_PACKETS = 0x00010115
    E802_3_PERMANENT_ADDRESS = 0x01010101
    E802_3_CURRENT_ADDRESS = 0x01010102
    E802_3_MULTICAST_LIST = 0x01010103
    E802_3_MAXIMUM_LIST_SIZE = 0x01010104

    @property
    def ndis_name(self) -> str:
        """The DDK spelling, e.g. ``OID_802_3_CURRENT_ADDRESS``."""
        return "OID_" + self.name.replace("E802_3", "802_3")

    @classmethod
    def from_name(cls, name: str) -> Oid:
        """Accept ``OID_GEN_LINK_SPEED``, ``GEN_LINK_SPEED`` or ``0x00010107``."""
        text = name.strip()
        if text.lower().startswith("0x"):
            return cls(int(text, 16))
        key = text.upper().removeprefix("OID_").replace("802_3", "E802_3")
        return cls[key]


def oid_name(code: int) -> str:
    """The DDK name of an OID code (``OID_0x…`` for one we do not know)."""
    name = _OID_NAMES.get(code)
    if name is None:
        name = f"OID_0x{code:08X}"
    return name


_OID_NAMES: dict[int, str] = {int(o): o.ndis_name for o in Oid}  # looked up on every OID


class NdisStatus(IntEnum):
    """NDIS_STATUS codes (ndis.h). Returned, never raised."""

    SUCCESS = 0x00000000
    PENDING = 0x00000103
    NOT_RECOGNIZED = 0x00010001
    NOT_COPIED = 0x00010002
    FAILURE = 0xC0000001
    RESOURCES = 0xC000009A
    CLOSING = 0xC0010002
    RESET_IN_PROGRESS = 0xC001000D
    NOT_SUPPORTED = 0xC00000BB
    INVALID_PACKET = 0xC001000F
    ADAPTER_NOT_FOUND = 0xC0010006
    INVALID_LENGTH = 0xC0010014
    INVALID_DATA = 0xC0010015
    BUFFER_TOO_SHORT = 0xC0010016
    MULTICAST_FULL = 0xC0010009
    ADAPTER_REMOVED = 0xC0010018
    REQUEST_ABORTED = 0xC001000C

    @property
    def ndis_name(self) -> str:
        return "NDIS_STATUS_" + self.name

    @classmethod
    def from_name(cls, name: str) -> NdisStatus:
        return cls[name.strip().upper().removeprefix("NDIS_STATUS_")]


#: Status indications (NdisMIndicateStatus), not request results (ndis.h: NDIS_STATUS_MEDIA_
#: CONNECT / NDIS_STATUS_MEDIA_DISCONNECT); kept out of NdisStatus, which plans draw failures
#: from.
NDIS_STATUS_MEDIA_CONNECT = 0x4001000B
NDIS_STATUS_MEDIA_DISCONNECT = 0x4001000C
MEDIA_STATUS_NAMES = {NDIS_STATUS_MEDIA_CONNECT: "NDIS_STATUS_MEDIA_CONNECT",
                      NDIS_STATUS_MEDIA_DISCONNECT: "NDIS_STATUS_MEDIA_DISCONNECT"}


class RequestType(IntEnum):
    """NDIS_REQUEST_TYPE."""

    QUERY = 1  # NdisRequestQueryInformation
    SET = 2  # NdisRequestSetInformation

    @property
    def short(self) -> str:
        return "Q" if self is RequestType.QUERY else "Set"


class PacketFilter(IntFlag):
    """NDIS_PACKET_TYPE_* bits for OID_GEN_CURRENT_PACKET_FILTER."""

    NONE = 0
    DIRECTED = 0x00000001
    MULTICAST = 0x00000002
    ALL_MULTICAST = 0x00000004
    BROADCAST = 0x00000008
    PROMISCUOUS = 0x00000020


class MediaState(IntEnum):
    """NDIS_MEDIA_STATE for OID_GEN_MEDIA_CONNECT_STATUS."""

    CONNECTED = 0
    DISCONNECTED = 1
