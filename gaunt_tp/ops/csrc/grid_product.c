/* Fused sphere-grid Gaunt product on the CPU: synthesis of two functions on the symmetry-reduced
 * grid, their product by parity parts, and the projection back, one tile of products at a time.
 *
 * Python side: gaunt_tp/ops/native.py (build, load) and gaunt_tp/ops/fused.py (layouts, tables,
 * autograd). Plain C with GCC/Clang vector extensions and OpenMP; no PyTorch headers.
 *
 * Parity parts: the grid is invariant under a group of K = 1, 2, 4 or 8 coordinate reflections
 * and every real harmonic is even or odd under each of them, so a function splits into K parts
 * (part index = bits of its parities) and each part is known from its values at one point per
 * orbit (the H representative points). The product's part P is sum_q f_q g_{P xor q}.
 *
 * A tile is LANES consecutive products q = node * mul + channel (one vector register: 16 or 8 in
 * float32, 8 or 4 in float64, with or without AVX-512). Per tile and operand, the coefficients are gathered from e3nn's layout (entry k
 * of product q sits at node * dim + off[k] + channel * stride[k]; entries sorted by part, count[j]
 * in part j) into [n][LANES] vectors, evaluated at the H points (part j's table S_j[k * H + p]),
 * multiplied by parts, projected (table P_j[p * n_j + k]) and scattered back into e3nn's layout.
 * Both tables of an operand are the parts' tables concatenated; part j starts at H * (entries
 * before part j). Entries of `out` outside the output operand are not touched.
 */
#include <stdint.h>
#include <stdlib.h>

#define MAX_PARTS 8

/* One vector register: 512 bits with AVX-512, else 256 (AVX2; plain SSE/NEON code splits it). */
#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#else
#define VECTOR_BYTES 32
#endif
#define LANES_F32 (VECTOR_BYTES / 4)
#define LANES_F64 (VECTOR_BYTES / 8)
typedef float vf __attribute__((vector_size(VECTOR_BYTES)));
typedef double vd __attribute__((vector_size(VECTOR_BYTES)));

#define DEFINE_KERNEL(NAME, T, V, LANES)                                                                   \
/* f[p] = sum_k S[k * H + p] x[k], eight points at a time (eight independent accumulators). */           \
static void NAME##_synth(const V *x, int64_t n, const T *S, int64_t H, V *f) {                            \
    int64_t p = 0;                                                                                         \
    for (; p + 8 <= H; p += 8) {                                                                           \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};                  \
        for (int64_t k = 0; k < n; k++) {                                                                  \
            const T *s = S + k * H + p;                                                                    \
            V v = x[k];                                                                                    \
            a0 += s[0] * v; a1 += s[1] * v; a2 += s[2] * v; a3 += s[3] * v;                                \
            a4 += s[4] * v; a5 += s[5] * v; a6 += s[6] * v; a7 += s[7] * v;                                \
        }                                                                                                  \
        f[p] = a0; f[p + 1] = a1; f[p + 2] = a2; f[p + 3] = a3;                                            \
        f[p + 4] = a4; f[p + 5] = a5; f[p + 6] = a6; f[p + 7] = a7;                                        \
    }                                                                                                      \
    for (; p < H; p++) {                                                                                   \
        V a = {0};                                                                                         \
        for (int64_t k = 0; k < n; k++) a += S[k * H + p] * x[k];                                          \
        f[p] = a;                                                                                          \
    }                                                                                                      \
}                                                                                                          \
/* z[k] = sum_p P[p * n + k] h[p], eight entries at a time. */                                             \
static void NAME##_project(const V *h, int64_t H, const T *P, int64_t n, V *z) {                         \
    int64_t k = 0;                                                                                         \
    for (; k + 8 <= n; k += 8) {                                                                           \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};                  \
        for (int64_t p = 0; p < H; p++) {                                                                  \
            const T *s = P + p * n + k;                                                                    \
            V v = h[p];                                                                                    \
            a0 += s[0] * v; a1 += s[1] * v; a2 += s[2] * v; a3 += s[3] * v;                                \
            a4 += s[4] * v; a5 += s[5] * v; a6 += s[6] * v; a7 += s[7] * v;                                \
        }                                                                                                  \
        z[k] = a0; z[k + 1] = a1; z[k + 2] = a2; z[k + 3] = a3;                                            \
        z[k + 4] = a4; z[k + 5] = a5; z[k + 6] = a6; z[k + 7] = a7;                                        \
    }                                                                                                      \
    for (; k < n; k++) {                                                                                   \
        V a = {0};                                                                                         \
        for (int64_t p = 0; p < H; p++) a += P[p * n + k] * h[p];                                          \
        z[k] = a;                                                                                          \
    }                                                                                                      \
}                                                                                                          \
/* x[k][lane] = src[base[lane] + off[k] + chan[lane] * str[k]]; when the tile is one node's channels   \
 * c0..c0+LANES-1 (uniform), entry k is a strided run src[base + off[k] + (c0 + lane) * str[k]]. */      \
static void NAME##_gather(const T *src, const int64_t *base, const int64_t *chan, const int64_t *off,      \
                          const int64_t *str, int64_t n, int uniform, V *x) {                              \
    if (uniform) {                                                                                         \
        for (int64_t k = 0; k < n; k++) {                                                                  \
            const T *p = src + base[0] + off[k] + chan[0] * str[k];                                        \
            int32_t s = (int32_t)str[k];                                                                   \
            T tmp[LANES];                                                                                  \
            for (int32_t l = 0; l < LANES; l++) tmp[l] = p[l * s];                                         \
            __builtin_memcpy(&x[k], tmp, sizeof(V));                                                       \
        }                                                                                                  \
        return;                                                                                            \
    }                                                                                                      \
    for (int64_t k = 0; k < n; k++)                                                                        \
        for (int l = 0; l < LANES; l++) x[k][l] = src[base[l] + off[k] + chan[l] * str[k]];                \
}                                                                                                          \
int NAME(const T *a, const T *b, T *out, int64_t count, int64_t mul, int threads, int64_t parts,          \
         int64_t H,                                                                                        \
         const int64_t *off_a, const int64_t *str_a, const int64_t *cnt_a, int64_t dim_a, const T *tab_a,  \
         const int64_t *off_b, const int64_t *str_b, const int64_t *cnt_b, int64_t dim_b, const T *tab_b,  \
         const int64_t *off_o, const int64_t *str_o, const int64_t *cnt_o, int64_t dim_o, const T *tab_o) {\
    if (parts < 1 || parts > MAX_PARTS) return 2;                                                          \
    int64_t tiles = (count + LANES - 1) / LANES;                                                           \
    int64_t na = 0, nb = 0, no = 0, start_a[MAX_PARTS], start_b[MAX_PARTS], start_o[MAX_PARTS];            \
    for (int64_t j = 0; j < parts; j++) {                                                                  \
        start_a[j] = na; start_b[j] = nb; start_o[j] = no;                                                 \
        na += cnt_a[j]; nb += cnt_b[j]; no += cnt_o[j];                                                    \
    }                                                                                                      \
    int failed = 0;                                                                                        \
    if (threads > tiles) threads = (int)tiles;                                                             \
    if (threads < 1) threads = 1;                                                                          \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                       \
    {                                                                                                      \
        size_t bytes = sizeof(V) * (size_t)(na + nb + no + 3 * parts * H + 1);                             \
        V *buf = (V *)aligned_alloc(64, (bytes + 63) / 64 * 64);                                          \
        if (!buf) failed = 1;                                                                              \
        V *xa = buf, *xb = xa + na, *z = xb + nb, *f = z + no, *g = f + parts * H, *h = g + parts * H;    \
        _Pragma("omp for schedule(static)")                                                                \
        for (int64_t tile = 0; tile < tiles; tile++) {                                                     \
            if (!buf) continue;                                                                            \
            int64_t q0 = tile * LANES, lanes = count - q0 < LANES ? count - q0 : LANES;                    \
            int64_t base_a[LANES], base_b[LANES], base_o[LANES], chan[LANES];                              \
            for (int l = 0; l < LANES; l++) {                                                              \
                int64_t q = q0 + (l < lanes ? l : lanes - 1); /* short tile: repeat the last product */    \
                int64_t node = q / mul;                                                                    \
                chan[l] = q % mul;                                                                         \
                base_a[l] = node * dim_a; base_b[l] = node * dim_b; base_o[l] = node * dim_o;              \
            }                                                                                              \
            int uniform = lanes == LANES && base_a[0] == base_a[LANES - 1];                                \
            NAME##_gather(a, base_a, chan, off_a, str_a, na, uniform, xa);                                 \
            NAME##_gather(b, base_b, chan, off_b, str_b, nb, uniform, xb);                                 \
            for (int64_t j = 0; j < parts; j++) {                                                          \
                if (cnt_a[j]) NAME##_synth(xa + start_a[j], cnt_a[j], tab_a + start_a[j] * H, H, f + j * H);\
                if (cnt_b[j]) NAME##_synth(xb + start_b[j], cnt_b[j], tab_b + start_b[j] * H, H, g + j * H);\
            }                                                                                              \
            for (int64_t P = 0; P < parts; P++) {                                                          \
                if (!cnt_o[P]) continue;                                                                   \
                V *hp = h + P * H;                                                                         \
                int first = 1;                                                                             \
                for (int64_t j = 0; j < parts; j++) {                                                      \
                    if (!cnt_a[j] || !cnt_b[P ^ j]) continue;                                              \
                    const V *fj = f + j * H, *gj = g + (P ^ j) * H;                                        \
                    if (first) { for (int64_t p = 0; p < H; p++) hp[p] = fj[p] * gj[p]; first = 0; }      \
                    else { for (int64_t p = 0; p < H; p++) hp[p] += fj[p] * gj[p]; }                       \
                }                                                                                          \
                if (first) { for (int64_t p = 0; p < H; p++) hp[p] = (V){0}; }                             \
                NAME##_project(hp, H, tab_o + start_o[P] * H, cnt_o[P], z + start_o[P]);                   \
            }                                                                                              \
            if (uniform) {                                                                                 \
                for (int64_t k = 0; k < no; k++) {                                                         \
                    T *p = out + base_o[0] + off_o[k] + chan[0] * str_o[k];                                \
                    int32_t s = (int32_t)str_o[k];                                                         \
                    T tmp[LANES];                                                                          \
                    __builtin_memcpy(tmp, &z[k], sizeof(V));                                               \
                    for (int32_t l = 0; l < LANES; l++) p[l * s] = tmp[l];                                 \
                }                                                                                          \
            } else {                                                                                       \
                for (int64_t k = 0; k < no; k++)                                                           \
                    for (int l = 0; l < lanes; l++) out[base_o[l] + off_o[k] + chan[l] * str_o[k]] = z[k][l];\
            }                                                                                              \
        }                                                                                                  \
        free(buf);                                                                                         \
    }                                                                                                      \
    return failed;                                                                                         \
}

DEFINE_KERNEL(gaunt_grid_product_f32, float, vf, LANES_F32)
DEFINE_KERNEL(gaunt_grid_product_f64, double, vd, LANES_F64)

/* Products per tile in float32, for the Python side's cost model. */
int gaunt_grid_lanes_f32(void) { return LANES_F32; }
