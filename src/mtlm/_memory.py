"""Memory estimates made before large allocations."""

from __future__ import annotations

import os

__all__ = ["available_memory", "check_allocation", "rows_per_block"]


def available_memory():
    """Bytes of memory the OS reports as available (MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(nbytes, what, hint):
    """Raise MemoryError before allocating ``nbytes`` that the machine lacks.

    Parameters
    ----------
    nbytes : int
        Size of the planned buffer.
    what : str
        What the buffer holds, for the message.
    hint : str
        Which parameter or input would make it smaller.
    """
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise MemoryError(
            f"{what} would need {nbytes / 2**30:.2f} GiB but only "
            f"{avail / 2**30:.2f} GiB is available; {hint}."
        )


def rows_per_block(bytes_per_row, budget=256 * 2**20, low=1, high=1024):
    """Number of query rows whose buffers fit in ``budget`` bytes."""
    rows = budget // max(int(bytes_per_row), 1)
    return int(max(low, min(high, rows)))
