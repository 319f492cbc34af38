"""Executors a user might write, importable by spec (``tests.tcpip6.user_executors:NAME``):
the registry, CLI, bench, replay and plugin tests run them in their own processes too."""

from __future__ import annotations

from tcpip6.example_executors import BoundedExecutor
from tcpip6.executors import CriticalExecutor, ExecutorContext, OidExecutor


class Unpatched(CriticalExecutor):
    """The unpatched design under a user's name: its cliff is measured, never computed."""

    name = "unpatched"


class RememberingContext(CriticalExecutor):
    """Keeps the context it was constructed with, for the tests to look at."""

    name = "remembering"
    contexts: list[ExecutorContext] = []

    def __init__(self, ctx: ExecutorContext) -> None:
        super().__init__(ctx)
        RememberingContext.contexts.append(ctx)


class NotAnExecutor:
    pass


class Incomplete(OidExecutor):  # no submit, no completed: abstract
    name = "incomplete"


not_a_class = 3


class Bounded24(BoundedExecutor):
    """The docs' example with its limit at the critical queue's capacity: it knots again."""

    limit = 24
