# The run-time SIMD level of a kernel module, seen from Python.  Included by
# _pairwise, _ldml and _vote after each has defined
#     cdef int _simd_current() noexcept   (the level in use)
#     cdef int _simd_use(int level) noexcept   (switch; returns the new level)
# over its own C dispatch table.

cdef extern from "_simd.h" nogil:
    int MTLM_SIMD_SCALAR, MTLM_SIMD_BASE, MTLM_SIMD_AVX2
    int mtlm_simd_best()


_SIMD_NAMES = {MTLM_SIMD_SCALAR: "scalar", MTLM_SIMD_BASE: "base",
               MTLM_SIMD_AVX2: "avx2"}
_SIMD_CODES = {name: code for code, name in _SIMD_NAMES.items()}
_simd_use(mtlm_simd_best())


def simd_level():
    """Kernels in use: "avx2", "base" (portable SIMD) or "scalar" (plain C)."""
    return _SIMD_NAMES[_simd_current()]


def simd_levels():
    """Levels this build can run on this CPU, slowest first."""
    return [_SIMD_NAMES[c] for c in sorted(_SIMD_NAMES) if c <= mtlm_simd_best()]


def _set_simd_level(name):
    """Switch kernels (for tests and benchmarks; not thread-safe); returns the old."""
    if name not in simd_levels():
        raise ValueError(f"SIMD level {name!r} is not available; "
                         f"choose from {simd_levels()}.")
    old = simd_level()
    _simd_use(_SIMD_CODES[name])
    return old
