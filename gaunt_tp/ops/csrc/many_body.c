/* GauntManyBody's products, one node per pass, and their first and second derivatives (CPU).
 *
 * Per node n and channel c, with the node's coefficients A[i] (class entries i: input degree d(i),
 * order m) read from e3nn's layout, K products of nu factors each (T = K nu terms, term k = q nu + j):
 *     f_k[p]  = sum_i S[i, p] A[i] u[k, d(i)]           (the factor's function on the grid)
 *     pi_k    = f_{q nu} f_{q nu + 1} ... f_k            (the running product inside product q)
 *     out[o] += w[k, d(o)] norm[j, d(o)] sum_p R[p, o] pi_k[p]
 * S [nI, P] synthesises, R [P, nO] projects (quadrature weights included); u is NULL when every
 * factor is A itself. All per-channel loops are innermost and contiguous, so they vectorise over C.
 *
 * The backward kernel takes the output gradient g and returns the gradients of E = <g, out> with
 * respect to A (e3nn layout), u ([N, T, nDin, C]) and w ([N, T, nDout, C]) (each may be skipped):
 *     h_k[p]  = sum_o R[p, o] g[o] w[k, d(o)] norm[j, d(o)]
 *     B_k     = h_k + B_{k+1} f_{k+1}  (B of the product's last term is its h)
 *     df_k    = B_k pi_{k-1}           (B_k for the product's first term)
 *     dX_k[i] = sum_p S[i, p] df_k[p];  dA[i] += u[k, d(i)] dX_k[i];  du[k, d(i)] += A[i] dX_k[i]
 *     dw[k, d] = sum_{o: d(o) = d} g[o] norm[j, d] sum_p R[p, o] pi_k[p]
 * Given tangents (tA, tu, tw: the incoming gradients of dA, du, dw in a second backward pass), it
 * returns instead the gradients of D = dE(A + e tA, u + e tu, w + e tw)/de with respect to A, u, w
 * and g: the same recursion carried in dual numbers (value, tangent), whose tangents of df_k are the
 * derivatives of D with respect to f_k, and whose tangents of pi_k those with respect to h_k.
 * Python side: gaunt_tp/ops/many_body_kernel.py (third and higher derivatives there are PyTorch's).
 *
 * dims: N, C, nI, nO, nDin, nDout, P, K, nu, in_dim, out_dim.
 * layout: in_off[nI], in_str[nI], in_deg[nI], out_off[nO], out_str[nO], out_deg[nO]: entry i of channel
 * c sits at row offset in_off[i] + c in_str[i] (likewise for the output).
 * OpenMP over nodes, per-thread scratch: no write conflicts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One vector register of channels: 512 bits with AVX-512, else 256 (AVX2; plain SSE/NEON code splits it).
 * A 512-bit type on an AVX2 machine is not split well: GCC 12 made the symmetric kernels 4x slower with it.
 * Channels are padded with zeros to a multiple of it in per-thread scratch. */
#if defined(__AVX512F__)
#define V_BYTES 64
#else
#define V_BYTES 32
#endif
typedef float Vf32 __attribute__((vector_size(V_BYTES)));
typedef double Vf64 __attribute__((vector_size(V_BYTES)));

enum { D_N, D_C, D_NI, D_NO, D_NDIN, D_NDOUT, D_P, D_K, D_NU, D_IN_DIM, D_OUT_DIM };

/* The sizes in dims and the index arrays in layout (see the top), and the channel padding: NB vectors of
 * L lanes per row, Cp = NB L channels. */
#define UNPACK_DIMS(T)                                                                                    \
    const int64_t N = dims[D_N], C = dims[D_C], nI = dims[D_NI], nO = dims[D_NO], nDin = dims[D_NDIN];  \
    const int64_t nDout = dims[D_NDOUT], P = dims[D_P], K = dims[D_K], nu = dims[D_NU], Tt = K * nu;     \
    const int64_t L = V_BYTES / sizeof(T), NB = (C + L - 1) / L, Cp = NB * L;                           \
    const int64_t *in_off = layout, *in_str = layout + nI, *in_deg = layout + 2 * nI;                    \
    const int64_t *out_off = layout + 3 * nI, *out_str = out_off + nO, *out_deg = out_off + 2 * nO;

#define DEFINE_MANY_BODY(SUFFIX, T)                                                                       \
typedef V##SUFFIX V_##SUFFIX;                                                                            \
/* dst[i, c] (channel-padded rows of Cp) = the e3nn row's entry i of channel c, zero for c >= C */       \
static void gather_##SUFFIX(T *dst, const T *row, const int64_t *off, const int64_t *str, int64_t n,     \
                            int64_t C, int64_t Cp) {                                                     \
    for (int64_t i = 0; i < n; i++)                                                                      \
        for (int64_t c = 0; c < Cp; c++) dst[i * Cp + c] = c < C ? row[off[i] + c * str[i]] : 0;         \
}                                                                                                        \
static void scatter_##SUFFIX(T *row, const T *src, const int64_t *off, const int64_t *str, int64_t n,    \
                             int64_t C, int64_t Cp) {                                                    \
    for (int64_t i = 0; i < n; i++)                                                                      \
        for (int64_t c = 0; c < C; c++) row[off[i] + c * str[i]] = src[i * Cp + c];                     \
}                                                                                                        \
/* [rows, C] <-> [rows, Cp] */                                                                           \
static void pad_##SUFFIX(T *dst, const T *src, int64_t rows, int64_t C, int64_t Cp) {                    \
    for (int64_t r = 0; r < rows; r++)                                                                   \
        for (int64_t c = 0; c < Cp; c++) dst[r * Cp + c] = c < C ? src[r * C + c] : 0;                  \
}                                                                                                        \
static void unpad_##SUFFIX(T *dst, const T *src, int64_t rows, int64_t C, int64_t Cp) {                  \
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * C, src + r * Cp, sizeof(T) * C);                 \
}                                                                                                        \
void many_body_forward_##SUFFIX(T *out, const T *a, const T *u, const T *w, const T *norm, const T *S,   \
                                const T *R, const int64_t *dims, const int64_t *layout, int threads) {   \
    UNPACK_DIMS(T)                                                                                       \
    _Pragma("omp parallel num_threads(threads)")                                                          \
    {                                                                                                    \
        int64_t vectors = NB * (nI + Tt * nDin + Tt * nDout + nO) + Tt * nI + Tt * nO;                   \
        V_##SUFFIX *buf = aligned_alloc(V_BYTES, sizeof(V_##SUFFIX) * vectors);                          \
        V_##SUFFIX *A = buf, *U = A + NB * nI, *W = U + NB * Tt * nDin, *O = W + NB * Tt * nDout;        \
        V_##SUFFIX *X = O + NB * nO, *Z = X + Tt * nI;                                                   \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t n = 0; n < N; n++) {                                                                \
            gather_##SUFFIX((T *)A, a + n * dims[D_IN_DIM], in_off, in_str, nI, C, Cp);                  \
            if (u) pad_##SUFFIX((T *)U, u + n * Tt * nDin * C, Tt * nDin, C, Cp);                        \
            pad_##SUFFIX((T *)W, w + n * Tt * nDout * C, Tt * nDout, C, Cp);                             \
            for (int64_t b = 0; b < NB; b++) { /* one register of channels at a time */                  \
                for (int64_t k = 0; k < Tt; k++)                                                         \
                    for (int64_t i = 0; i < nI; i++)                                                     \
                        X[k * nI + i] = u ? A[i * NB + b] * U[(k * nDin + in_deg[i]) * NB + b] : A[i * NB + b]; \
                for (int64_t q = 0; q < Tt * nO; q++) Z[q] = (V_##SUFFIX){0};                            \
                for (int64_t p = 0; p < P; p++) {                                                        \
                    for (int64_t prod = 0; prod < K; prod++) {                                           \
                        V_##SUFFIX pw = {0};                                                             \
                        for (int64_t j = 0; j < nu; j++) {                                               \
                            int64_t k = prod * nu + j;                                                   \
                            V_##SUFFIX f = {0};                                                          \
                            for (int64_t i = 0; i < nI; i++) f += S[i * P + p] * X[k * nI + i];          \
                            pw = j ? pw * f : f;                                                         \
                            for (int64_t o = 0; o < nO; o++) Z[k * nO + o] += R[p * nO + o] * pw;        \
                        }                                                                                \
                    }                                                                                    \
                }                                                                                        \
                for (int64_t o = 0; o < nO; o++) {                                                       \
                    V_##SUFFIX acc = {0};                                                                \
                    for (int64_t k = 0; k < Tt; k++)                                                     \
                        acc += norm[(k % nu) * nDout + out_deg[o]] * W[(k * nDout + out_deg[o]) * NB + b] \
                               * Z[k * nO + o];                                                          \
                    O[o * NB + b] = acc;                                                                 \
                }                                                                                        \
            }                                                                                            \
            scatter_##SUFFIX(out + n * dims[D_OUT_DIM], (T *)O, out_off, out_str, nO, C, Cp);            \
        }                                                                                                \
        free(buf);                                                                                       \
    }                                                                                                    \
}                                                                                                        \
void many_body_backward_##SUFFIX(T *grad_a, T *grad_u, T *grad_w, T *grad_g, const T *g, const T *a,     \
                                 const T *u, const T *w, const T *ta, const T *tu, const T *tw,          \
                                 const T *norm, const T *S, const T *R, const int64_t *dims,             \
                                 const int64_t *layout, int threads) {                                   \
    UNPACK_DIMS(T)                                                                                       \
    const int dual = ta || tu || tw;                                                                     \
    _Pragma("omp parallel num_threads(threads)")                                                          \
    {                                                                                                    \
        const int64_t nA = NB * nI, nU = NB * Tt * nDin, nW = NB * Tt * nDout, nG = NB * nO;              \
        const int64_t nX = Tt * nI, nZ = Tt * nO;                                                        \
        V_##SUFFIX *buf = aligned_alloc(V_BYTES, sizeof(V_##SUFFIX) * (3 * (nA + nU + nW) + 2 * nG        \
                                                                       + 4 * (nX + nZ) + 6 * nu));       \
        V_##SUFFIX *A = buf, *dA = A + nA, *tA = dA + nA, *U = tA + nA, *GU = U + nU, *tU = GU + nU;      \
        V_##SUFFIX *W = tU + nU, *GW = W + nW, *tW = GW + nW, *G = tW + nW, *GG = G + nG;                \
        V_##SUFFIX *X = GG + nG, *tX = X + nX, *dX = tX + nX, *tdX = dX + nX;                            \
        V_##SUFFIX *ZK = tdX + nX, *tZK = ZK + nZ, *PJ = tZK + nZ, *tPJ = PJ + nZ;                       \
        V_##SUFFIX *f = tPJ + nZ, *tf = f + nu, *pi = tf + nu, *tpi = pi + nu, *h = tpi + nu, *th = h + nu; \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t n = 0; n < N; n++) {                                                                \
            gather_##SUFFIX((T *)A, a + n * dims[D_IN_DIM], in_off, in_str, nI, C, Cp);                  \
            gather_##SUFFIX((T *)G, g + n * dims[D_OUT_DIM], out_off, out_str, nO, C, Cp);               \
            if (u) pad_##SUFFIX((T *)U, u + n * Tt * nDin * C, Tt * nDin, C, Cp);                        \
            pad_##SUFFIX((T *)W, w + n * Tt * nDout * C, Tt * nDout, C, Cp);                             \
            memset(tA, 0, sizeof(V_##SUFFIX) * nA);                                                      \
            memset(tU, 0, sizeof(V_##SUFFIX) * nU);                                                      \
            memset(tW, 0, sizeof(V_##SUFFIX) * nW);                                                      \
            if (ta) gather_##SUFFIX((T *)tA, ta + n * dims[D_IN_DIM], in_off, in_str, nI, C, Cp);        \
            if (tu) pad_##SUFFIX((T *)tU, tu + n * Tt * nDin * C, Tt * nDin, C, Cp);                     \
            if (tw) pad_##SUFFIX((T *)tW, tw + n * Tt * nDout * C, Tt * nDout, C, Cp);                   \
            memset(dA, 0, sizeof(V_##SUFFIX) * nA);                                                      \
            memset(GU, 0, sizeof(V_##SUFFIX) * nU);                                                      \
            memset(GW, 0, sizeof(V_##SUFFIX) * nW);                                                      \
            memset(GG, 0, sizeof(V_##SUFFIX) * nG);                                                      \
            for (int64_t b = 0; b < NB; b++) {                                                           \
                for (int64_t k = 0; k < Tt; k++) {                                                       \
                    for (int64_t i = 0; i < nI; i++) {                                                   \
                        int64_t ku = (k * nDin + in_deg[i]) * NB + b, ia = i * NB + b;                   \
                        X[k * nI + i] = u ? A[ia] * U[ku] : A[ia];                                       \
                        tX[k * nI + i] = (u ? tA[ia] * U[ku] : tA[ia]) + A[ia] * tU[ku];                 \
                    }                                                                                    \
                    for (int64_t o = 0; o < nO; o++) {                                                   \
                        int64_t kw = (k * nDout + out_deg[o]) * NB + b;                                  \
                        T nm = norm[(k % nu) * nDout + out_deg[o]];                                      \
                        ZK[k * nO + o] = nm * W[kw] * G[o * NB + b];                                     \
                        tZK[k * nO + o] = nm * tW[kw] * G[o * NB + b];                                   \
                    }                                                                                    \
                }                                                                                        \
                for (int64_t q = 0; q < nX; q++) dX[q] = tdX[q] = (V_##SUFFIX){0};                       \
                for (int64_t q = 0; q < nZ; q++) PJ[q] = tPJ[q] = (V_##SUFFIX){0};                       \
                for (int64_t p = 0; p < P; p++) {                                                        \
                    for (int64_t prod = 0; prod < K; prod++) {                                           \
                        for (int64_t j = 0; j < nu; j++) { /* factors, running products, back-projections */ \
                            int64_t k = prod * nu + j;                                                   \
                            V_##SUFFIX fj = {0}, hj = {0};                                               \
                            for (int64_t i = 0; i < nI; i++) fj += S[i * P + p] * X[k * nI + i];         \
                            f[j] = fj;                                                                   \
                            pi[j] = j ? pi[j - 1] * fj : fj;                                             \
                            for (int64_t o = 0; o < nO; o++) {                                           \
                                PJ[k * nO + o] += R[p * nO + o] * pi[j];                                 \
                                hj += R[p * nO + o] * ZK[k * nO + o];                                    \
                            }                                                                            \
                            h[j] = hj;                                                                   \
                            if (!dual) continue;                                                         \
                            V_##SUFFIX tfj = {0}, thj = {0};                                             \
                            for (int64_t i = 0; i < nI; i++) tfj += S[i * P + p] * tX[k * nI + i];       \
                            tf[j] = tfj;                                                                 \
                            tpi[j] = j ? tpi[j - 1] * fj + pi[j - 1] * tfj : tfj;                        \
                            for (int64_t o = 0; o < nO; o++) {                                           \
                                tPJ[k * nO + o] += R[p * nO + o] * tpi[j];                               \
                                thj += R[p * nO + o] * tZK[k * nO + o];                                  \
                            }                                                                            \
                            th[j] = thj;                                                                 \
                        }                                                                                \
                        V_##SUFFIX B = h[nu - 1], tB = th[nu - 1];                                       \
                        for (int64_t j = nu - 1; j >= 0; j--) {                                          \
                            int64_t k = prod * nu + j;                                                   \
                            if (j < nu - 1) {                                                            \
                                if (dual) tB = tB * f[j + 1] + B * tf[j + 1] + th[j];                    \
                                B = B * f[j + 1] + h[j];                                                 \
                            }                                                                            \
                            V_##SUFFIX df = j ? B * pi[j - 1] : B;                                       \
                            for (int64_t i = 0; i < nI; i++) dX[k * nI + i] += S[i * P + p] * df;        \
                            if (!dual) continue;                                                         \
                            V_##SUFFIX tdf = j ? tB * pi[j - 1] + B * tpi[j - 1] : tB;                   \
                            for (int64_t i = 0; i < nI; i++) tdX[k * nI + i] += S[i * P + p] * tdf;      \
                        }                                                                                \
                    }                                                                                    \
                }                                                                                        \
                /* first order: the gradient of E = <g, out>; second: of its derivative along the        \
                   tangents, D = dE(a + e ta, u + e tu, w + e tw)/de, whose f-derivatives are tdX */      \
                for (int64_t k = 0; k < Tt; k++) {                                                       \
                    for (int64_t i = 0; i < nI; i++) {                                                   \
                        int64_t ku = (k * nDin + in_deg[i]) * NB + b, ia = i * NB + b;                   \
                        V_##SUFFIX dx = dX[k * nI + i], tdx = tdX[k * nI + i];                           \
                        if (dual) {                                                                      \
                            dA[ia] += (u ? U[ku] * tdx : tdx) + tU[ku] * dx;                             \
                            GU[ku] += A[ia] * tdx + tA[ia] * dx;                                         \
                        } else {                                                                         \
                            dA[ia] += u ? U[ku] * dx : dx;                                               \
                            GU[ku] += A[ia] * dx;                                                        \
                        }                                                                                \
                    }                                                                                    \
                    for (int64_t o = 0; o < nO; o++) {                                                   \
                        int64_t kw = (k * nDout + out_deg[o]) * NB + b;                                  \
                        T nm = norm[(k % nu) * nDout + out_deg[o]];                                      \
                        GW[kw] += nm * G[o * NB + b] * (dual ? tPJ[k * nO + o] : PJ[k * nO + o]);        \
                        if (dual) GG[o * NB + b] += nm * (W[kw] * tPJ[k * nO + o] + tW[kw] * PJ[k * nO + o]); \
                    }                                                                                    \
                }                                                                                        \
            }                                                                                            \
            if (grad_a) scatter_##SUFFIX(grad_a + n * dims[D_IN_DIM], (T *)dA, in_off, in_str, nI, C, Cp); \
            if (grad_u) unpad_##SUFFIX(grad_u + n * Tt * nDin * C, (T *)GU, Tt * nDin, C, Cp);           \
            if (grad_w) unpad_##SUFFIX(grad_w + n * Tt * nDout * C, (T *)GW, Tt * nDout, C, Cp);         \
            if (grad_g) scatter_##SUFFIX(grad_g + n * dims[D_OUT_DIM], (T *)GG, out_off, out_str, nO, C, Cp); \
        }                                                                                                \
        free(buf);                                                                                       \
    }                                                                                                    \
}

DEFINE_MANY_BODY(f32, float)
DEFINE_MANY_BODY(f64, double)

/* SymmetricContraction (gaunt_tp/nn/symmetric_contraction.py): per node n and channel c, with the
 * node's input entries X[i] = A[i] (i < nI) read from e3nn's layout,
 *     X[nI + q] = X[prefix[q]] X[last[q]]              (the monomials, each from one of degree one less)
 *     v[s]      = sum_{k in start[s]..start[s+1]} coef[k] X[col[k]]   (slot s: one component of one path)
 *     out[e]   += w[path[s]] v[s]   over the slots s with entry[s] = e
 * w is per node, [N, nP, C]. The backward kernel returns the gradients of E = <g, out> with respect to
 * A and w, reverse mode through the same recursion; given tangents (tA, tw) it returns the gradients of
 * D = dE(A + e tA, w + e tw)/de with respect to A, w and g, the recursion carried in dual numbers as in
 * the kernels above. The u arguments are unused (NULL), for the Python side's common signature.
 *
 * dims: N, C, nI, nE, Q, nnz, nS, nP, in_dim, out_dim.
 * layout: in_off[nI], in_str[nI], out_off[nE], out_str[nE], prefix[Q], last[Q], start[nS + 1], col[nnz],
 * path[nS], entry[nS], then the nonzeros by column (M = nI + Q columns) for the backward without the
 * polynomials' values (forces): cstart[M + 1], and per nonzero in column order its index cnz and slot cslot.
 */
enum { S_N, S_C, S_NI, S_NE, S_Q, S_NNZ, S_S, S_P, S_IN_DIM, S_OUT_DIM };

/* The channel blocks of a node go through the recursion SG at a time (X[m] is SG vectors, one per block):
 * independent chains for the CPU to overlap, where one block at a time waits on each product's latency. */
#define SG 4
#define FOR_G for (int64_t j = 0; j < SG; j++)

#define UNPACK_SYMMETRIC(T)                                                                               \
    const int64_t N = dims[S_N], C = dims[S_C], nI = dims[S_NI], nE = dims[S_NE], Q = dims[S_Q];         \
    const int64_t nS = dims[S_S], nP = dims[S_P], M = nI + Q;                                             \
    const int64_t L = V_BYTES / sizeof(T), NB = (C + L * SG - 1) / (L * SG) * SG, Cp = NB * L;           \
    const int64_t *in_off = layout, *in_str = layout + nI, *out_off = layout + 2 * nI, *out_str = out_off + nE; \
    const int64_t *prefix = out_str + nE, *last = prefix + Q, *start = last + Q, *col = start + nS + 1;  \
    const int64_t *path = col + dims[S_NNZ], *entry = path + nS;                                         \
    const int64_t *cstart = entry + nS, *cnz = cstart + M + 1, *cslot = cnz + dims[S_NNZ];

#define DEFINE_SYMMETRIC(SUFFIX, T)                                                                       \
/* X[m] (SG vectors each) for the channel blocks b..b+SG-1: the inputs, then every monomial as the       \
 * product of one of degree one less (prefix) and an input (last) */                                     \
static inline void monomials_##SUFFIX(V_##SUFFIX *X, const V_##SUFFIX *A, int64_t b, int64_t NB,       \
                                      int64_t nI, int64_t Q, const int64_t *prefix, const int64_t *last) { \
    for (int64_t i = 0; i < nI; i++) FOR_G X[i * SG + j] = A[i * NB + b + j];                           \
    for (int64_t q = 0; q < Q; q++) {                                                                    \
        const V_##SUFFIX *xp = X + prefix[q] * SG, *xl = X + last[q] * SG;                               \
        FOR_G X[(nI + q) * SG + j] = xp[j] * xl[j];                                                      \
    }                                                                                                    \
}                                                                                                        \
void symmetric_forward_##SUFFIX(T *out, const T *a, const T *u, const T *w, const T *coef,               \
                                const int64_t *dims, const int64_t *layout, int threads) {               \
    UNPACK_SYMMETRIC(T)                                                                                  \
    (void)u;                                                                                             \
    _Pragma("omp parallel num_threads(threads)")                                                          \
    {                                                                                                    \
        V_##SUFFIX *buf = aligned_alloc(V_BYTES, sizeof(V_##SUFFIX) * (NB * (nI + nP + nE) + SG * M));   \
        V_##SUFFIX *A = buf, *W = A + NB * nI, *O = W + NB * nP, *X = O + NB * nE;                       \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t n = 0; n < N; n++) {                                                                \
            gather_##SUFFIX((T *)A, a + n * dims[S_IN_DIM], in_off, in_str, nI, C, Cp);                  \
            pad_##SUFFIX((T *)W, w + n * nP * C, nP, C, Cp);                                             \
            for (int64_t b = 0; b < NB; b += SG) {                                                       \
                monomials_##SUFFIX(X, A, b, NB, nI, Q, prefix, last);                                    \
                for (int64_t e = 0; e < nE; e++) FOR_G O[e * NB + b + j] = (V_##SUFFIX){0};              \
                for (int64_t s = 0; s < nS; s++) {                                                       \
                    V_##SUFFIX v[SG] = {0};                                                              \
                    for (int64_t k = start[s]; k < start[s + 1]; k++) {                                  \
                        const V_##SUFFIX *x = X + col[k] * SG;                                           \
                        FOR_G v[j] += coef[k] * x[j];                                                    \
                    }                                                                                    \
                    FOR_G O[entry[s] * NB + b + j] += W[path[s] * NB + b + j] * v[j];                    \
                }                                                                                        \
            }                                                                                            \
            scatter_##SUFFIX(out + n * dims[S_OUT_DIM], (T *)O, out_off, out_str, nE, C, Cp);            \
        }                                                                                                \
        free(buf);                                                                                       \
    }                                                                                                    \
}                                                                                                        \
void symmetric_backward_##SUFFIX(T *grad_a, T *grad_u, T *grad_w, T *grad_g, const T *g, const T *a,     \
                                 const T *u, const T *w, const T *ta, const T *tu, const T *tw,          \
                                 const T *coef, const int64_t *dims, const int64_t *layout, int threads) { \
    UNPACK_SYMMETRIC(T)                                                                                  \
    (void)grad_u, (void)u, (void)tu;                                                                     \
    const int dual = ta || tw;                                                                           \
    const int need_v = dual ? grad_g != 0 : grad_w != 0; /* v: the polynomials' values, for grad_w or GG */ \
    _Pragma("omp parallel num_threads(threads)")                                                          \
    {                                                                                                    \
        const int64_t nA = NB * nI, nW = NB * nP, nG = NB * nE;                                          \
        const int64_t size = 3 * (nA + nW) + 2 * nG + SG * (4 * M + nS);                                 \
        V_##SUFFIX *buf = aligned_alloc(V_BYTES, sizeof(V_##SUFFIX) * size);                             \
        V_##SUFFIX *A = buf, *tA = A + nA, *dA = tA + nA, *W = dA + nA, *tW = W + nW, *GW = tW + nW;      \
        V_##SUFFIX *G = GW + nW, *GG = G + nG, *X = GG + nG, *tX = X + SG * M, *dX = tX + SG * M;        \
        V_##SUFFIX *tdX = dX + SG * M, *DV = tdX + SG * M;                                               \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t n = 0; n < N; n++) {                                                                \
            gather_##SUFFIX((T *)A, a + n * dims[S_IN_DIM], in_off, in_str, nI, C, Cp);                  \
            gather_##SUFFIX((T *)G, g + n * dims[S_OUT_DIM], out_off, out_str, nE, C, Cp);               \
            pad_##SUFFIX((T *)W, w + n * nP * C, nP, C, Cp);                                             \
            memset(tA, 0, sizeof(V_##SUFFIX) * nA);                                                      \
            memset(tW, 0, sizeof(V_##SUFFIX) * nW);                                                      \
            if (ta) gather_##SUFFIX((T *)tA, ta + n * dims[S_IN_DIM], in_off, in_str, nI, C, Cp);        \
            if (tw) pad_##SUFFIX((T *)tW, tw + n * nP * C, nP, C, Cp);                                   \
            memset(dA, 0, sizeof(V_##SUFFIX) * nA);                                                      \
            memset(GW, 0, sizeof(V_##SUFFIX) * nW);                                                      \
            memset(GG, 0, sizeof(V_##SUFFIX) * nG);                                                      \
            for (int64_t b = 0; b < NB; b += SG) {                                                       \
                monomials_##SUFFIX(X, A, b, NB, nI, Q, prefix, last);                                    \
                if (!dual && !need_v) { /* forces only: each monomial's gradient gathered by column */   \
                    for (int64_t s = 0; s < nS; s++)                                                     \
                        FOR_G DV[s * SG + j] = W[path[s] * NB + b + j] * G[entry[s] * NB + b + j];       \
                    for (int64_t m = 0; m < M; m++) {                                                    \
                        V_##SUFFIX acc[SG] = {0};                                                        \
                        for (int64_t t = cstart[m]; t < cstart[m + 1]; t++) {                            \
                            const V_##SUFFIX *dv = DV + cslot[t] * SG;                                   \
                            FOR_G acc[j] += coef[cnz[t]] * dv[j];                                        \
                        }                                                                                \
                        FOR_G dX[m * SG + j] = acc[j];                                                   \
                    }                                                                                    \
                } else {                                                                                 \
                    memset(dX, 0, sizeof(V_##SUFFIX) * SG * M);                                          \
                    if (dual) { /* the tangents, for second derivatives only */                          \
                        for (int64_t i = 0; i < nI; i++) FOR_G tX[i * SG + j] = tA[i * NB + b + j];     \
                        for (int64_t q = 0; q < Q; q++) {                                                \
                            const int64_t p = prefix[q] * SG, l = last[q] * SG, k = (nI + q) * SG;       \
                            FOR_G tX[k + j] = tX[p + j] * X[l + j] + X[p + j] * tX[l + j];               \
                        }                                                                                \
                        memset(tdX, 0, sizeof(V_##SUFFIX) * SG * M);                                     \
                    }                                                                                    \
                    for (int64_t s = 0; s < nS; s++) {                                                   \
                        const int64_t ip = path[s] * NB + b, ie = entry[s] * NB + b;                     \
                        V_##SUFFIX v[SG] = {0}, tv[SG] = {0}, dv[SG], tdv[SG];                           \
                        FOR_G dv[j] = W[ip + j] * G[ie + j];                                             \
                        for (int64_t k = start[s]; k < start[s + 1]; k++) {                              \
                            const int64_t c = col[k] * SG;                                               \
                            if (need_v) FOR_G v[j] += coef[k] * X[c + j];                                \
                            FOR_G dX[c + j] += coef[k] * dv[j];                                          \
                        }                                                                                \
                        if (!dual) {                                                                     \
                            FOR_G GW[ip + j] += v[j] * G[ie + j];                                        \
                            continue;                                                                    \
                        }                                                                                \
                        FOR_G tdv[j] = tW[ip + j] * G[ie + j];                                           \
                        for (int64_t k = start[s]; k < start[s + 1]; k++) {                              \
                            const int64_t c = col[k] * SG;                                               \
                            FOR_G tv[j] += coef[k] * tX[c + j];                                          \
                            FOR_G tdX[c + j] += coef[k] * tdv[j];                                        \
                        }                                                                                \
                        FOR_G GW[ip + j] += tv[j] * G[ie + j];                     /* the tangent of grad_w */ \
                        FOR_G GG[ie + j] += tW[ip + j] * v[j] + W[ip + j] * tv[j]; /* the tangent of out */ \
                    }                                                                                    \
                }                                                                                        \
                if (dual) {                                                                              \
                    for (int64_t q = Q - 1; q >= 0; q--) { /* back through the monomials */             \
                        const int64_t k = (nI + q) * SG, p = prefix[q] * SG, l = last[q] * SG;           \
                        FOR_G {                                                                          \
                            tdX[p + j] += tdX[k + j] * X[l + j] + dX[k + j] * tX[l + j];                 \
                            tdX[l + j] += tdX[k + j] * X[p + j] + dX[k + j] * tX[p + j];                 \
                            dX[p + j] += dX[k + j] * X[l + j];                                           \
                            dX[l + j] += dX[k + j] * X[p + j];                                           \
                        }                                                                                \
                    }                                                                                    \
                } else { /* the same; a prefix's children are consecutive: their sum kept in registers */ \
                    V_##SUFFIX run[SG] = {0};                                                            \
                    for (int64_t q = Q - 1; q >= 0; q--) {                                               \
                        const int64_t k = (nI + q) * SG, p = prefix[q] * SG, l = last[q] * SG;           \
                        FOR_G run[j] += dX[k + j] * X[l + j];                                            \
                        FOR_G dX[l + j] += dX[k + j] * X[p + j];                                         \
                        if (q == 0 || prefix[q - 1] != prefix[q]) FOR_G dX[p + j] += run[j], run[j] = (V_##SUFFIX){0}; \
                    }                                                                                    \
                }                                                                                        \
                for (int64_t i = 0; i < nI; i++) FOR_G dA[i * NB + b + j] += dual ? tdX[i * SG + j] : dX[i * SG + j]; \
            }                                                                                            \
            if (grad_a) scatter_##SUFFIX(grad_a + n * dims[S_IN_DIM], (T *)dA, in_off, in_str, nI, C, Cp); \
            if (grad_w) unpad_##SUFFIX(grad_w + n * nP * C, (T *)GW, nP, C, Cp);                         \
            if (grad_g) scatter_##SUFFIX(grad_g + n * dims[S_OUT_DIM], (T *)GG, out_off, out_str, nE, C, Cp); \
        }                                                                                                \
        free(buf);                                                                                       \
    }                                                                                                    \
}

DEFINE_SYMMETRIC(f32, float)
DEFINE_SYMMETRIC(f64, double)
