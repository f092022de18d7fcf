"""The host allocator policy of the exporter's and the reference's Python runs, the same as the
C++ runtime's (runtime/host_allocator.h): glibc's malloc serves large blocks from its heap
instead of fresh mmap'd pages (each of which costs a page fault per 4 KiB on every use), and
memory goes back to the system with `trim()` where a stage's temporaries have been freed.

WANRT_HOST_ALLOCATOR=system leaves the allocator alone; under jemalloc or tcmalloc (preloaded)
nothing is changed. docs/optimization.md ("Host memory allocator") has the measurements.
"""
import ctypes
import ctypes.util
import os
from typing import Optional

# glibc's mallopt parameters (malloc.h) and the tuned values (runtime/host_allocator.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TUNED_MMAP_THRESHOLD = 1 << 30
TUNED_TRIM_THRESHOLD = 1 << 30

_state: Optional[dict] = None


def _process():
    return ctypes.CDLL(None)


def allocator() -> str:
    """The malloc this process runs: glibc, jemalloc or tcmalloc."""
    proc = _process()
    if hasattr(proc, "mallctl"):
        return "jemalloc"
    if hasattr(proc, "MallocExtension_ReleaseFreeMemory"):
        return "tcmalloc"
    return "glibc"


def configure(policy: Optional[str] = None) -> dict:
    """Apply `policy` ("tuned" or "system"; default: $WANRT_HOST_ALLOCATOR, else tuned) once per
    process; later calls return what the first one did."""
    global _state
    if _state is not None:
        return _state
    policy = policy or os.environ.get("WANRT_HOST_ALLOCATOR") or "tuned"
    if policy not in ("tuned", "system"):
        raise ValueError(f"unknown host allocator policy '{policy}' (expected tuned or system)")
    name = allocator()
    tuned = False
    if policy == "tuned" and name == "glibc":
        proc = _process()
        tuned = (proc.mallopt(M_MMAP_THRESHOLD, TUNED_MMAP_THRESHOLD) == 1 and
                 proc.mallopt(M_TRIM_THRESHOLD, TUNED_TRIM_THRESHOLD) == 1)
    _state = {"allocator": name, "policy": policy, "tuned": tuned}
    return _state


def trim() -> None:
    """Give the allocator's free memory back to the system (glibc malloc_trim)."""
    if allocator() == "glibc":
        _process().malloc_trim(0)
