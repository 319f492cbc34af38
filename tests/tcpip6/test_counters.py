"""`tcpip6.counters.Counters`: a `Counter` whose item reads and writes are dict's C slots."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest

from tcpip6.binder import Tcpip6Binding
from tcpip6.counters import Counters
from tcpip6.ipv4 import Ipv4Binding
from tests.tcpip6.stack6_helpers import new_host


def test_counters_count_as_a_counter_does() -> None:
    c = Counters()
    c["rx"] += 1
    c["rx"] += 2
    c["tx"] += 1
    assert c["never"] == 0 and "never" not in c  # a missing count reads 0, and is not added
    assert c == Counter(rx=3, tx=1)
    assert c.most_common(1) == [("rx", 3)]
    assert c.total() == 4
    assert dict(c + Counters(tx=1)) == {"rx": 3, "tx": 2}
    copy = pickle.loads(pickle.dumps(c))
    assert type(copy) is Counters and copy == c


def test_item_assignment_is_dicts_own() -> None:
    """Counter's Python ``__delitem__`` would route every ``c[k] += 1`` through a generic slot;
    Counters re-binds the item methods to dict's, so the type gets dict's slots back."""
    for name in ("__getitem__", "__setitem__", "__delitem__"):
        assert getattr(Counters, name) is getattr(dict, name)
    c = Counters(a=1)
    del c["a"]
    with pytest.raises(KeyError):  # the one difference from Counter: as a dict does
        del c["a"]


def test_the_per_frame_counts_are_counters() -> None:
    host = new_host()
    assert type(host.counters) is Counters
    for cls in (Tcpip6Binding, Ipv4Binding):  # each interface's, in tcpip6 and IPv4
        assert type(cls.__dataclass_fields__["counters"].default_factory()) is Counters
