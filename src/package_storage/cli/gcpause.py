"""The cyclic garbage collector paused while a command starts (issue 15: CLI start-up).

Importing the store's code and opening a store make ~10^5 objects that live as long as the
process; the collector's passes over them while they are being made (hundreds of young
generation passes) free nothing and cost a new process about a tenth of its start-up. The
collector is off inside :func:`paused_gc` and back on after it (as it was); the work a command
does afterwards (an import of thousands of versions, a server) runs with it as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No collection inside (reference counting still frees what it can); the collector is
    enabled again after, unless it was off before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["paused_gc"]
