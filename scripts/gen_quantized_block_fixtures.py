#!/usr/bin/env python3
"""Generate fixtures/dequant/tiefsee-quantized.json: blocks written by Tiefsee's own quantizers
(Sources/CKernels/quantize.c, quantize_iq.c), dequantized by the `gguf` package.

For each low-bit type `tiefsee quantize` writes (Q2_K, Q3_K, IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS,
IQ1_S, IQ1_M), with and without an importance row: a row of 512 deterministic pseudo-Gaussian
values (column scales varying over 0.5..2), the importance (mean squares of random activations),
the bytes the C quantizer writes for them, and gguf.quants.dequantize of those bytes. The Swift
test (QuantizeTests.testQuantizedBlocksMatchGGUFPackage) re-quantizes the input and expects the
same bytes, dequantizes them and expects gguf's values bit for bit, and bounds gguf's values'
error against the input — so the blocks mean to another reader what Tiefsee means by them.

The C sources are compiled into a temporary shared library with clang (the Swift toolchain's).
Re-run after changing a quantizer: python3 scripts/gen_quantized_block_fixtures.py
"""
import base64, ctypes, json, os, subprocess, tempfile
import numpy as np
import gguf
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "Sources", "CKernels")
TYPES = ["Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"]
N = 512


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def build_library(tmp):
    so = os.path.join(tmp, "libtfq.so")
    files = [os.path.join(SRC, f) for f in ["quantize.c", "quantize_iq.c", "iq_tables.c"]]
    subprocess.run(["clang", "-O2", "-mavx2", "-mfma", "-mf16c", "-shared", "-fPIC", "-I", os.path.join(SRC, "include")]
                   + files + ["-o", so], check=True)
    lib = ctypes.CDLL(so)
    lib.tf_quantize_rows.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


def main():
    rng = np.random.default_rng(20261206)
    x = (rng.standard_normal(N) * (0.5 + 1.5 * rng.random(N))).astype(np.float32) * 0.02
    acts = rng.standard_normal((64, N)).astype(np.float32) * (rng.random(N) ** 3 * 4 + 0.1).astype(np.float32)
    imatrix = (acts ** 2).mean(axis=0).astype(np.float32)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_library(tmp)
        for name in TYPES:
            qt = gguf.GGMLQuantizationType[name]
            bs, ts = gguf.GGML_QUANT_SIZES[qt]
            for w in (None, imatrix):
                buf = np.zeros(N // bs * ts, np.uint8)
                rc = lib.tf_quantize_rows(int(qt), x.ctypes.data, buf.ctypes.data, 1, N, None if w is None else w.ctypes.data)
                assert rc == 0, (name, rc)
                y = dequantize(buf, qt).astype(np.float32).reshape(-1)
                case = {"name": f"{name}{'-imatrix' if w is not None else ''}", "type": name, "count": N,
                        "input": b64(x), "raw": b64(buf), "expected": b64(y)}
                if w is not None:
                    case["importance"] = b64(w)
                err = float(np.sqrt(((y - x) ** 2).sum() / (x ** 2).sum()))
                print(f"{case['name']:16s} rel rms err {err:.4f}")
                cases.append(case)
    doc = {"generator": "scripts/gen_quantized_block_fixtures.py (gguf " + getattr(gguf, "__version__", "?") + ")", "cases": cases}
    with open(os.path.join(ROOT, "fixtures", "dequant", "tiefsee-quantized.json"), "w") as f:
        json.dump(doc, f, indent=0)


if __name__ == "__main__":
    main()
