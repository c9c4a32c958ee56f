#!/usr/bin/env python3
"""Developer check: the error of Tiefsee's quantizers (Sources/CKernels/quantize*.c, compiled
here with clang) against ggml's own (llama-cpp-python's libggml-base, ggml_quantize_chunk) on the
same rows, both read back by the gguf package's dequantizer.

Rows: pseudo-Gaussian with per-column scales (0.5..2, like real weight matrices); the importance
row is a skewed imatrix (a few columns with large mean squared activations). Printed: the
importance-weighted relative rms error of each engine and the ratio Tiefsee / ggml.

usage: scripts/compare_quantizer_error.py [--rows 64] [--cols 1024] [--real MODEL.gguf TENSOR]
"""
import argparse, ctypes, os, sys, tempfile, time
import numpy as np
import gguf
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_quantized_block_fixtures import build_library  # noqa: E402

Q = gguf.GGMLQuantizationType


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=1024)
    a = ap.parse_args()
    import llama_cpp
    G = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    G.ggml_quantize_chunk.restype = ctypes.c_size_t
    G.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                      ctypes.c_int64, ctypes.c_void_p]
    rng = np.random.default_rng(1)
    rows, n = a.rows, a.cols
    x = (rng.standard_normal((rows, n)) * (0.5 + 1.5 * rng.random(n))).astype(np.float32)
    imat = (rng.random(n) ** 4 * 10 + 0.01).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        T = build_library(tmp)
        for label, w, types in [("no imatrix", None, ["Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"]),
                                ("imatrix", imat, ["Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"])]:
            print(label)
            for name in types:
                t = Q[name]
                bs, tb = gguf.GGML_QUANT_SIZES[t]
                err, secs = {}, {}
                for eng in ("ggml", "tiefsee"):
                    buf = np.zeros(rows * n // bs * tb, np.uint8)
                    t0 = time.perf_counter()
                    wp = None if w is None else w.ctypes.data
                    if eng == "ggml":
                        G.ggml_quantize_init(int(t))
                        G.ggml_quantize_chunk(int(t), x.ctypes.data, buf.ctypes.data, 0, rows, n, wp)
                    else:
                        assert T.tf_quantize_rows(int(t), x.ctypes.data, buf.ctypes.data, rows, n, wp) == 0
                    secs[eng] = time.perf_counter() - t0
                    y = dequantize(buf, t).reshape(rows, n)
                    ww = w if w is not None else np.ones(n, np.float32)
                    err[eng] = float(np.sqrt(((y - x) ** 2 * ww).sum() / ((x ** 2) * ww).sum()))
                print(f"  {name:8s} weighted rel rms error: ggml {err['ggml']:.4f}  tiefsee {err['tiefsee']:.4f}  "
                      f"ratio {err['tiefsee'] / err['ggml']:.3f}   time ggml {secs['ggml'] * 1e3:.0f} ms, tiefsee {secs['tiefsee'] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
