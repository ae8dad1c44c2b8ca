/* K1 kernels for one (dtype, instruction set).  _pairwise_kernels.h includes
 * this file once per combination, with these macros defined:
 *
 *   T        element type, float or double (IS_F32 is 1 for float)
 *   TU       unsigned integer type of the same width (for the abs mask)
 *   W        lanes per vector; vectors are W * sizeof(T) bytes
 *   SFX      suffix of every name defined here (f32_base, f64_avx2, ...)
 *   TARGET   function attribute selecting the instruction set (may be empty)
 *   TINY     smallest normal T (FLT_MIN or DBL_MIN)
 *   FMA_ACC  1 to write the L1 accumulation as fma(t, 1, acc) (AVX2+FMA only)
 *
 * Lane l of a vector always belongs to one (query, reference) pair and sums
 * that pair's terms in order of k, exactly as the scalar reference
 * pairs_raw (the MTLM_TPL_SCALAR part below) does.  No reassociation happens anywhere
 * (the module is built without -fassociative-math and with -ffp-contract=off),
 * so every pair's value is bit-identical whatever the micro-kernel, the tile
 * and thread split, or the instruction set.
 *
 * With MTLM_TPL_SCALAR defined, only the plain-C part is instantiated (T, SFX
 * and TINY needed): the scalar reference, used for listed pairs and by
 * compilers without GCC vector extensions.
 */

#define MTLM_CAT2(a, b) a##_##b
#define MTLM_CAT(a, b) MTLM_CAT2(a, b)
#define FN(name) MTLM_CAT(name, SFX)

#ifdef MTLM_TPL_SCALAR

/* Raw sums (before sqrt and scale) of MTLM_G pairs (x[p], z[p]), with the
 * arithmetic of the vector micro-kernel.  Per chunk, each pair's terms are
 * computed along k into tmp (contiguous, so the compiler vectorises it), then
 * added in order of k with the MTLM_G pairs side by side: MTLM_G independent
 * dependency chains instead of one. */
static inline void FN(pairs_raw)(const T *const *x, const T *const *z, mtlm_intp d,
                                 int metric, double *raw)
{
    T tmp[MTLM_G][MTLM_CHUNK];
    mtlm_intp k0, k, n;
    int p;
    for (p = 0; p < MTLM_G; p++)
        raw[p] = 0;
    for (k0 = 0; k0 < d; k0 += n) {
        T a[MTLM_G] = {0};
        n = d - k0 < MTLM_CHUNK ? d - k0 : MTLM_CHUNK;
        for (p = 0; p < MTLM_G; p++) {
            const T *xp = x[p] + k0, *zp = z[p] + k0;
            T *tp = tmp[p];
            if (metric == MTLM_L1) {
                for (k = 0; k < n; k++) {
                    T t = xp[k] - zp[k];
                    tp[k] = t < 0 ? -t : t;
                }
            } else if (metric == MTLM_CHI2) {
                for (k = 0; k < n; k++) {
                    T t = xp[k] - zp[k], s = xp[k] + zp[k];
                    s = s > TINY ? s : TINY;
                    t = t * t;
                    tp[k] = t / s;
                }
            } else {
                for (k = 0; k < n; k++) {
                    T t = xp[k] - zp[k];
                    tp[k] = t * t;
                }
            }
        }
        for (k = 0; k < n; k++)
            for (p = 0; p < MTLM_G; p++)
                a[p] += tmp[p][k];
        for (p = 0; p < MTLM_G; p++)
            raw[p] += (double)a[p];
    }
}

/* For qidx/pidx pairs r0 <= r < r1: out[r * ldo] = scale * dist (float32) if
 * out is not NULL, vals[r] = dist (float64, no scale) if vals is not NULL. */
static void FN(paired)(const T *X, const T *Z, const mtlm_intp *qidx,
                       const mtlm_intp *pidx, mtlm_intp r0, mtlm_intp r1, mtlm_intp d,
                       int metric, double scale, float *out, mtlm_intp ldo, double *vals)
{
    const T *x[MTLM_G], *z[MTLM_G];
    double raw[MTLM_G];
    mtlm_intp r;
    int p, n;
    for (r = r0; r < r1; r += MTLM_G) {
        /* A short group repeats its last pair; the copies are not stored. */
        n = r1 - r < MTLM_G ? (int)(r1 - r) : MTLM_G;
        for (p = 0; p < MTLM_G; p++) {
            mtlm_intp q = r + (p < n ? p : n - 1);
            x[p] = X + qidx[q] * d;
            z[p] = Z + pidx[q] * d;
        }
        FN(pairs_raw)(x, z, d, metric, raw);
        for (p = 0; p < n; p++) {
            if (out)
                out[(r + p) * ldo] = mtlm_finish(raw[p], metric, scale);
            if (vals)
                vals[r + p] = metric == MTLM_L2 ? sqrt(raw[p]) : raw[p];
        }
    }
}

/* Same contract as the vector rect below (buf unused): the fallback for
 * compilers without vector extensions. */
static void FN(rect)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0, mtlm_intp i1,
                     mtlm_intp j0, mtlm_intp j1, int metric, double scale, float *out,
                     mtlm_intp ldo, mtlm_intp ldf, T *buf)
{
    const T *x[MTLM_G], *z[MTLM_G];
    double raw[MTLM_G];
    mtlm_intp i, j;
    int p, n;
    (void)buf;
    for (i = i0; i < i1; i++)
        for (j = j0; j < j1; j += MTLM_G) {
            n = j1 - j < MTLM_G ? (int)(j1 - j) : MTLM_G;
            for (p = 0; p < MTLM_G; p++) {
                x[p] = X + i * d;
                z[p] = Z + (j + (p < n ? p : n - 1)) * d;
            }
            FN(pairs_raw)(x, z, d, metric, raw);
            for (p = 0; p < n; p++)
                out[i * ldo + (j + p) * ldf] = mtlm_finish(raw[p], metric, scale);
        }
}

#else /* vector part */

#define P (MTLM_NV * W) /* reference rows per packed panel */
#define ND (IS_F32 ? 2 : 1) /* float64 vectors per T vector */
#define INLINE TARGET inline __attribute__((always_inline))

typedef T FN(vT) __attribute__((vector_size(W * sizeof(T))));
typedef TU FN(vU) __attribute__((vector_size(W * sizeof(T))));
typedef double FN(vD) __attribute__((vector_size(W * sizeof(T))));
#define vT FN(vT)
#define vU FN(vU)
#define vD FN(vD)

#if W == 2
#define SPLAT(s) ((vT){(s), (s)})
#elif W == 4
#define SPLAT(s) ((vT){(s), (s), (s), (s)})
#elif W == 8
#define SPLAT(s) ((vT){(s), (s), (s), (s), (s), (s), (s), (s)})
#else
#error "unsupported lane count"
#endif

#if defined(__clang__) || __GNUC__ >= 12
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (vU){__VA_ARGS__})
#endif

/* One term of every lane: |x - z|, (x - z)^2 / max(x + z, TINY) or
 * (x - z)^2.  For chi-square, where x + z is 0 (or subnormal) t^2 is 0 too,
 * so the term is 0 with neither a branch nor a 0/0.  `term` is a
 * compile-time constant wherever this is inlined. */
static INLINE vT FN(term_of)(vT x, vT z, const int term)
{
    vT t = x - z;
    if (term == MTLM_L1) {
        const vU absmask = (vU){0} | (TU) ~((TU)1 << (8 * sizeof(T) - 1));
        return (vT)((vU)t & absmask);
    } else if (term == MTLM_CHI2) {
        const vT tiny = SPLAT(TINY);
        vT s = x + z;
        vU big = (vU)(s > tiny);
        s = (vT)((big & (vU)s) | (~big & (vU)tiny));
        t = t * t;
        return t / s;
    }
    return t * t;
}

/* acc + t.  For L1 under FMA_ACC this is fma(t, 1, acc): the same value (t * 1
 * is exact, so both round once) but it runs on the FMA ports, which the L1
 * loop otherwise leaves idle while its subtraction and addition compete for
 * the two FP-add ports (Zen 3, Haswell and later): ~1.5x for L1.  `one` is
 * passed through an empty asm by the caller so that the compiler cannot fold
 * it back into an addition.  (For chi2 and sqeuclidean the FMA ports are busy
 * with the multiplications already.) */
static INLINE vT FN(acc_add)(vT acc, vT t, vT one, const int term)
{
#if FMA_ACC && IS_F32
    if (term == MTLM_L1)
        return (vT)_mm256_fmadd_ps((__m256)t, (__m256)one, (__m256)acc);
#elif FMA_ACC
    if (term == MTLM_L1)
        return (vT)_mm256_fmadd_pd((__m256d)t, (__m256d)one, (__m256d)acc);
#endif
    (void)one;
    (void)term;
    return acc + t;
}

static INLINE vT FN(one)(void)
{
    vT one = SPLAT((T)1);
#if FMA_ACC
    __asm__("" : "+x"(one));
#endif
    return one;
}

/* da[0..ND) += a, converted to float64. */
static INLINE void FN(flush)(vD *da, vT a)
{
#if IS_F32
    typedef float FN(half) __attribute__((vector_size(W * 2)));
    FN(half) lo, hi;
    memcpy(&lo, &a, sizeof lo);
    memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
    da[0] += __builtin_convertvector(lo, vD);
    da[1] += __builtin_convertvector(hi, vD);
#else
    da[0] += (vD)a;
#endif
}

/* Transpose the W x W block t[p][j] in place (t[j][p] afterwards). */
static INLINE void FN(transpose)(vT *t)
{
#if W == 2
    vT a = SHUF(t[0], t[1], 0, 2), b = SHUF(t[0], t[1], 1, 3);
    t[0] = a;
    t[1] = b;
#elif W == 4 && IS_F32 /* unpcklps/unpckhps, movlhps/movhlps */
    vT a = SHUF(t[0], t[1], 0, 4, 1, 5), b = SHUF(t[0], t[1], 2, 6, 3, 7);
    vT c = SHUF(t[2], t[3], 0, 4, 1, 5), e = SHUF(t[2], t[3], 2, 6, 3, 7);
    t[0] = SHUF(a, c, 0, 1, 4, 5);
    t[1] = SHUF(a, c, 2, 3, 6, 7);
    t[2] = SHUF(b, e, 0, 1, 4, 5);
    t[3] = SHUF(b, e, 2, 3, 6, 7);
#elif W == 4 /* float64 on AVX2: vunpcklpd/vunpckhpd, vperm2f128 */
    vT a = SHUF(t[0], t[1], 0, 4, 2, 6), b = SHUF(t[0], t[1], 1, 5, 3, 7);
    vT c = SHUF(t[2], t[3], 0, 4, 2, 6), e = SHUF(t[2], t[3], 1, 5, 3, 7);
    t[0] = SHUF(a, c, 0, 1, 4, 5);
    t[2] = SHUF(a, c, 2, 3, 6, 7);
    t[1] = SHUF(b, e, 0, 1, 4, 5);
    t[3] = SHUF(b, e, 2, 3, 6, 7);
#else /* W == 8 */
    vT s[8], u[8];
    int i, h;
    for (i = 0; i < 8; i += 2) {
        s[i] = SHUF(t[i], t[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        s[i + 1] = SHUF(t[i], t[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (i = 0; i < 8; i += 4)
        for (h = 0; h < 2; h++) {
            u[i + 2 * h] = SHUF(s[i + h], s[i + 2 + h], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 2 * h + 1] = SHUF(s[i + h], s[i + 2 + h], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (i = 0; i < 4; i++) {
        t[i] = SHUF(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        t[i + 4] = SHUF(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
#endif
}

/* MTLM_MR query rows x[r] against the P rows of one packed panel
 * (zp[k * P + l] = Z[j + l, k]) over all d dims.  Lane l of a[r][v] sums the
 * pair's terms over MTLM_CHUNK dims in T, then they are added to the float64
 * sums da.  res[r * P + l] receives the raw sum (before sqrt and scale). */
static INLINE void FN(micro)(const T *const *x, const T *zp, mtlm_intp d, const int term,
                             double *res)
{
    vD da[MTLM_MR][MTLM_NV * ND];
    const vT one = FN(one)();
    mtlm_intp k0, k, k1;
    int r, v;

    for (r = 0; r < MTLM_MR; r++)
        for (v = 0; v < MTLM_NV * ND; v++)
            da[r][v] = (vD){0};
    for (k0 = 0; k0 < d; k0 = k1) {
        vT a[MTLM_MR][MTLM_NV];
        k1 = k0 + MTLM_CHUNK < d ? k0 + MTLM_CHUNK : d;
        for (r = 0; r < MTLM_MR; r++)
            for (v = 0; v < MTLM_NV; v++)
                a[r][v] = (vT){0};
        for (k = k0; k < k1; k++) {
            vT z[MTLM_NV];
            for (v = 0; v < MTLM_NV; v++)
                memcpy(&z[v], zp + k * P + v * W, sizeof z[v]);
            for (r = 0; r < MTLM_MR; r++) {
                const T xs = x[r][k];
                const vT xv = SPLAT(xs);
                for (v = 0; v < MTLM_NV; v++)
                    a[r][v] = FN(acc_add)(a[r][v], FN(term_of)(xv, z[v], term), one, term);
            }
        }
        for (r = 0; r < MTLM_MR; r++)
            for (v = 0; v < MTLM_NV; v++)
                FN(flush)(&da[r][v * ND], a[r][v]);
    }
    for (r = 0; r < MTLM_MR; r++)
        memcpy(res + r * P, da[r], sizeof da[r]);
}

/* Rows j0 <= j < j1 (at most P of them) of Z into one panel, zero-padded.  A
 * full panel is transposed W x W blocks at a time in registers. */
static TARGET void FN(pack)(const T *Z, mtlm_intp d, mtlm_intp j0, mtlm_intp j1, T *zp)
{
    const T *rows[P];
    mtlm_intp k = 0;
    int l, v, i, n = (int)(j1 - j0);
    for (l = 0; l < n; l++)
        rows[l] = Z + (j0 + l) * d;
    if (n == P) {
        for (; k + W <= d; k += W)
            for (v = 0; v < MTLM_NV; v++) {
                vT t[W];
                for (i = 0; i < W; i++)
                    memcpy(&t[i], rows[v * W + i] + k, sizeof t[i]);
                FN(transpose)(t);
                for (i = 0; i < W; i++)
                    memcpy(zp + (k + i) * P + v * W, &t[i], sizeof t[i]);
            }
    }
    for (; k < d; k++) {
        for (l = 0; l < n; l++)
            zp[k * P + l] = rows[l][k];
        for (; l < P; l++)
            zp[k * P + l] = 0;
    }
}

static INLINE void FN(rect_term)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0,
                                 mtlm_intp i1, mtlm_intp j0, mtlm_intp j1, const int term,
                                 int metric, double scale, float *out, mtlm_intp ldo,
                                 mtlm_intp ldf, T *buf)
{
    double res[MTLM_MR * P];
    const T *x[MTLM_MR];
    mtlm_intp npan = (j1 - j0 + P - 1) / P, p, i, jp;
    int r, l, nr, nl;

    for (p = 0; p < npan; p++) {
        jp = j0 + p * P;
        FN(pack)(Z, d, jp, jp + P < j1 ? jp + P : j1, buf + p * P * d);
    }
    for (i = i0; i < i1; i += MTLM_MR) {
        nr = i1 - i < MTLM_MR ? (int)(i1 - i) : MTLM_MR;
        /* A short block repeats its last row; the copies are not stored. */
        for (r = 0; r < MTLM_MR; r++)
            x[r] = X + (i + (r < nr ? r : nr - 1)) * d;
        for (p = 0; p < npan; p++) {
            jp = j0 + p * P;
            nl = j1 - jp < P ? (int)(j1 - jp) : P;
            FN(micro)(x, buf + p * P * d, d, term, res);
            for (r = 0; r < nr; r++) {
                float *o = out + (i + r) * ldo + jp * ldf;
                for (l = 0; l < nl; l++)
                    o[l * ldf] = mtlm_finish(res[r * P + l], metric, scale);
            }
        }
    }
}

/* Raw sums of the W pairs (x[p], z[p]), one pair per lane.  W dims of the W
 * pairs are loaded as W vectors (lanes = dims), turned into terms, transposed
 * (lanes = pairs) and added in order of k: the arithmetic of the micro-kernel.
 * The last d % W dims are gathered lane by lane.  With one_x (a compile-time
 * constant) all the x[p] are the same row, which is then loaded once. */
static INLINE void FN(pairs_term)(const T *const *x, const T *const *z, mtlm_intp d,
                                  const int term, const int one_x, double *raw)
{
    vD da[ND];
    const vT one = FN(one)();
    mtlm_intp k0, k, k1;
    int p, j;

    for (j = 0; j < ND; j++)
        da[j] = (vD){0};
    for (k0 = 0; k0 < d; k0 = k1) {
        vT a = (vT){0};
        k1 = k0 + MTLM_CHUNK < d ? k0 + MTLM_CHUNK : d;
        for (k = k0; k + W <= k1; k += W) {
            vT t[W], xv, zv;
            if (one_x)
                memcpy(&xv, x[0] + k, sizeof xv);
            for (p = 0; p < W; p++) {
                if (!one_x)
                    memcpy(&xv, x[p] + k, sizeof xv);
                memcpy(&zv, z[p] + k, sizeof zv);
                t[p] = FN(term_of)(xv, zv, term);
            }
            FN(transpose)(t);
            for (j = 0; j < W; j++)
                a = FN(acc_add)(a, t[j], one, term);
        }
        for (; k < k1; k++) {
            vT xv, zv;
            for (p = 0; p < W; p++) {
                xv[p] = x[one_x ? 0 : p][k];
                zv[p] = z[p][k];
            }
            a = FN(acc_add)(a, FN(term_of)(xv, zv, term), one, term);
        }
        FN(flush)(da, a);
    }
    memcpy(raw, da, sizeof da);
}

/* rect_term's job for a few query rows, without packing: W rows of Z at a
 * time against one query row, one pair per lane. */
static INLINE void FN(rows_term)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0,
                                 mtlm_intp i1, mtlm_intp j0, mtlm_intp j1, const int term,
                                 int metric, double scale, float *out, mtlm_intp ldo,
                                 mtlm_intp ldf)
{
    const T *x[W], *z[W];
    double raw[W];
    mtlm_intp i, j;
    int p, n;
    for (i = i0; i < i1; i++) {
        x[0] = X + i * d;
        for (j = j0; j < j1; j += W) {
            n = j1 - j < W ? (int)(j1 - j) : W;
            for (p = 0; p < W; p++)
                z[p] = Z + (j + (p < n ? p : n - 1)) * d;
            FN(pairs_term)(x, z, d, term, 1, raw);
            for (p = 0; p < n; p++)
                out[i * ldo + (j + p) * ldf] = mtlm_finish(raw[p], metric, scale);
        }
    }
}

/* out[i * ldo + j * ldf] = scale * dist(X[i], Z[j]) for i0 <= i < i1 and
 * j0 <= j < j1, with j1 - j0 <= mtlm_tile_rows(d, sizeof(T)); buf holds
 * mtlm_buf_elems(d, sizeof(T)) elements of T.  Below MTLM_PACK_MIN_ROWS query
 * rows the 4-row micro-kernel would mostly compute padding: those rows go
 * through rows_term instead (same arithmetic, so the same bits). */
static TARGET void FN(rect)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0,
                            mtlm_intp i1, mtlm_intp j0, mtlm_intp j1, int metric,
                            double scale, float *out, mtlm_intp ldo, mtlm_intp ldf,
                            T *buf)
{
    buf = (T *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    if (i1 - i0 < MTLM_PACK_MIN_ROWS) {
        if (metric == MTLM_L1)
            FN(rows_term)(X, Z, d, i0, i1, j0, j1, MTLM_L1, metric, scale, out, ldo, ldf);
        else if (metric == MTLM_CHI2)
            FN(rows_term)(X, Z, d, i0, i1, j0, j1, MTLM_CHI2, metric, scale, out, ldo, ldf);
        else
            FN(rows_term)(X, Z, d, i0, i1, j0, j1, MTLM_SQEUCLIDEAN, metric, scale, out,
                          ldo, ldf);
        return;
    }
    if (metric == MTLM_L1)
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_L1, metric, scale, out, ldo, ldf, buf);
    else if (metric == MTLM_CHI2)
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_CHI2, metric, scale, out, ldo, ldf, buf);
    else /* SQEUCLIDEAN, and L2 (its sqrt is taken by mtlm_finish) */
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_SQEUCLIDEAN, metric, scale, out, ldo,
                      ldf, buf);
}

/* For qidx/pidx pairs r0 <= r < r1: out[r * ldo] = scale * dist (float32) if
 * out is not NULL, vals[r] = dist (float64, no scale) if vals is not NULL. */
static TARGET void FN(paired)(const T *X, const T *Z, const mtlm_intp *qidx,
                              const mtlm_intp *pidx, mtlm_intp r0, mtlm_intp r1,
                              mtlm_intp d, int metric, double scale, float *out,
                              mtlm_intp ldo, double *vals)
{
    const T *x[W], *z[W];
    double raw[W];
    mtlm_intp r;
    int p, n;
    for (r = r0; r < r1; r += W) {
        /* A short group repeats its last pair; the copies are not stored. */
        n = r1 - r < W ? (int)(r1 - r) : W;
        for (p = 0; p < W; p++) {
            mtlm_intp q = r + (p < n ? p : n - 1);
            x[p] = X + qidx[q] * d;
            z[p] = Z + pidx[q] * d;
        }
        if (metric == MTLM_L1)
            FN(pairs_term)(x, z, d, MTLM_L1, 0, raw);
        else if (metric == MTLM_CHI2)
            FN(pairs_term)(x, z, d, MTLM_CHI2, 0, raw);
        else
            FN(pairs_term)(x, z, d, MTLM_SQEUCLIDEAN, 0, raw);
        for (p = 0; p < n; p++) {
            if (out)
                out[(r + p) * ldo] = mtlm_finish(raw[p], metric, scale);
            if (vals)
                vals[r + p] = metric == MTLM_L2 ? sqrt(raw[p]) : raw[p];
        }
    }
}

#endif /* MTLM_TPL_SCALAR */

#undef P
#undef ND
#undef INLINE
#undef vT
#undef vU
#undef vD
#undef SPLAT
#undef SHUF
#undef FN
#undef MTLM_CAT
#undef MTLM_CAT2
