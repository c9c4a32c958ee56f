/* Dequantization of the low-bit GGUF types: the IQ family (codebook grids, iq_tables.c), MXFP4
 * and the ternary TQ1_0/TQ2_0. Q2_K and Q3_K are in dequant.c with the other K-quants.
 *
 * As in dequant.c, the float arithmetic is the `gguf` package's numpy code step by step (every
 * product rounded to f32 on its own, in the same order), so the results are bit-identical to
 * gguf.quants.dequantize; the integer parts (grid entries, signs, scales) are exact anyway. */
#pragma clang fp contract(off)
#pragma STDC FP_CONTRACT OFF

#include "ckernels.h"
#include "iq_tables.h"
#include <immintrin.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline float h2f(const uint8_t *p) { return _cvtsh_ss(rd16(p)); }

/* 8 values of a grid row times db, negated where bit j of `signs` is set (numpy:
 * db * grid * sign, the sign an exact negation). */
static inline void put8(float *dst, float db, const uint8_t *grid, unsigned signs) {
    for (int j = 0; j < 8; j++) {
        float v = db * (float)grid[j];
        dst[j] = (signs >> j) & 1 ? -v : v;
    }
}
/* IQ2/IQ3 block scale: d * (0.5 + s) * k, k = 0.25 (IQ2) or 0.5 (IQ3_XXS). */
static inline float iq_db(float d, unsigned s, float k) { return d * (0.5f + (float)s) * k; }

/* IQ2_XXS (66 bytes): f16 d, then per 32 values two u32: four 8-bit grid indices, and four
 * 7-bit sign indices (into ksigns) + a 4-bit scale in the top bits. */
void tf_dequant_iq2_xxs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 66) {
        float d = h2f(b);
        for (int g = 0; g < 8; g++, dst += 32) {
            const uint8_t *q = b + 2 + 8 * g;
            uint32_t aux = rd32(q + 4);
            float db = iq_db(d, aux >> 28, 0.25f);
            for (int k = 0; k < 4; k++) put8(dst + 8 * k, db, tf_iq2xxs_grid[q[k]], tf_iq_ksigns[(aux >> (7 * k)) & 127]);
        }
    }
}

/* IQ2_XS (74 bytes): f16 d, 32 u16 (9-bit grid index, 7-bit sign index), 8 bytes of 4-bit
 * scales (one per 16 values). */
void tf_dequant_iq2_xs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 74) {
        float d = h2f(b);
        for (int k = 0; k < 32; k++, dst += 8) {
            uint16_t q = rd16(b + 2 + 2 * k);
            float db = iq_db(d, (b[66 + k / 4] >> (4 * ((k / 2) & 1))) & 0xF, 0.25f);
            put8(dst, db, tf_iq2xs_grid[q & 511], tf_iq_ksigns[q >> 9]);
        }
    }
}

/* IQ2_S (82 bytes): f16 d, qs[32] (low 8 bits of the grid indices), signs[32] (one bit per
 * value), qh[8] (2 high index bits each for four indices), scales[8] (4 bits per 16 values). */
void tf_dequant_iq2_s(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 82) {
        float d = h2f(b);
        const uint8_t *qs = b + 2, *sg = b + 34, *qh = b + 66, *sc = b + 74;
        for (int k = 0; k < 32; k++, dst += 8) {
            int idx = qs[k] | ((qh[k / 4] >> (2 * (k % 4))) & 3) << 8;
            float db = iq_db(d, (sc[k / 4] >> (4 * ((k / 2) & 1))) & 0xF, 0.25f);
            put8(dst, db, tf_iq2s_grid[idx], sg[k]);
        }
    }
}

/* 4 values of an IQ3 grid row times db, negated where bit j of `signs` is set. */
static inline void put4(float *dst, float db, const uint8_t *grid, unsigned signs) {
    for (int j = 0; j < 4; j++) {
        float v = db * (float)grid[j];
        dst[j] = (signs >> j) & 1 ? -v : v;
    }
}

/* IQ3_XXS (98 bytes): f16 d, qs[64] (8-bit indices of 4-value grid rows), then per 32 values a
 * u32 of four 7-bit sign indices and a 4-bit scale. */
void tf_dequant_iq3_xxs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 98) {
        float d = h2f(b);
        for (int g = 0; g < 8; g++, dst += 32) {
            uint32_t aux = rd32(b + 66 + 4 * g);
            float db = iq_db(d, aux >> 28, 0.5f);
            for (int k = 0; k < 4; k++) {
                unsigned s = tf_iq_ksigns[(aux >> (7 * k)) & 127];
                put4(dst + 8 * k, db, tf_iq3xxs_grid[b[2 + 8 * g + 2 * k]], s);
                put4(dst + 8 * k + 4, db, tf_iq3xxs_grid[b[2 + 8 * g + 2 * k + 1]], s >> 4);
            }
        }
    }
}

/* IQ3_S (110 bytes): f16 d, qs[64] (low index bits), qh[8] (the 9th bit of each index),
 * signs[32] (a bit per value), scales[4] (4 bits per 32 values: db = d * (1 + 2s)). */
void tf_dequant_iq3_s(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 110) {
        float d = h2f(b);
        const uint8_t *qs = b + 2, *qh = b + 66, *sg = b + 74, *sc = b + 106;
        for (int k = 0; k < 64; k++, dst += 4) {
            int idx = qs[k] | ((qh[k / 8] >> (k % 8)) & 1) << 8;
            float db = d * (float)(1 + 2 * ((sc[k / 16] >> (4 * ((k / 8) & 1))) & 0xF));
            put4(dst, db, tf_iq3s_grid[idx], sg[k / 2] >> (4 * (k & 1)));
        }
    }
}

/* IQ1_S (50 bytes): f16 d, qs[32] (low index bits), per 32 values a u16: four 3-bit high index
 * bits, a 3-bit scale (dl = d * (2s + 1)) and the sign of the grid offset delta = +-0.125. */
void tf_dequant_iq1_s(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 50) {
        float d = h2f(b);
        for (int g = 0; g < 8; g++) {
            uint16_t qh = rd16(b + 34 + 2 * g);
            float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            float delta = qh & 0x8000 ? -0.125f : 0.125f;
            for (int k = 0; k < 4; k++, dst += 8) {
                const int8_t *grid = tf_iq1s_grid[b[2 + 4 * g + k] | ((qh >> (3 * k)) & 7) << 8];
                for (int j = 0; j < 8; j++) dst[j] = dl * ((float)grid[j] + delta);
            }
        }
    }
}

/* IQ1_M's f16 block scale, stored in the top nibbles of its four u16 scale words. */
static inline float iq1m_d(const uint8_t *sc) {
    uint16_t h = (uint16_t)((rd16(sc) >> 12) | ((rd16(sc + 2) >> 8) & 0xF0) | ((rd16(sc + 4) >> 4) & 0xF00) |
                            (rd16(sc + 6) & 0xF000));
    return _cvtsh_ss(h);
}

/* IQ1_M (56 bytes): qs[32] (low index bits), qh[16] (per index a nibble: 3 high bits and the
 * delta sign), scales[8] (four u16: 3-bit scales, one per 16 values, and the f16 d). */
void tf_dequant_iq1_m(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 56) {
        const uint8_t *qs = b, *qh = b + 32, *sc = b + 48;
        float d = iq1m_d(sc);
        for (int k = 0; k < 32; k++, dst += 8) {
            int s = (rd16(sc + 2 * (k / 8)) >> (3 * ((k / 2) % 4))) & 7;
            float dl = d * (float)(2 * s + 1);
            int nib = qh[k / 2] >> (4 * (k & 1));
            float delta = nib & 8 ? -0.125f : 0.125f;
            const int8_t *grid = tf_iq1s_grid[qs[k] | (nib & 7) << 8];
            for (int j = 0; j < 8; j++) dst[j] = dl * ((float)grid[j] + delta);
        }
    }
}

/* 32 values from 16 bytes of nibbles through a 16-entry table (low nibbles first). */
static inline void put_nl(float *dst, float d, const uint8_t *qs, const int8_t *kv) {
    for (int j = 0; j < 16; j++) {
        dst[j] = d * (float)kv[qs[j] & 0xF];
        dst[j + 16] = d * (float)kv[qs[j] >> 4];
    }
}

/* IQ4_NL (18 bytes per 32): f16 d, 16 bytes of nibbles indexing the non-linear values. */
void tf_dequant_iq4_nl(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 32; i++, b += 18, dst += 32) put_nl(dst, h2f(b), b + 2, tf_iq4nl_values);
}

/* IQ4_XS (136 bytes): f16 d, u16 scales_h, scales_l[4], qs[128]; per 32 values a 6-bit scale
 * (low 4 bits in scales_l, high 2 in scales_h), dl = d * (scale - 32). */
void tf_dequant_iq4_xs(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 136) {
        float d = h2f(b);
        uint16_t sh = rd16(b + 2);
        for (int g = 0; g < 8; g++, dst += 32) {
            int ls = ((b[4 + g / 2] >> (4 * (g & 1))) & 0xF) | ((sh >> (2 * g)) & 3) << 4;
            put_nl(dst, d * (float)(ls - 32), b + 8 + 16 * g, tf_iq4nl_values);
        }
    }
}

/* MXFP4's E8M0 block scale, halved (the value table is doubled): 2^(e - 128). */
static inline float e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f; memcpy(&f, &bits, 4); return f;
}

/* MXFP4 (17 bytes per 32): an E8M0 scale byte, 16 bytes of e2m1 nibbles. */
void tf_dequant_mxfp4(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 32; i++, b += 17, dst += 32) put_nl(dst, e8m0_half(b[0]), b + 1, tf_mxfp4_values);
}

/* One base-3 digit: byte q holds 5 (4) trits as round(t * 256 / 243); multiplying by 3^k
 * (mod 256) moves digit k to the top, and (q * 3) >> 8 reads it. */
static inline int trit(uint8_t q, int k) {
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    uint8_t m = (uint8_t)(q * pow3[k]);
    return ((m * 3) >> 8) - 1;
}

/* TQ1_0 (54 bytes): qs[48] (5 trits a byte), qh[4] (4 trits a byte), f16 d. Values 0..159:
 * trit k of qs[j], value 32k + j; 160..239: qs[32 + j], value 160 + 16k + j; 240..255: qh[j],
 * value 240 + 4k + j. */
void tf_dequant_tq1_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 54, dst += 256) {
        float d = h2f(b + 52);
        for (int k = 0; k < 5; k++)
            for (int j = 0; j < 32; j++) dst[32 * k + j] = d * (float)trit(b[j], k);
        for (int k = 0; k < 5; k++)
            for (int j = 0; j < 16; j++) dst[160 + 16 * k + j] = d * (float)trit(b[32 + j], k);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) dst[240 + 4 * k + j] = d * (float)trit(b[48 + j], k);
    }
}

/* TQ2_0 (66 bytes): qs[64] (2 bits per value, value 128h + 32k + j in bits 2k of qs[32h + j],
 * stored + 1), f16 d. */
void tf_dequant_tq2_0(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 66, dst += 256) {
        float d = h2f(b + 64);
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, j = e % 32;
            dst[e] = d * (float)(((b[32 * h + j] >> (2 * k)) & 3) - 1);
        }
    }
}
