"""ndisemu: the emulated NT kernel side — executive work queues, NDIS, miniports, PnP, wires."""
