/* Which vector levels this compiler can build and this CPU can run, for the
 * kernels that pick their code at run time (_ldml_kernels.h, _vote_kernels.h).
 *
 *   scalar  plain C with libm (compilers without GCC/Clang vector extensions)
 *   base    4-lane float64 vector extensions on the baseline instruction set
 *   avx2    the same code compiled with __attribute__((target("avx2"))) (and
 *           "fma" for the distance kernels; every x86-64 CPU with AVX2 in
 *           common use has FMA, so one check serves all kernels)
 */
#ifndef MTLM_SIMD_H
#define MTLM_SIMD_H

#if defined(__GNUC__) || defined(__clang__)
#define MTLM_HAVE_VEC 1
#else
#define MTLM_HAVE_VEC 0
#endif

#if MTLM_HAVE_VEC && defined(__x86_64__)
#define MTLM_HAVE_AVX2 1
#else
#define MTLM_HAVE_AVX2 0
#endif

#if MTLM_HAVE_AVX2
#include <immintrin.h>
#endif

enum { MTLM_SIMD_SCALAR = 0, MTLM_SIMD_BASE = 1, MTLM_SIMD_AVX2 = 2 };

/* Best level this build and this CPU support. */
static int mtlm_simd_best(void)
{
#if MTLM_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return MTLM_SIMD_AVX2;
#endif
    return MTLM_HAVE_VEC ? MTLM_SIMD_BASE : MTLM_SIMD_SCALAR;
}

#endif /* MTLM_SIMD_H */
