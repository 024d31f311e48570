"""Keep freed memory in the process, so that XLA's large buffers are not faulted in afresh.

XLA's CPU runtime allocates every output and every program's scratch space
with ``malloc``, once per call. glibc serves a request above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and gives it back with
``munmap`` when the buffer is freed, so the next call's buffer of the same
size is new memory again: the kernel maps and zeroes it one 4 KiB page at a
time, on first touch. For the wide networks of this study that is most of
the time of some calls. Measured on the 2-core machine the reports are built
on, for one width-10000 weight matrix (400 MB): a jitted ``W * c`` takes
191 ms with glibc's defaults and 41 ms with the settings below, the
difference being page faults; full-batch training of a width-10000 depth-3
network for two steps takes 1.8 s against 1.0 s.

``keep_freed_memory`` tells glibc to serve every request from its heap
(``M_MMAP_MAX = 0``) and not to hand freed memory at the heap's top back to
the system (``M_TRIM_THRESHOLD``), so freed buffers are reused as they are.
The price: the process keeps the most memory it ever held until it exits;
``free_held_bytes`` says how much of it is free for the process's own reuse,
which ``replication.memory`` counts as available.
The command line (``python -m replication``) and the tests call it at start;
a program that imports the library may call it too. Elsewhere than glibc it
does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


@functools.lru_cache(maxsize=None)
def _libc_function(name: str):
    """The C library's ``name``, looked up once (``find_library`` runs ``ldconfig``), or None."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS), or an older one
        return None


def keep_freed_memory() -> bool:
    """Set glibc malloc to reuse freed memory instead of unmapping it; ``True`` if it took effect."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def free_held_bytes() -> int:
    """Bytes that glibc malloc holds free in this process's heaps (0 where it cannot tell)."""
    mallinfo2 = _libc_function("mallinfo2")
    if mallinfo2 is None:
        return 0
    mallinfo2.restype = _Mallinfo2
    return int(mallinfo2().fordblks)
