/* Fused sphere-grid Gaunt product on the CPU: synthesis of two functions on the mirror half
 * of a grid, their mirror product and the projection back, one tile of products at a time.
 *
 * Python side: gaunt_tp/ops/native.py (build, load) and gaunt_tp/ops/fused.py (layouts, tables,
 * autograd). Plain C with GCC/Clang vector extensions and OpenMP; no PyTorch headers.
 *
 * A tile is LANES consecutive products q = node * mul + channel (16 in float32, 8 in float64: one
 * 512-bit vector). Per tile and per operand, the coefficients are gathered from e3nn's layout
 * (entry k of product q sits at node * dim + off[k] + channel * stride[k]; the n_e mirror-even
 * entries first, then the n_o mirror-odd ones) into [n][LANES] vectors, evaluated at the H points of
 * the mirror half (table S[k * H + p]), multiplied by parts
 *     h_e = f_e g_e + f_o g_o,   h_o = f_e g_o + f_o g_e,
 * and projected (table P[p * n + k]), all in per-thread buffers that stay in cache. The output
 * entries are scattered into e3nn's layout; entries of `out` outside the output's class are not
 * touched (the caller zeroes them).
 */
#include <stdint.h>
#include <stdlib.h>

typedef float vf __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(64)));

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
/* x[k][lane] = src[base[lane] + off[k] + chan[lane] * str[k]] */                                          \
static void NAME##_gather(const T *src, const int64_t *base, const int64_t *chan, const int64_t *off,      \
                          const int64_t *str, int64_t n, V *x) {                                           \
    for (int64_t k = 0; k < n; k++)                                                                        \
        for (int l = 0; l < LANES; l++) x[k][l] = src[base[l] + off[k] + chan[l] * str[k]];                \
}                                                                                                          \
int NAME(const T *a, const T *b, T *out, int64_t count, int64_t mul, int threads,                          \
         const int64_t *off_a, const int64_t *str_a, int64_t na_e, int64_t na_o, int64_t dim_a,            \
         const T *sa_e, const T *sa_o,                                                                     \
         const int64_t *off_b, const int64_t *str_b, int64_t nb_e, int64_t nb_o, int64_t dim_b,            \
         const T *sb_e, const T *sb_o,                                                                     \
         const int64_t *off_o, const int64_t *str_o, int64_t no_e, int64_t no_o, int64_t dim_o,            \
         const T *po_e, const T *po_o, int64_t H) {                                                        \
    int64_t tiles = (count + LANES - 1) / LANES;                                                           \
    int64_t na = na_e + na_o, nb = nb_e + nb_o, no = no_e + no_o;                                          \
    int failed = 0;                                                                                        \
    if (threads > tiles) threads = (int)tiles;                                                             \
    if (threads < 1) threads = 1;                                                                          \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                       \
    {                                                                                                      \
        size_t bytes = sizeof(V) * (size_t)(na + nb + no + 6 * H + 1);                                     \
        V *buf = (V *)aligned_alloc(64, (bytes + 63) / 64 * 64);                                          \
        if (!buf) failed = 1;                                                                              \
        V *xa = buf, *xb = xa + na, *z = xb + nb;                                                          \
        V *fe = z + no, *fo = fe + H, *ge = fo + H, *go = ge + H, *he = go + H, *ho = he + H;             \
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
            NAME##_gather(a, base_a, chan, off_a, str_a, na, xa);                                          \
            NAME##_gather(b, base_b, chan, off_b, str_b, nb, xb);                                          \
            NAME##_synth(xa, na_e, sa_e, H, fe);                                                           \
            NAME##_synth(xa + na_e, na_o, sa_o, H, fo);                                                    \
            NAME##_synth(xb, nb_e, sb_e, H, ge);                                                           \
            NAME##_synth(xb + nb_e, nb_o, sb_o, H, go);                                                    \
            for (int64_t p = 0; p < H; p++) {                                                              \
                he[p] = fe[p] * ge[p] + fo[p] * go[p];                                                     \
                ho[p] = fe[p] * go[p] + fo[p] * ge[p];                                                     \
            }                                                                                              \
            NAME##_project(he, H, po_e, no_e, z);                                                          \
            NAME##_project(ho, H, po_o, no_o, z + no_e);                                                   \
            for (int64_t k = 0; k < no; k++)                                                               \
                for (int l = 0; l < lanes; l++) out[base_o[l] + off_o[k] + chan[l] * str_o[k]] = z[k][l];  \
        }                                                                                                  \
        free(buf);                                                                                         \
    }                                                                                                      \
    return failed;                                                                                         \
}

DEFINE_KERNEL(gaunt_grid_product_f32, float, vf, 16)
DEFINE_KERNEL(gaunt_grid_product_f64, double, vd, 8)
