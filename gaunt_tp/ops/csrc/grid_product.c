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
 * Components: for the parity-odd product (r x grad f) . grad g, the inputs carry three functions
 * each (x, y, z components, each with its own parts): slot = component * K + part. Inputs with
 * components pair up component by component; an output without them sums over the components,
 * and an output with them (in the backward passes) gets each entry once per component, summed.
 *
 * A tile is LANES consecutive products q = node * mul + channel (one vector register: 16 or 8 in
 * float32, 8 or 4 in float64, with or without AVX-512). Per tile and operand, the coefficients are
 * gathered from e3nn's layout (entry k of product q sits at node * dim + off[k] + channel * stride[k];
 * entries sorted by slot, count[j] in slot j) into [n][LANES] vectors, evaluated at the H points
 * (slot j's table S_j[k * H + p]), multiplied by parts, projected (table P_j[p * n_j + k]) and
 * scattered back into e3nn's layout. Both tables of an operand are the slots' tables concatenated;
 * slot j starts at H * (entries before slot j). Entries of `out` outside the output operand are not
 * touched.
 */
#include <stdint.h>
#include <stdlib.h>

#define MAX_PARTS 8
#define MAX_COMPONENTS 3
#define MAX_SLOTS (MAX_PARTS * MAX_COMPONENTS)

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
/* out[i] = sum_j tab[j * n_out + i] in[j] for i < n_out, eight outputs at a time (eight independent      \
 * accumulators). Synthesis is (in, tab, out) = (coefficients, S [n, H], grid values); projection is     \
 * (grid values, P [H, n], coefficients). */                                                               \
static void NAME##_contract(const V *in, int64_t n_in, const T *tab, int64_t n_out, V *out) {             \
    int64_t i = 0;                                                                                         \
    for (; i + 8 <= n_out; i += 8) {                                                                       \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};                  \
        for (int64_t j = 0; j < n_in; j++) {                                                               \
            const T *t = tab + j * n_out + i;                                                              \
            V v = in[j];                                                                                   \
            a0 += t[0] * v; a1 += t[1] * v; a2 += t[2] * v; a3 += t[3] * v;                                \
            a4 += t[4] * v; a5 += t[5] * v; a6 += t[6] * v; a7 += t[7] * v;                                \
        }                                                                                                  \
        out[i] = a0; out[i + 1] = a1; out[i + 2] = a2; out[i + 3] = a3;                                    \
        out[i + 4] = a4; out[i + 5] = a5; out[i + 6] = a6; out[i + 7] = a7;                                \
    }                                                                                                      \
    if (i + 4 <= n_out) { /* the rest in blocks of 4, 2, 1: independent accumulators hide FMA latency */  \
        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                                          \
        for (int64_t j = 0; j < n_in; j++) {                                                               \
            const T *t = tab + j * n_out + i;                                                              \
            V v = in[j];                                                                                   \
            a0 += t[0] * v; a1 += t[1] * v; a2 += t[2] * v; a3 += t[3] * v;                                \
        }                                                                                                  \
        out[i] = a0; out[i + 1] = a1; out[i + 2] = a2; out[i + 3] = a3;                                    \
        i += 4;                                                                                            \
    }                                                                                                      \
    if (i + 2 <= n_out) {                                                                                  \
        V a0 = {0}, a1 = {0};                                                                              \
        for (int64_t j = 0; j < n_in; j++) {                                                               \
            const T *t = tab + j * n_out + i;                                                              \
            V v = in[j];                                                                                   \
            a0 += t[0] * v; a1 += t[1] * v;                                                                \
        }                                                                                                  \
        out[i] = a0; out[i + 1] = a1;                                                                      \
        i += 2;                                                                                            \
    }                                                                                                      \
    if (i < n_out) {                                                                                       \
        V a0 = {0}, a1 = {0}; /* two chains over alternate inputs */                                       \
        int64_t j = 0;                                                                                     \
        for (; j + 2 <= n_in; j += 2) {                                                                    \
            a0 += tab[j * n_out + i] * in[j];                                                              \
            a1 += tab[(j + 1) * n_out + i] * in[j + 1];                                                    \
        }                                                                                                  \
        if (j < n_in) a0 += tab[j * n_out + i] * in[j];                                                    \
        out[i] = a0 + a1;                                                                                  \
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
            T *dst = (T *)&x[k]; /* element stores, read back as a vector much later */                   \
            for (int32_t l = 0; l < LANES; l++) dst[l] = p[l * s];                                         \
        }                                                                                                  \
        return;                                                                                            \
    }                                                                                                      \
    for (int64_t k = 0; k < n; k++)                                                                        \
        for (int l = 0; l < LANES; l++) x[k][l] = src[base[l] + off[k] + chan[l] * str[k]];                \
}                                                                                                          \
/* Part P of the product of f and g, projected onto the output's entries of part P (z[start[q] + k],  \
 * k < cnt_o[q]). With components (the parity-odd product's x, y, z), an operand's part index is        \
 * q = component * parts + P: operands with components pair up component by component, and an output   \
 * without them sums over the components. h is scratch [H]. */                                           \
static void NAME##_combine(const V *f, const int64_t *cnt_f, int64_t cf, const V *g, const int64_t *cnt_g, \
                           int64_t cg, const int64_t *cnt_o, const int64_t *start_o, const T *tab_o,       \
                           int64_t co, int64_t parts, int64_t H, V *h, V *z) {                             \
    int64_t comps = cf > cg ? cf : cg;                                                                     \
    if (co > comps) comps = co;                                                                            \
    for (int64_t qo = 0; qo < co * parts; qo++) {                                                          \
        if (!cnt_o[qo]) continue;                                                                          \
        int64_t P = qo % parts, c0 = co > 1 ? qo / parts : 0, c1 = co > 1 ? c0 + 1 : comps;               \
        int first = 1;                                                                                     \
        for (int64_t c = c0; c < c1; c++) {                                                                \
            for (int64_t j = 0; j < parts; j++) {                                                          \
                int64_t qf = (cf > 1 ? c * parts : 0) + j, qg = (cg > 1 ? c * parts : 0) + (P ^ j);        \
                if (!cnt_f[qf] || !cnt_g[qg]) continue;                                                    \
                const V *fj = f + qf * H, *gj = g + qg * H;                                                \
                if (first) { for (int64_t p = 0; p < H; p++) h[p] = fj[p] * gj[p]; first = 0; }          \
                else { for (int64_t p = 0; p < H; p++) h[p] += fj[p] * gj[p]; }                           \
            }                                                                                              \
        }                                                                                                  \
        if (first) { for (int64_t p = 0; p < H; p++) h[p] = (V){0}; }                                      \
        NAME##_contract(h, H, tab_o + start_o[qo] * H, cnt_o[qo], z + start_o[qo]);                       \
    }                                                                                                      \
}                                                                                                          \
/* Synthesis of every non-empty part of one operand's gathered coefficients x into f [parts][H]. */       \
static void NAME##_synth_parts(const V *x, const int64_t *cnt, const int64_t *start, const T *tab,        \
                               int64_t parts, int64_t H, V *f) {                                           \
    for (int64_t j = 0; j < parts; j++)                                                                    \
        if (cnt[j]) NAME##_contract(x + start[j], cnt[j], tab + start[j] * H, H, f + j * H);                 \
}                                                                                                          \
/* Output scatter, the mirror image of gather; `add` sums into dst (entries listed once per component). */\
static void NAME##_scatter(T *dst, const int64_t *base, const int64_t *chan, const int64_t *off,           \
                           const int64_t *str, int64_t n, int uniform, int64_t lanes, int add, const V *z) {\
    if (uniform) {                                                                                         \
        for (int64_t k = 0; k < n; k++) {                                                                  \
            T *p = dst + base[0] + off[k] + chan[0] * str[k];                                              \
            int32_t s = (int32_t)str[k];                                                                   \
            const T *src = (const T *)&z[k];                                                               \
            if (add) { for (int32_t l = 0; l < LANES; l++) p[l * s] += src[l]; }                           \
            else { for (int32_t l = 0; l < LANES; l++) p[l * s] = src[l]; }                               \
        }                                                                                                  \
        return;                                                                                            \
    }                                                                                                      \
    for (int64_t k = 0; k < n; k++)                                                                        \
        for (int64_t l = 0; l < lanes; l++) {                                                              \
            T *p = dst + base[l] + off[k] + chan[l] * str[k];                                              \
            *p = add ? *p + z[k][l] : z[k][l];                                                             \
        }                                                                                                  \
}                                                                                                          \
/* Starts of the parts in an operand's entry list; returns the entry count. */                             \
static int64_t NAME##_starts(const int64_t *cnt, int64_t parts, int64_t *start) {                          \
    int64_t n = 0;                                                                                         \
    for (int64_t j = 0; j < parts; j++) { start[j] = n; n += cnt[j]; }                                     \
    return n;                                                                                              \
}                                                                                                          \
/* Set-up shared by the entry points: slot limits (2 when the parts do not fit), part starts and entry     \
 * counts of the three operands, the tile count, and the threads worth starting for it. */                 \
static int NAME##_plan(int64_t parts, int64_t count, int *threads, const int64_t *cnt_a, int64_t ca,       \
                       const int64_t *cnt_b, int64_t cb, const int64_t *cnt_o, int64_t co,                 \
                       int64_t *start_a, int64_t *start_b, int64_t *start_o, int64_t *na, int64_t *nb,     \
                       int64_t *no, int64_t *tiles) {                                                      \
    if (parts < 1 || parts * ca > MAX_SLOTS || parts * cb > MAX_SLOTS || parts * co > MAX_SLOTS) return 2; \
    *na = NAME##_starts(cnt_a, ca * parts, start_a);                                                       \
    *nb = NAME##_starts(cnt_b, cb * parts, start_b);                                                       \
    *no = NAME##_starts(cnt_o, co * parts, start_o);                                                       \
    *tiles = (count + LANES - 1) / LANES;                                                                  \
    if (*threads > *tiles) *threads = (int)*tiles;                                                         \
    if (*threads < 1) *threads = 1;                                                                        \
    return 0;                                                                                              \
}                                                                                                          \
/* Per tile: node base offsets (times each layout's dim) and channels of its lanes; returns the number     \
 * of real lanes and sets *uniform when they are one node's consecutive channels. */                       \
static int64_t NAME##_lanes(int64_t tile, int64_t count, int64_t mul, int64_t *node, int64_t *chan,        \
                            int *uniform) {                                                                \
    int64_t q0 = tile * LANES, lanes = count - q0 < LANES ? count - q0 : LANES;                            \
    for (int l = 0; l < LANES; l++) {                                                                      \
        int64_t q = q0 + (l < lanes ? l : lanes - 1); /* short tile: repeat the last product */            \
        node[l] = q / mul;                                                                                 \
        chan[l] = q % mul;                                                                                 \
    }                                                                                                      \
    *uniform = lanes == LANES && node[0] == node[LANES - 1];                                               \
    return lanes;                                                                                          \
}                                                                                                          \
static void NAME##_bases(const int64_t *node, int64_t dim, int64_t *base) {                                \
    for (int l = 0; l < LANES; l++) base[l] = node[l] * dim;                                               \
}                                                                                                          \
/* gather / scatter for one operand of a tile, from the lanes' nodes and that operand's feature dim */     \
static void NAME##_fetch(const T *src, const int64_t *node, int64_t dim, const int64_t *chan,              \
                         const int64_t *off, const int64_t *str, int64_t n, int uniform, V *x) {           \
    int64_t base[LANES];                                                                                   \
    NAME##_bases(node, dim, base);                                                                         \
    NAME##_gather(src, base, chan, off, str, n, uniform, x);                                               \
}                                                                                                          \
static void NAME##_store(T *dst, const int64_t *node, int64_t dim, const int64_t *chan, const int64_t *off, \
                         const int64_t *str, int64_t n, int uniform, int64_t lanes, int add, const V *z) {  \
    int64_t base[LANES];                                                                                   \
    NAME##_bases(node, dim, base);                                                                         \
    NAME##_scatter(dst, base, chan, off, str, n, uniform, lanes, add, z);                                  \
}                                                                                                          \
/* Each operand: off, str (its entry list), cnt (entries per part, comps * parts of them), comps (1, or   \
 * the number of components), dim (feature dim of its layout), then its table(s). */                     \
int NAME(const T *a, const T *b, T *out, int64_t count, int64_t mul, int threads, int64_t parts,          \
         int64_t H,                                                                                        \
         const int64_t *off_a, const int64_t *str_a, const int64_t *cnt_a, int64_t ca, int64_t dim_a,      \
         const T *tab_a,                                                                                   \
         const int64_t *off_b, const int64_t *str_b, const int64_t *cnt_b, int64_t cb, int64_t dim_b,      \
         const T *tab_b,                                                                                   \
         const int64_t *off_o, const int64_t *str_o, const int64_t *cnt_o, int64_t co, int64_t dim_o,      \
         const T *tab_o) {                                                                                 \
    int64_t start_a[MAX_SLOTS], start_b[MAX_SLOTS], start_o[MAX_SLOTS], na, nb, no, tiles;                 \
    if (NAME##_plan(parts, count, &threads, cnt_a, ca, cnt_b, cb, cnt_o, co, start_a, start_b, start_o,    \
                    &na, &nb, &no, &tiles))                                                                \
        return 2;                                                                                          \
    int failed = 0;                                                                                        \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                       \
    {                                                                                                      \
        size_t bytes = sizeof(V) * (size_t)(na + nb + no + (ca + cb) * parts * H + H + 1);                 \
        V *buf = (V *)aligned_alloc(64, (bytes + 63) / 64 * 64);                                          \
        if (!buf) failed = 1;                                                                              \
        V *xa = buf, *xb = xa + na, *z = xb + nb, *f = z + no, *g = f + ca * parts * H, *h = g + cb * parts * H;\
        _Pragma("omp for schedule(static)")                                                                \
        for (int64_t tile = 0; tile < tiles; tile++) {                                                     \
            if (!buf) continue;                                                                            \
            int64_t node[LANES], chan[LANES];                                                              \
            int uniform;                                                                                   \
            int64_t lanes = NAME##_lanes(tile, count, mul, node, chan, &uniform);                          \
            NAME##_fetch(a, node, dim_a, chan, off_a, str_a, na, uniform, xa);                             \
            NAME##_fetch(b, node, dim_b, chan, off_b, str_b, nb, uniform, xb);                             \
            NAME##_synth_parts(xa, cnt_a, start_a, tab_a, ca * parts, H, f);                               \
            NAME##_synth_parts(xb, cnt_b, start_b, tab_b, cb * parts, H, g);                               \
            NAME##_combine(f, cnt_a, ca, g, cnt_b, cb, cnt_o, start_o, tab_o, co, parts, H, h, z);        \
            NAME##_store(out, node, dim_o, chan, off_o, str_o, no, uniform, lanes, co > 1, z);             \
        }                                                                                                  \
        free(buf);                                                                                         \
    }                                                                                                      \
    return failed;                                                                                         \
}                                                                                                          \
/* Both input gradients of out = product(a, b) in one pass: ga = product(b, go) projected onto a's        \
 * entries, gb = product(a, go) onto b's. a, b take synthesis (s) and projection (p) tables; go, the     \
 * output's gradient, the output operand's synthesis table. Shares the gather and synthesis of go. */    \
int NAME##_backward(const T *a, const T *b, const T *go, T *ga, T *gb, int64_t count, int64_t mul,        \
                    int threads, int64_t parts, int64_t H,                                                 \
                    const int64_t *off_a, const int64_t *str_a, const int64_t *cnt_a, int64_t ca,          \
                    int64_t dim_a, const T *sa, const T *pa,                                               \
                    const int64_t *off_b, const int64_t *str_b, const int64_t *cnt_b, int64_t cb,          \
                    int64_t dim_b, const T *sb, const T *pb,                                               \
                    const int64_t *off_o, const int64_t *str_o, const int64_t *cnt_o, int64_t co,          \
                    int64_t dim_o, const T *so) {                                                          \
    int64_t start_a[MAX_SLOTS], start_b[MAX_SLOTS], start_o[MAX_SLOTS], na, nb, no, tiles;                 \
    if (NAME##_plan(parts, count, &threads, cnt_a, ca, cnt_b, cb, cnt_o, co, start_a, start_b, start_o,    \
                    &na, &nb, &no, &tiles))                                                                \
        return 2;                                                                                          \
    int failed = 0;                                                                                        \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                       \
    {                                                                                                      \
        size_t bytes = sizeof(V) * (size_t)(2 * (na + nb) + no + (ca + cb + co) * parts * H + H + 1);      \
        V *buf = (V *)aligned_alloc(64, (bytes + 63) / 64 * 64);                                          \
        if (!buf) failed = 1;                                                                              \
        V *xa = buf, *xb = xa + na, *xo = xb + nb, *za = xo + no, *zb = za + na;                           \
        V *f = zb + nb, *g = f + ca * parts * H, *G = g + cb * parts * H, *h = G + co * parts * H;         \
        _Pragma("omp for schedule(static)")                                                                \
        for (int64_t tile = 0; tile < tiles; tile++) {                                                     \
            if (!buf) continue;                                                                            \
            int64_t node[LANES], chan[LANES];                                                              \
            int uniform;                                                                                   \
            int64_t lanes = NAME##_lanes(tile, count, mul, node, chan, &uniform);                          \
            NAME##_fetch(a, node, dim_a, chan, off_a, str_a, na, uniform, xa);                             \
            NAME##_fetch(b, node, dim_b, chan, off_b, str_b, nb, uniform, xb);                             \
            NAME##_fetch(go, node, dim_o, chan, off_o, str_o, no, uniform, xo);                            \
            NAME##_synth_parts(xa, cnt_a, start_a, sa, ca * parts, H, f);                                  \
            NAME##_synth_parts(xb, cnt_b, start_b, sb, cb * parts, H, g);                                  \
            NAME##_synth_parts(xo, cnt_o, start_o, so, co * parts, H, G);                                  \
            NAME##_combine(g, cnt_b, cb, G, cnt_o, co, cnt_a, start_a, pa, ca, parts, H, h, za);          \
            NAME##_combine(f, cnt_a, ca, G, cnt_o, co, cnt_b, start_b, pb, cb, parts, H, h, zb);          \
            NAME##_store(ga, node, dim_a, chan, off_a, str_a, na, uniform, lanes, ca > 1, za);             \
            NAME##_store(gb, node, dim_b, chan, off_b, str_b, nb, uniform, lanes, cb > 1, zb);             \
        }                                                                                                  \
        free(buf);                                                                                         \
    }                                                                                                      \
    return failed;                                                                                         \
}

DEFINE_KERNEL(gaunt_grid_product_f32, float, vf, LANES_F32)
DEFINE_KERNEL(gaunt_grid_product_f64, double, vd, LANES_F64)

