"""What the UI keeps between pages: only values that never change for their key.

A revision is immutable (its entries for a (distribution, number) never change) and an
artifact is content-addressed (its manifest summary and its README, changelog and icon for a
digest never change), so these are cached in bounded LRUs; a page still asks the service
for everything that moves (current revisions, stage entries, signatures, events), and every
read goes through the token's service first (its ``read`` scope is checked on each page).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Lru(Generic[V]):
    """A thread-safe LRU of at most ``size`` values (a value is made outside the lock: two
    threads may make the same one, the last one kept)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["Lru"]
