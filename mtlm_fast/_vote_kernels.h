/* K6 vote weights in C, for mtlm_fast/_vote.pyx: the exp over a pool for one
 * (label, temperature), the vote's only transcendental work.
 *
 * Levels (see _simd.h): "base" and "avx2" run the same 4-lane arithmetic with
 * our vector exp (_vexp_tpl.h, within 1 ulp of libm) and give the same bits;
 * "scalar" uses libm and a plain running sum and agrees to rounding.  Each
 * query's sums are taken by one thread in a fixed order, so results do not
 * depend on the number of threads.  Built without reassociation and without
 * FMA contraction (the exp's rounding steps are part of its accuracy).
 */
#ifndef MTLM_VOTE_KERNELS_H
#define MTLM_VOTE_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

typedef ptrdiff_t mtlm_intp; /* = Py_ssize_t */

static double mtlm_vote_weights_scalar(const double *D, mtlm_intp n, double dmin,
                                       double tau, double *e)
{
    double den = 0.0;
    mtlm_intp j;
    for (j = 0; j < n; j++) {
        e[j] = exp(-(D[j] - dmin) / tau);
        den += e[j];
    }
    return den;
}

#if MTLM_HAVE_VEC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#define TARGET
#define SFX base
#include "_vote_tpl.h"
#undef TARGET
#undef SFX
#if MTLM_HAVE_AVX2
#define TARGET __attribute__((target("avx2")))
#define SFX avx2
#include "_vote_tpl.h"
#undef TARGET
#undef SFX
#endif
#pragma GCC diagnostic pop
#endif

typedef double (*mtlm_vote_weights_t)(const double *, mtlm_intp, double, double,
                                      double *);
static mtlm_vote_weights_t mtlm_vote_weights = mtlm_vote_weights_scalar;
static int mtlm_vote_simd = MTLM_SIMD_SCALAR;

/* Use the kernels of `level` (capped at mtlm_simd_best()); returns the level
 * now in use.  Not thread-safe: called at import, and by tests. */
static int mtlm_vote_simd_set(int level)
{
    int best = mtlm_simd_best();
    level = level < best ? level : best;
    level = level > 0 ? level : 0;
    mtlm_vote_weights = mtlm_vote_weights_scalar;
#if MTLM_HAVE_VEC
    if (level >= MTLM_SIMD_BASE)
        mtlm_vote_weights = mtlm_vote_weights_base;
#endif
#if MTLM_HAVE_AVX2
    if (level >= MTLM_SIMD_AVX2)
        mtlm_vote_weights = mtlm_vote_weights_avx2;
#endif
    mtlm_vote_simd = level;
    return level;
}

#endif /* MTLM_VOTE_KERNELS_H */
