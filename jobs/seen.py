"""A compact set of ids: what a listing or a plan of a million servers has already seen.

Planning drops a target listed twice, and each driver's listing drops a server a shifting page
showed twice; both must remember every id they have passed. A `set` of the ids costs about
120 bytes an id (the string and its slot): 124 MB for 1,000,000 ids of 36-40 characters, held
twice during a planning (the listing's and the plan's). `SeenIds` keeps a 128-bit digest per id
instead. It is pure (the standard library only), so the drivers use it too (the one module of
`jobs` they may import, see pyproject.toml's import contracts).
"""

from __future__ import annotations

import hashlib
from array import array


class SeenIds:
    """The ids seen so far, as 128-bit digests (BLAKE2b) in one open-addressing table of machine
    words: 16 bytes a slot, at most two thirds full, so 1,000,000 ids take 32 MB (50 MB at most
    while the table doubles) where a `set` of the ids took about 124 MB. Two different ids share
    a digest with a probability of about n^2 / 2^128 (3e-27 for a million), far below any
    hardware fault: `add` is exact in practice."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cap = 1 << max(4, (capacity - 1).bit_length())
        self._slots = array("Q", [0]) * (2 * self._cap)  # (high, low) per slot; high 0: empty
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._slots.itemsize * len(self._slots)

    def add(self, target_id: str) -> bool:
        """Record `target_id`; False if it was there already."""
        digest = hashlib.blake2b(target_id.encode(), digest_size=16).digest()
        high = int.from_bytes(digest[:8], "little") | 1  # never 0, which marks an empty slot
        low = int.from_bytes(digest[8:], "little")
        if not self._put(self._slots, self._cap, high, low):
            return False
        self._count += 1
        if 3 * self._count > 2 * self._cap:
            self._grow()
        return True

    @staticmethod
    def _put(slots: array[int], cap: int, high: int, low: int) -> bool:
        i, mask = low & (cap - 1), cap - 1
        while True:
            at = slots[2 * i]
            if at == 0:
                slots[2 * i], slots[2 * i + 1] = high, low
                return True
            if at == high and slots[2 * i + 1] == low:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old, cap = self._slots, self._cap * 2
        slots = array("Q", [0]) * (2 * cap)
        for i in range(0, len(old), 2):
            if old[i]:
                self._put(slots, cap, old[i], old[i + 1])
        self._slots, self._cap = slots, cap
