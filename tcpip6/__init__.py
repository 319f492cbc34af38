"""tcpip6: the emulated Windows IPv6 protocol driver — binder, OID executors, IPv6 stack."""
