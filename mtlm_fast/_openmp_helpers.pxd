# Shim so that every kernel compiles and imports whether or not OpenMP was
# found: never `cimport openmp` directly.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define MTLM_OPENMP 1
    #else
    #define MTLM_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint MTLM_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
