"""`python -m tcpip6lab.cli …`: the same as the `tcpip6-lab` console script."""

from . import run

run()
