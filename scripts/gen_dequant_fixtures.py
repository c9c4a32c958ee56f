#!/usr/bin/env python3
"""Generate the dequantization parity fixtures (committed under fixtures/dequant/).

1. qwen2.5-coder-0.5b-q4_k_m.json: for every tensor of the real model, the `gguf` package's
   dequantization (gguf.quants.dequantize): sha256 of the little-endian f32 bytes of the whole
   tensor, the float64 sum, and 256 sampled values at fixed strided indices
   (index_k = k * (n - 1) // (S - 1), S = min(256, n)), as base64 of little-endian f32.
2. synthetic.json: small blocks of types not in the model (and the model's types too), raw bytes
   + expected f32 values (both base64), from gguf.quants.quantize where it exists, else random
   bytes with valid f16 scale fields; plus F16, BF16, F8_E4M3 (expected from torch) and a
   DeepSeek-style block-scaled FP8 case.
3. lowbit.json: the low-bit types (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS,
   IQ4_NL, Q2_K, Q3_K, MXFP4, TQ1_0, TQ2_0): a few random blocks each (random bytes, the f16 scale
   fields replaced by finite values, MXFP4's E8M0 exponent kept in range), plus blocks from gguf's
   own quantizer where it has one (MXFP4, TQ1_0, TQ2_0); raw bytes + expected f32 (base64).

Usage: python3 scripts/gen_dequant_fixtures.py [model.gguf]   (all three)
       python3 scripts/gen_dequant_fixtures.py --lowbit       (lowbit.json only)
"""
import base64, hashlib, json, os, sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "dequant")
MODEL = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--lowbit" else os.path.expanduser(
    "~/.cache/tiefsee/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
NSAMPLES = 256


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def sample_indices(n: int) -> np.ndarray:
    s = min(NSAMPLES, n)
    if s == 1:
        return np.zeros(1, dtype=np.int64)
    return (np.arange(s, dtype=np.int64) * (n - 1)) // (s - 1)


def model_fixture():
    r = gguf.GGUFReader(MODEL)
    tensors = []
    for t in r.tensors:
        # GGUF dims are innermost-first; Tiefsee's shape is outermost-first.
        shape = [int(d) for d in reversed(list(t.shape))]
        v = dequantize(t.data, t.tensor_type).astype("<f4", copy=False).reshape(-1)
        assert v.size == int(np.prod(shape)), (t.name, v.size, shape)
        idx = sample_indices(v.size)
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": shape,
            "sha256": hashlib.sha256(v.tobytes()).hexdigest(),
            "sum": float(np.sum(v, dtype=np.float64)),
            "sum_abs": float(np.sum(np.abs(v), dtype=np.float64)),
            "samples": b64(v[idx].astype("<f4")),
        })
        print(f"{t.name:40s} {t.tensor_type.name:6s} {shape}", file=sys.stderr)
    doc = {
        "model": os.path.basename(MODEL),
        "generator": "scripts/gen_dequant_fixtures.py (gguf " + getattr(gguf, "__version__", "?") + ")",
        "samples_note": "index_k = k*(n-1)//(S-1), S = min(256, n); base64 little-endian f32",
        "tensors": tensors,
    }
    with open(os.path.join(OUT, "qwen2.5-coder-0.5b-q4_k_m.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def random_blocks(qtype, nblocks, rng, f16_fields):
    """Random block bytes with the f16 fields at the given offsets set to sane values."""
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, ts), dtype=np.uint8)
    for off in f16_fields:
        vals = (rng.standard_normal(nblocks) * 0.01).astype(np.float16)
        raw[:, off:off + 2] = vals.view(np.uint8).reshape(nblocks, 2)
    return raw


def synthetic_fixture():
    import torch
    rng = np.random.default_rng(1234)
    cases = []

    def add(name, type_name, raw: np.ndarray, expected: np.ndarray):
        cases.append({"name": name, "type": type_name, "count": int(expected.size),
                      "raw": b64(raw.astype(np.uint8).reshape(-1)),
                      "expected": b64(expected.astype("<f4").reshape(-1))})

    # Types with a quantizer in gguf: quantize random data, then dequantize.
    for qt in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]:
        x = (rng.standard_normal((2, 128)) * 0.5).astype(np.float32)
        x[0, :32] = 0  # an all-zero block
        raw = quantize(x, qt)
        add(f"{qt.name.lower()}_quantized", qt.name, raw, dequantize(raw, qt))
    # All types (incl. K-quants, which have no quantizer here): random bytes, valid f16 scales.
    f16_offsets = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
                   T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
    for qt, offs in f16_offsets.items():
        nb = 3 if gguf.GGML_QUANT_SIZES[qt][0] == 256 else 8
        raw = random_blocks(qt, nb, rng, offs)
        add(f"{qt.name.lower()}_random", qt.name, raw, dequantize(raw, qt))

    # F16 / BF16: every exponent incl. subnormals, zeros, infinities (NaN checked separately).
    h = rng.integers(0, 1 << 16, size=300, dtype=np.uint16)
    h[:4] = [0x0000, 0x8000, 0x0001, 0x7C00]
    h = h[((h & 0x7C00) != 0x7C00) | ((h & 0x03FF) == 0)]  # drop NaNs
    add("f16_bits", "F16", h.view(np.uint8), dequantize(h.view(np.uint8), T.F16))
    b = rng.integers(0, 1 << 16, size=300, dtype=np.uint16)
    b[:4] = [0x0000, 0x8000, 0x0001, 0x7F80]
    b = b[((b & 0x7F80) != 0x7F80) | ((b & 0x007F) == 0)]
    add("bf16_bits", "BF16", b.view(np.uint8), dequantize(b.view(np.uint8), T.BF16))
    # BF16 from gguf's own rounding of random floats
    xf = (rng.standard_normal(64) * 3).astype(np.float32)
    bq = quantize(xf, T.BF16)
    add("bf16_quantized", "BF16", bq.view(np.uint8), dequantize(bq, T.BF16))

    # F8_E4M3 (e4m3fn): all 256 codes except the two NaNs, expected from torch.
    codes = np.array([c for c in range(256) if (c & 0x7F) != 0x7F], dtype=np.uint8)
    e = torch.from_numpy(codes.copy()).view(torch.float8_e4m3fn).to(torch.float32).numpy()
    add("f8_e4m3_all", "F8_E4M3", codes, e)

    # DeepSeek block-scaled FP8: weight [130, 260] with codes w[i] = (37*i + 11) % 256 over the
    # flat index i (NaN codes 0x7F/0xFF replaced by 0), weight_scale_inv [2, 3] f32.
    rows, cols, blk = 130, 260, 128
    i = np.arange(rows * cols, dtype=np.int64)
    w = ((37 * i + 11) % 256).astype(np.uint8)
    w[(w & 0x7F) == 0x7F] = 0
    scale = (rng.random((2, 3)) * 0.01 + 1e-4).astype(np.float32)
    wf = torch.from_numpy(w.copy()).view(torch.float8_e4m3fn).to(torch.float32).reshape(rows, cols)
    s = torch.from_numpy(scale).repeat_interleave(blk, 0)[:rows].repeat_interleave(blk, 1)[:, :cols]
    y = (wf * s).numpy().astype("<f4").reshape(-1)
    idx = sample_indices(y.size)
    block_scaled = {"rows": rows, "cols": cols, "block": blk,
                    "weight_formula": "(37*i + 11) % 256, codes with (c & 0x7F) == 0x7F -> 0",
                    "scale_inv": b64(scale.reshape(-1)),
                    "sha256": hashlib.sha256(y.tobytes()).hexdigest(),
                    "samples": b64(y[idx])}

    doc = {"generator": "scripts/gen_dequant_fixtures.py", "cases": cases,
           "fp8_block_scaled": block_scaled}
    with open(os.path.join(OUT, "synthetic.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


# Offsets of the f16 scale fields of each low-bit type's block (IQ1_M's d is split, see below).
LOWBIT_F16 = {T.IQ1_S: [0], T.IQ2_XXS: [0], T.IQ2_XS: [0], T.IQ2_S: [0], T.IQ3_XXS: [0],
              T.IQ3_S: [0], T.IQ4_XS: [0], T.IQ4_NL: [0], T.Q2_K: [80, 82], T.Q3_K: [108],
              T.TQ1_0: [52], T.TQ2_0: [64], T.IQ1_M: [], T.MXFP4: []}


def lowbit_blocks(qt, nblocks, rng):
    raw = random_blocks(qt, nblocks, rng, LOWBIT_F16[qt])
    if qt == T.IQ1_M:
        # d is the top nibble of each of the four u16 scale words at bytes 48..55
        d = (rng.standard_normal(nblocks) * 0.01).astype(np.float16).view(np.uint16)
        words = raw[:, 48:56].copy().view(np.uint16).reshape(nblocks, 4)
        for k in range(4):
            words[:, k] = (words[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        raw[:, 48:56] = words.view(np.uint8).reshape(nblocks, 8)
    if qt == T.MXFP4:
        raw[:, 0] = rng.integers(110, 135, size=nblocks)   # scales 2^-18 .. 2^6
    return raw


def lowbit_fixture():
    rng = np.random.default_rng(4321)
    cases = []

    def add(name, qt, raw, expected):
        assert np.all(np.isfinite(expected)), name
        cases.append({"name": name, "type": qt.name, "count": int(expected.size),
                      "raw": b64(raw.astype(np.uint8).reshape(-1)),
                      "expected": b64(expected.astype("<f4").reshape(-1))})

    for qt in LOWBIT_F16:
        nb = 3 if gguf.GGML_QUANT_SIZES[qt][0] == 256 else 8
        raw = lowbit_blocks(qt, nb, rng)
        add(f"{qt.name.lower()}_random", qt, raw, dequantize(raw, qt))
    for qt in [T.MXFP4, T.TQ1_0, T.TQ2_0]:
        x = (rng.standard_normal((2, 256)) * 0.3).astype(np.float32)
        x[0, :32] = 0
        raw = quantize(x, qt)
        add(f"{qt.name.lower()}_quantized", qt, raw, dequantize(raw, qt))
    doc = {"generator": "scripts/gen_dequant_fixtures.py --lowbit (gguf " + getattr(gguf, "__version__", "?") + ")",
           "cases": cases}
    with open(os.path.join(OUT, "lowbit.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["--lowbit"]:
        lowbit_fixture()
    else:
        synthetic_fixture()
        lowbit_fixture()
        model_fixture()
