/* K3 LDML kernels in C, for mtlm_fast/_ldml.pyx.
 *
 * One call handles one label: its n pairs (rows pair[r] of the pair store d,
 * signs sign[r]) against its weights w.  With z = s (w . d[j] - b):
 *     loss = scale sum softplus(z)
 *     g    = scale sum s sigmoid(z) [-1, d[j]]        (F + 1 entries)
 * softplus(z) = max(z, 0) + log1p(e) and sigmoid(z) = (z > 0 ? 1 : e) / (1 + e)
 * with e = exp(-|z|), as in mtlm._reference.
 *
 * Vector levels (GCC/Clang vector extensions, 4 float64 lanes) work on blocks
 * of MTLM_LDML_BLOCK pairs in three passes, each a loop of independent
 * iterations that the CPU can overlap:
 *   1. z of 4 pairs at a time (one lane per pair): each row is read as 4-float
 *      chunks, multiplied by the matching chunk of w in float64, and the four
 *      pairs' chunk sums are transposed into one vector;
 *   2. e, log1p(e) and sigmoid over the block's z, branch-free, with our own
 *      vectorised exp and log1p (mtlm_ldml_exp / mtlm_ldml_log1p below:
 *      float64, within a few ulp of libm over the whole range, subnormals
 *      included), accumulating the loss and the bias gradient lane-wise;
 *   3. g[1:] += c_r d[j_r], with the running sums in registers (two sets,
 *      even and odd pairs, to halve the dependency chains).
 * The rows of a label's pairs are scattered over the pair store (cache
 * misses), so pass 2, which touches no memory, prefetches the next block's.
 * A row of F floats is read as ceil(F / 4) chunks; for F >= 4 the last chunk
 * is the row's last 4 floats (it overlaps the one before when 4 does not
 * divide F; the overlapped lanes get weight 0 in pass 1 and are dropped in
 * pass 3), so no read goes past a row.  Labels with F < 4 take the scalar
 * kernel at every level.
 *
 * Every sum of a label is taken in an order fixed by the label's own pairs
 * (lane = position mod 4, block by block), never by the thread that runs it,
 * so results are bit-identical for any thread count.  The module is built
 * without -fassociative-math (the exp/log1p reductions rely on the exact
 * rounding steps written here) and with -ffp-contract=off, so the "base" and
 * "avx2" levels run the same arithmetic and give the same bits; "avx2" only
 * has twice as wide vectors.  The "scalar" level (compilers without vector
 * extensions) is plain C with libm exp/log1p; it agrees to rounding.
 */
#ifndef MTLM_LDML_KERNELS_H
#define MTLM_LDML_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef ptrdiff_t mtlm_intp; /* = Py_ssize_t */

#define MTLM_LDML_BLOCK 128 /* pairs per pass (~10 KiB of rows at F = 10) */

/* Floats of the padded scratch a label needs: w in chunks, then the
 * gradient's running sums in chunks (see mtlm_ldml_label_*). */
static inline mtlm_intp mtlm_ldml_work_size(mtlm_intp F)
{
    mtlm_intp nch = (F + 3) / 4;
    return 2 * 4 * (nch > 0 ? nch : 1);
}

/* ---- scalar level -------------------------------------------------------- */

static void mtlm_ldml_label_scalar(const float *d, mtlm_intp F, const int32_t *pair,
                                   const int8_t *sign, mtlm_intp n, const double *w,
                                   double bias, double scale, double *work, double *g,
                                   double *loss)
{
    double lm = 0.0, g0 = 0.0;
    double *acc = work;
    mtlm_intp r, f;
    for (f = 0; f < F; f++)
        acc[f] = 0.0;
    for (r = 0; r < n; r++) {
        const float *dj = d + (mtlm_intp)pair[r] * F;
        double s = sign[r], dot = 0.0, z, e, pos, c;
        for (f = 0; f < F; f++)
            dot += w[f] * dj[f];
        z = s * (dot - bias);
        e = exp(-fabs(z));
        pos = z > 0 ? 1.0 : 0.0;
        lm += pos * z + log1p(e);
        c = s * (pos + (1.0 - pos) * e) / (1.0 + e);
        g0 -= c;
        for (f = 0; f < F; f++)
            acc[f] += c * dj[f];
    }
    *loss = scale * lm;
    g[0] = scale * g0;
    for (f = 0; f < F; f++)
        g[f + 1] = scale * acc[f];
}

/* libm, over an array: the reference of the vector exp/log1p in the tests. */
static void mtlm_ldml_exp_log1p_scalar(const double *x, mtlm_intp n, double *e,
                                       double *l)
{
    mtlm_intp i;
    for (i = 0; i < n; i++) {
        e[i] = exp(x[i]);
        l[i] = log1p(x[i]);
    }
}

/* ---- vector levels ------------------------------------------------------- */

#include "_simd.h"

#if MTLM_HAVE_VEC
/* The base level passes 32-byte vectors only between inlined functions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#define TARGET
#define SFX base
#define MTLM_LDML_AVX_CVT 0
#include "_ldml_tpl.h"
#undef TARGET
#undef SFX
#undef MTLM_LDML_AVX_CVT
#if MTLM_HAVE_AVX2
#define TARGET __attribute__((target("avx2")))
#define SFX avx2
#define MTLM_LDML_AVX_CVT 1
#include "_ldml_tpl.h"
#undef TARGET
#undef SFX
#undef MTLM_LDML_AVX_CVT
#endif
#pragma GCC diagnostic pop
#endif

/* ---- run-time dispatch --------------------------------------------------- */

typedef void (*mtlm_ldml_label_t)(const float *, mtlm_intp, const int32_t *,
                                  const int8_t *, mtlm_intp, const double *, double,
                                  double, double *, double *, double *);
typedef void (*mtlm_ldml_exp_log1p_t)(const double *, mtlm_intp, double *, double *);

static mtlm_ldml_label_t mtlm_ldml_label = mtlm_ldml_label_scalar;
static mtlm_ldml_exp_log1p_t mtlm_ldml_exp_log1p = mtlm_ldml_exp_log1p_scalar;
static int mtlm_ldml_simd = MTLM_SIMD_SCALAR;

/* Use the kernels of `level` (capped at mtlm_simd_best()); returns the
 * level now in use.  Not thread-safe: called at import, and by tests. */
static int mtlm_ldml_simd_set(int level)
{
    int best = mtlm_simd_best();
    level = level < best ? level : best;
    level = level > 0 ? level : 0;
    mtlm_ldml_label = mtlm_ldml_label_scalar;
    mtlm_ldml_exp_log1p = mtlm_ldml_exp_log1p_scalar;
#if MTLM_HAVE_VEC
    if (level >= MTLM_SIMD_BASE) {
        mtlm_ldml_label = mtlm_ldml_label_base;
        mtlm_ldml_exp_log1p = mtlm_ldml_exp_log1p_base;
    }
#endif
#if MTLM_HAVE_AVX2
    if (level >= MTLM_SIMD_AVX2) {
        mtlm_ldml_label = mtlm_ldml_label_avx2;
        mtlm_ldml_exp_log1p = mtlm_ldml_exp_log1p_avx2;
    }
#endif
    mtlm_ldml_simd = level;
    return level;
}

#endif /* MTLM_LDML_KERNELS_H */
