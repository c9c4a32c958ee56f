#!/usr/bin/env python3
"""Write the MoE benchmark model: DeepSeek-V2-Lite's shape with random weights, as a Q8_0 GGUF
laid out the way llama.cpp's current converter writes deepseek2 (so llama.cpp loads it too), and
optionally its Q4_K_M twin made by `tiefsee quantize`. Developers only; CI never runs Python.

Shape (DeepSeek-V2-Lite's config, fewer layers):
  hidden 2048, 8 layers: layer 0 a dense SwiGLU MLP (intermediate 10944, first_k_dense_replace 1),
  layers 1-7 MoE; 16 heads of MLA without q_lora (V2-Lite: plain q_proj), kv_lora_rank 512,
  qk_nope 128, qk_rope 64, v_head 128; 64 routed experts (moe_intermediate 1408), top-6 by softmax
  (greedy, weights not renormalised, routed_scaling_factor 1) plus 2 shared experts (one MLP of
  2 x 1408); YaRN rope (factor 40 over 4096 positions, mscale_all_dim 0.707, theta 10000).
Tokenizer: the default model's (Qwen2.5 byte-level BPE, pre-tokenizer qwen2) copied from its GGUF,
so both engines tokenize the same way; the vocabulary (151936) sets the embedding/head rows.

Weights: N(0, 0.02) for every matrix (embedding included), 1 for norms: with RMSNorm in front of
every projection the activations stay O(1). The random router sends tokens to experts roughly
uniformly. Each tensor has its own seed (from its name), so the file is reproducible.

Layout as the converter writes MLA today: head_count_kv 1, key_length = kv_lora_rank + qk_rope,
value_length = kv_lora_rank, key/value_length_mla per head, kv_b_proj split into attn_k_b
[n_head, kv_lora, qk_nope] and attn_v_b [n_head, v_head, kv_lora]; experts stacked
[n_expert, out, in]; expert_gating_func softmax. Q8_0 for every matrix whose rows are whole
blocks; norms and the router (ffn_gate_inp) stay F32, as llama-quantize leaves them.

Memory stays bounded: each tensor is generated and quantized in chunks (one expert, or ~4M
values) that stream straight into the file. ~5.1 GB for Q8_0, a few minutes on 2 cores.

usage: scripts/gen_moe_bench_gguf.py [--out-dir $TIEFSEE_HOME/bench] [--layers 8]
                                     [--dense-layers 1] [--q4]   # --q4: also write Q4_K_M
"""
import argparse, os, subprocess, sys, time, zlib
import numpy as np
import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TIEFSEE_HOME = os.environ.get("TIEFSEE_HOME") or os.path.expanduser("~/.cache/tiefsee")
TOKENIZER_GGUF = os.path.join(TIEFSEE_HOME, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
K = gguf.MODEL_TENSOR
Q8 = gguf.GGMLQuantizationType.Q8_0

# DeepSeek-V2-Lite's config.json values (layers are a parameter).
CFG = dict(hidden=2048, heads=16, kv_lora=512, nope=128, rope=64, v_head=128, dense_inter=10944,
           experts=64, top_k=6, shared=2, moe_inter=1408, eps=1e-6, theta=10000.0, max_pos=163840,
           yarn_factor=40.0, yarn_orig=4096, mscale_all_dim=0.707)
STD = 0.02


def tname(t, bid=None):
    n = gguf.TENSOR_NAMES[t]
    return (n.format(bid=bid) if bid is not None else n) + ".weight"


class Streamed:
    """Looks like a numpy array to GGUFWriter.write_tensor_data: `nbytes`, and `tofile` that
    writes the tensor chunk by chunk, so no tensor is ever in memory whole."""
    def __init__(self, nbytes, chunks):
        self.nbytes, self.chunks = nbytes, chunks

    def tofile(self, f):
        written = 0
        for c in self.chunks():
            c.tofile(f)
            written += c.nbytes
        assert written == self.nbytes, (written, self.nbytes)


def plan(layers, dense_layers, vocab):
    """[(name, shape (outermost first), kind)] in file order; kind: 'norm', 'f32' or 'q8'."""
    c = CFG
    H, heads = c["hidden"], c["heads"]
    out = [(tname(K.TOKEN_EMBD), (vocab, H), "q8")]
    for i in range(layers):
        out += [(tname(K.ATTN_NORM, i), (H,), "norm"),
                (tname(K.ATTN_Q, i), (heads * (c["nope"] + c["rope"]), H), "q8"),
                (tname(K.ATTN_KV_A_MQA, i), (c["kv_lora"] + c["rope"], H), "q8"),
                (tname(K.ATTN_KV_A_NORM, i), (c["kv_lora"],), "norm"),
                (tname(K.ATTN_K_B, i), (heads, c["kv_lora"], c["nope"]), "q8"),
                (tname(K.ATTN_V_B, i), (heads, c["v_head"], c["kv_lora"]), "q8"),
                (tname(K.ATTN_OUT, i), (H, heads * c["v_head"]), "q8"),
                (tname(K.FFN_NORM, i), (H,), "norm")]
        if i < dense_layers:
            f = c["dense_inter"]
            out += [(tname(K.FFN_GATE, i), (f, H), "q8"), (tname(K.FFN_UP, i), (f, H), "q8"),
                    (tname(K.FFN_DOWN, i), (H, f), "q8")]
        else:
            E, f, s = c["experts"], c["moe_inter"], c["shared"] * c["moe_inter"]
            out += [(tname(K.FFN_GATE_INP, i), (E, H), "f32"),
                    (tname(K.FFN_GATE_EXP, i), (E, f, H), "q8"), (tname(K.FFN_UP_EXP, i), (E, f, H), "q8"),
                    (tname(K.FFN_DOWN_EXP, i), (E, H, f), "q8"),
                    (tname(K.FFN_GATE_SHEXP, i), (s, H), "q8"), (tname(K.FFN_UP_SHEXP, i), (s, H), "q8"),
                    (tname(K.FFN_DOWN_SHEXP, i), (H, s), "q8")]
    out += [(tname(K.OUTPUT_NORM), (H,), "norm"), (tname(K.OUTPUT), (vocab, H), "q8")]
    return out


def chunks_of(name, shape, kind, seed):
    """A generator factory: the tensor's bytes in order, ≤ ~4M values per chunk."""
    rows, n = int(np.prod(shape[:-1])), shape[-1]
    per = max(1, (4 << 20) // n)

    def gen():
        if kind == "norm":
            yield np.ones(shape, dtype=np.float32)
            return
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        for r0 in range(0, rows, per):
            x = rng.standard_normal((min(per, rows - r0), n), dtype=np.float32)
            x *= STD
            yield x if kind == "f32" else gguf.quants.quantize(x, Q8)
    return gen


def nbytes(shape, kind):
    n = int(np.prod(shape))
    if kind == "q8":
        bs, ts = gguf.GGML_QUANT_SIZES[Q8]
        return n // bs * ts
    return n * 4


def copy_tokenizer(w, path):
    """tokenizer.* keys (and the chat template) of the default model's GGUF."""
    r = gguf.GGUFReader(path)
    vocab = None
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vt = f.types[0]
        val = f.contents()
        if key == "tokenizer.ggml.tokens":
            vocab = len(val)
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, val, vt, sub_type=f.types[1])
        else:
            w.add_key_value(key, val, vt)
    return vocab


def write_q8(path, layers, dense_layers, seed):
    c = CFG
    w = gguf.GGUFWriter(path, "deepseek2")
    w.add_name("DeepSeek-V2-Lite-shaped MoE benchmark (random weights)")
    w.add_type("model")
    vocab = copy_tokenizer(w, TOKENIZER_GGUF)
    w.add_block_count(layers)
    w.add_context_length(c["max_pos"])
    w.add_embedding_length(c["hidden"])
    w.add_feed_forward_length(c["dense_inter"])
    w.add_head_count(c["heads"])
    w.add_head_count_kv(1)  # MLA written as MQA over the latent, as the converter does
    w.add_rope_freq_base(c["theta"])
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_expert_used_count(c["top_k"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_leading_dense_block_count(dense_layers)
    w.add_vocab_size(vocab)
    # V2-Lite has no q_lora_rank and the converter writes none, but llama.cpp only skips the key
    # for 26/27-layer files (it recognises V2-Lite by its depth); 0 means the same to both engines.
    w.add_q_lora_rank(0)
    w.add_kv_lora_rank(c["kv_lora"])
    w.add_key_length(c["kv_lora"] + c["rope"]); w.add_value_length(c["kv_lora"])
    w.add_key_length_mla(c["nope"] + c["rope"]); w.add_value_length_mla(c["v_head"])
    w.add_expert_feed_forward_length(c["moe_inter"])
    w.add_expert_count(c["experts"])
    w.add_expert_shared_count(c["shared"])
    w.add_expert_weights_scale(1.0)
    w.add_expert_weights_norm(False)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_rope_dimension_count(c["rope"])
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(c["yarn_factor"])
    w.add_rope_scaling_orig_ctx_len(c["yarn_orig"])
    w.add_rope_scaling_yarn_log_mul(0.1 * c["mscale_all_dim"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tensors = plan(layers, dense_layers, vocab)
    for name, shape, kind in tensors:
        if kind == "q8":
            # (a non-uint8 dtype with raw_dtype: the shape is taken in elements, not bytes)
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(shape, kind), raw_dtype=Q8)
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(shape, kind))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
    total = sum(nbytes(s, k) for _, s, k in tensors)
    done, t0 = 0, time.time()
    for name, shape, kind in tensors:
        w.write_tensor_data(Streamed(nbytes(shape, kind), chunks_of(name, shape, kind, seed)))
        done += nbytes(shape, kind)
        print(f"\r{done / 1e9:6.2f} / {total / 1e9:.2f} GB  {time.time() - t0:5.0f}s  {name:32}", end="", file=sys.stderr)
    print(file=sys.stderr)
    w.close()
    print(path, os.path.getsize(path), "bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(TIEFSEE_HOME, "bench"))
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--dense-layers", type=int, default=1, help="leading dense layers (first_k_dense_replace)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--q4", action="store_true", help="also write the Q4_K_M file with `tiefsee quantize`")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    q8 = os.path.join(a.out_dir, "moe-bench-v2lite-q8_0.gguf")
    write_q8(q8, a.layers, a.dense_layers, a.seed)
    if a.q4:
        exe = os.path.join(ROOT, ".build", "release", "tiefsee")
        subprocess.run([exe, "quantize", q8, os.path.join(a.out_dir, "moe-bench-v2lite-q4_k_m.gguf"), "--type", "Q4_K_M"],
                       check=True)


if __name__ == "__main__":
    main()
