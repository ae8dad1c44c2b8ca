/* K1 base-distance kernels in C, for mtlm_fast/_pairwise.pyx.
 *
 * Layout of the work (see _pairwise.pyx for the split across threads): the
 * reference rows Z are cut into tiles of mtlm_tile_rows() rows (~192 KiB, kept
 * in L2) and each tile into panels of P rows stored dimension-major
 * (zp[k * P + l] = Z[j + l, k]).  A register-blocked micro-kernel then computes
 * MTLM_MR query rows x P panel rows at once: every step over k loads P values
 * of the panel and broadcasts one value of each query row, so each loaded value
 * serves MTLM_MR (or P) pairs, and the MTLM_MR * P sums sit in registers, one
 * pair per vector lane (no horizontal sums).
 *
 * Accuracy: each pair's terms are summed in the input precision over chunks of
 * MTLM_CHUNK dims and the chunk sums are added in float64, in order of k.
 *
 * Instruction sets: the "base" kernels are portable C with GCC/Clang vector
 * extensions (SSE2 on x86-64, NEON on arm64, ...).  On x86-64 an AVX2+FMA
 * build of the same source is compiled with a function-level target attribute
 * and chosen at run time when the CPU has it (mtlm_simd_set); the wheel needs
 * no -march flag.  Compilers without vector extensions get the scalar
 * reference, which gives the same bits, only slower.
 */
#ifndef MTLM_PAIRWISE_KERNELS_H
#define MTLM_PAIRWISE_KERNELS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef ptrdiff_t mtlm_intp; /* = Py_ssize_t */

/* Metric codes; the same numbers as L1, CHI2, ... in _pairwise.pyx. */
enum { MTLM_L1 = 0, MTLM_CHI2 = 1, MTLM_SQEUCLIDEAN = 2, MTLM_L2 = 3 };

#define MTLM_CHUNK 64 /* dims summed in the input precision before float64 */
#define MTLM_MR 4     /* query rows per micro-kernel call */
#define MTLM_NV 2     /* vectors of reference rows per micro-kernel call */
#define MTLM_G 8      /* listed pairs summed side by side (scalar reference) */
#define MTLM_PACK_MIN_ROWS 4 /* fewer query rows: no packing (see rect) */
#define MTLM_TILE_BYTES (192 * 1024)
#define MTLM_PANEL_MAX 16 /* widest panel (AVX2 float32: 2 x 8 lanes) */

/* Rows of Z per tile: a multiple of every panel width, at least one panel. */
static inline mtlm_intp mtlm_tile_rows(mtlm_intp d, mtlm_intp itemsize)
{
    mtlm_intp rows = MTLM_TILE_BYTES / ((d > 0 ? d : 1) * itemsize);
    rows -= rows % MTLM_PANEL_MAX;
    return rows > MTLM_PANEL_MAX ? rows : MTLM_PANEL_MAX;
}

/* Elements of the packing buffer of one thread (one tile, plus alignment). */
static inline mtlm_intp mtlm_buf_elems(mtlm_intp d, mtlm_intp itemsize)
{
    return mtlm_tile_rows(d, itemsize) * (d > 0 ? d : 1) + 64 / itemsize;
}

/* Raw sum -> stored value: sqrt for L2, then the scale, then float32. */
static inline float mtlm_finish(double raw, int metric, double scale)
{
    if (metric == MTLM_L2)
        raw = sqrt(raw);
    return (float)(scale * raw);
}

/* ---- instantiations ------------------------------------------------------ */

#include "_simd.h"

#define MTLM_TPL_SCALAR
#define T float
#define SFX f32_scalar
#define TINY FLT_MIN
#include "_pairwise_tpl.h"
#undef T
#undef SFX
#undef TINY
#define T double
#define SFX f64_scalar
#define TINY DBL_MIN
#include "_pairwise_tpl.h"
#undef T
#undef SFX
#undef TINY
#undef MTLM_TPL_SCALAR

#if MTLM_HAVE_VEC
#define TARGET
#define FMA_ACC 0
#define T float
#define TU uint32_t
#define IS_F32 1
#define TINY FLT_MIN
#define W 4
#define SFX f32_base
#include "_pairwise_tpl.h"
#undef W
#undef SFX
#if MTLM_HAVE_AVX2
#undef TARGET
#undef FMA_ACC
#define TARGET __attribute__((target("avx2,fma")))
#define FMA_ACC 1
#define W 8
#define SFX f32_avx2
#include "_pairwise_tpl.h"
#undef W
#undef SFX
#endif
#undef T
#undef TU
#undef IS_F32
#undef TINY
#undef TARGET
#undef FMA_ACC

#define TARGET
#define FMA_ACC 0
#define T double
#define TU uint64_t
#define IS_F32 0
#define TINY DBL_MIN
#define W 2
#define SFX f64_base
#include "_pairwise_tpl.h"
#undef W
#undef SFX
#if MTLM_HAVE_AVX2
#undef TARGET
#undef FMA_ACC
#define TARGET __attribute__((target("avx2,fma")))
#define FMA_ACC 1
#define W 4
#define SFX f64_avx2
#include "_pairwise_tpl.h"
#undef W
#undef SFX
#endif
#undef T
#undef TU
#undef IS_F32
#undef TINY
#undef TARGET
#undef FMA_ACC
#endif /* MTLM_HAVE_VEC */

/* ---- run-time dispatch --------------------------------------------------- */

typedef void (*mtlm_rect_f32_t)(const float *, const float *, mtlm_intp, mtlm_intp,
                                mtlm_intp, mtlm_intp, mtlm_intp, int, double, float *,
                                mtlm_intp, mtlm_intp, float *);
typedef void (*mtlm_rect_f64_t)(const double *, const double *, mtlm_intp, mtlm_intp,
                                mtlm_intp, mtlm_intp, mtlm_intp, int, double, float *,
                                mtlm_intp, mtlm_intp, double *);

typedef void (*mtlm_paired_f32_t)(const float *, const float *, const mtlm_intp *,
                                  const mtlm_intp *, mtlm_intp, mtlm_intp, mtlm_intp, int,
                                  double, float *, mtlm_intp, double *);
typedef void (*mtlm_paired_f64_t)(const double *, const double *, const mtlm_intp *,
                                  const mtlm_intp *, mtlm_intp, mtlm_intp, mtlm_intp, int,
                                  double, float *, mtlm_intp, double *);

static mtlm_rect_f32_t mtlm_rect_f32 = rect_f32_scalar;
static mtlm_rect_f64_t mtlm_rect_f64 = rect_f64_scalar;
static mtlm_paired_f32_t mtlm_paired_f32 = paired_f32_scalar;
static mtlm_paired_f64_t mtlm_paired_f64 = paired_f64_scalar;
static int mtlm_simd = MTLM_SIMD_SCALAR;

/* Use the kernels of `level` (capped at mtlm_simd_best()); returns the level
 * now in use.  Not thread-safe: called at import, and by tests. */
static int mtlm_simd_set(int level)
{
    int best = mtlm_simd_best();
    level = level < best ? level : best;
    level = level > 0 ? level : 0;
    mtlm_rect_f32 = rect_f32_scalar;
    mtlm_rect_f64 = rect_f64_scalar;
    mtlm_paired_f32 = paired_f32_scalar;
    mtlm_paired_f64 = paired_f64_scalar;
#if MTLM_HAVE_VEC
    if (level >= MTLM_SIMD_BASE) {
        mtlm_rect_f32 = rect_f32_base;
        mtlm_rect_f64 = rect_f64_base;
        mtlm_paired_f32 = paired_f32_base;
        mtlm_paired_f64 = paired_f64_base;
    }
#endif
#if MTLM_HAVE_AVX2
    if (level >= MTLM_SIMD_AVX2) {
        mtlm_rect_f32 = rect_f32_avx2;
        mtlm_rect_f64 = rect_f64_avx2;
        mtlm_paired_f32 = paired_f32_avx2;
        mtlm_paired_f64 = paired_f64_avx2;
    }
#endif
    mtlm_simd = level;
    return level;
}

#endif /* MTLM_PAIRWISE_KERNELS_H */
