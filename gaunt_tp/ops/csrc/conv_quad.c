/* The grid convolution's sums without per-edge buffers, and all their derivatives (CPU).
 *
 * Everything the grid form of GauntConvolution computes comes from one 4-linear form over the edges,
 *     F(A, B, R, Z) = sum_e sum_{c, p, l} A[ia(e), c, p] B[ib(e), c, p] R[ir(e), l, c] Z[e, l, p],
 * with A, B node values on the grid ([nodes, C, P]), R radial weights ([rows, L, C]; edge e reads row
 * ir(e), so that an edge and its reverse can share one row) and Z per-edge zonal functions on the
 * grid ([E, L, P]): the convolution's sums are dF/dA with B the
 * senders' values, and every derivative of any order is dF with respect to one argument, with the
 * others (some replaced by incoming gradients) fixed. Three kernels compute those:
 *   quad_node: out[i] = sum over edges with ia(e) = i of B[ib(e)] * (R Z)(e)   (edges in CSR by ia)
 *   quad_radial: out[k, l, c] = sum over edges with ir(e) = k, sum_p A[ia(e), c, p] B[ib(e), c, p] Z[e, l, p]
 *                (edges in CSR by ir)
 *   quad_zonal: out[e, l, p] = sum_c A[ia(e), c, p] B[ib(e), c, p] R[ir(e), l, c]
 * Python side: gaunt_tp/ops/conv_kernel.py. OpenMP over output nodes, rows or edges: no write conflicts.
 * P must be a multiple of LANES (the caller pads the grid with zero points), L at most MAX_DEGREES.
 */
#include <stdint.h>
#include <stdlib.h>

#define LANES 8        /* the grid's point count P is padded to a multiple of this by the caller */
#define MAX_DEGREES 16 /* edge degrees L; gaunt_tp/ops/conv_kernel.py checks against the same limits */
#define MAX_POINTS 512
/* Points per vector: 8 floats; 8 doubles with AVX-512, else 4 (a 512-bit type on an AVX2 machine is split
 * badly by GCC; see many_body.c). Both divide LANES, the padding. */
#define LANES_f32 LANES
#if defined(__AVX512F__)
#define LANES_f64 8
#else
#define LANES_f64 4
#endif
typedef float Vf32 __attribute__((vector_size(LANES_f32 * sizeof(float))));
typedef double Vf64 __attribute__((vector_size(LANES_f64 * sizeof(double))));
typedef int32_t Mf32 __attribute__((vector_size(LANES_f32 * sizeof(int32_t)))); /* shuffle masks */
typedef int64_t Mf64 __attribute__((vector_size(LANES_f64 * sizeof(int64_t))));
#ifdef __clang__
#define SHUFFLE(SUFFIX, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE(SUFFIX, a, b, ...) __builtin_shuffle(a, b, (M##SUFFIX){__VA_ARGS__})
#endif
/* The lane sums of four vectors s0..s3 -> SUM_OF(u, l) = sum of s_l, by a transposing tree of shuffles
 * (six shuffles and three vector adds in place of four lane-by-lane reductions); with 8 lanes the tree
 * stops one level short, at u[l] + u[l + 4]. */
#define SUM4_8(SUFFIX, u, s0, s1, s2, s3)                                                                  \
    V##SUFFIX u;                                                                                           \
    {                                                                                                      \
        V##SUFFIX t0 = SHUFFLE(SUFFIX, s0, s1, 0, 8, 2, 10, 4, 12, 6, 14)                                  \
                       + SHUFFLE(SUFFIX, s0, s1, 1, 9, 3, 11, 5, 13, 7, 15);                               \
        V##SUFFIX t1 = SHUFFLE(SUFFIX, s2, s3, 0, 8, 2, 10, 4, 12, 6, 14)                                  \
                       + SHUFFLE(SUFFIX, s2, s3, 1, 9, 3, 11, 5, 13, 7, 15);                               \
        u = SHUFFLE(SUFFIX, t0, t1, 0, 1, 8, 9, 4, 5, 12, 13)                                              \
            + SHUFFLE(SUFFIX, t0, t1, 2, 3, 10, 11, 6, 7, 14, 15);                                         \
    }
#define SUM4_4(SUFFIX, u, s0, s1, s2, s3)                                                                  \
    V##SUFFIX u;                                                                                           \
    {                                                                                                      \
        V##SUFFIX t0 = SHUFFLE(SUFFIX, s0, s1, 0, 4, 2, 6) + SHUFFLE(SUFFIX, s0, s1, 1, 5, 3, 7);         \
        V##SUFFIX t1 = SHUFFLE(SUFFIX, s2, s3, 0, 4, 2, 6) + SHUFFLE(SUFFIX, s2, s3, 1, 5, 3, 7);         \
        u = SHUFFLE(SUFFIX, t0, t1, 0, 1, 4, 5) + SHUFFLE(SUFFIX, t0, t1, 2, 3, 6, 7);                    \
    }
#define SUM_OF_8(u, l) ((u)[l] + (u)[(l) + 4])
#define SUM_OF_4(u, l) ((u)[l])
#define SUM4_f32 SUM4_8
#define SUM_OF_f32 SUM_OF_8
#if defined(__AVX512F__)
#define SUM4_f64 SUM4_8
#define SUM_OF_f64 SUM_OF_8
#else
#define SUM4_f64 SUM4_4
#define SUM_OF_f64 SUM_OF_4
#endif

#define DEFINE_QUAD(SUFFIX, T)                                                                             \
void quad_node_##SUFFIX(T *out, const T *B, const int64_t *ib, const int64_t *ptr, const int64_t *edges,   \
                        const T *R, const int64_t *ir, const T *Z, int64_t nodes, int64_t C, int64_t L,    \
                        int64_t P, int threads) {                                                          \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 16)")                                 \
    for (int64_t i = 0; i < nodes; i++) {                                                                  \
        T *o = out + i * C * P;                                                                            \
        for (int64_t k = 0; k < C * P; k++) o[k] = 0;                                                      \
        T w[MAX_POINTS];                                                                                   \
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {                                                    \
            int64_t e = edges[q];                                                                          \
            if (L == 4) { /* per chunk of points: the edge's four zonal vectors stay in registers */       \
                const T *b = B + ib[e] * C * P, *r = R + ir[e] * 4 * C, *z = Z + e * 4 * P;               \
                for (int64_t p = 0; p < P; p += LANES_##SUFFIX) {                                          \
                    V##SUFFIX z0, z1, z2, z3, vb, vo;                                                      \
                    __builtin_memcpy(&z0, z + p, sizeof z0); __builtin_memcpy(&z1, z + P + p, sizeof z1);  \
                    __builtin_memcpy(&z2, z + 2 * P + p, sizeof z2);                                       \
                    __builtin_memcpy(&z3, z + 3 * P + p, sizeof z3);                                       \
                    for (int64_t c = 0; c < C; c++) {                                                      \
                        V##SUFFIX wv = r[c] * z0 + r[C + c] * z1 + r[2 * C + c] * z2 + r[3 * C + c] * z3;  \
                        __builtin_memcpy(&vb, b + c * P + p, sizeof vb);                                   \
                        __builtin_memcpy(&vo, o + c * P + p, sizeof vo);                                   \
                        vo += vb * wv;                                                                     \
                        __builtin_memcpy(o + c * P + p, &vo, sizeof vo);                                   \
                    }                                                                                      \
                }                                                                                          \
                continue;                                                                                  \
            }                                                                                              \
            const T *b = B + ib[e] * C * P, *r = R + ir[e] * L * C, *z = Z + e * L * P;                   \
            for (int64_t c = 0; c < C; c++) {                                                              \
                for (int64_t p = 0; p < P; p++) w[p] = 0;                                                  \
                for (int64_t l = 0; l < L; l++) {                                                          \
                    T rl = r[l * C + c];                                                                   \
                    _Pragma("omp simd")                                                                    \
                    for (int64_t p = 0; p < P; p++) w[p] += rl * z[l * P + p];                             \
                }                                                                                          \
                _Pragma("omp simd")                                                                        \
                for (int64_t p = 0; p < P; p++) o[c * P + p] += b[c * P + p] * w[p];                      \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void quad_radial_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib,           \
                          const T *Z, const int64_t *ptr, const int64_t *edges, int64_t rows, int64_t C,   \
                          int64_t L, int64_t P, int threads) {                                             \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 16)")                                 \
    for (int64_t k = 0; k < rows; k++) {                                                                   \
        T *o = out + k * L * C;                                                                            \
        for (int64_t j = 0; j < L * C; j++) o[j] = 0;                                                      \
        for (int64_t q = ptr[k]; q < ptr[k + 1]; q++) {                                                    \
            int64_t e = edges[q];                                                                          \
            const T *a = A + ia[e] * C * P, *b = B + ib[e] * C * P, *z = Z + e * L * P;                    \
            if (L == 4) { /* max_ell 3, the common case: four vector accumulators in registers */          \
                for (int64_t c = 0; c < C; c++) {                                                          \
                    const T *ac = a + c * P, *bc = b + c * P;                                              \
                    V##SUFFIX s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, va, vb, z0, z1, z2, z3;              \
                    for (int64_t p = 0; p < P; p += LANES_##SUFFIX) {                                      \
                        __builtin_memcpy(&va, ac + p, sizeof va); __builtin_memcpy(&vb, bc + p, sizeof vb);\
                        __builtin_memcpy(&z0, z + p, sizeof z0); __builtin_memcpy(&z1, z + P + p, sizeof z1);\
                        __builtin_memcpy(&z2, z + 2 * P + p, sizeof z2);                                   \
                        __builtin_memcpy(&z3, z + 3 * P + p, sizeof z3);                                   \
                        V##SUFFIX ab = va * vb;                                                            \
                        s0 += ab * z0; s1 += ab * z1; s2 += ab * z2; s3 += ab * z3;                        \
                    }                                                                                      \
                    SUM4_##SUFFIX(SUFFIX, u, s0, s1, s2, s3)                                               \
                    o[c] += SUM_OF_##SUFFIX(u, 0); o[C + c] += SUM_OF_##SUFFIX(u, 1);                      \
                    o[2 * C + c] += SUM_OF_##SUFFIX(u, 2); o[3 * C + c] += SUM_OF_##SUFFIX(u, 3);          \
                }                                                                                          \
                continue;                                                                                  \
            }                                                                                              \
            for (int64_t c = 0; c < C; c++) {                                                              \
                const T *ac = a + c * P, *bc = b + c * P;                                                  \
                T acc[MAX_DEGREES][LANES_##SUFFIX];                                                        \
                for (int64_t l = 0; l < L; l++)                                                            \
                    for (int j = 0; j < LANES_##SUFFIX; j++) acc[l][j] = 0;                                \
                for (int64_t p = 0; p < P; p += LANES_##SUFFIX) { /* P: a multiple of LANES (padded) */    \
                    T ab[LANES_##SUFFIX];                                                                  \
                    for (int j = 0; j < LANES_##SUFFIX; j++) ab[j] = ac[p + j] * bc[p + j];                \
                    for (int64_t l = 0; l < L; l++)                                                        \
                        for (int j = 0; j < LANES_##SUFFIX; j++) acc[l][j] += ab[j] * z[l * P + p + j];    \
                }                                                                                          \
                for (int64_t l = 0; l < L; l++) {                                                          \
                    T sum = 0;                                                                             \
                    for (int j = 0; j < LANES_##SUFFIX; j++) sum += acc[l][j];                             \
                    o[l * C + c] += sum;                                                                   \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
void quad_zonal_##SUFFIX(T *out, const T *A, const int64_t *ia, const T *B, const int64_t *ib,            \
                         const T *R, const int64_t *ir, int64_t E, int64_t C, int64_t L, int64_t P,        \
                         int threads) {                                                                    \
    _Pragma("omp parallel for num_threads(threads) schedule(static)")                                      \
    for (int64_t e = 0; e < E; e++) {                                                                      \
        const T *a = A + ia[e] * C * P, *b = B + ib[e] * C * P, *r = R + ir[e] * L * C;                   \
        T *o = out + e * L * P;                                                                            \
        if (L == 4) { /* per chunk of points: four accumulators, a * b formed once per channel */          \
            for (int64_t p = 0; p < P; p += LANES_##SUFFIX) {                                              \
                V##SUFFIX s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, va, vb;                                  \
                for (int64_t c = 0; c < C; c++) {                                                          \
                    __builtin_memcpy(&va, a + c * P + p, sizeof va);                                       \
                    __builtin_memcpy(&vb, b + c * P + p, sizeof vb);                                       \
                    V##SUFFIX ab = va * vb;                                                                \
                    s0 += r[c] * ab; s1 += r[C + c] * ab; s2 += r[2 * C + c] * ab; s3 += r[3 * C + c] * ab;\
                }                                                                                          \
                __builtin_memcpy(o + p, &s0, sizeof s0); __builtin_memcpy(o + P + p, &s1, sizeof s1);      \
                __builtin_memcpy(o + 2 * P + p, &s2, sizeof s2);                                           \
                __builtin_memcpy(o + 3 * P + p, &s3, sizeof s3);                                           \
            }                                                                                              \
            continue;                                                                                      \
        }                                                                                                  \
        for (int64_t k = 0; k < L * P; k++) o[k] = 0;                                                      \
        for (int64_t c = 0; c < C; c++) {                                                                  \
            for (int64_t l = 0; l < L; l++) {                                                              \
                T rl = r[l * C + c];                                                                       \
                _Pragma("omp simd")                                                                        \
                for (int64_t p = 0; p < P; p++) o[l * P + p] += rl * a[c * P + p] * b[c * P + p];          \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}

DEFINE_QUAD(f32, float)
DEFINE_QUAD(f64, double)

/* The edges grouped by index (a stable counting sort): ptr[size + 1] (ptr[0] = 0) and order[n], the edges
 * with index i being order[ptr[i]..ptr[i + 1]) in their original order. Returns 0, or -1 when an index is
 * outside 0..size-1 (then ptr and order are unspecified). */
int edge_groups(int64_t *ptr, int64_t *order, const int64_t *index, int64_t n, int64_t size) {
    for (int64_t i = 0; i <= size; i++) ptr[i] = 0;
    for (int64_t e = 0; e < n; e++) {
        if (index[e] < 0 || index[e] >= size) return -1;
        ptr[index[e] + 1]++;
    }
    for (int64_t i = 0; i < size; i++) ptr[i + 1] += ptr[i];
    for (int64_t e = 0; e < n; e++) order[ptr[index[e]]++] = e; /* ptr[i] now ends group i ... */
    for (int64_t i = size; i > 0; i--) ptr[i] = ptr[i - 1];     /* ... shifted back by one place */
    ptr[0] = 0;
    return 0;
}
