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
 * The node and sender kernels take the channels in blocks of 256 bytes (64 floats, 32 doubles; a last
 * partial block is zero-padded): per block, a node's sums stay in a small array of vectors for all its
 * edges, and each path's d1 x d3 contraction is summed in registers before it is added there once per
 * output row. The radial and coupling kernels run each path's contraction as passes over the C channels
 * (a dot product over the channels per coupling entry). Either way, of the two loop orders (scale the d1
 * input rows by the radial weights first, or sum over m1 per output row first) each path takes the one
 * with less work: scalar inputs (d1 = 1) fan out to d3 rows, pairs of vectors sum in.
 */
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define CV_BYTES 64
#else
#define CV_BYTES 32
#endif
#define CG (256 / CV_BYTES) /* vectors per channel block of the node and sender kernels (64 floats) */
#define FOR_CG for (int64_t j = 0; j < CG; j++)

#define DEFINE_COUPLED(SUFFIX, T)                                                                          \
typedef T CV_##SUFFIX __attribute__((vector_size(CV_BYTES)));                                               \
enum { BLOCK_##SUFFIX = CG * CV_BYTES / sizeof(T) }; /* channels per block */                              \
/* n <= BLOCK channels from x into CG vectors (the rest zero), and back */                                 \
static inline void cv_load_##SUFFIX(CV_##SUFFIX *v, const T *x, int64_t n) {                               \
    if (n == BLOCK_##SUFFIX) {                                                                             \
        memcpy(v, x, sizeof(CV_##SUFFIX) * CG);                                                            \
        return;                                                                                            \
    }                                                                                                      \
    T pad[BLOCK_##SUFFIX] __attribute__((aligned(CV_BYTES))) = {0};                                        \
    for (int64_t k = 0; k < n; k++) pad[k] = x[k];                                                         \
    memcpy(v, pad, sizeof pad);                                                                            \
}                                                                                                          \
static inline void cv_store_##SUFFIX(T *o, const CV_##SUFFIX *v, int64_t n) {                              \
    if (n == BLOCK_##SUFFIX) memcpy(o, v, sizeof(CV_##SUFFIX) * CG);                                       \
    else memcpy(o, v, sizeof(T) * n);                                                                      \
}                                                                                                          \
/* One path of one edge into a block's sums: acc[oo + v] += r sum_u t[u su + v sv] x[(ox + u) C]            \
 * for u < du, v < dv (x at the block's first channel; the node kernel: x = B's sender row, u = m1,          \
 * v = m3; the sender kernel: x = A's receiver row, u = m3, v = m1). Rows of CG vectors. */                 \
static inline void cpl_path_##SUFFIX(CV_##SUFFIX (*acc)[CG], const T *x, const CV_##SUFFIX *r, const T *t,  \
                                     int64_t ox, int64_t du, int64_t su, int64_t oo, int64_t dv, int64_t sv, \
                                     int64_t C, int64_t n) {                                                \
    CV_##SUFFIX xs[du][CG];                                                                                \
    for (int64_t u = 0; u < du; u++) cv_load_##SUFFIX(xs[u], x + (ox + u) * C, n);                         \
    if (du < dv) { /* du scaled rows, then a sum of du per output row */                                  \
        for (int64_t u = 0; u < du; u++) FOR_CG xs[u][j] *= r[j];                                          \
        for (int64_t v = 0; v < dv; v++) {                                                                 \
            CV_##SUFFIX s[CG];                                                                             \
            FOR_CG s[j] = t[v * sv] * xs[0][j];                                                            \
            for (int64_t u = 1; u < du; u++) FOR_CG s[j] += t[u * su + v * sv] * xs[u][j];                 \
            FOR_CG acc[oo + v][j] += s[j];                                                                 \
        }                                                                                                  \
        return;                                                                                            \
    }                                                                                                      \
    for (int64_t v = 0; v < dv; v++) { /* sum over u first, then one product with r */                    \
        CV_##SUFFIX s[CG];                                                                                 \
        FOR_CG s[j] = t[v * sv] * xs[0][j];                                                                \
        for (int64_t u = 1; u < du; u++) FOR_CG s[j] += t[u * su + v * sv] * xs[u][j];                     \
        FOR_CG acc[oo + v][j] += r[j] * s[j];                                                              \
    }                                                                                                      \
}                                                                                                          \
/* The node and sender kernels: out[i, :, c] = sum over the edges of i (CSR) and paths of cpl_path, with    \
 * x rows of width Dx from X[ix(e)] and output rows Do. */                                                   \
static void cpl_scatter_##SUFFIX(T *out, const T *X, const int64_t *ix, const int64_t *ptr,                  \
                                 const int64_t *edges, const T *R, const int64_t *ir, const T *Tc,          \
                                 const int64_t *paths, int64_t nodes, int64_t C, int64_t P, int64_t Dx,      \
                                 int64_t Do, int64_t Tsum, int to_sender, int threads) {                    \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 4)")                                  \
    for (int64_t i = 0; i < nodes; i++) {                                                                  \
        CV_##SUFFIX acc[Do][CG], rp[CG];                                                                   \
        for (int64_t c0 = 0; c0 < C; c0 += BLOCK_##SUFFIX) {                                               \
            const int64_t n = C - c0 < BLOCK_##SUFFIX ? C - c0 : BLOCK_##SUFFIX;                           \
            memset(acc, 0, sizeof(CV_##SUFFIX) * CG * Do);                                                 \
            for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {                                                \
                const int64_t e = edges[q];                                                                \
                const T *x = X + ix[e] * Dx * C + c0, *r = R + ir[e] * P * C + c0, *t = Tc + e * Tsum;     \
                for (int64_t p = 0; p < P; p++) {                                                          \
                    const int64_t *pp = paths + 5 * p; /* o1, d1, o3, d3, toff */                          \
                    cv_load_##SUFFIX(rp, r + p * C, n);                                                    \
                    if (to_sender)                                                                         \
                        cpl_path_##SUFFIX(acc, x, rp, t + pp[4], pp[2], pp[3], 1, pp[0], pp[1], pp[3], C, n);  \
                    else                                                                                   \
                        cpl_path_##SUFFIX(acc, x, rp, t + pp[4], pp[0], pp[1], pp[3], pp[2], pp[3], 1, C, n);  \
                }                                                                                          \
            }                                                                                              \
            for (int64_t d = 0; d < Do; d++) cv_store_##SUFFIX(out + (i * Do + d) * C + c0, acc[d], n);    \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void cpl_node_##SUFFIX(T *out, const T *B, const int64_t *ib, const int64_t *ptr, const int64_t *edges,    \
                       const T *R, const int64_t *ir, const T *Tc, const int64_t *paths, int64_t nodes,     \
                       int64_t C, int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {        \
    cpl_scatter_##SUFFIX(out, B, ib, ptr, edges, R, ir, Tc, paths, nodes, C, P, Din, Dout, Tsum, 0, threads); \
}                                                                                                          \
void cpl_sender_##SUFFIX(T *out, const T *A, const int64_t *ia, const int64_t *ptr, const int64_t *edges,  \
                         const T *R, const int64_t *ir, const T *Tc, const int64_t *paths, int64_t nodes,   \
                         int64_t C, int64_t P, int64_t Din, int64_t Dout, int64_t Tsum, int threads) {      \
    cpl_scatter_##SUFFIX(out, A, ia, ptr, edges, R, ir, Tc, paths, nodes, C, P, Dout, Din, Tsum, 1, threads); \
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
