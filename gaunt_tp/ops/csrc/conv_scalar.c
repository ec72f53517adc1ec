/* The convolution of scalar node features with the edges' harmonics, and all its derivatives (CPU).
 *
 * A scalar (l = 0) node function times an edge's function on the sphere needs no grid: its output
 * coefficients are the edge's harmonics scaled per channel and degree. Everything comes from the
 * 4-linear form over the edges
 *     F(A, B, R, Y) = sum_e sum_{d, c} A[ia(e), d, c] B[ib(e), c] R[ir(e), deg(d), c] Y[e, d],
 * with A the receivers' output coefficients ([nodes, D, C], component-major), B the senders' scalars
 * ([nodes, C]), R radial weights ([rows, L, C]; edge e reads row ir(e)) and Y the edges' harmonics
 * ([E, D]; deg(d) the radial degree index of component d). The convolution is dF/dA; every derivative
 * of any order is dF with respect to one argument, the others fixed. Four kernels:
 *   scal_node:   out[i, d, c] = sum over edges with ia(e) = i of B[ib(e), c] R[ir(e), deg(d), c] Y[e, d]
 *   scal_sender: out[j, c] = sum over edges with ib(e) = j, sum_d A[ia(e), d, c] R[ir(e), deg(d), c] Y[e, d]
 *   scal_radial: out[k, l, c] = sum over edges with ir(e) = k, sum_{d: deg(d) = l} A[ia(e), d, c] B[ib(e), c] Y[e, d]
 *   scal_harm:   out[e, d] = sum_c A[ia(e), d, c] B[ib(e), c] R[ir(e), deg(d), c]
 * (the first three with the edges in CSR order by the output's index). Python side:
 * gaunt_tp/ops/conv_kernel.py. OpenMP over output rows: no write conflicts. Per edge D C multiply-adds
 * against the grid form's ~5 C P (P grid points), about ten times fewer at max_ell 3.
 */
#include <stdint.h>

#define DEFINE_SCALAR(SUFFIX, T)                                                                           \
void scal_node_##SUFFIX(T *out, const T *B, const int64_t *ib, const int64_t *ptr, const int64_t *edges,   \
                        const T *R, const int64_t *ir, const T *Y, const int64_t *deg, int64_t nodes,      \
                        int64_t C, int64_t L, int64_t D, int threads) {                                    \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 16)")                                 \
    for (int64_t i = 0; i < nodes; i++) {                                                                  \
        T *o = out + i * D * C;                                                                            \
        for (int64_t k = 0; k < D * C; k++) o[k] = 0;                                                      \
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *b = B + ib[e] * C, *r = R + ir[e] * L * C, *y = Y + e * D;                           \
            for (int64_t d = 0; d < D; d++) {                                                              \
                const T yd = y[d], *rl = r + deg[d] * C;                                                   \
                T *od = o + d * C;                                                                         \
                _Pragma("omp simd")                                                                        \
                for (int64_t c = 0; c < C; c++) od[c] += yd * b[c] * rl[c];                                \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void scal_sender_##SUFFIX(T *out, const T *A, const int64_t *ia, const int64_t *ptr, const int64_t *edges, \
                          const T *R, const int64_t *ir, const T *Y, const int64_t *deg, int64_t nodes,    \
                          int64_t C, int64_t L, int64_t D, int threads) {                                  \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 16)")                                 \
    for (int64_t j = 0; j < nodes; j++) {                                                                  \
        T *o = out + j * C;                                                                                \
        for (int64_t c = 0; c < C; c++) o[c] = 0;                                                          \
        for (int64_t q = ptr[j]; q < ptr[j + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *a = A + ia[e] * D * C, *r = R + ir[e] * L * C, *y = Y + e * D;                       \
            for (int64_t d = 0; d < D; d++) {                                                              \
                const T yd = y[d], *rl = r + deg[d] * C, *ad = a + d * C;                                  \
                _Pragma("omp simd")                                                                        \
                for (int64_t c = 0; c < C; c++) o[c] += yd * ad[c] * rl[c];                                \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void scal_radial_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib,           \
                          const T *Y, const int64_t *deg, const int64_t *ptr, const int64_t *edges,        \
                          int64_t rows, int64_t C, int64_t L, int64_t D, int threads) {                    \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 16)")                                 \
    for (int64_t k = 0; k < rows; k++) {                                                                   \
        T *o = out + k * L * C;                                                                            \
        for (int64_t j = 0; j < L * C; j++) o[j] = 0;                                                      \
        for (int64_t q = ptr[k]; q < ptr[k + 1]; q++) {                                                    \
            const int64_t e = edges[q];                                                                    \
            const T *a = A + ia[e] * D * C, *b = B + ib[e] * C, *y = Y + e * D;                           \
            for (int64_t d = 0; d < D; d++) {                                                              \
                const T yd = y[d], *ad = a + d * C;                                                        \
                T *ol = o + deg[d] * C;                                                                    \
                _Pragma("omp simd")                                                                        \
                for (int64_t c = 0; c < C; c++) ol[c] += yd * ad[c] * b[c];                                \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void scal_harm_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib, const T *R,  \
                        const int64_t *ir, const int64_t *deg, int64_t E, int64_t C, int64_t L, int64_t D, \
                        int threads) {                                                                     \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                                      \
    for (int64_t e = 0; e < E; e++) {                                                                      \
        const T *a = A + ia[e] * D * C, *b = B + ib[e] * C, *r = R + ir[e] * L * C;                       \
        for (int64_t d = 0; d < D; d++) {                                                                  \
            const T *ad = a + d * C, *rl = r + deg[d] * C;                                                 \
            T s = 0;                                                                                       \
            _Pragma("omp simd reduction(+ : s)")                                                           \
            for (int64_t c = 0; c < C; c++) s += ad[c] * b[c] * rl[c];                                     \
            out[e * D + d] = s;                                                                            \
        }                                                                                                  \
    }                                                                                                      \
}

DEFINE_SCALAR(f32, float)
DEFINE_SCALAR(f64, double)
