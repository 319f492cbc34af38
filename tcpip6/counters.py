"""`Counters`: the `collections.Counter` that the stack, the binder and the IPv4 side count in.

It is a `Counter` in every way that code or a test can see (missing keys read 0,
``most_common``, arithmetic, equality, ``dict(...)``), with one difference in cost: its item
reads and writes are `dict`'s own C slots. `Counter` defines ``__delitem__`` in Python, and a
Python-level ``__delitem__`` makes CPython route *every* item assignment through a generic
slot that looks the method up and calls it (``slot_mp_ass_subscript``): ``counters["rx"] += 1``
costs about twice a dict's, and on the per-frame path (three counts per Echo Request) it
showed up in the instruction counts (bench/README.md, "Issue 18, fifth round").
Re-binding ``__getitem__``, ``__setitem__`` and ``__delitem__`` to `dict`'s wrappers gives the
type `dict`'s slots back. The one visible change: ``del counters[key]`` of a missing key
raises `KeyError`, as for a dict (`Counter` ignores it); nothing here deletes a count.

Not compiled (mypyc compiles no subclass of a Python class): it is only a type.
"""

from __future__ import annotations

from collections import Counter


class Counters(Counter[str]):
    __slots__ = ()
    __getitem__ = dict.__getitem__  # __missing__ still gives 0
    __setitem__ = dict.__setitem__
    __delitem__ = dict.__delitem__  # type: ignore[assignment]
