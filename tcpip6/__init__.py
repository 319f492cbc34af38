"""tcpip6: the emulated Windows IPv6 protocol driver — binder, OID executors, IPv6 stack."""

# ndisemu first: importing it decides whether the compiled modules (tcpip6.binder among them)
# are used, before any of them is imported (ndisemu.native).
import ndisemu as _ndisemu  # noqa: F401
