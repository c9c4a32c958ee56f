/* SHA-256 block compression (FIPS 180-4), used by the Swift SHA256 type for bulk data. */
#include "ckernels.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void tf_sha256_blocks(uint32_t st[8], const uint8_t *p, size_t nblocks) {
    for (; nblocks; nblocks--, p += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
            uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
    }
}

/* ---- Whole-message SHA-256, HMAC-SHA256 (RFC 2104) and PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) ----
 * In C so that a password hash with hundreds of thousands of iterations takes a fraction of a
 * second in debug builds too. */

typedef struct {
    uint32_t st[8];
    uint8_t buf[64];
    size_t fill;      /* bytes pending in buf */
    uint64_t total;   /* bytes hashed so far */
} sha256_ctx;

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static void ctx_init(sha256_ctx *c) {
    for (int i = 0; i < 8; i++) c->st[i] = H0[i];
    c->fill = 0;
    c->total = 0;
}

static void ctx_update(sha256_ctx *c, const uint8_t *p, size_t n) {
    c->total += n;
    while (n > 0) {
        if (c->fill == 0 && n >= 64) {
            size_t blocks = n / 64;
            tf_sha256_blocks(c->st, p, blocks);
            p += blocks * 64;
            n -= blocks * 64;
            continue;
        }
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        for (size_t i = 0; i < take; i++) c->buf[c->fill + i] = p[i];
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) { tf_sha256_blocks(c->st, c->buf, 1); c->fill = 0; }
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void ctx_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->total * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (c->fill < 56 ? 56 : 120) - c->fill;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    ctx_update(c, pad, padlen + 8);
    for (int i = 0; i < 8; i++) put_be32(out + 4 * i, c->st[i]);
}

/* The two keyed states of HMAC: after compressing K⊕ipad and K⊕opad (a key longer than the
 * block is hashed first, a shorter one zero-padded). */
static void hmac_keyed(const uint8_t *key, size_t keylen, sha256_ctx *inner, sha256_ctx *outer) {
    uint8_t k[64] = {0}, pad[64];
    if (keylen > 64) {
        sha256_ctx c; ctx_init(&c); ctx_update(&c, key, keylen); ctx_final(&c, k);
    } else {
        for (size_t i = 0; i < keylen; i++) k[i] = key[i];
    }
    ctx_init(inner); ctx_init(outer);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    ctx_update(inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    ctx_update(outer, pad, 64);
}

void tf_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen, uint8_t out[32]) {
    sha256_ctx inner, outer;
    uint8_t ih[32];
    hmac_keyed(key, keylen, &inner, &outer);
    ctx_update(&inner, msg, msglen);
    ctx_final(&inner, ih);
    ctx_update(&outer, ih, 32);
    ctx_final(&outer, out);
}

/* One HMAC of a 32-byte message from the keyed states: the message fits one padded block after
 * the 64-byte key block, so each side is a single compression (2 per PBKDF2 iteration). */
static void hmac32_fast(const uint32_t inner[8], const uint32_t outer[8], const uint8_t msg[32], uint8_t out[32]) {
    uint8_t block[64] = {0};
    uint32_t st[8];
    for (int i = 0; i < 32; i++) block[i] = msg[i];
    block[32] = 0x80;
    block[62] = 0x03;  /* length (64 + 32) * 8 = 768 bits = 0x300 */
    for (int i = 0; i < 8; i++) st[i] = inner[i];
    tf_sha256_blocks(st, block, 1);
    for (int i = 0; i < 8; i++) put_be32(block + 4 * i, st[i]);
    for (int i = 0; i < 8; i++) st[i] = outer[i];
    tf_sha256_blocks(st, block, 1);
    for (int i = 0; i < 8; i++) put_be32(out + 4 * i, st[i]);
}

void tf_pbkdf2_hmac_sha256(const uint8_t *password, size_t pwlen, const uint8_t *salt, size_t saltlen,
                           uint32_t iterations, uint8_t *out, size_t outlen) {
    sha256_ctx inner, outer;
    hmac_keyed(password, pwlen, &inner, &outer);
    for (uint32_t block = 1; outlen > 0; block++) {
        /* U1 = PRF(P, S || INT(i)); Uj = PRF(P, Uj-1); T_i = U1 ⊕ … ⊕ Uc */
        uint8_t u[32], t[32], be[4], ih[32];
        sha256_ctx in = inner, ou = outer;
        put_be32(be, block);
        ctx_update(&in, salt, saltlen);
        ctx_update(&in, be, 4);
        ctx_final(&in, ih);
        ctx_update(&ou, ih, 32);
        ctx_final(&ou, u);
        for (int i = 0; i < 32; i++) t[i] = u[i];
        for (uint32_t j = 1; j < iterations; j++) {
            hmac32_fast(inner.st, outer.st, u, u);
            for (int i = 0; i < 32; i++) t[i] ^= u[i];
        }
        size_t n = outlen < 32 ? outlen : 32;
        for (size_t i = 0; i < n; i++) out[i] = t[i];
        out += n;
        outlen -= n;
    }
}
