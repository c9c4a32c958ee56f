/* Scalar reference of the low-bit dot kernels (quant_lowbit.h): the same integers and the same
 * float operations in the same order, written out per value, so that the SIMD kernels can be
 * checked bit for bit. The blocks are decoded here element by element from the layouts (as in
 * dequant_lowbit.c), independently of the SIMD decoders. */
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "lowbit_types.h"
#include <math.h>

static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float h2f(const uint8_t *p) { return _cvtsh_ss(lb_rd16(p)); }

/* One decoded superblock: weight e = D[e / 32] * sc[e / 16] * q[e] (- dmin * mn[e / 16]). */
typedef struct { int q[256]; int sc[16]; int mn[16]; float D[8]; float dmin; } ref_blk;

static void signed8(int *q, const uint8_t *grid, unsigned signs) {
    for (int j = 0; j < 8; j++) q[j] = (signs >> j) & 1 ? -grid[j] : grid[j];
}
static void signed4(int *q, const uint8_t *grid, unsigned signs) {
    for (int j = 0; j < 4; j++) q[j] = (signs >> j) & 1 ? -grid[j] : grid[j];
}

static void ref_iq2(int type, const uint8_t *b, ref_blk *o) {
    for (int e = 0; e < 8; e++) o->D[e] = h2f(b) * 0.125f;
    for (int k = 0; k < 32; k++) {           /* eight values per k */
        int g = k / 4;
        if (type == TF_TYPE_IQ2_XXS) {
            uint32_t aux = rd32(b + 2 + 8 * g + 4);
            signed8(o->q + 8 * k, tf_iq2xxs_grid[b[2 + 8 * g + k % 4]], tf_iq_ksigns[(aux >> (7 * (k % 4))) & 127]);
            o->sc[2 * g] = o->sc[2 * g + 1] = 2 * (int)(aux >> 28) + 1;
        } else if (type == TF_TYPE_IQ2_XS) {
            uint16_t v = lb_rd16(b + 2 + 2 * k);
            signed8(o->q + 8 * k, tf_iq2xs_grid[v & 511], tf_iq_ksigns[v >> 9]);
            o->sc[k / 2] = 2 * ((b[66 + k / 4] >> (4 * ((k / 2) & 1))) & 0xF) + 1;
        } else {
            int idx = b[2 + k] | ((b[66 + k / 4] >> (2 * (k % 4))) & 3) << 8;
            signed8(o->q + 8 * k, tf_iq2s_grid[idx], b[34 + k]);
            o->sc[k / 2] = 2 * ((b[74 + k / 4] >> (4 * ((k / 2) & 1))) & 0xF) + 1;
        }
    }
}

static void ref_iq3(int type, const uint8_t *b, ref_blk *o) {
    for (int g = 0; g < 8; g++) {
        if (type == TF_TYPE_IQ3_XXS) {
            uint32_t aux = rd32(b + 66 + 4 * g);
            o->D[g] = h2f(b) * 0.25f;
            o->sc[2 * g] = o->sc[2 * g + 1] = 2 * (int)(aux >> 28) + 1;
            for (int k = 0; k < 8; k++)   /* sign index k/2 covers grid rows k and k+1 */
                signed4(o->q + 32 * g + 4 * k, tf_iq3xxs_grid[b[2 + 8 * g + k]], tf_iq_ksigns[(aux >> (7 * (k / 2))) & 127] >> (4 * (k & 1)));
        } else {
            o->D[g] = h2f(b);
            o->sc[2 * g] = o->sc[2 * g + 1] = 1 + 2 * ((b[106 + g / 2] >> (4 * (g & 1))) & 0xF);
            for (int k = 0; k < 8; k++) {
                int r = 8 * g + k, idx = b[2 + r] | ((b[66 + g] >> k) & 1) << 8;
                signed4(o->q + 4 * r, tf_iq3s_grid[idx], b[74 + r / 2] >> (4 * (r & 1)));
            }
        }
    }
}

/* IQ1_S / IQ1_M: q = 8 * grid + delta (delta +-1 per 8 values). */
static void ref_iq1(int type, const uint8_t *b, ref_blk *o) {
    float d = type == TF_TYPE_IQ1_S ? h2f(b) : lb_iq1m_d(b + 48);
    for (int g = 0; g < 8; g++) o->D[g] = d * 0.125f;
    for (int k = 0; k < 32; k++) {
        int idx, neg;
        if (type == TF_TYPE_IQ1_S) {
            uint16_t h = lb_rd16(b + 34 + 2 * (k / 4));
            idx = b[2 + k] | ((h >> (3 * (k % 4))) & 7) << 8;
            neg = h >> 15;
            o->sc[k / 2] = 2 * ((h >> 12) & 7) + 1;
        } else {
            int nib = b[32 + k / 2] >> (4 * (k & 1));
            idx = b[k] | (nib & 7) << 8;
            neg = (nib >> 3) & 1;
            o->sc[k / 2] = 2 * ((lb_rd16(b + 48 + 2 * (k / 8)) >> (3 * ((k / 2) % 4))) & 7) + 1;
        }
        for (int j = 0; j < 8; j++) o->q[8 * k + j] = 8 * tf_iq1s_grid[idx][j] + (neg ? -1 : 1);
    }
}

/* 16 bytes of nibbles through a value table, low nibbles first. */
static void ref_nl(int *q, const uint8_t *qs, const int8_t *kv) {
    for (int j = 0; j < 16; j++) { q[j] = kv[qs[j] & 0xF]; q[j + 16] = kv[qs[j] >> 4]; }
}

static int ref_trit(uint8_t q, int k) {
    static const uint8_t p3[5] = { 1, 3, 9, 27, 81 };
    return (((uint8_t)(q * p3[k])) * 3 >> 8) - 1;
}

/* Superblock (or, IQ4_NL/MXFP4, `cnt` 32-blocks) at b. */
static void ref_decode(int type, const uint8_t *b, int cnt, ref_blk *o) {
    memset(o, 0, sizeof *o);
    for (int j = 0; j < 16; j++) o->sc[j] = 1;
    switch (type) {
    case TF_TYPE_IQ2_XXS: case TF_TYPE_IQ2_XS: case TF_TYPE_IQ2_S: ref_iq2(type, b, o); break;
    case TF_TYPE_IQ3_XXS: case TF_TYPE_IQ3_S: ref_iq3(type, b, o); break;
    case TF_TYPE_IQ1_S: case TF_TYPE_IQ1_M: ref_iq1(type, b, o); break;
    case TF_TYPE_IQ4_NL: case TF_TYPE_MXFP4: {
        int mx = type == TF_TYPE_MXFP4;
        for (int g = 0; g < cnt; g++) {
            const uint8_t *blk = b + g * (mx ? 17 : 18);
            o->D[g] = mx ? lb_e8m0_half(blk[0]) : h2f(blk);
            ref_nl(o->q + 32 * g, blk + (mx ? 1 : 2), mx ? tf_mxfp4_values : tf_iq4nl_values);
        }
        break;
    }
    case TF_TYPE_IQ4_XS:
        for (int g = 0; g < 8; g++) {
            o->D[g] = h2f(b);
            o->sc[2 * g] = o->sc[2 * g + 1] = (((b[4 + g / 2] >> (4 * (g & 1))) & 0xF) | ((lb_rd16(b + 2) >> (2 * g)) & 3) << 4) - 32;
            ref_nl(o->q + 32 * g, b + 8 + 16 * g, tf_iq4nl_values);
        }
        break;
    case TF_TYPE_TQ1_0:
        for (int g = 0; g < 8; g++) o->D[g] = h2f(b + 52);
        for (int k = 0; k < 5; k++) for (int j = 0; j < 32; j++) o->q[32 * k + j] = ref_trit(b[j], k);
        for (int k = 0; k < 5; k++) for (int j = 0; j < 16; j++) o->q[160 + 16 * k + j] = ref_trit(b[32 + j], k);
        for (int k = 0; k < 4; k++) for (int j = 0; j < 4; j++) o->q[240 + 4 * k + j] = ref_trit(b[48 + j], k);
        break;
    case TF_TYPE_TQ2_0:
        for (int g = 0; g < 8; g++) o->D[g] = h2f(b + 64);
        for (int e = 0; e < 256; e++) o->q[e] = ((b[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) - 1;
        break;
    case TF_TYPE_Q2_K:
        for (int g = 0; g < 8; g++) o->D[g] = h2f(b + 80);
        o->dmin = h2f(b + 82);
        for (int j = 0; j < 16; j++) { o->sc[j] = b[j] & 0xF; o->mn[j] = b[j] >> 4; }
        for (int e = 0; e < 256; e++) o->q[e] = (b[16 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        break;
    default:   /* Q3_K */
        for (int g = 0; g < 8; g++) o->D[g] = h2f(b + 108);
        for (int j = 0; j < 16; j++) {
            int lo = (j < 8 ? b[96 + j] : b[96 + j - 8] >> 4) & 0xF, hi = (b[104 + j % 4] >> (2 * (j / 4))) & 3;
            o->sc[j] = (lo | hi << 4) - 32;
        }
        for (int e = 0; e < 256; e++) {
            int h = e / 128, m = (e % 128) / 32, l = e % 32;
            int low = (b[32 + 32 * h + l] >> (2 * m)) & 3, hb = (b[l] >> (4 * h + m)) & 1;
            o->q[e] = low - (hb ? 0 : 4);
        }
        break;
    }
}

float tf_vec_dot_lowbit_ref(int type, int n, const void *vw, const void *vx) {
    const uint8_t *w = vw;
    const tf_block_q8a *x = vx;
    const int bb = lb_bytes(type), nb = n / 32;
    float acc[8] = { 0 };
    for (int g = 0; g < nb; g += 8) {
        int cnt = nb - g < 8 ? nb - g : 8;
        ref_blk o;
        ref_decode(type, w, cnt, &o);
        w += lb_is32(type) ? (size_t)cnt * bb : (size_t)bb;
        for (int j = 0; j < 8; j++) {
            const tf_block_q8a *a = j < cnt ? x + g + j : NULL;
            int S = 0, M = 0;
            float dx = a ? a->d : 0.0f;
            for (int h = 0; h < 2 && a; h++) {
                int s = 0, sum = 0;
                for (int l = 16 * h; l < 16 * h + 16; l++) { s += o.q[32 * j + l] * a->qs[l]; sum += a->qs[l]; }
                S += o.sc[2 * j + h] * s;
                M += o.mn[2 * j + h] * sum;
            }
            acc[j] = fmaf((float)S, o.D[j] * dx, acc[j]);
            if (type == TF_TYPE_Q2_K) acc[j] = fmaf((float)M, -o.dmin * dx, acc[j]);
        }
    }
    /* hsum_ps's order */
    float s0 = acc[0] + acc[4], s1 = acc[1] + acc[5], s2 = acc[2] + acc[6], s3 = acc[3] + acc[7];
    return (s0 + s2) + (s1 + s3);
}
