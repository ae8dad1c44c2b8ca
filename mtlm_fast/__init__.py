"""Private compiled kernels of mtlm (Cython + OpenMP).

Users import :mod:`mtlm`; the kernels here assume validated, C-contiguous input.
"""

from mtlm_fast._openmp_helpers import effective_n_threads, max_threads, openmp_enabled

__all__ = ["effective_n_threads", "max_threads", "openmp_enabled"]
