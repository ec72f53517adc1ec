/* MACE's per-path convolution in coupled form, and all its derivatives (CPU).
 *
 * Each edge's harmonics, contracted with a path's Wigner 3j symbol and weight, give per path p a small
 * matrix T[e, p] ([d1, d3]: input components m1, output components m3; shared by the channels). The
 * convolution and every derivative come from the 4-linear form over the edges
 *     F(A, B, R, T) = sum_e sum_p sum_c R[ir(e), p, c] sum_{m1, m3} A[ia(e), o3 + m3, c] B[ib(e), o1 + m1, c] T[e, p, m1, m3]
 * with A the receivers' outputs ([nodes, Dout, C], component-major), B the senders' features ([nodes, Din,
 * C]), R radial weights ([rows, P, C]; edge e reads row ir(e)) and T the couplings ([E, Tsum]; path p's
 * d1 x d3 entries from offset toff, row-major). paths[p] = (o1, d1, o3, d3, toff). Four kernels:
 *   cpl_node:     out[i, o3 + m3, c] = sum over edges with ia(e) = i, paths, m1 of R B T
 *   cpl_sender:   out[j, o1 + m1, c] = sum over edges with ib(e) = j, paths, m3 of R A T
 *   cpl_radial:   out[k, p, c]       = sum over edges with ir(e) = k, m1, m3 of A B T
 *   cpl_coupling: out[e, p, m1, m3]  = sum_c R A B
 * (the first three with the edges in CSR order by the output's index). Python side:
 * gaunt_tp/ops/conv_kernel.py. OpenMP over output rows: no write conflicts. Per edge and channel
 * sum_p d1 d3 multiply-adds (72 for MACE's max_L 1 layer with l1 = 1), where e3nn forms d1 d2 products
 * per path first.
 *
 * Each path's small d1 x d3 contraction runs as passes over the C channels; of the two loop orders
 * (scale the d1 sender rows by the radial weights first, or sum over m1 per output row first), each
 * kernel takes per path the one with fewer passes: scalar inputs (d1 = 1) fan out to d3 rows, pairs of
 * vectors sum in.
 */
#include <stdint.h>

#define DEFINE_COUPLED(SUFFIX, T)                                                                          \
/* One path of one edge into one output row: o[(oo + v) C + c] += r[c] sum_u t[u su + v sv] x[(ox + u) C + c]  \
 * for u < du, v < dv (the node kernel: x = B's sender row, u = m1, v = m3; the sender kernel: x = A's       \
 * receiver row, u = m3, v = m1). Scaled rows r x first when du < dv, else a sum over u per output row. */  \
static inline void cpl_path_##SUFFIX(T *o, const T *x, const T *r, const T *t, int64_t ox, int64_t du,      \
                                     int64_t su, int64_t oo, int64_t dv, int64_t sv, int64_t C, T *acc,       \
                                     T *rx) {                                                               \
    if (du < dv) { /* du scaled rows, then du dv passes into the outputs */                               \
        for (int64_t u = 0; u < du; u++) {                                                                 \
            const T *xu = x + (ox + u) * C;                                                                \
            _Pragma("omp simd")                                                                            \
            for (int64_t c = 0; c < C; c++) rx[u * C + c] = r[c] * xu[c];                                  \
        }                                                                                                  \
        for (int64_t v = 0; v < dv; v++) {                                                                 \
            T *ov = o + (oo + v) * C;                                                                      \
            for (int64_t u = 0; u < du; u++) {                                                             \
                const T coef = t[u * su + v * sv], *rxu = rx + u * C;                                      \
                _Pragma("omp simd")                                                                        \
                for (int64_t c = 0; c < C; c++) ov[c] += coef * rxu[c];                                    \
            }                                                                                              \
        }                                                                                                  \
        return;                                                                                            \
    }                                                                                                      \
    for (int64_t v = 0; v < dv; v++) { /* sum over u first, then one pass with r */                       \
        const T *x0 = x + ox * C;                                                                          \
        const T c0 = t[v * sv];                                                                            \
        _Pragma("omp simd")                                                                                \
        for (int64_t c = 0; c < C; c++) acc[c] = c0 * x0[c];                                               \
        for (int64_t u = 1; u < du; u++) {                                                                 \
            const T coef = t[u * su + v * sv], *xu = x + (ox + u) * C;                                     \
            _Pragma("omp simd")                                                                            \
            for (int64_t c = 0; c < C; c++) acc[c] += coef * xu[c];                                        \
        }                                                                                                  \
        T *ov = o + (oo + v) * C;                                                                          \
        _Pragma("omp simd")                                                                                \
        for (int64_t c = 0; c < C; c++) ov[c] += acc[c] * r[c];                                            \
    }                                                                                                      \
}                                                                                                          \
void cpl_node_##SUFFIX(T *out, const T *B, const int64_t *ib, const int64_t *ptr, const int64_t *edges,    \
                       const T *R, const int64_t *ir, const T *Tc, const int64_t *paths, int64_t nodes,     \
                       int64_t C, int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {        \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 8)")                                  \
    for (int64_t i = 0; i < nodes; i++) {                                                                  \
        T acc[C], rx[Din * C];                                                                             \
        T *o = out + i * Dout * C;                                                                         \
        for (int64_t k = 0; k < Dout * C; k++) o[k] = 0;                                                   \
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *b = B + ib[e] * Din * C, *r = R + ir[e] * P * C, *t = Tc + e * Tsum;                  \
            for (int64_t p = 0; p < P; p++) {                                                              \
                const int64_t *pp = paths + 5 * p; /* o1, d1, o3, d3, toff */                              \
                cpl_path_##SUFFIX(o, b, r + p * C, t + pp[4], pp[0], pp[1], pp[3], pp[2], pp[3], 1, C,     \
                                  acc, rx);                                                                \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void cpl_sender_##SUFFIX(T *out, const T *A, const int64_t *ia, const int64_t *ptr, const int64_t *edges,  \
                         const T *R, const int64_t *ir, const T *Tc, const int64_t *paths, int64_t nodes,   \
                         int64_t C, int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {      \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 8)")                                  \
    for (int64_t j = 0; j < nodes; j++) {                                                                  \
        T acc[C], rx[Dout * C];                                                                            \
        T *o = out + j * Din * C;                                                                          \
        for (int64_t k = 0; k < Din * C; k++) o[k] = 0;                                                    \
        for (int64_t q = ptr[j]; q < ptr[j + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *a = A + ia[e] * Dout * C, *r = R + ir[e] * P * C, *t = Tc + e * Tsum;                 \
            for (int64_t p = 0; p < P; p++) {                                                              \
                const int64_t *pp = paths + 5 * p;                                                         \
                cpl_path_##SUFFIX(o, a, r + p * C, t + pp[4], pp[2], pp[3], 1, pp[0], pp[1], pp[3], C,     \
                                  acc, rx);                                                                \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void cpl_radial_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib, const T *Tc, \
                         const int64_t *paths, const int64_t *ptr, const int64_t *edges, int64_t rows,     \
                         int64_t C, int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {      \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 8)")                                  \
    for (int64_t k = 0; k < rows; k++) {                                                                   \
        T acc[C];                                                                                          \
        T *o = out + k * P * C;                                                                            \
        for (int64_t j = 0; j < P * C; j++) o[j] = 0;                                                      \
        for (int64_t q = ptr[k]; q < ptr[k + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *a = A + ia[e] * Dout * C, *b = B + ib[e] * Din * C, *t = Tc + e * Tsum;               \
            for (int64_t p = 0; p < P; p++) {                                                              \
                const int64_t o1 = paths[5 * p], d1 = paths[5 * p + 1], o3 = paths[5 * p + 2];             \
                const int64_t d3 = paths[5 * p + 3];                                                       \
                const T *tp = t + paths[5 * p + 4];                                                        \
                T *op = o + p * C;                                                                         \
                /* sum T over the longer index first: d_short (d_long + 1) passes */                       \
                const int by_m1 = d1 < d3;                                                                 \
                const int64_t outer = by_m1 ? d1 : d3, inner = by_m1 ? d3 : d1;                            \
                const int64_t s_outer = by_m1 ? d3 : 1, s_inner = by_m1 ? 1 : d3;                          \
                const T *x_outer = by_m1 ? b + o1 * C : a + o3 * C;                                        \
                const T *x_inner = by_m1 ? a + o3 * C : b + o1 * C;                                        \
                for (int64_t u = 0; u < outer; u++) {                                                      \
                    const T c0 = tp[u * s_outer];                                                          \
                    _Pragma("omp simd")                                                                    \
                    for (int64_t c = 0; c < C; c++) acc[c] = c0 * x_inner[c];                              \
                    for (int64_t v = 1; v < inner; v++) {                                                  \
                        const T coef = tp[u * s_outer + v * s_inner], *xv = x_inner + v * C;               \
                        _Pragma("omp simd")                                                                \
                        for (int64_t c = 0; c < C; c++) acc[c] += coef * xv[c];                            \
                    }                                                                                      \
                    const T *xu = x_outer + u * C;                                                         \
                    _Pragma("omp simd")                                                                    \
                    for (int64_t c = 0; c < C; c++) op[c] += acc[c] * xu[c];                               \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void cpl_coupling_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib,           \
                           const T *R, const int64_t *ir, const int64_t *paths, int64_t E, int64_t C,      \
                           int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {              \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                                      \
    for (int64_t e = 0; e < E; e++) {                                                                      \
        T xr[C];                                                                                           \
        const T *a = A + ia[e] * Dout * C, *b = B + ib[e] * Din * C, *r = R + ir[e] * P * C;               \
        for (int64_t p = 0; p < P; p++) {                                                                  \
            const int64_t o1 = paths[5 * p], d1 = paths[5 * p + 1], o3 = paths[5 * p + 2];                 \
            const int64_t d3 = paths[5 * p + 3];                                                           \
            const T *rp = r + p * C;                                                                       \
            T *op = out + e * Tsum + paths[5 * p + 4];                                                     \
            /* the shorter side's rows times r, a dot product per (m1, m3): d_short (d_long + 1) passes */ \
            const int by_m1 = d1 < d3;                                                                     \
            const int64_t outer = by_m1 ? d1 : d3, inner = by_m1 ? d3 : d1;                                \
            const int64_t s_outer = by_m1 ? d3 : 1, s_inner = by_m1 ? 1 : d3;                              \
            const T *x_outer = by_m1 ? b + o1 * C : a + o3 * C;                                            \
            const T *x_inner = by_m1 ? a + o3 * C : b + o1 * C;                                            \
            for (int64_t u = 0; u < outer; u++) {                                                          \
                const T *xu = x_outer + u * C;                                                             \
                _Pragma("omp simd")                                                                        \
                for (int64_t c = 0; c < C; c++) xr[c] = xu[c] * rp[c];                                     \
                for (int64_t v = 0; v < inner; v++) {                                                      \
                    const T *xv = x_inner + v * C;                                                         \
                    T s = 0;                                                                               \
                    _Pragma("omp simd reduction(+ : s)")                                                   \
                    for (int64_t c = 0; c < C; c++) s += xr[c] * xv[c];                                    \
                    op[u * s_outer + v * s_inner] = s;                                                     \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}

DEFINE_COUPLED(f32, float)
DEFINE_COUPLED(f64, double)
