"""A small seeded generator for per-adapter randomness.

Each adapter draws its own numbers (miniport latency jitter, the IPv6 stack's timer jitter and
identifiers) so that a fault on one adapter never shifts another's sequence. `random.Random`
would do, but its Mersenne Twister state is 2.5 KB and seeding it from a string costs a SHA-512
and a 624-word initialisation: with two per adapter that was the largest single item of a
10,000-adapter storm's memory. SplitMix64 (Steele, Lea, Flood: "Fast splittable pseudorandom
number generators", OOPSLA 2014; the seeder of xoshiro, https://prng.di.unimi.it/splitmix64.c)
keeps one 64-bit word and passes BigCrush — plenty for timer jitter, and deterministic across
platforms and Python versions, as seeded runs need.

Only what the emulation uses is here: `random`, `uniform`, `getrandbits`, `randrange`, `randint`.
"""

from __future__ import annotations

import hashlib

__all__ = ["SplitMix64"]

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_TWO_M53 = 2.0 ** -53


class SplitMix64:
    """SplitMix64 seeded from an int, a str or bytes (strings go through BLAKE2b)."""

    __slots__ = ("_s",)

    def __init__(self, seed: int | str | bytes) -> None:
        if isinstance(seed, int):
            self._s = seed & _MASK
        else:
            raw = seed.encode() if isinstance(seed, str) else bytes(seed)
            self._s = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")

    def next64(self) -> int:
        """The next 64-bit output."""
        s = self._s = (self._s + _GAMMA) & _MASK
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits (next64 inline: the per-request jitter draw)."""
        s = self._s = (self._s + _GAMMA) & _MASK
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return ((z ^ (z >> 31)) >> 11) * _TWO_M53

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        out = 0
        have = 0
        while have < k:
            out = (out << 64) | self.next64()
            have += 64
        return out >> (have - k)

    def randrange(self, start: int, stop: int | None = None) -> int:
        """An int in [start, stop) — or [0, start) — without modulo bias (rejection)."""
        if stop is None:
            start, stop = 0, start
        n = stop - start
        if n <= 0:
            raise ValueError(f"empty range for randrange({start}, {stop})")
        bits = n.bit_length()
        while True:
            r = self.getrandbits(bits)
            if r < n:
                return start + r

    def randint(self, a: int, b: int) -> int:
        return self.randrange(a, b + 1)
