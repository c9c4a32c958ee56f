/* The low-bit types' block facts shared by the kernels (quant_dot.c, quant_lowbit.h) and their
 * scalar reference (quant_lowbit_ref.c). Not a public header. */
#ifndef TF_LOWBIT_TYPES_H
#define TF_LOWBIT_TYPES_H
#include "ckernels.h"
#include "iq_tables.h"
#include <immintrin.h>
#include <string.h>


enum { LB_UNIT = 0, LB_PER32 = 1, LB_PER16 = 2 };

/* How a type's integer scales are laid out. */
static inline int lb_scale_class(int type) {
    switch (type) {
    case TF_TYPE_Q2_K: case TF_TYPE_Q3_K: case TF_TYPE_IQ2_XS: case TF_TYPE_IQ2_S: case TF_TYPE_IQ1_M: return LB_PER16;
    case TF_TYPE_IQ2_XXS: case TF_TYPE_IQ3_XXS: case TF_TYPE_IQ3_S: case TF_TYPE_IQ1_S: case TF_TYPE_IQ4_XS: return LB_PER32;
    default: return LB_UNIT;
    }
}
/* The packed kernel takes these per-32-scaled types' weights as unsigned bytes q + z (z: the
 * largest |q|), like Q4_0's, and subtracts z * (sum of the activations) in the integer sum: no
 * sign step per token. 0: signed, with the sign moved onto the activations. (|q| + z stays small
 * enough for AVX2's pairwise maddubs: 2 * 124 * 127 < 32768.) */
static inline int lb_zero_point(int type) {
    switch (type) {
    case TF_TYPE_IQ1_S: return 9;
    case TF_TYPE_IQ2_XXS: return 43;
    case TF_TYPE_IQ3_XXS: return 62;
    case TF_TYPE_IQ3_S: return 15;
    default: return 0;
    }
}
static inline int lb_is32(int type) { return type == TF_TYPE_IQ4_NL || type == TF_TYPE_MXFP4; }
/* Bytes per block (0 for a type that is not low-bit). */
static inline int lb_bytes(int type) {
    switch (type) {
    case TF_TYPE_Q2_K: return 84; case TF_TYPE_Q3_K: return 110; case TF_TYPE_IQ2_XXS: return 66;
    case TF_TYPE_IQ2_XS: return 74; case TF_TYPE_IQ2_S: return 82; case TF_TYPE_IQ3_XXS: return 98;
    case TF_TYPE_IQ3_S: return 110; case TF_TYPE_IQ1_S: return 50; case TF_TYPE_IQ1_M: return 56;
    case TF_TYPE_IQ4_XS: return 136; case TF_TYPE_IQ4_NL: return 18; case TF_TYPE_MXFP4: return 17;
    case TF_TYPE_TQ1_0: return 54; case TF_TYPE_TQ2_0: return 66;
    default: return 0;
    }
}

static inline uint16_t lb_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* IQ1_M's f16 d, spread over the top nibbles of its four u16 scale words. */
static inline float lb_iq1m_d(const uint8_t *sc) {
    return _cvtsh_ss((uint16_t)((lb_rd16(sc) >> 12) | ((lb_rd16(sc + 2) >> 8) & 0xF0) | ((lb_rd16(sc + 4) >> 4) & 0xF00) |
                                (lb_rd16(sc + 6) & 0xF000)));
}
/* MXFP4's E8M0 scale, halved (its value table is doubled). */
static inline float lb_e8m0_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f; memcpy(&f, &bits, 4); return f;
}
#endif
