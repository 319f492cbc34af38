"""tcpip6lab: the application layer — an emulated host assembled from ndisemu, tcpip6 and faults,
the storm runner, the live demo and the command line."""
