#!/usr/bin/env python3
"""Write GGUF twins of the tiny MoE fixtures (fixtures/moe/<name>/model-{f32,q8_0}.gguf) with the
`gguf` package, following llama.cpp's convert_hf_to_gguf.py: its tensor names, tensor layouts
and metadata keys. Run after gen_moe_fixtures.py; developers only (CI never runs Python).

Per architecture (as the converter does it):
  * llama + experts (Mixtral): Q/K rows permuted so rope rotates adjacent pairs; experts stacked
    into blk.N.ffn_{gate,up,down}_exps [n_expert, out, in]; router = ffn_gate_inp.
  * qwen3moe: HF layout kept (rotate-half rope), attn_{q,k}_norm, stacked experts.
  * deepseek2, two converter generations:
      deepseek-v3      the current converter: head_count_kv 1, key_length = kv_lora_rank +
                       qk_rope_head_dim, value_length = kv_lora_rank, key/value_length_mla per head,
                       kv_b_proj split into attn_k_b [n_head, kv_lora_rank, qk_nope] (transposed) and
                       attn_v_b [n_head, v_head_dim, kv_lora_rank]; expert_gating_func = sigmoid,
                       exp_probs_b.bias, expert_group_count/used_count, yarn_log_multiplier.
      deepseek-v2-lite an older converter: attn_kv_b as is, key_length = qk_nope + qk_rope,
                       value_length = v_head_dim, head_count_kv = n_head, and no
                       expert_gating_func (which means softmax).
deepseek-v3 also gets model-mtp-{f32,q8_0}.gguf: the same plus its multi-token-prediction layer as
blk.3 (block_count 4, deepseek2.nextn_predict_layers 1, blk.3.nextn.{enorm,hnorm,eh_proj,
embed_tokens,shared_head_norm,shared_head_head} next to the block's usual tensors).
Q8_0 variant: like llama-quantize, 2-D+ weights become Q8_0 when rows are whole blocks; norms,
biases and the router (ffn_gate_inp) stay F32.
"""
import json, os, sys
import numpy as np
import torch
import gguf
from safetensors.torch import load_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "moe")
K = gguf.MODEL_TENSOR


def tname(t, bid=None, suffix="weight"):
    n = gguf.TENSOR_NAMES[t]
    return (n.format(bid=bid) if bid is not None else n) + "." + suffix


def stacked_experts(sd, i, E):
    """{gate,up,down}: [E, out, in] from whichever layout the safetensors file uses."""
    p = f"model.layers.{i}."
    if p + "mlp.experts.gate_up_proj" in sd:  # transformers 5 fused layout
        gu = sd[p + "mlp.experts.gate_up_proj"]
        half = gu.shape[1] // 2
        return {"gate": gu[:, :half], "up": gu[:, half:], "down": sd[p + "mlp.experts.down_proj"]}
    if p + "block_sparse_moe.experts.0.w1.weight" in sd:  # Mixtral hub names
        m = {"gate": "w1", "up": "w3", "down": "w2"}
        return {k: torch.stack([sd[f"{p}block_sparse_moe.experts.{e}.{v}.weight"] for e in range(E)]) for k, v in m.items()}
    return {k: torch.stack([sd[f"{p}mlp.experts.{e}.{k}_proj.weight"] for e in range(E)]) for k in ("gate", "up", "down")}


def llama_permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def mtp_layers(cfg, sd):
    """DeepSeek-V3's multi-token-prediction layers, when the file has complete ones (the bf16/fp8
    twins carry placeholders): the converter appends them as blk.{L..} (block_count counts them,
    nextn_predict_layers says how many) with the block's usual names plus nextn.* (llama.cpp's
    gguf-py MODEL_TENSOR.NEXTN_*; written by name since older gguf packages lack them)."""
    L, n = cfg["num_hidden_layers"], cfg.get("num_nextn_predict_layers") or 0
    return n if n and f"model.layers.{L}.self_attn.kv_a_proj_with_mqa.weight" in sd else 0


NEXTN = {"enorm": "enorm", "hnorm": "hnorm", "eh_proj": "eh_proj", "embed_tokens": "embed_tokens",
         "shared_head.norm": "shared_head_norm", "shared_head.head": "shared_head_head"}


def convert(name, arch_name, cfg, sd, mtp=False):
    """[(gguf name, tensor)]; with `mtp`, DeepSeek-V3's MTP layers too."""
    L, H = cfg["num_hidden_layers"], cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    out = [(tname(K.TOKEN_EMBD), sd["model.embed_tokens.weight"]), (tname(K.OUTPUT_NORM), sd["model.norm.weight"])]
    if "lm_head.weight" in sd and not cfg.get("tie_word_embeddings", False):
        out.append((tname(K.OUTPUT), sd["lm_head.weight"]))
    E = cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts")
    mt = cfg["model_type"]
    for i in range(L + (mtp_layers(cfg, sd) if mtp else 0)):
        p = f"model.layers.{i}."
        if i >= L:
            out += [(f"blk.{i}.nextn.{g}.weight", sd[p + hf + ".weight"]) for hf, g in NEXTN.items() if p + hf + ".weight" in sd]
        out += [(tname(K.ATTN_NORM, i), sd[p + "input_layernorm.weight"]),
                (tname(K.FFN_NORM, i), sd[p + "post_attention_layernorm.weight"])]
        a = p + "self_attn."
        if mt in ("mixtral", "qwen3_moe"):
            q, k = sd[a + "q_proj.weight"], sd[a + "k_proj.weight"]
            if mt == "mixtral":
                q, k = llama_permute(q, heads, heads), llama_permute(k, heads, cfg["num_key_value_heads"])
            out += [(tname(K.ATTN_Q, i), q), (tname(K.ATTN_K, i), k), (tname(K.ATTN_V, i), sd[a + "v_proj.weight"]),
                    (tname(K.ATTN_OUT, i), sd[a + "o_proj.weight"])]
            if mt == "qwen3_moe":
                out += [(tname(K.ATTN_Q_NORM, i), sd[a + "q_norm.weight"]), (tname(K.ATTN_K_NORM, i), sd[a + "k_norm.weight"])]
        else:  # deepseek2
            if cfg.get("q_lora_rank"):
                out += [(tname(K.ATTN_Q_A, i), sd[a + "q_a_proj.weight"]), (tname(K.ATTN_Q_A_NORM, i), sd[a + "q_a_layernorm.weight"]),
                        (tname(K.ATTN_Q_B, i), sd[a + "q_b_proj.weight"])]
            else:
                out.append((tname(K.ATTN_Q, i), sd[a + "q_proj.weight"]))
            out += [(tname(K.ATTN_KV_A_MQA, i), sd[a + "kv_a_proj_with_mqa.weight"]),
                    (tname(K.ATTN_KV_A_NORM, i), sd[a + "kv_a_layernorm.weight"]),
                    (tname(K.ATTN_OUT, i), sd[a + "o_proj.weight"])]
            kv_b = sd[a + "kv_b_proj.weight"]
            if name == "deepseek-v3":
                nope, vd = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
                kv = kv_b.view(heads, nope + vd, kv_b.shape[-1])
                k_b, v_b = torch.split(kv, [nope, vd], dim=1)
                out += [(tname(K.ATTN_K_B, i), k_b.transpose(1, 2).contiguous()), (tname(K.ATTN_V_B, i), v_b.contiguous())]
            else:
                out.append((tname(K.ATTN_KV_B, i), kv_b))
        # feed-forward
        is_moe = (p + "mlp.gate.weight" in sd) or (p + "block_sparse_moe.gate.weight" in sd)
        if not is_moe:
            out += [(tname(K.FFN_GATE, i), sd[p + "mlp.gate_proj.weight"]), (tname(K.FFN_UP, i), sd[p + "mlp.up_proj.weight"]),
                    (tname(K.FFN_DOWN, i), sd[p + "mlp.down_proj.weight"])]
            continue
        router = sd.get(p + "mlp.gate.weight", sd.get(p + "block_sparse_moe.gate.weight"))
        out.append((tname(K.FFN_GATE_INP, i), router))
        if p + "mlp.gate.e_score_correction_bias" in sd:
            out.append((tname(K.FFN_EXP_PROBS_B, i, "bias"), sd[p + "mlp.gate.e_score_correction_bias"]))
        ex = stacked_experts(sd, i, E)
        out += [(tname(K.FFN_GATE_EXP, i), ex["gate"]), (tname(K.FFN_UP_EXP, i), ex["up"]), (tname(K.FFN_DOWN_EXP, i), ex["down"])]
        if p + "mlp.shared_experts.gate_proj.weight" in sd:
            s = p + "mlp.shared_experts."
            out += [(tname(K.FFN_GATE_SHEXP, i), sd[s + "gate_proj.weight"]), (tname(K.FFN_UP_SHEXP, i), sd[s + "up_proj.weight"]),
                    (tname(K.FFN_DOWN_SHEXP, i), sd[s + "down_proj.weight"])]
    return out


def metadata(w, name, cfg, nextn=0):
    mt = cfg["model_type"]
    L, H, heads = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    rp = cfg.get("rope_parameters") or {}
    w.add_name(name)
    w.add_block_count(L + nextn)
    if nextn:
        w.add_nextn_predict_layers(nextn)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(H)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rp.get("rope_theta", 10000.0))
    w.add_vocab_size(cfg["vocab_size"])
    E = cfg.get("n_routed_experts") or cfg.get("num_local_experts") or cfg.get("num_experts")
    w.add_expert_count(E)
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    if mt == "mixtral":
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_rope_dimension_count(H // heads)
    elif mt == "qwen3_moe":
        w.add_head_count_kv(cfg["num_key_value_heads"])
        w.add_key_length(cfg["head_dim"]); w.add_value_length(cfg["head_dim"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    else:
        lora, nope, rope, vd = cfg["kv_lora_rank"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
        w.add_leading_dense_block_count(cfg["first_k_dense_replace"])
        if cfg.get("q_lora_rank"):
            w.add_q_lora_rank(cfg["q_lora_rank"])
        w.add_kv_lora_rank(lora)
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        w.add_expert_shared_count(cfg["n_shared_experts"])
        w.add_rope_dimension_count(rope)
        if name == "deepseek-v3":  # current converter
            w.add_head_count_kv(1)
            w.add_key_length(lora + rope); w.add_value_length(lora)
            w.add_key_length_mla(nope + rope); w.add_value_length_mla(vd)
            w.add_expert_weights_scale(cfg["routed_scaling_factor"])
            if cfg.get("norm_topk_prob"):
                w.add_expert_weights_norm(True)
            w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
            w.add_expert_group_count(cfg["n_group"]); w.add_expert_group_used_count(cfg["topk_group"])
        else:  # an older converter: no gating func (softmax), per-head key/value lengths
            w.add_head_count_kv(heads)
            w.add_key_length(nope + rope); w.add_value_length(vd)
            w.add_expert_weights_scale(cfg["routed_scaling_factor"])
        if rp.get("rope_type") == "yarn":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(rp["factor"])
            w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
            w.add_rope_scaling_yarn_log_mul(0.1 * rp["mscale_all_dim"])


def keep_f32(gname, arr):
    return (arr.ndim < 2 or gname.endswith("_norm.weight") or ".ffn_gate_inp." in gname
            or arr.shape[-1] % 32 != 0)


def write(name, qtype, mtp=False):
    """model-{f32,q8_0}.gguf without the MTP layer (what llama.cpp's deepseek2 loader reads: it
    would take blk.{L} for a decoder layer); with `mtp`, model-mtp-{f32,q8_0}.gguf with it."""
    d = os.path.join(ROOT, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    sd = {k: v.float() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    arch = {"mixtral": gguf.MODEL_ARCH.LLAMA, "qwen3_moe": gguf.MODEL_ARCH.QWEN3MOE}.get(cfg["model_type"], gguf.MODEL_ARCH.DEEPSEEK2)
    suffix = "f32" if qtype == gguf.GGMLQuantizationType.F32 else "q8_0"
    path = os.path.join(d, f"model-mtp-{suffix}.gguf" if mtp else f"model-{suffix}.gguf")
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    metadata(w, name, cfg, mtp_layers(cfg, sd) if mtp else 0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if suffix == "f32" else gguf.LlamaFileType.MOSTLY_Q8_0)
    for gname, t in convert(name, gguf.MODEL_ARCH_NAMES[arch], cfg, sd, mtp):
        arr = t.float().contiguous().numpy().astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32 or keep_f32(gname, arr):
            w.add_tensor(gname, arr)
        else:
            w.add_tensor(gname, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    names = sys.argv[1:] or ["deepseek-v3", "deepseek-v2-lite", "qwen3-moe", "mixtral"]
    for n in names:
        for q in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0):
            write(n, q)
            if n == "deepseek-v3":
                write(n, q, mtp=True)
