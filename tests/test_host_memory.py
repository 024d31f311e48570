"""glibc keeps freed buffers for reuse once ``keep_freed_memory`` is set (conftest sets it)."""
import sys

import numpy as np
import pytest

from replication import memory
from replication.host_memory import free_held_bytes, keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_buffer_stays_in_the_heap_and_counts_as_available():
    assert keep_freed_memory()
    before = free_held_bytes()
    a = np.ones(50 * 2**20 // 8)  # 50 MiB: above glibc's largest mmap threshold (32 MiB)
    del a
    # Without the setting the buffer is munmap-ed and free_held_bytes does not move; with it, the
    # whole buffer is held free, less whatever the interpreter allocates meanwhile (kilobytes).
    assert free_held_bytes() - before >= 0.9 * 50 * 2**20
    assert memory.available_bytes() >= free_held_bytes()
