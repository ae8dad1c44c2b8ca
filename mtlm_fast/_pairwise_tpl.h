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
 * pairs4_raw (the MTLM_TPL_SCALAR part below) does.  No reassociation happens anywhere
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

/* Raw sums (before sqrt and scale) of n <= 4 pairs (x[p], z[p]), computed side
 * by side so that the four dependency chains overlap; each pair's arithmetic
 * is the one of the vector micro-kernel. */
static inline void FN(pairs4_raw)(const T *const *x, const T *const *z, int n, mtlm_intp d,
                                  int metric, double *raw)
{
    mtlm_intp k0, k, k1;
    int p;
    for (p = 0; p < 4; p++)
        raw[p] = 0;
    for (k0 = 0; k0 < d; k0 = k1) {
        T a[4] = {0, 0, 0, 0};
        k1 = k0 + MTLM_CHUNK < d ? k0 + MTLM_CHUNK : d;
        if (metric == MTLM_L1) {
            for (k = k0; k < k1; k++)
                for (p = 0; p < 4; p++) {
                    T t = x[p][k] - z[p][k];
                    t = t < 0 ? -t : t;
                    a[p] += t;
                }
        } else if (metric == MTLM_CHI2) {
            for (k = k0; k < k1; k++)
                for (p = 0; p < 4; p++) {
                    T t = x[p][k] - z[p][k], s = x[p][k] + z[p][k];
                    s = s > TINY ? s : TINY;
                    t = t * t;
                    t = t / s;
                    a[p] += t;
                }
        } else {
            for (k = k0; k < k1; k++)
                for (p = 0; p < 4; p++) {
                    T t = x[p][k] - z[p][k];
                    t = t * t;
                    a[p] += t;
                }
        }
        for (p = 0; p < 4; p++)
            raw[p] += (double)a[p];
    }
    (void)n;
}

/* For qidx/pidx pairs r0 <= r < r1: out[r * ldo] = scale * dist (float32) if
 * out is not NULL, vals[r] = dist (float64, no scale) if vals is not NULL. */
static void FN(paired)(const T *X, const T *Z, const mtlm_intp *qidx,
                       const mtlm_intp *pidx, mtlm_intp r0, mtlm_intp r1, mtlm_intp d,
                       int metric, double scale, float *out, mtlm_intp ldo, double *vals)
{
    const T *x[4], *z[4];
    double raw[4];
    mtlm_intp r;
    int p, n;
    for (r = r0; r < r1; r += 4) {
        n = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (p = 0; p < 4; p++) {
            mtlm_intp q = r + (p < n ? p : n - 1);
            x[p] = X + qidx[q] * d;
            z[p] = Z + pidx[q] * d;
        }
        FN(pairs4_raw)(x, z, n, d, metric, raw);
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
    const T *x[4], *z[4];
    double raw[4];
    mtlm_intp i, j;
    int p, n;
    (void)buf;
    for (i = i0; i < i1; i++)
        for (j = j0; j < j1; j += 4) {
            n = j1 - j < 4 ? (int)(j1 - j) : 4;
            for (p = 0; p < 4; p++) {
                x[p] = X + i * d;
                z[p] = Z + (j + (p < n ? p : n - 1)) * d;
            }
            FN(pairs4_raw)(x, z, n, d, metric, raw);
            for (p = 0; p < n; p++)
                out[i * ldo + (j + p) * ldf] = mtlm_finish(raw[p], metric, scale);
        }
}

#else /* vector part */

#define P (MTLM_NV * W) /* reference rows per packed panel */
#define ND (IS_F32 ? 2 : 1) /* float64 vectors per T vector */

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

/* acc += t.  With FMA_ACC this is fma(t, 1, acc): the same value (t * 1 is
 * exact, so both round once) but it runs on the FMA ports, which the L1 loop
 * otherwise leaves idle while its subtraction and addition compete for the
 * two FP-add ports (Zen 3, Haswell and later): ~1.5x for L1.  The empty asm
 * on `one` stops the compiler from folding it back into an addition. */
#if FMA_ACC && IS_F32
#define ADD_VIA_FMA(acc, t, one) \
    (acc) = (vT)_mm256_fmadd_ps((__m256)(t), (__m256)(one), (__m256)(acc))
#elif FMA_ACC
#define ADD_VIA_FMA(acc, t, one) \
    (acc) = (vT)_mm256_fmadd_pd((__m256d)(t), (__m256d)(one), (__m256d)(acc))
#else
#define ADD_VIA_FMA(acc, t, one) (acc) += (t)
#endif

/* MTLM_MR query rows x[r] against the P rows of one packed panel
 * (zp[k * P + l] = Z[j + l, k]) over all d dims.  Lane l of a[r][v] sums the
 * pair's terms over MTLM_CHUNK dims in T and is then added to the float64 sum
 * da.  res[r * P + l] receives the raw sum (before sqrt and scale).  `term` is
 * a compile-time constant after inlining, so the branches below vanish. */
static TARGET inline __attribute__((always_inline)) void
FN(micro)(const T *const *x, const T *zp, mtlm_intp d, const int term, double *res)
{
    vD da[MTLM_MR][MTLM_NV * ND];
    const vU absmask = (vU){0} | (TU) ~((TU)1 << (8 * sizeof(T) - 1));
    const vT tiny = SPLAT(TINY);
    vT one = SPLAT((T)1);
    mtlm_intp k0, k, k1;
    int r, v;

#if FMA_ACC
    __asm__("" : "+x"(one));
#endif
    (void)one;
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
                for (v = 0; v < MTLM_NV; v++) {
                    vT t = xv - z[v];
                    if (term == MTLM_L1) {
                        t = (vT)((vU)t & absmask);
                        ADD_VIA_FMA(a[r][v], t, one);
                    } else if (term == MTLM_CHI2) {
                        /* t^2 / max(x + z, TINY): where x + z is 0 (or
                         * subnormal) t^2 is 0 too, so the term is 0 with
                         * neither a branch nor a 0/0. */
                        vT s = xv + z[v];
                        vU big = (vU)(s > tiny);
                        s = (vT)((big & (vU)s) | (~big & (vU)tiny));
                        t = t * t;
                        t = t / s;
                        a[r][v] += t;
                    } else {
                        t = t * t;
                        a[r][v] += t;
                    }
                }
            }
        }
        for (r = 0; r < MTLM_MR; r++)
            for (v = 0; v < MTLM_NV; v++) {
#if IS_F32
                typedef float FN(half) __attribute__((vector_size(W * 2)));
                FN(half) lo, hi;
                memcpy(&lo, &a[r][v], sizeof lo);
                memcpy(&hi, (const char *)&a[r][v] + sizeof lo, sizeof hi);
                da[r][2 * v] += __builtin_convertvector(lo, vD);
                da[r][2 * v + 1] += __builtin_convertvector(hi, vD);
#else
                da[r][v] += (vD)a[r][v];
#endif
            }
    }
    for (r = 0; r < MTLM_MR; r++)
        memcpy(res + r * P, da[r], sizeof da[r]);
}

/* Rows j0 <= j < j1 (at most P of them) of Z into one panel, zero-padded. */
static TARGET void FN(pack)(const T *Z, mtlm_intp d, mtlm_intp j0, mtlm_intp j1, T *zp)
{
    const T *rows[P];
    mtlm_intp k;
    int l, n = (int)(j1 - j0);
    for (l = 0; l < n; l++)
        rows[l] = Z + (j0 + l) * d;
    for (k = 0; k < d; k++) {
        for (l = 0; l < n; l++)
            zp[k * P + l] = rows[l][k];
        for (; l < P; l++)
            zp[k * P + l] = 0;
    }
}

static TARGET inline __attribute__((always_inline)) void
FN(rect_term)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0, mtlm_intp i1,
              mtlm_intp j0, mtlm_intp j1, const int term, int metric, double scale,
              float *out, mtlm_intp ldo, mtlm_intp ldf, T *buf)
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

/* out[i * ldo + j * ldf] = scale * dist(X[i], Z[j]) for i0 <= i < i1 and
 * j0 <= j < j1, with j1 - j0 <= mtlm_tile_rows(d, sizeof(T)); buf holds
 * mtlm_buf_elems(d, sizeof(T)) elements of T. */
static TARGET void FN(rect)(const T *X, const T *Z, mtlm_intp d, mtlm_intp i0,
                            mtlm_intp i1, mtlm_intp j0, mtlm_intp j1, int metric,
                            double scale, float *out, mtlm_intp ldo, mtlm_intp ldf,
                            T *buf)
{
    buf = (T *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    if (metric == MTLM_L1)
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_L1, metric, scale, out, ldo, ldf, buf);
    else if (metric == MTLM_CHI2)
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_CHI2, metric, scale, out, ldo, ldf, buf);
    else /* SQEUCLIDEAN, and L2 (its sqrt is taken by mtlm_finish) */
        FN(rect_term)(X, Z, d, i0, i1, j0, j1, MTLM_SQEUCLIDEAN, metric, scale, out, ldo,
                      ldf, buf);
}

#endif /* MTLM_TPL_SCALAR */

#undef P
#undef ND
#undef vT
#undef vU
#undef vD
#undef SPLAT
#undef ADD_VIA_FMA
#undef FN
#undef MTLM_CAT
#undef MTLM_CAT2
