"""Seeded generators of the fault plans: one per fault, from a stable digest."""

from __future__ import annotations

import hashlib
import random


def fault_rng(root_seed: int, fault_id: str, domain: str = "tcpip6-lab") -> random.Random:
    """A fault's own generator: a stable digest of (root seed, fault id), never `hash()`.
    `domain` separates other uses (timing offsets) from the fault's decisions."""
    digest = hashlib.sha256(f"{domain}:{root_seed}:{fault_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
