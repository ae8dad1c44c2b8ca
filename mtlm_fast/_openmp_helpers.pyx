"""Thread-count helpers shared by the kernels."""
import os

from mtlm_fast._openmp_helpers cimport MTLM_OPENMP, omp_get_max_threads


def openmp_enabled():
    """Return True when the kernels were compiled with OpenMP."""
    return bool(MTLM_OPENMP)


def max_threads():
    """Return what the OpenMP runtime would use now (1 without OpenMP).

    This follows ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``.
    """
    return omp_get_max_threads()


def effective_n_threads(n_jobs=None):
    """Resolve an ``n_jobs``-style request into a positive thread count.

    Parameters
    ----------
    n_jobs : int or None
        None follows the OpenMP runtime (``OMP_NUM_THREADS``,
        threadpoolctl limits); -1 means every CPU; a negative value ``-k``
        means ``cpu_count + 1 - k``; 0 is an error. A count above the CPUs
        this process may run on, asked for or from the runtime, is capped
        there: the kernels are CPU-bound, and the OpenMP runtime crashes when
        asked for 10^5 threads.

    Returns
    -------
    n_threads : int
        In [1, CPUs]; always 1 when the kernels were built without OpenMP.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or
                               not isinstance(n_jobs, (int,)) and
                               not hasattr(n_jobs, "__index__")):
        raise ValueError(f"n_jobs must be an int or None, got {n_jobs!r}.")
    if n_jobs is not None:
        n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive int.")
    if not MTLM_OPENMP:
        return 1
    n_cpus = _usable_cpus()
    if n_jobs is None:
        return max(1, min(omp_get_max_threads(), n_cpus))
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return min(n_jobs, n_cpus)


def _usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
