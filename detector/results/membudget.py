"""A byte budget shared by threads that decode images: how much may be held in memory at once.

Decoding is the one step whose memory a file decides (a 10 kB PNG can decode to 300 MB), and decode
workers run ahead of the scan. Each image reserves its estimated cost before it is read and gives it
back when its scan is done, so the images being read, decoded and waiting together never exceed the
budget; one image larger than the whole budget still runs, alone.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from detector.images import header_size

#: Default budget for images being read, decoded or waiting to be scanned (bytes).
DEFAULT_DECODE_MEMORY = 1 << 30
#: Bytes per pixel an image costs while decoded: Pillow's image, its RGB conversion and the array.
BYTES_PER_DECODED_PIXEL = 9


class MemoryBudget:
    def __init__(self, limit: int = DEFAULT_DECODE_MEMORY) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._cond = threading.Condition()

    def try_acquire(self, n: int) -> bool:
        """Reserve n bytes if they fit now (or if nothing is held: a big image runs alone)."""
        with self._cond:
            if self.held and self.held + n > self.limit:
                return False
            self._take(n)
            return True

    def acquire(self, n: int) -> None:
        """Wait until n bytes fit (or nothing is held). Safe only for a thread holding no reservation."""
        with self._cond:
            self._cond.wait_for(lambda: not self.held or self.held + n <= self.limit)
            self._take(n)

    def _take(self, n: int) -> None:
        self.held += n
        self.peak = max(self.peak, self.held)

    def release(self, n: int) -> None:
        with self._cond:
            self.held -= n
            self._cond.notify_all()

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        self.acquire(n)
        try:
            yield
        finally:
            self.release(n)


def decode_cost(path: str | Path, max_file_bytes: int, max_pixels: int) -> int:
    """What decoding `path` may hold at its peak, from stat and the image header only (no decoding).
    Files that will be refused unread (special, missing, over the caps) cost nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_file_bytes:
        return 0
    size = header_size(path)
    pixels = size[0] * size[1] if size else 0
    return st.st_size + (pixels * BYTES_PER_DECODED_PIXEL if pixels <= max_pixels else 0)
