"""ndisemu: the emulated NT kernel side — executive work queues, NDIS, miniports, PnP, wires."""

from .native import install as _install_native

# Before any hot module is imported: load the compiled build when it is fresh (ndisemu.native).
_install_native()
