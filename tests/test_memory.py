"""Handing freed memory back: the heap's free pages leave the process's resident set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from styleshift.core import memory

MiB = 2**20


def _resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    memory._malloc_trim() is None or not Path("/proc/self/statm").exists(),
    reason="needs glibc's malloc_trim and /proc",
)
def test_release_returns_the_free_pages_of_a_fragmented_heap() -> None:
    # 64 KiB blocks (under glibc's mmap threshold, so on the heap) kept apart by small
    # blocks that stay: freeing the large ones leaves holes that glibc keeps resident.
    blocks, pins = [], []
    for _ in range(2000):
        blocks.append(torch.ones(16 * 1024))
        pins.append(torch.ones(16))
    del blocks
    freed = _resident()
    memory.release(torch.device("cpu"))
    assert freed - _resident() > 100 * MiB  # of the 125 MiB freed
    assert len(pins) == 2000
