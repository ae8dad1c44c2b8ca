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
        means ``cpu_count + 1 - k``; 0 is an error.

    Returns
    -------
    n_threads : int
        At least 1; always 1 when the kernels were built without OpenMP.
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
    if n_jobs is None:
        return max(1, omp_get_max_threads())
    if n_jobs < 0:
        n_cpus = os.cpu_count() or 1
        return max(1, n_cpus + 1 + n_jobs)
    return n_jobs
