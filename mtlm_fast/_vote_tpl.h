/* K6 vector kernel for one instruction set.  _vote_kernels.h includes this
 * file once per level, with SFX and TARGET defined (see _vexp_tpl.h).
 */

#include "_vexp_tpl.h"

/* e[j] = exp(-(D[j] - dmin) / tau) for j < n; returns sum_j e[j], added as
 * four lane sums (lane = j mod 4) combined as (l0 + l1) + (l2 + l3). */
static TARGET double FN(mtlm_vote_weights)(const double *D, mtlm_intp n, double dmin,
                                           double tau, double *e)
{
    mtlm_v4d acc = V4(0.0), vmin = V4(dmin), vtau = V4(tau), x, w;
    mtlm_intp j, l;
    for (j = 0; j + 4 <= n; j += 4) {
        memcpy(&x, D + j, sizeof x);
        w = FN(vexp)(-(x - vmin) / vtau);
        memcpy(e + j, &w, sizeof w);
        acc = acc + w;
    }
    if (j < n) {
        x = V4(dmin); /* padding lanes: exp(0) = 1, not added */
        for (l = 0; j + l < n; l++)
            x[l] = D[j + l];
        w = FN(vexp)(-(x - vmin) / vtau);
        for (l = 0; j + l < n; l++) {
            e[j + l] = w[l];
            acc[l] = acc[l] + w[l];
        }
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

#undef INLINE
#undef FN
#undef MTLM_CAT
#undef MTLM_CAT2
