#!/usr/bin/env python3
"""Write fixtures/gguf/lowbit-mixed.gguf: a tiny DeepSeek-V3-style MoE (deepseek2 architecture:
MLA with split attn_k_b/attn_v_b, one dense layer, one MoE layer with 4 routed experts and a
shared expert) whose weights use every low-bit type Tiefsee has kernels for, the way llama.cpp's
low-bit DeepSeek quants mix them: IQ1/IQ2 for the routed experts, more bits for attention, the
shared expert and the head.

Dimensions are the smallest that fit 256-value superblocks (hidden 256, q_lora 256, experts 256);
tensors whose rows are not whole superblocks take the 32-blocks (IQ4_NL, MXFP4), norms and the
router stay F32. Weights come from a randomly initialised transformers DeepseekV3ForCausalLM,
converted with scripts/gen_moe_gguf.py's converter (llama.cpp's names and metadata); where the
gguf package has a quantizer (MXFP4, TQ1_0, TQ2_0) the weights are quantized with it, for the
others (it has none) the blocks are random bytes with valid f16 scales, scaled so the tensor keeps
the original's RMS. The test (LowBitModelTests) compares the model through the low-bit kernels
with the same weights dequantized to f32, so random codes are as good as quantized ones.

Developers only (torch + transformers + gguf); the output is committed.
"""
import importlib.util, os
import numpy as np
import torch
import transformers
import gguf
from gguf import GGMLQuantizationType as T

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "gguf", "lowbit-mixed.gguf")
spec = importlib.util.spec_from_file_location("gen_moe_gguf", os.path.join(ROOT, "scripts", "gen_moe_gguf.py"))
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)

CFG = dict(vocab_size=128, hidden_size=256, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
           max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=0.05, bos_token_id=1, eos_token_id=2,
           pad_token_id=0, tie_word_embeddings=False, intermediate_size=256, moe_intermediate_size=256,
           n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1,
           norm_topk_prob=True, routed_scaling_factor=2.5, first_k_dense_replace=1, q_lora_rank=256,
           kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=128, scoring_func="sigmoid",
           topk_method="noaux_tc", rope_interleave=True,
           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                            "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0,
                            "mscale": 1.0, "mscale_all_dim": 1.0})

# Tensor (name without blk.N. / .weight) -> type, per layer; each of the 14 types appears.
PLAN = {
    "token_embd": T.Q2_K, "output": T.IQ4_XS,
    0: {"attn_q_a": T.IQ3_S, "attn_q_b": T.IQ3_XXS, "attn_kv_a_mqa": T.IQ2_S, "attn_output": T.IQ2_XS,
        "attn_k_b": T.IQ4_NL, "attn_v_b": T.MXFP4, "ffn_gate": T.TQ1_0, "ffn_up": T.TQ2_0, "ffn_down": T.Q3_K},
    1: {"attn_q_a": T.IQ2_XXS, "attn_q_b": T.IQ1_M, "attn_kv_a_mqa": T.IQ1_S, "attn_output": T.Q2_K,
        "attn_k_b": T.MXFP4, "attn_v_b": T.IQ4_NL, "ffn_gate_exps": T.IQ1_S, "ffn_up_exps": T.IQ1_M,
        "ffn_down_exps": T.IQ2_XXS, "ffn_gate_shexp": T.IQ3_XXS, "ffn_up_shexp": T.IQ4_XS, "ffn_down_shexp": T.Q3_K},
}
# f16 scale fields per block (IQ1_M's d is split over the top nibbles of bytes 48..55).
F16_FIELDS = {T.Q2_K: [80, 82], T.Q3_K: [108], T.IQ2_XXS: [0], T.IQ2_XS: [0], T.IQ2_S: [0], T.IQ3_XXS: [0],
              T.IQ3_S: [0], T.IQ1_S: [0], T.IQ4_XS: [0], T.IQ4_NL: [0], T.IQ1_M: []}
QUANTIZABLE = {T.MXFP4, T.TQ1_0, T.TQ2_0}


def set_scale(raw, qt, d):
    """Sets every block's f16 scale field(s) to d."""
    h = np.array([d], dtype=np.float16).view(np.uint16)[0]
    for off in F16_FIELDS[qt]:
        raw[..., off] = h & 0xFF
        raw[..., off + 1] = h >> 8
    if qt == T.IQ1_M:
        for k in range(4):
            raw[..., 49 + 2 * k] = (raw[..., 49 + 2 * k] & 0x0F) | (((h >> (4 * k)) & 0xF) << 4)


def random_blocks(arr, qt, rng):
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(*arr.shape[:-1], arr.shape[-1] // bs, ts), dtype=np.uint8)
    set_scale(raw, qt, 1.0)
    unit = gguf.quants.dequantize(raw.reshape(*arr.shape[:-1], -1), qt)
    set_scale(raw, qt, float(np.sqrt(np.mean(arr ** 2)) / np.sqrt(np.mean(unit ** 2))))
    return raw.reshape(*arr.shape[:-1], -1)


def type_for(gname):
    parts = gname.split(".")
    if parts[0] == "blk":
        return PLAN[int(parts[1])].get(parts[2])
    return PLAN.get(parts[0])


def main():
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    cfg = transformers.DeepseekV3Config(**CFG)
    model = transformers.DeepseekV3ForCausalLM(cfg).eval()
    sd = {k: v.float() for k, v in model.state_dict().items()}
    cfgd = dict(CFG, model_type="deepseek_v3")
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.DEEPSEEK2]
    w = gguf.GGUFWriter(OUT, arch)
    conv.metadata(w, "deepseek-v3", cfgd)
    used = {}
    for gname, t in conv.convert("deepseek-v3", arch, cfgd, sd):
        arr = t.float().contiguous().numpy().astype(np.float32)
        qt = type_for(gname)
        if qt is None or conv.keep_f32(gname, arr):
            w.add_tensor(gname, arr)
            continue
        assert arr.shape[-1] % gguf.GGML_QUANT_SIZES[qt][0] == 0, (gname, qt, arr.shape)
        raw = gguf.quants.quantize(arr, qt) if qt in QUANTIZABLE else random_blocks(arr, qt, rng)
        w.add_tensor(gname, raw, raw_dtype=qt)
        used[qt.name] = used.get(qt.name, 0) + 1
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(OUT, os.path.getsize(OUT), "bytes;", dict(sorted(used.items())))
    assert len(used) == 14, used


if __name__ == "__main__":
    main()
