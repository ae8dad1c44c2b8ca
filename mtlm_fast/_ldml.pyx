"""K3: per-label LDML loss and gradient sums over each label's stored pairs.

The caller (``mtlm._ldml``) hands in validated CSR pair lists (indices into the
pair store in range, signs +1/-1) and float64 weights.  Each label's sums are
written by exactly one thread (parallel over labels); the shared sum is taken
afterwards serially in label order, so the result does not depend on the
number of threads.
"""
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log1p
from libc.stdint cimport int8_t

from mtlm_fast._typedefs cimport intp_t, int32_t, float32_t, float64_t


def ldml_grad(const float32_t[:, ::1] d, const int32_t[::1] ptr,
              const int32_t[::1] pair, const int8_t[::1] sign,
              const float64_t[:, ::1] W, const float64_t[::1] bias,
              const float64_t[::1] scale, float64_t[:, ::1] grad,
              float64_t[::1] loss, float64_t[::1] grad_shared, int n_threads):
    """Data terms of the LDML objective and gradient, per label.

    For label m and its pairs r in pair[ptr[m]:ptr[m+1]] with sign s:
    z = s (W[m] . d[r] - bias[m]); loss[m] = scale[m] sum softplus(z);
    grad[m] = scale[m] sum s sigmoid(z) [-1, d[r]];
    grad_shared = sum over m, in label order, of grad[m, 1:].
    Shapes: d (P, F), W (M, F), grad (M, F + 1), grad_shared (F,).
    """
    cdef intp_t M = W.shape[0], F = W.shape[1]
    cdef intp_t m, r, j, f
    cdef float64_t z, c, s, acc, lm, e
    with nogil:
        for m in prange(M, schedule="dynamic", num_threads=n_threads):
            for f in range(F + 1):
                grad[m, f] = 0.0
            lm = 0.0
            for r in range(ptr[m], ptr[m + 1]):
                j = pair[r]
                s = sign[r]
                acc = 0.0
                for f in range(F):
                    acc = acc + W[m, f] * d[j, f]
                z = s * (acc - bias[m])
                # Stable forms sharing e = exp(-|z|):
                # softplus(z) = max(z, 0) + log1p(e),
                # sigmoid(z) = exp(min(z, 0)) / (1 + exp(-|z|)) = (e or 1) / (1 + e).
                e = exp(-fabs(z))
                if z > 0:
                    lm = lm + z + log1p(e)
                    c = s / (1.0 + e)
                else:
                    lm = lm + log1p(e)
                    c = s * e / (1.0 + e)
                grad[m, 0] = grad[m, 0] - c
                for f in range(F):
                    grad[m, f + 1] = grad[m, f + 1] + c * d[j, f]
            loss[m] = scale[m] * lm
            for f in range(F + 1):
                grad[m, f] = scale[m] * grad[m, f]
        for f in range(F):
            grad_shared[f] = 0.0
        for m in range(M):
            for f in range(F):
                grad_shared[f] = grad_shared[f] + grad[m, f + 1]
