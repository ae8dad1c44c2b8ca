/* K3 vector kernels for one instruction set.  _ldml_kernels.h includes this
 * file once per level, with these macros defined:
 *
 *   SFX      suffix of every name defined here (base, avx2)
 *   TARGET   function attribute selecting the instruction set (may be empty)
 *
 * The vectors are 4 float64 lanes (two SSE2 registers at the base level, one
 * AVX register with TARGET avx2); the arithmetic is the same at every level.
 */

#include "_vexp_tpl.h"

/* log1p(u) for u in [0, 1], and *inv = 1 / (1 + u).  With m = 1 + u rounded,
 * log1p(u) = log(m) + (u - (m - 1)) / m to first order (m - 1 is exact);
 * log(m) = k ln2 + log(f) with f = m / 2^k in [sqrt(1/2), sqrt(2)], and
 * log(f) = 2 atanh(s), s = (f - 1) / (f + 1), |s| <= 0.172, by its series up
 * to s^21 (truncation error < 2^-60 relative), by Estrin's scheme. */
INLINE mtlm_v4d FN(vlog1p_inv)(mtlm_v4d u, mtlm_v4d *inv)
{
    mtlm_v4d m, f, kf, s, s2, s4, s8, q0, q1, q2, q3, q4, q, logf, corr;
    mtlm_v4l big;
    m = u + V4(1.0);
    *inv = V4(1.0) / m;
    big = m > V4(MTLM_SQRT2);
    f = SEL(big, m * V4(0.5), m);
    kf = SEL(big, V4(1.0), V4(0.0));
    s = (f - V4(1.0)) / (f + V4(1.0));
    s2 = s * s;
    s4 = s2 * s2;
    q0 = V4(2.0 / 3.0) + s2 * V4(2.0 / 5.0);
    q1 = V4(2.0 / 7.0) + s2 * V4(2.0 / 9.0);
    q2 = V4(2.0 / 11.0) + s2 * V4(2.0 / 13.0);
    q3 = V4(2.0 / 15.0) + s2 * V4(2.0 / 17.0);
    q4 = V4(2.0 / 19.0) + s2 * V4(2.0 / 21.0);
    q0 = q0 + s4 * q1;
    q2 = q2 + s4 * q3;
    s8 = s4 * s4;
    q = s2 * (q0 + s8 * (q2 + s8 * q4));
    logf = (s + s) + s * q;
    corr = (u - (m - V4(1.0))) * *inv;
    return kf * V4(MTLM_LN2_HI) + (logf + (kf * V4(MTLM_LN2_LO) + corr));
}

INLINE mtlm_v4d FN(load4)(const double *p)
{
    mtlm_v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The 4 floats at p as float64. */
INLINE mtlm_v4d FN(chunk)(const float *p)
{
#if MTLM_LDML_AVX_CVT
    return (mtlm_v4d)_mm256_cvtps_pd(_mm_loadu_ps(p));
#else
    mtlm_v4f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, mtlm_v4d);
#endif
}

/* Offset in a row of chunk k of nch (F >= 4). */
INLINE mtlm_intp FN(offset)(mtlm_intp k, mtlm_intp nch, mtlm_intp F)
{
    return k < nch - 1 ? 4 * k : F - 4;
}

/* Pass 3 for chunks k0 .. k0 + NC - 1 (NC a constant after inlining, so the
 * running sums stay in registers): acc += sum_i c[i] row_i. */
INLINE void FN(grad_slab)(const float *d, mtlm_intp F, const int32_t *pair,
                          const double *c, mtlm_intp nb, mtlm_intp k0, mtlm_intp nch,
                          const int NC, double *acc)
{
    mtlm_v4d ev[4] = {V4(0.0), V4(0.0), V4(0.0), V4(0.0)};
    mtlm_v4d od[4] = {V4(0.0), V4(0.0), V4(0.0), V4(0.0)};
    mtlm_intp off[4], i;
    int k;
    for (k = 0; k < NC; k++)
        off[k] = FN(offset)(k0 + k, nch, F);
    for (i = 0; i + 1 < nb; i += 2) {
        const float *re = d + (mtlm_intp)pair[i] * F;
        const float *ro = d + (mtlm_intp)pair[i + 1] * F;
        mtlm_v4d ce = V4(c[i]), co = V4(c[i + 1]);
        for (k = 0; k < NC; k++) {
            ev[k] = ev[k] + ce * FN(chunk)(re + off[k]);
            od[k] = od[k] + co * FN(chunk)(ro + off[k]);
        }
    }
    if (i < nb) {
        const float *re = d + (mtlm_intp)pair[i] * F;
        mtlm_v4d ce = V4(c[i]);
        for (k = 0; k < NC; k++)
            ev[k] = ev[k] + ce * FN(chunk)(re + off[k]);
    }
    for (k = 0; k < NC; k++) {
        mtlm_v4d a = FN(load4)(acc + 4 * (k0 + k)) + (ev[k] + od[k]);
        memcpy(acc + 4 * (k0 + k), &a, sizeof a);
    }
}

/* softplus(z) and c = s sigmoid(z) of 4 pairs from z, s and e = exp(-|z|);
 * lanes with s = 0 (padding) give 0 for both. */
INLINE void FN(terms)(mtlm_v4d z, mtlm_v4d sv, mtlm_v4d e, mtlm_v4d *sp, mtlm_v4d *c)
{
    mtlm_v4d lp, inv;
    mtlm_v4l pos = z > V4(0.0), live = sv != V4(0.0);
    lp = FN(vlog1p_inv)(e, &inv);
    *sp = SEL(live, SEL(pos, z, V4(0.0)) + lp, V4(0.0));
    *c = sv * (SEL(pos, V4(1.0), e) * inv);
}

/* One label; see _ldml_kernels.h.  work holds mtlm_ldml_work_size(F)
 * doubles; g gets F + 1 values.  Rows shorter than one chunk (F < 4) go to
 * the scalar kernel. */
static TARGET void FN(mtlm_ldml_label)(const float *d, mtlm_intp F, const int32_t *pair,
                                       const int8_t *sign, mtlm_intp n, const double *w,
                                       double bias, double scale, double *work,
                                       double *g, double *loss)
{
    double zb[MTLM_LDML_BLOCK] __attribute__((aligned(32)));
    double sb[MTLM_LDML_BLOCK] __attribute__((aligned(32)));
    double cb[MTLM_LDML_BLOCK] __attribute__((aligned(32)));
    int32_t pb[MTLM_LDML_BLOCK];
    mtlm_intp nch = (F + 3) / 4, k, l, r0, nb, nb8, i, f;
    double *wp = work, *acc = work + 4 * nch;
    mtlm_v4d lacc = V4(0.0), cacc = V4(0.0);

    if (F < 4) {
        mtlm_ldml_label_scalar(d, F, pair, sign, n, w, bias, scale, work, g, loss);
        return;
    }
    /* w in chunks, 0 on lanes that repeat the chunk before. */
    for (k = 0; k < nch; k++) {
        mtlm_intp off = FN(offset)(k, nch, F);
        for (l = 0; l < 4; l++) {
            f = off + l;
            wp[4 * k + l] = f >= 4 * k ? w[f] : 0.0;
            acc[4 * k + l] = 0.0;
        }
    }

    for (r0 = 0; r0 < n; r0 += nb) {
        nb = n - r0 < MTLM_LDML_BLOCK ? n - r0 : MTLM_LDML_BLOCK;
        nb8 = (nb + 7) & ~(mtlm_intp)7;
        /* The block's pairs, padded to a multiple of 8 with pair 0 and sign 0
         * (which makes their loss and c terms 0 below). */
        for (i = 0; i < nb8; i++) {
            pb[i] = pair[r0 + (i < nb ? i : 0)];
            sb[i] = i < nb ? (double)sign[r0 + i] : 0.0;
        }

        /* Pass 1: z, 4 pairs at a time. */
        for (i = 0; i < nb8; i += 4) {
            const float *r_0 = d + (mtlm_intp)pb[i] * F;
            const float *r_1 = d + (mtlm_intp)pb[i + 1] * F;
            const float *r_2 = d + (mtlm_intp)pb[i + 2] * F;
            const float *r_3 = d + (mtlm_intp)pb[i + 3] * F;
            mtlm_v4d a0 = V4(0.0), a1 = V4(0.0), a2 = V4(0.0), a3 = V4(0.0);
            mtlm_v4d t0, t1, dot;
            for (k = 0; k < nch; k++) {
                mtlm_intp off = FN(offset)(k, nch, F);
                mtlm_v4d wk = FN(load4)(wp + 4 * k);
                a0 = a0 + FN(chunk)(r_0 + off) * wk;
                a1 = a1 + FN(chunk)(r_1 + off) * wk;
                a2 = a2 + FN(chunk)(r_2 + off) * wk;
                a3 = a3 + FN(chunk)(r_3 + off) * wk;
            }
            /* Lane l of dot = sum of the lanes of a_l. */
            t0 = SHUF(a0, a1, 0, 4, 2, 6) + SHUF(a0, a1, 1, 5, 3, 7);
            t1 = SHUF(a2, a3, 0, 4, 2, 6) + SHUF(a2, a3, 1, 5, 3, 7);
            dot = SHUF(t0, t1, 0, 1, 4, 5) + SHUF(t0, t1, 2, 3, 6, 7);
            dot = FN(load4)(sb + i) * (dot - V4(bias));
            memcpy(zb + i, &dot, sizeof dot);
        }

        /* Pass 2: e = exp(-|z|), then softplus(z) and c = s sigmoid(z),
         * branch-free.  Two short loops rather than one long one: the CPU
         * overlaps several of their iterations (long dependency chains of
         * independent lanes).  Meanwhile the rows of the next block are
         * fetched: they are scattered over the pair store, and this pass does
         * not touch memory. */
        for (i = 0; i < nb8; i += 4) {
            mtlm_v4d z = FN(load4)(zb + i);
            mtlm_v4d e = FN(vexp)(-(mtlm_v4d)((mtlm_v4l)z & ~(mtlm_v4l)V4(-0.0)));
            memcpy(cb + i, &e, sizeof e);
            for (l = 0; l < 4; l++) {
                mtlm_intp r = r0 + MTLM_LDML_BLOCK + i + l;
                if (r < n) {
                    const float *row = d + (mtlm_intp)pair[r] * F;
                    __builtin_prefetch(row, 0, 3);
                    __builtin_prefetch(row + F - 1, 0, 3);
                }
            }
        }
        for (i = 0; i < nb8; i += 4) {
            mtlm_v4d sp, c;
            FN(terms)(FN(load4)(zb + i), FN(load4)(sb + i), FN(load4)(cb + i), &sp, &c);
            lacc = lacc + sp;
            cacc = cacc + c;
            memcpy(cb + i, &c, sizeof c);
        }

        /* Pass 3: the gradient's running sums, up to 4 chunks at a time. */
        for (k = 0; k < nch; k += 4) {
            switch (nch - k < 4 ? nch - k : 4) {
            case 1:
                FN(grad_slab)(d, F, pb, cb, nb, k, nch, 1, acc);
                break;
            case 2:
                FN(grad_slab)(d, F, pb, cb, nb, k, nch, 2, acc);
                break;
            case 3:
                FN(grad_slab)(d, F, pb, cb, nb, k, nch, 3, acc);
                break;
            default:
                FN(grad_slab)(d, F, pb, cb, nb, k, nch, 4, acc);
                break;
            }
        }
    }

    *loss = scale * ((lacc[0] + lacc[1]) + (lacc[2] + lacc[3]));
    g[0] = -scale * ((cacc[0] + cacc[1]) + (cacc[2] + cacc[3]));
    for (k = 0; k < nch; k++) {
        mtlm_intp off = FN(offset)(k, nch, F);
        for (l = 0; l < 4; l++) {
            f = off + l;
            if (f >= 4 * k)
                g[1 + f] = scale * acc[4 * k + l];
        }
    }
}

/* The vector exp and log1p over arrays, for the tests: e = exp(x) for
 * x <= 0, l = log1p(x) for x in [0, 1] (other values: unspecified). */
static TARGET void FN(mtlm_ldml_exp_log1p)(const double *x, mtlm_intp n, double *e,
                                           double *l)
{
    mtlm_intp i, j;
    for (i = 0; i < n; i += 4) {
        mtlm_v4d v = V4(0.0), ve, vl, inv;
        for (j = 0; j < 4 && i + j < n; j++)
            v[j] = x[i + j];
        ve = FN(vexp)(v);
        vl = FN(vlog1p_inv)(v, &inv);
        for (j = 0; j < 4 && i + j < n; j++) {
            e[i + j] = ve[j];
            l[i + j] = vl[j];
        }
    }
}

#undef INLINE
#undef FN
#undef MTLM_CAT
#undef MTLM_CAT2
