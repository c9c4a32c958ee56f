#!/usr/bin/env python3
"""Write GGUF twins of the tiny DeepSeek-V4 fixture (fixtures/dsv4/tiny/model-{f32,q8_0}.gguf) the
way llama.cpp's converter writes DeepSeek-V4 (architecture `deepseek4`, DeepseekV4Model in
convert_hf_to_gguf): its tensor names and metadata keys. Run after gen_dsv4_fixtures.py;
developers only (CI never runs Python). The installed `gguf` package predates deepseek4, so the
key and tensor names are spelled out here.

As the converter does it:
  * DeepSeek's names map to blk.N.*: wq_a/wq_b/q_norm -> attn_q_a/attn_q_b/attn_q_a_norm,
    wkv/kv_norm -> attn_kv/attn_kv_a_norm, wo_a/wo_b -> attn_output_a/attn_output_b,
    attn_sink -> attn_sinks, compressor.{wkv,wgate,ape,norm} -> attn_compressor_{kv,gate,ape,norm},
    indexer.{wq_b,weights_proj} -> indexer.attn_q_b / indexer.proj,
    indexer.compressor.* -> indexer_compressor_*, hc_{attn,ffn}_{fn,base,scale} keep their names,
    hc_head_* -> output_hc_*; tensors as stored (V4's rope already pairs adjacent values);
  * routed experts stacked into ffn_{gate,up,down}_exps [n_expert, out, in] (DeepSeek's FP4 experts
    become MXFP4 there; the tiny model is f32), shared experts ffn_{gate,up,down}_shexp, router
    ffn_gate_inp, correction bias exp_probs_b.bias, the hash table ffn_gate_tid2eid as I32;
  * the MTP block (mtp.*) is skipped.
Metadata: the usual deepseek4.* sizes, expert_gating_func 4 (sqrt-softplus), swiglu_clamp_exp /
swiglu_clamp_shexp per layer, attention.compress_ratios per layer, attention.compress_rope_freq_base,
attention.output_group_count / output_lora_rank, attention.indexer.*, hyper_connection.*,
hash_layer_count, and YaRN for the compress rope (rope.scaling.*).
Q8_0 variant: large matrices (projections, experts, embeddings, head) Q8_0; norms, sinks, position
biases, hyper-connection mixes, the router and the hash table stay as they are.
"""
import json, os, sys
import numpy as np
import gguf
from safetensors.numpy import load_file

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "dsv4", "tiny")
ARCH = "deepseek4"

LAYER_NAMES = {
    "hc_attn_fn": "hc_attn_fn.weight", "hc_attn_base": "hc_attn_base.weight", "hc_attn_scale": "hc_attn_scale.weight",
    "hc_ffn_fn": "hc_ffn_fn.weight", "hc_ffn_base": "hc_ffn_base.weight", "hc_ffn_scale": "hc_ffn_scale.weight",
    "attn.attn_sink": "attn_sinks.weight",
    "attn.wq_a.weight": "attn_q_a.weight", "attn.wq_b.weight": "attn_q_b.weight", "attn.q_norm.weight": "attn_q_a_norm.weight",
    "attn.wkv.weight": "attn_kv.weight", "attn.kv_norm.weight": "attn_kv_a_norm.weight",
    "attn.wo_a.weight": "attn_output_a.weight", "attn.wo_b.weight": "attn_output_b.weight",
    "attn.compressor.ape": "attn_compressor_ape.weight", "attn.compressor.wkv.weight": "attn_compressor_kv.weight",
    "attn.compressor.wgate.weight": "attn_compressor_gate.weight", "attn.compressor.norm.weight": "attn_compressor_norm.weight",
    "attn.indexer.wq_b.weight": "indexer.attn_q_b.weight", "attn.indexer.weights_proj.weight": "indexer.proj.weight",
    "attn.indexer.compressor.ape": "indexer_compressor_ape.weight", "attn.indexer.compressor.wkv.weight": "indexer_compressor_kv.weight",
    "attn.indexer.compressor.wgate.weight": "indexer_compressor_gate.weight",
    "attn.indexer.compressor.norm.weight": "indexer_compressor_norm.weight",
    "attn_norm.weight": "attn_norm.weight", "ffn_norm.weight": "ffn_norm.weight",
    "ffn.gate.weight": "ffn_gate_inp.weight", "ffn.gate.bias": "exp_probs_b.bias", "ffn.gate.tid2eid": "ffn_gate_tid2eid.weight",
    "ffn.shared_experts.w1.weight": "ffn_gate_shexp.weight", "ffn.shared_experts.w2.weight": "ffn_down_shexp.weight",
    "ffn.shared_experts.w3.weight": "ffn_up_shexp.weight",
}
ROOT_NAMES = {"embed.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "head.weight": "output.weight",
              "hc_head_fn": "output_hc_fn.weight", "hc_head_base": "output_hc_base.weight", "hc_head_scale": "output_hc_scale.weight"}
# Quantized in the Q8_0 twin (the rest keeps its type, as small or index tensors do in llama.cpp's files).
Q8_SUFFIXES = ("attn_q_a.weight", "attn_q_b.weight", "attn_kv.weight", "attn_output_a.weight", "attn_output_b.weight",
               "_exps.weight", "_shexp.weight", "token_embd.weight", "output.weight")


def tensors(cfg, sd):
    out = []
    for k, v in sd.items():
        if k.startswith("mtp.") or ".ffn.experts." in k:
            continue
        if k in ROOT_NAMES:
            out.append((ROOT_NAMES[k], v)); continue
        layer, rest = k.split(".", 2)[1], k.split(".", 2)[2]
        name = f"blk.{layer}." + LAYER_NAMES[rest]
        out.append((name, v.astype(np.int32) if rest == "ffn.gate.tid2eid" else v))
    for i in range(cfg["num_hidden_layers"]):
        for proj, w in (("gate", "w1"), ("down", "w2"), ("up", "w3")):
            out.append((f"blk.{i}.ffn_{proj}_exps.weight",
                        np.stack([sd[f"layers.{i}.ffn.experts.{e}.{w}.weight"] for e in range(cfg["n_routed_experts"])])))
    return out


def metadata(w, cfg):
    L = cfg["num_hidden_layers"]
    u32, f32 = w.add_uint32, w.add_float32
    def key(k): return f"{ARCH}.{k}"
    w.add_name("tiny DeepSeek-V4")
    for k, v in [("block_count", L), ("context_length", cfg["max_position_embeddings"]), ("embedding_length", cfg["hidden_size"]),
                 ("vocab_size", cfg["vocab_size"]), ("attention.head_count", cfg["num_attention_heads"]),
                 ("attention.head_count_kv", cfg["num_key_value_heads"]), ("attention.key_length", cfg["head_dim"]),
                 ("attention.value_length", cfg["head_dim"]), ("rope.dimension_count", cfg["qk_rope_head_dim"]),
                 ("attention.q_lora_rank", cfg["q_lora_rank"]), ("attention.sliding_window", cfg["sliding_window"]),
                 ("expert_count", cfg["n_routed_experts"]), ("expert_used_count", cfg["num_experts_per_tok"]),
                 ("expert_feed_forward_length", cfg["moe_intermediate_size"]), ("expert_shared_count", cfg["n_shared_experts"]),
                 ("expert_gating_func", 4), ("attention.indexer.head_count", cfg["index_n_heads"]),
                 ("attention.indexer.key_length", cfg["index_head_dim"]), ("attention.indexer.top_k", cfg["index_topk"]),
                 ("attention.output_group_count", cfg["o_groups"]), ("attention.output_lora_rank", cfg["o_lora_rank"]),
                 ("hyper_connection.count", cfg["hc_mult"]), ("hyper_connection.sinkhorn_iterations", cfg["hc_sinkhorn_iters"]),
                 ("hash_layer_count", cfg["num_hash_layers"]), ("nextn_predict_layers", cfg["num_nextn_predict_layers"])]:
        u32(key(k), v)
    f32(key("attention.layer_norm_rms_epsilon"), cfg["rms_norm_eps"])
    f32(key("rope.freq_base"), cfg["rope_parameters"]["main"]["rope_theta"])
    f32(key("attention.compress_rope_freq_base"), cfg["rope_parameters"]["compress"]["rope_theta"])
    f32(key("expert_weights_scale"), cfg["routed_scaling_factor"])
    w.add_bool(key("expert_weights_norm"), cfg["norm_topk_prob"])
    f32(key("hyper_connection.epsilon"), cfg["hc_eps"])
    w.add_array(key("swiglu_clamp_exp"), [float(cfg["swiglu_limit"])] * L)
    w.add_array(key("swiglu_clamp_shexp"), [float(cfg["swiglu_limit"])] * L)
    w.add_array(key("attention.compress_ratios"), [int(r) for r in cfg["compress_ratios"][:L]])
    rp = cfg["rope_parameters"]["compress"]
    if rp.get("rope_type") == "yarn":
        w.add_string(key("rope.scaling.type"), "yarn")
        f32(key("rope.scaling.factor"), rp["factor"])
        u32(key("rope.scaling.original_context_length"), rp["original_max_position_embeddings"])
        f32(key("rope.scaling.yarn_beta_fast"), rp.get("beta_fast", 32.0))
        f32(key("rope.scaling.yarn_beta_slow"), rp.get("beta_slow", 1.0))


def write(qtype):
    cfg = json.load(open(os.path.join(D, "config.json")))
    sd = load_file(os.path.join(D, "model.safetensors"))
    suffix = "f32" if qtype == gguf.GGMLQuantizationType.F32 else "q8_0"
    path = os.path.join(D, f"model-{suffix}.gguf")
    w = gguf.GGUFWriter(path, ARCH)
    metadata(w, cfg)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if suffix == "f32" else gguf.LlamaFileType.MOSTLY_Q8_0)
    for name, arr in tensors(cfg, sd):
        if arr.dtype != np.int32:
            arr = np.ascontiguousarray(arr.astype(np.float32))
        if qtype != gguf.GGMLQuantizationType.F32 and name.endswith(Q8_SUFFIXES) and arr.shape[-1] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, arr)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(path, os.path.getsize(path), "bytes")


def write_llama_q8():
    """model-llama-q8_0.gguf: the f32 twin through llama.cpp's own quantizer (llama-cpp-python's
    llama_model_quantize), which also quantizes the hyper-connection mixes, position biases and
    the indexer's weights_proj that our Q8_0 twin keeps in f32."""
    import llama_cpp
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, 1
    src, dst = os.path.join(D, "model-f32.gguf"), os.path.join(D, "model-llama-q8_0.gguf")
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p) != 0:
        sys.exit("llama_model_quantize failed")
    print(dst, os.path.getsize(dst), "bytes")


if __name__ == "__main__":
    if "--llama-q8" in sys.argv:   # needs model-f32.gguf (run without arguments first)
        write_llama_q8()
        sys.exit(0)
    for q in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0):
        write(q)
