#!/usr/bin/env python3
"""Write the V4-Flash-shaped MoE benchmark model: DeepSeek-V4-Flash's layer kinds with random
weights and widths scaled to fit this machine, as a Q8_0 GGUF laid out the way llama.cpp's
converter writes `deepseek4` (the names of scripts/gen_dsv4_gguf.py), and optionally its Q4_K_M
twin made by llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize), so the mix is
the one llama-quantize would pick. The sibling of gen_moe_bench_gguf.py (the V2-Lite twin), whose
streaming writer and tokenizer copy it reuses. Developers only; CI never runs Python.

What is kept from V4-Flash (config.json) and what is scaled:
  kept    every layer kind: compress ratios 0 (sliding window only), 4 (CSA + lightning
          indexer) and 128 (HCA), interleaved as V4-Flash has them (two sliding layers, then CSA
          and HCA alternating: 8 layers are V4-Flash's first 8; its 43rd and last layer is
          sliding-only again); sliding window 128; per-head attention sinks; hyper-connections
          (hc_mult 4, 20 Sinkhorn iterations); the first 3 layers hash-routed by tid2eid;
          sqrt-softplus scoring, top-6, norm_topk, routed_scaling_factor 1.5, swiglu_limit 10;
          one shared expert; the grouped low-rank output projection; rope 64 of head_dim with
          the main rope (theta 10000) on sliding layers and the YaRN compress rope (theta
          160000, factor 16 over 65536) on compressed ones.
  scaled  hidden 4096 -> 1024, 43 -> 8 layers, 64 -> 16 heads, head_dim 512 -> 256,
          q_lora 1024 -> 512, o_groups 8 -> 4 (4 heads per group, V4-Flash has 8),
          o_lora 1024 -> 256, 256 -> 64 routed experts of 2048 -> 256, indexer 64 x 128 ->
          16 x 64 with top-k 512 -> 64 (so a 512-token prompt's 128 CSA entries are really
          selected from), vocabulary 129280 -> the default model's 151936 (its tokenizer, so
          both engines tokenize alike). All widths are multiples of 256 so Q4_K_M keeps them
          (llama.cpp's quantizer falls back to other types on rows that are not whole blocks).
  dropped the MTP block (nextn_predict_layers 0): neither engine's generation uses it.
Weights: N(0, 0.02) for matrices (embedding included), 1 for norms, 0 for sinks, position biases,
routing biases and hyper-connection bases (scale 1): with RMSNorm in front of every projection
the activations stay O(1). tid2eid: 6 distinct random experts per token. Each tensor has its own
seed (from its name), so the file is reproducible. ~0.9 GB Q8_0, ~0.55 GB Q4_K_M.

usage: scripts/gen_v4flash_bench_gguf.py [--out-dir $TIEFSEE_HOME/bench] [--layers 8] [--q4]
       scripts/gen_v4flash_bench_gguf.py --check [-n 32] [--threads 2]   # both engines on the files
"""
import argparse, os, sys, time, zlib
import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_moe_bench_gguf import Streamed, copy_tokenizer, TIEFSEE_HOME, TOKENIZER_GGUF  # noqa: E402

ARCH = "deepseek4"
Q8 = gguf.GGMLQuantizationType.Q8_0
STD = 0.02
CFG = dict(hidden=1024, heads=16, head_dim=256, rope=64, q_lora=512, o_groups=4, o_lora=256,
           experts=64, top_k=6, shared=1, moe_inter=256, window=128, hc=4, sinkhorn=20, hc_eps=1e-6,
           idx_heads=16, idx_dim=64, idx_topk=64, hash_layers=3, eps=1e-6, theta=10000.0,
           compress_theta=160000.0, yarn_factor=16.0, yarn_orig=65536, scaling=1.5, swiglu=10.0)


def ratios(layers):
    """V4-Flash's interleave: two sliding-window layers, then CSA (4) and HCA (128) alternating
    (V4-Flash's 43 layers end with one more sliding layer; a short stack keeps the prefix)."""
    return [0 if i < 2 else (4 if i % 2 == 0 else 128) for i in range(layers)]


def attention_plan(i, ratio):
    """[(name, numpy shape, kind)] of layer i's attention and hyper-connections."""
    c, b = CFG, f"blk.{i}."
    H, hd, mix = c["hidden"], c["head_dim"], (2 + c["hc"]) * c["hc"]
    out = [(b + "attn_norm.weight", (H,), "one"), (b + "attn_sinks.weight", (c["heads"],), "zero"),
           (b + "attn_q_a.weight", (c["q_lora"], H), "q8"), (b + "attn_q_a_norm.weight", (c["q_lora"],), "one"),
           (b + "attn_q_b.weight", (c["heads"] * hd, c["q_lora"]), "q8"),
           (b + "attn_kv.weight", (hd, H), "q8"), (b + "attn_kv_a_norm.weight", (hd,), "one"),
           (b + "attn_output_a.weight", (c["o_groups"] * c["o_lora"], c["heads"] * hd // c["o_groups"]), "q8"),
           (b + "attn_output_b.weight", (H, c["o_groups"] * c["o_lora"]), "q8")]
    for hc in ("attn", "ffn"):
        out += [(b + f"hc_{hc}_fn.weight", (mix, c["hc"] * H), "f32"), (b + f"hc_{hc}_base.weight", (mix,), "zero"),
                (b + f"hc_{hc}_scale.weight", (3,), "one")]
    if ratio:
        w = (2 if ratio == 4 else 1) * hd   # CSA's two overlapping series, HCA's one
        out += [(b + "attn_compressor_kv.weight", (w, H), "q8"), (b + "attn_compressor_gate.weight", (w, H), "q8"),
                (b + "attn_compressor_ape.weight", (ratio, w), "zero"), (b + "attn_compressor_norm.weight", (hd,), "one")]
    if ratio == 4:
        d = c["idx_dim"]
        out += [(b + "indexer.proj.weight", (c["idx_heads"], H), "f32"),
                (b + "indexer.attn_q_b.weight", (c["idx_heads"] * d, c["q_lora"]), "q8"),
                (b + "indexer_compressor_kv.weight", (2 * d, H), "q8"), (b + "indexer_compressor_gate.weight", (2 * d, H), "q8"),
                (b + "indexer_compressor_ape.weight", (4, 2 * d), "zero"), (b + "indexer_compressor_norm.weight", (d,), "one")]
    return out


def moe_plan(i, vocab):
    c, b = CFG, f"blk.{i}."
    H, E, f, s = c["hidden"], c["experts"], c["moe_inter"], c["shared"] * c["moe_inter"]
    out = [(b + "ffn_norm.weight", (H,), "one"), (b + "ffn_gate_inp.weight", (E, H), "f32")]
    out.append((b + "ffn_gate_tid2eid.weight", (vocab, c["top_k"]), "i32") if i < c["hash_layers"]
               else (b + "exp_probs_b.bias", (E,), "zero"))
    return out + [(b + "ffn_gate_exps.weight", (E, f, H), "q8"), (b + "ffn_up_exps.weight", (E, f, H), "q8"),
                  (b + "ffn_down_exps.weight", (E, H, f), "q8"),
                  (b + "ffn_gate_shexp.weight", (s, H), "q8"), (b + "ffn_up_shexp.weight", (s, H), "q8"),
                  (b + "ffn_down_shexp.weight", (H, s), "q8")]


def plan(layers, vocab):
    c = CFG
    H = c["hidden"]
    out = [("token_embd.weight", (vocab, H), "q8")]
    for i, r in enumerate(ratios(layers)):
        out += attention_plan(i, r) + moe_plan(i, vocab)
    return out + [("output_norm.weight", (H,), "one"), ("output.weight", (vocab, H), "q8"),
                  ("output_hc_fn.weight", (c["hc"], c["hc"] * H), "f32"), ("output_hc_base.weight", (c["hc"],), "zero"),
                  ("output_hc_scale.weight", (1,), "one")]


def nbytes(shape, kind):
    n = int(np.prod(shape))
    if kind == "q8":
        bs, ts = gguf.GGML_QUANT_SIZES[Q8]
        return n // bs * ts
    return n * 4


def chunks_of(name, shape, kind, seed):
    """A generator factory: the tensor's bytes in order, <= ~4M values per chunk."""
    rows, n = int(np.prod(shape[:-1])), shape[-1]
    per = max(1, (4 << 20) // n)

    def gen():
        if kind in ("one", "zero"):
            yield np.full(shape, 1.0 if kind == "one" else 0.0, dtype=np.float32)
            return
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if kind == "i32":   # tid2eid: top_k distinct experts per token
            keys = rng.random((shape[0], CFG["experts"]), dtype=np.float32)
            yield np.argsort(keys, axis=1)[:, :shape[1]].astype(np.int32)
            return
        for r0 in range(0, rows, per):
            x = rng.standard_normal((min(per, rows - r0), n), dtype=np.float32)
            x *= STD
            yield x if kind == "f32" else gguf.quants.quantize(x, Q8)
    return gen


def metadata(w, layers, vocab):
    c = CFG
    u32, f32 = w.add_uint32, w.add_float32
    def key(k): return f"{ARCH}.{k}"
    w.add_name("DeepSeek-V4-Flash-shaped MoE benchmark (random weights)")
    w.add_type("model")
    for k, v in [("block_count", layers), ("context_length", c["yarn_orig"] * int(c["yarn_factor"])),
                 ("embedding_length", c["hidden"]), ("vocab_size", vocab), ("attention.head_count", c["heads"]),
                 ("attention.head_count_kv", 1), ("attention.key_length", c["head_dim"]),
                 ("attention.value_length", c["head_dim"]), ("rope.dimension_count", c["rope"]),
                 ("attention.q_lora_rank", c["q_lora"]), ("attention.sliding_window", c["window"]),
                 ("expert_count", c["experts"]), ("expert_used_count", c["top_k"]),
                 ("expert_feed_forward_length", c["moe_inter"]), ("expert_shared_count", c["shared"]),
                 ("expert_gating_func", 4), ("attention.indexer.head_count", c["idx_heads"]),
                 ("attention.indexer.key_length", c["idx_dim"]), ("attention.indexer.top_k", c["idx_topk"]),
                 ("attention.output_group_count", c["o_groups"]), ("attention.output_lora_rank", c["o_lora"]),
                 ("hyper_connection.count", c["hc"]), ("hyper_connection.sinkhorn_iterations", c["sinkhorn"]),
                 ("hash_layer_count", c["hash_layers"]), ("nextn_predict_layers", 0)]:
        u32(key(k), v)
    f32(key("attention.layer_norm_rms_epsilon"), c["eps"])
    f32(key("rope.freq_base"), c["theta"])
    f32(key("attention.compress_rope_freq_base"), c["compress_theta"])
    f32(key("expert_weights_scale"), c["scaling"])
    w.add_bool(key("expert_weights_norm"), True)
    f32(key("hyper_connection.epsilon"), c["hc_eps"])
    w.add_array(key("swiglu_clamp_exp"), [c["swiglu"]] * layers)
    w.add_array(key("swiglu_clamp_shexp"), [c["swiglu"]] * layers)
    w.add_array(key("attention.compress_ratios"), ratios(layers))
    w.add_string(key("rope.scaling.type"), "yarn")
    f32(key("rope.scaling.factor"), c["yarn_factor"])
    u32(key("rope.scaling.original_context_length"), c["yarn_orig"])
    f32(key("rope.scaling.yarn_beta_fast"), 32.0)
    f32(key("rope.scaling.yarn_beta_slow"), 1.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_q8(path, layers, seed):
    w = gguf.GGUFWriter(path, ARCH)
    vocab = copy_tokenizer(w, TOKENIZER_GGUF)
    metadata(w, layers, vocab)
    tensors = plan(layers, vocab)
    for name, shape, kind in tensors:
        if kind == "q8":
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(shape, kind), raw_dtype=Q8)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.int32 if kind == "i32" else np.float32), nbytes(shape, kind))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
    total = sum(nbytes(s, k) for _, s, k in tensors)
    done, t0 = 0, time.time()
    for name, shape, kind in tensors:
        w.write_tensor_data(Streamed(nbytes(shape, kind), chunks_of(name, shape, kind, seed)))
        done += nbytes(shape, kind)
        print(f"\r{done / 1e9:6.2f} / {total / 1e9:.2f} GB  {time.time() - t0:5.0f}s  {name:36}", end="", file=sys.stderr)
    print(file=sys.stderr)
    w.close()
    print(path, os.path.getsize(path), "bytes")


def quantize_q4_k_m(src, dst, threads):
    """llama.cpp's own Q4_K_M mix (the file llama-quantize would write), from the Q8_0 file."""
    import llama_cpp
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    p.allow_requantize = True
    p.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p)
    if rc != 0:
        sys.exit(f"llama_model_quantize failed ({rc})")
    print(dst, os.path.getsize(dst), "bytes")


def check(paths, prompt, n, threads):
    """Both engines on each file (compare_lowbit_llama_cpp.compare): leading greedy agreement over
    n tokens, then teacher-forced top-1 agreement and mean/max KL(llama.cpp || Tiefsee)."""
    import json, tempfile
    import compare_lowbit_llama_cpp as cmp
    for p in paths:
        with tempfile.TemporaryDirectory() as work:
            res = cmp.compare(p, prompt, n, threads, work)[0]
        print(json.dumps(res))


PROMPT = "The history of the deep sea begins with the first soundings of the ocean floor, when"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(TIEFSEE_HOME, "bench"))
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--q4", action="store_true", help="also write the Q4_K_M file with llama.cpp's quantizer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="only compare the engines on the files already written")
    ap.add_argument("-n", type=int, default=32, help="greedy tokens for --check")
    a = ap.parse_args()
    q8 = os.path.join(a.out_dir, "moe-bench-v4flash-q8_0.gguf")
    q4 = os.path.join(a.out_dir, "moe-bench-v4flash-q4_k_m.gguf")
    if a.check:
        check([p for p in (q8, q4) if os.path.exists(p)], PROMPT, a.n, a.threads)
        return
    os.makedirs(a.out_dir, exist_ok=True)
    write_q8(q8, a.layers, a.seed)
    if a.q4:
        quantize_q4_k_m(q8, q4, a.threads)


if __name__ == "__main__":
    main()
