/* Vector exp for x <= 0, shared by the K3 (LDML) and K6 (vote) kernels.
 *
 * A template: included once per instruction-set level by a kernel template
 * (_ldml_tpl.h, _vote_tpl.h) with these macros defined:
 *
 *   SFX      suffix of every name defined here (base, avx2)
 *   TARGET   function attribute selecting the instruction set (may be empty)
 *
 * It also defines FN(name) and INLINE, which the including template uses and
 * #undefs at its end.  Vectors are 4 float64 lanes (two SSE2 registers at the
 * base level, one AVX register with TARGET avx2); the arithmetic is the same
 * at every level, so with -ffp-contract=off and no reassociation every level
 * gives the same bits.
 */

#define MTLM_CAT2(a, b) a##_##b
#define MTLM_CAT(a, b) MTLM_CAT2(a, b)
#define FN(name) MTLM_CAT(name, SFX)

#ifndef MTLM_VEC_TYPES
#define MTLM_VEC_TYPES
typedef double mtlm_v4d __attribute__((vector_size(32)));
typedef int64_t mtlm_v4l __attribute__((vector_size(32)));
typedef uint64_t mtlm_v4u __attribute__((vector_size(32)));
typedef float mtlm_v4f __attribute__((vector_size(16)));

#define V4(s) ((mtlm_v4d){(s), (s), (s), (s)})
/* Lanes of a where mask (a comparison result) is set, else lanes of b. */
#define SEL(mask, a, b)                                                          \
    ((mtlm_v4d)(((mask) & (mtlm_v4l)(a)) | (~(mask) & (mtlm_v4l)(b))))
#if defined(__clang__) || __GNUC__ >= 12
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (mtlm_v4l){__VA_ARGS__})
#endif

/* ln 2 split so that n * LN2_HI is exact for |n| < 2^11 (fdlibm's split). */
#define MTLM_LN2_HI 6.93147180369123816490e-01
#define MTLM_LN2_LO 1.90821492927058770002e-10
#define MTLM_INV_LN2 1.44269504088896338700e+00
#define MTLM_SQRT2 1.41421356237309514547e+00
#define MTLM_MAGIC 6755399441055744.0 /* 1.5 * 2^52: adding it rounds to an integer */
#endif

#define INLINE static inline __attribute__((always_inline)) TARGET

/* exp(x) for x <= 0 (x = -inf gives 0; no NaN).  x = n ln2 + r with
 * |r| <= ln2 / 2 (Cody-Waite), exp(r) by its Taylor polynomial of degree 13
 * (truncation error < 2^-58 relative), then times 2^n in two exact halves so
 * that results in the subnormal range are rounded once, like libm's. */
INLINE mtlm_v4d FN(vexp)(mtlm_v4d x)
{
    mtlm_v4d t, nf, r, r2, r4, q0, q1, q2, q3, q4, q5, p, s1, s2;
    mtlm_v4l n, n1;
    x = SEL(x < V4(-746.0), V4(-746.0), x); /* exp(-746) rounds to 0 */
    t = x * V4(MTLM_INV_LN2) + V4(MTLM_MAGIC);
    nf = t - V4(MTLM_MAGIC);
    r = x - nf * V4(MTLM_LN2_HI);
    r = r - nf * V4(MTLM_LN2_LO);
    /* p = 1 + (r + r^2 Q(r)), Q = sum_{k=2}^{13} r^(k-2) / k!, by Estrin's
     * scheme (short dependency chains). */
    r2 = r * r;
    r4 = r2 * r2;
    q0 = V4(1.0 / 2.0) + r * V4(1.0 / 6.0);
    q1 = V4(1.0 / 24.0) + r * V4(1.0 / 120.0);
    q2 = V4(1.0 / 720.0) + r * V4(1.0 / 5040.0);
    q3 = V4(1.0 / 40320.0) + r * V4(1.0 / 362880.0);
    q4 = V4(1.0 / 3628800.0) + r * V4(1.0 / 39916800.0);
    q5 = V4(1.0 / 479001600.0) + r * V4(1.0 / 6227020800.0);
    q0 = q0 + r2 * q1;
    q2 = q2 + r2 * q3;
    q4 = q4 + r2 * q5;
    q0 = q0 + r4 * (q2 + r4 * q4);
    p = V4(1.0) + (r + r2 * q0);
    /* n in [-1077, 0]; n1 = floor(n / 2) and n - n1 are both >= -539, so
     * 2^n1 and 2^(n - n1) are normal and p * 2^n1 is exact. */
    n = (mtlm_v4l)t - (mtlm_v4l)V4(MTLM_MAGIC);
    n1 = (mtlm_v4l)((mtlm_v4u)(n + 1078) >> 1) - 539;
    s1 = (mtlm_v4d)((n1 + 1023) << 52);
    s2 = (mtlm_v4d)((n - n1 + 1023) << 52);
    return p * s1 * s2;
}

