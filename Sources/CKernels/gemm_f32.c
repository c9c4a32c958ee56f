/* f32 matrix product for several activation rows (the encoder models' linears: BERT, XLM-R).
 *
 * One dot product per (weight row, token) loads a weight and an activation value for every
 * multiply-add and ends in a horizontal sum, so it runs at about one FMA per cycle. Here the
 * activations are first packed with 8 tokens in the 8 lanes of a vector (an "octet"): element
 * k of tokens t0..t0+7 is one 32-byte load. The micro-kernel keeps a 6 rows x 2 octets tile of
 * accumulators (12 registers) and per k loads 2 activation vectors and broadcasts 6 weights,
 * 12 FMAs for 8 loads. Tokens are walked in blocks of 32 (their packed rows stay in L2) inside
 * the caller's run of weight rows.
 *
 * Every token's sum is the same sequence of FMAs over k in one lane whatever the tile shape or
 * the other tokens, so a token's result does not depend on its batch. */
#include "ckernels.h"
#include <immintrin.h>
#include <string.h>

size_t tf_gemm_f32_pack_bytes(int n, int ntok) { return (size_t)((ntok + 7) / 8) * (size_t)n * 8 * sizeof(float); }

void tf_gemm_f32_pack(int n, const float *x, size_t xstride, int ntok, float *packed) {
    for (int o = 0; o < (ntok + 7) / 8; o++) {
        float *p = packed + (size_t)o * n * 8;
        int nt = ntok - 8 * o < 8 ? ntok - 8 * o : 8;
        if (nt < 8) memset(p, 0, (size_t)n * 8 * sizeof(float));
        for (int l = 0; l < nt; l++) {
            const float *row = x + (size_t)(8 * o + l) * xstride;
            for (int k = 0; k < n; k++) p[(size_t)k * 8 + l] = row[k];
        }
    }
}

/* R weight rows x O octets (R <= 6, O <= 2), constants at each call so the loops unroll. */
static inline __attribute__((always_inline)) void f32_tile(int R, int O, int n, const float *const *w, const float *const *px,
                                                           float acc_out[6][2][8]) {
    __m256 acc[6][2];
    for (int r = 0; r < R; r++) for (int o = 0; o < O; o++) acc[r][o] = _mm256_setzero_ps();
    for (int k = 0; k < n; k++) {
        __m256 x0 = _mm256_load_ps(px[0] + 8 * k);
        __m256 x1 = O > 1 ? _mm256_load_ps(px[1] + 8 * k) : x0;
        for (int r = 0; r < R; r++) {
            __m256 wv = _mm256_broadcast_ss(w[r] + k);
            acc[r][0] = _mm256_fmadd_ps(wv, x0, acc[r][0]);
            if (O > 1) acc[r][1] = _mm256_fmadd_ps(wv, x1, acc[r][1]);
        }
    }
    for (int r = 0; r < R; r++) for (int o = 0; o < O; o++) _mm256_storeu_ps(acc_out[r][o], acc[r][o]);
}

#define F32_TILE_CASE(R) \
    case R: if (O == 2) f32_tile(R, 2, n, w, px, acc); else f32_tile(R, 1, n, w, px, acc); break;

int tf_gemm_f32_packed(int n, int nrows, const float *wrows, size_t stride, const float *packed, int ntok,
                       float *out, size_t ostride) {
    const int octets = (ntok + 7) / 8, block = 4; /* octets per token block: 32 tokens */
    float acc[6][2][8];
    for (int ob = 0; ob < octets; ob += block) {
        int oe = ob + block < octets ? ob + block : octets;
        for (int r0 = 0; r0 < nrows; r0 += 6) {
            int R = nrows - r0 < 6 ? nrows - r0 : 6;
            const float *w[6];
            for (int r = 0; r < R; r++) w[r] = (const float *)((const char *)wrows + (size_t)(r0 + r) * stride);
            for (int o = ob; o < oe; o += 2) {
                int O = oe - o < 2 ? 1 : 2;
                const float *px[2] = { packed + (size_t)o * n * 8, packed + (size_t)(o + O - 1) * n * 8 };
                switch (R) { F32_TILE_CASE(1) F32_TILE_CASE(2) F32_TILE_CASE(3) F32_TILE_CASE(4) F32_TILE_CASE(5) F32_TILE_CASE(6) }
                for (int oo = 0; oo < O; oo++)
                    for (int l = 0; l < 8; l++) {
                        int t = 8 * (o + oo) + l;
                        if (t >= ntok) break;
                        for (int r = 0; r < R; r++) out[(size_t)t * ostride + r0 + r] = acc[r][oo][l];
                    }
            }
        }
    }
    return 0;
}
