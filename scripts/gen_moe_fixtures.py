#!/usr/bin/env python3
"""Generate tiny random Mixture-of-Experts models (and DeepSeek MLA models) with transformers.

Run by developers (needs torch + transformers + safetensors), never by CI. Writes, per model,
fixtures/moe/<name>/{config.json, model.safetensors, expected.json}:
  expected.json = {"prompt": ids, "logits": [[vocab] per prompt position],
                   "greedy": 16 generated ids (transformers generate, KV cache on),
                   "full_logits_last": logits of the last position of prompt+greedy[:-1] in one pass,
                   "routing": [per layer: null (dense) | [per prompt token:
                               {"experts": [ids, best selection score first], "weights": [...]}]],
                   "min_logit_gap" / "min_route_gap": how far the reference is from a tie}
Routing is captured by hooking each layer's router (`mlp.gate` / `block_sparse_moe.gate`) during
the prompt pass. "Chosen order" is defined as descending selection score (the score the top-k
runs on: softmax/sigmoid probability, plus e_score_correction_bias for DeepSeek-V3), because
torch.topk(sorted=False) gives no defined order.

Safetensors layouts (both are what real checkpoints look like):
  * the hub's per-expert layout (mlp.experts.E.{gate,up,down}_proj.weight; Mixtral's
    block_sparse_moe.experts.E.w1/w2/w3), which save_pretrained writes;
  * qwen3-moe keeps transformers 5's fused state_dict layout (mlp.experts.gate_up_proj [E, 2I, H],
    mlp.experts.down_proj [E, H, I]) so both are exercised.
Variants of DeepSeek-V3: bf16 (weights rounded to bf16, computed in f32; router bias stays f32) and
FP8 as DeepSeek ships it (F8_E4M3 + weight_scale_inv per block; the reference runs transformers
on the dequantized weights).
"""
import json, os, sys
import torch
import transformers
from safetensors.torch import save_file

ROOT = os.environ.get("MOE_FIXTURE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "moe")
INIT = float(os.environ.get("MOE_INIT", "0.05"))
HEAD_SCALE = float(os.environ.get("MOE_HEAD_SCALE", "10.0"))
RESID_SCALE = float(os.environ.get("MOE_RESID_SCALE", "0.5"))
BIGRAM = float(os.environ.get("MOE_BIGRAM", "5.0"))
PROMPT = [1, 17, 42, 99, 3, 120, 127, 7, 64, 100, 31, 5]
N_GEN = 16
FP8_BLOCK = 32  # DeepSeek ships 128x128 blocks; the tiny dims need smaller ones (weight_block_size)


def common(**kw):
    base = dict(vocab_size=128, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=INIT,
                bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    base.update(kw)
    return base


MODELS = {
    # V3: q_lora, n_group 4 / topk_group 2, sigmoid + correction bias, norm_topk_prob,
    # routed_scaling_factor 2.5, YaRN factor 4 with mscale == mscale_all_dim (as V3 ships it).
    "deepseek-v3": ("DeepseekV3ForCausalLM", transformers.DeepseekV3Config, common(
        intermediate_size=64, moe_intermediate_size=32, n_routed_experts=8, num_experts_per_tok=2,
        n_shared_experts=1, n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5,
        first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=64, qk_nope_head_dim=32,
        qk_rope_head_dim=16, v_head_dim=32, num_attention_heads=2, num_key_value_heads=2,
        scoring_func="sigmoid", topk_method="noaux_tc", num_nextn_predict_layers=1,
        rope_interleave=True,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0,
                         "mscale": 1.0, "mscale_all_dim": 1.0})),
    # V2-Lite: no q_lora, softmax, greedy top-k, 2 shared experts, first layer dense.
    "deepseek-v2-lite": ("DeepseekV2ForCausalLM", transformers.DeepseekV2Config, common(
        intermediate_size=64, moe_intermediate_size=32, n_routed_experts=8, num_experts_per_tok=3,
        n_shared_experts=2, topk_method="greedy", n_group=1, topk_group=1, norm_topk_prob=False,
        routed_scaling_factor=1.0, first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=32,
        qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, num_attention_heads=2,
        num_key_value_heads=2, scoring_func="softmax",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
    # Kimi-K2 (Moonshot): DeepSeek-V3's architecture with its own shape — 384 routed experts, 8 per
    # token, one group (n_group = topk_group = 1), one leading dense layer, routed_scaling_factor
    # 2.827, rope_theta 50000 with YaRN factor 32 and beta_fast = beta_slow = 1, rms_norm_eps 1e-5;
    # its tokenizer's shape: 256 reserved special ids after the base vocabulary ([BOS], [EOS] first).
    # Written as Kimi ships it (model_type kimi_k2, rope_theta + rope_scaling, tiktoken.model).
    "kimi-k2": ("DeepseekV3ForCausalLM", transformers.DeepseekV3Config, common(
        vocab_size=512, hidden_size=32, num_hidden_layers=2, intermediate_size=64, moe_intermediate_size=4, n_routed_experts=384,
        num_experts_per_tok=8, n_shared_experts=1, n_group=1, topk_group=1, norm_topk_prob=True,
        routed_scaling_factor=2.827, first_k_dense_replace=1, q_lora_rank=16, kv_lora_rank=32,
        qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16, num_attention_heads=2, num_key_value_heads=2,
        scoring_func="sigmoid", topk_method="noaux_tc", num_nextn_predict_layers=0, rope_interleave=True,
        rms_norm_eps=1e-5, max_position_embeddings=131072, bos_token_id=256, eos_token_id=257,
        rope_parameters={"rope_type": "yarn", "rope_theta": 50000.0, "factor": 32.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 1.0, "beta_slow": 1.0,
                         "mscale": 1.0, "mscale_all_dim": 1.0})),
    "mixtral": ("MixtralForCausalLM", transformers.MixtralConfig, common(
        intermediate_size=32, num_local_experts=8, num_experts_per_tok=2, num_key_value_heads=2,
        num_hidden_layers=2, sliding_window=None, rope_theta=10000.0)),
    "qwen2-moe": ("Qwen2MoeForCausalLM", transformers.Qwen2MoeConfig, common(
        intermediate_size=64, moe_intermediate_size=32, shared_expert_intermediate_size=64,
        num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, num_key_value_heads=2,
        decoder_sparse_step=1, mlp_only_layers=[1], use_sliding_window=False, rope_theta=1000000.0)),
    "qwen3-moe": ("Qwen3MoeForCausalLM", transformers.Qwen3MoeConfig, common(
        intermediate_size=64, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, num_key_value_heads=2, head_dim=16, num_hidden_layers=2,
        decoder_sparse_step=1, mlp_only_layers=[], rope_theta=1000000.0)),
}


def randomize(model, gen):
    # transformers initialises norms to 1, biases and the correction bias to 0: random values
    # make them matter. The output head is scaled up so greedy tokens are far from ties.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.15 * torch.randn(b.shape, generator=gen))
        model.lm_head.weight.mul_(HEAD_SCALE)
        if BIGRAM:
            # Trained language models are confident; random ones have near-tied logits everywhere,
            # so a quantized twin's top-1 would flip on noise alone. A "bigram" component (the
            # current token u votes for token perm(u)) gives top-1 realistic margins while the
            # random part of the head still carries everything the layers compute.
            emb = model.model.embed_tokens.weight
            unit = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            perm = torch.randperm(emb.shape[0], generator=gen)
            model.lm_head.weight[perm] += BIGRAM * unit
        # Smaller residual branches keep the random model from being chaotic (a routing flip or
        # a quantization error must not swing the logits), so quantized twins agree on top-1.
        for name, p in model.named_parameters():
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight") or name.endswith("experts.down_proj"):
                p.mul_(RESID_SCALE)


def moe_gates(model):
    """(layer index, router module, owning MoE block) for every sparse layer."""
    out = []
    for i, layer in enumerate(model.model.layers):
        mlp = getattr(layer, "mlp", None) or getattr(layer, "block_sparse_moe", None)
        gate = getattr(mlp, "gate", None)
        if gate is not None and not isinstance(gate, torch.nn.Linear) and hasattr(mlp, "experts"):
            out.append((i, gate))
    return out


def capture_routing(model, family, ids):
    n_layers = model.config.num_hidden_layers
    routing = [None] * n_layers
    gaps = []
    hooks = []
    for i, gate in moe_gates(model):
        def hook(mod, inp, out, i=i):
            logits, weights, idx = out
            logits = logits.float()
            if family == "deepseek_v3":
                sel = logits.sigmoid() + mod.e_score_correction_bias.float()
            else:
                sel = logits.softmax(-1)
            rows = []
            for t in range(idx.shape[0]):
                chosen = idx[t].tolist()
                w = weights[t].float().tolist()
                key = [float(sel[t, e]) for e in chosen]
                order = sorted(range(len(chosen)), key=lambda j: (-key[j], chosen[j]))
                rows.append({"experts": [chosen[j] for j in order],
                             "weights": [round(w[j], 8) for j in order]})
                # distance of the last chosen expert from the best unchosen one
                rest = [float(sel[t, e]) for e in range(sel.shape[1]) if e not in chosen]
                gaps.append(min(key) - max(rest) if rest else 1.0)
            routing[i] = rows
        hooks.append(gate.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    for h in hooks:
        h.remove()
    return logits, routing, min(gaps) if gaps else None


def hub_layout(sd, arch):
    """transformers 5 fuses experts into 3-D parameters; checkpoints on the hub (and
    save_pretrained) store one 2-D tensor per expert. Mixtral uses its original names."""
    out = {}
    for k, v in sd.items():
        if k.endswith("experts.gate_up_proj"):
            base = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                g, u = v[e, :inter], v[e, inter:]
                if arch == "MixtralForCausalLM":
                    b = base.replace(".mlp.", ".block_sparse_moe.")
                    out[f"{b}{e}.w1.weight"], out[f"{b}{e}.w3.weight"] = g, u
                else:
                    out[f"{base}{e}.gate_proj.weight"], out[f"{base}{e}.up_proj.weight"] = g, u
        elif k.endswith("experts.down_proj"):
            base = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                if arch == "MixtralForCausalLM":
                    out[f"{base.replace('.mlp.', '.block_sparse_moe.')}{e}.w2.weight"] = v[e]
                else:
                    out[f"{base}{e}.down_proj.weight"] = v[e]
        elif arch == "MixtralForCausalLM" and ".mlp.gate." in k:
            out[k.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = v
        else:
            out[k] = v
    return {k: v.contiguous() for k, v in out.items()}


def fp8_quantize(w, block):
    """DeepSeek's block-scaled FP8: per (block x block) tile, scale_inv = amax / 448 and
    q = w / scale_inv in float8_e4m3fn. Returns (q, scale_inv, dequantized)."""
    rows, cols = w.shape
    sr, sc = -(-rows // block), -(-cols // block)
    scale = torch.zeros(sr, sc, dtype=torch.float32)
    q = torch.zeros(rows, cols, dtype=torch.float8_e4m3fn)
    deq = torch.zeros(rows, cols, dtype=torch.float32)
    for i in range(sr):
        for j in range(sc):
            t = w[i * block:(i + 1) * block, j * block:(j + 1) * block].float()
            s = max(float(t.abs().max()) / 448.0, 1e-12)
            scale[i, j] = s
            qt = (t / s).to(torch.float8_e4m3fn)
            q[i * block:(i + 1) * block, j * block:(j + 1) * block] = qt
            deq[i * block:(i + 1) * block, j * block:(j + 1) * block] = qt.float() * scale[i, j]
    return q, scale, deq


def is_fp8_target(name):
    # DeepSeek's FP8 release quantizes the linear layers of the blocks; embeddings, head,
    # norms and the router stay in higher precision.
    return (name.startswith("model.layers.") and name.endswith(".weight") and "norm" not in name
            and ".mlp.gate.weight" not in name)


def write_tokenizer(out, vocab_size):
    """A tiny byte-level BPE tokenizer (specials, 'Ġ', printable ASCII, a few merges: exactly
    vocab_size tokens) so the CLI can run on the fixture. DeepSeek-V3's pre-tokenizer."""
    src = json.load(open(os.path.join(ROOT, "..", "tokenizer", "deepseek-v3-style", "tokenizer.json")))
    specials = ["<|pad|>", "<|bos|>", "<|eos|>"]
    pieces = ["\u0120"] + [chr(c) for c in range(33, 127)]
    merges = ["t h", "h e", "i n", "e r", "a n", "r e", "o n", "a t", "e n", "n d", "t i", "e s", "o r", "t e",
              "o f", "e d", "i s", "i t", "a l", "a r", "s t", "t o", "n t", "n g", "s e", "h a", "a s", "o u",
              "i o", "l e"][: vocab_size - len(specials) - len(pieces)]
    vocab = {t: i for i, t in enumerate(specials + pieces + [m.replace(" ", "") for m in merges])}
    assert len(vocab) == vocab_size
    src["model"]["vocab"] = vocab
    src["model"]["merges"] = merges
    src["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for i, t in enumerate(specials)]
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(src, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": True}, f)


def write_kimi_files(out, cfg):
    """config.json as Kimi-K2 ships it (model_type kimi_k2, auto_map to its remote code, hub-style
    rope_theta + rope_scaling) and its tokenizer's files: tiktoken.model (base64 token, rank; here
    the 256 single bytes) and a tokenizer_config.json declaring the reserved specials after them."""
    path = os.path.join(out, "config.json")
    c = json.load(open(path))
    rp = c.pop("rope_parameters")
    c["model_type"] = "kimi_k2"
    c["auto_map"] = {"AutoConfig": "configuration_deepseek.DeepseekV3Config",
                     "AutoModel": "modeling_deepseek.DeepseekV3Model",
                     "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"}
    c["rope_theta"] = rp.pop("rope_theta")
    rp["type"] = rp.pop("rope_type")
    c["rope_scaling"] = rp
    json.dump(c, open(path, "w"), indent=2, sort_keys=True)
    import base64
    base = 256
    with open(os.path.join(out, "tiktoken.model"), "w") as f:
        for i in range(base):
            f.write(f"{base64.b64encode(bytes([i])).decode()} {i}\n")
    names = ["[BOS]", "[EOS]", "<|im_end|>", "<|im_user|>", "<|im_assistant|>"]
    specials = {str(base + i): {"content": names[i] if i < len(names) else f"<|reserved_token_{i}|>", "lstrip": False,
                                "normalized": False, "rstrip": False, "single_word": False, "special": True}
                for i in range(cfg.vocab_size - base)}
    tc = {"added_tokens_decoder": specials, "bos_token": "[BOS]", "eos_token": "[EOS]", "pad_token": None,
          "tokenizer_class": "TikTokenTokenizer", "auto_map": {"AutoTokenizer": ["tokenization_kimi.TikTokenTokenizer", None]},
          "model_max_length": 1000000000000000019884624838656}
    json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)


def build(name, arch, cfg_cls, kw, variant="f32", out_name=None, layout="hub"):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    cfg = cfg_cls(**kw)
    cfg.architectures = [arch]
    model = getattr(transformers, arch)(cfg).eval()
    randomize(model, gen)
    family = cfg.model_type
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd = hub_layout(sd, arch) if layout == "hub" else sd
    extra_meta = {}
    if variant == "bf16":
        # Round the weights to bf16 but compute in f32 (the correction bias stays f32, as DeepSeek ships it).
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(p.to(torch.bfloat16).float())
        sd = {k: (v if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16))
              for k, v in hub_layout({k: v.detach().clone() for k, v in model.state_dict().items()}, arch).items()}
    elif variant == "fp8":
        new_sd = {}
        deq_sd = {}
        for k, v in sd.items():
            if v.dim() == 2 and is_fp8_target(k):
                q, s, d = fp8_quantize(v, FP8_BLOCK)
                new_sd[k] = q
                new_sd[k + "_scale_inv"] = s
                deq_sd[k] = d
            else:
                new_sd[k] = v
        # Load the dequantized weights back into the fused model for the reference.
        full = model.state_dict()
        with torch.no_grad():
            for k, v in list(full.items()):
                if k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj"):
                    base = k.rsplit(".", 1)[0]
                    E = v.shape[0]
                    for e in range(E):
                        if k.endswith("gate_up_proj"):
                            g, u = deq_sd[f"{base}.{e}.gate_proj.weight"], deq_sd[f"{base}.{e}.up_proj.weight"]
                            v[e].copy_(torch.cat([g, u], 0))
                        else:
                            v[e].copy_(deq_sd[f"{base}.{e}.down_proj.weight"])
                elif k in deq_sd:
                    v.copy_(deq_sd[k])
        sd = new_sd
        cfg.quantization_config = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3",
                                   "weight_block_size": [FP8_BLOCK, FP8_BLOCK]}
    if getattr(cfg, "num_nextn_predict_layers", 0):
        # DeepSeek-V3 checkpoints carry a multi-token-prediction layer after the last one; it must
        # be loadable (and ignored) for plain decoding. Placeholders here; the f32 deepseek-v3
        # fixture then gets a complete random MTP layer and its reference (add_mtp, below).
        n = cfg.num_hidden_layers
        H = cfg.hidden_size
        sd[f"model.layers.{n}.eh_proj.weight"] = torch.zeros(H, 2 * H, dtype=torch.float32)
        sd[f"model.layers.{n}.enorm.weight"] = torch.ones(H)
        sd[f"model.layers.{n}.hnorm.weight"] = torch.ones(H)
    out = os.path.join(ROOT, out_name or name)
    os.makedirs(out, exist_ok=True)
    cfg.dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "fp8": torch.bfloat16}[variant]
    cfg.save_pretrained(out)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    if (out_name or name) == "deepseek-v3":
        write_tokenizer(out, cfg.vocab_size)
    if name == "kimi-k2":
        write_kimi_files(out, cfg)

    ids = torch.tensor([PROMPT])
    logits, routing, route_gap = capture_routing(model, family, ids)
    with torch.no_grad():
        g = model.generate(ids, max_new_tokens=N_GEN, do_sample=False, min_new_tokens=N_GEN,
                           pad_token_id=0, eos_token_id=None)
        greedy = g[0, len(PROMPT):].tolist()
        full = model(g[:, :-1]).logits[0, -1].float()
        # the smallest top-1/top-2 margin over the greedy steps
        allx = model(g[:, :-1]).logits[0, len(PROMPT) - 1:].float()
        top2 = allx.topk(2, dim=-1).values
        logit_gap = float((top2[:, 0] - top2[:, 1]).min())
    exp = {"prompt": PROMPT, "logits": [[round(float(x), 7) for x in row] for row in logits],
           "greedy": greedy, "full_logits_last": [round(float(x), 7) for x in full],
           "routing": routing, "min_logit_gap": logit_gap, "min_route_gap": route_gap,
           "transformers": transformers.__version__, "variant": variant, "layout": layout}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    print(f"{out_name or name}: {variant} {layout} {size} bytes, greedy {greedy}, "
          f"min logit gap {logit_gap:.4f}, min route gap {route_gap}")


# --- Multi-token prediction (DeepSeek-V3 §2.2) -------------------------------------------------
#
# transformers does not run the MTP layer (DeepseekV3ForCausalLM drops model.layers.{N}.*), so the
# reference is the few lines below, written from DeepSeek's inference code and the paper:
#
#   e_i  = enorm(embed(t_{i+1}))                 the next token's embedding (the module's own
#                                                embed_tokens, a copy of the model's)
#   g_i  = hnorm(h_i)                            h_i: the main model's last-layer output at
#                                                position i, before the final norm
#   x_i  = eh_proj([e_i ; g_i])                  embedding first, as DeepSeek's code concatenates
#                                                (the paper's eq. 21 writes the hidden state first;
#                                                the released weights follow the code)
#   y    = DecoderLayer_N(x) at positions i      one full block (MLA + MoE, layer N's config:
#                                                N >= first_k_dense_replace, so MoE), causal over
#                                                the MTP rows themselves (its own KV cache)
#   logits_i = shared_head.head(shared_head.norm(y_i))   the prediction of t_{i+2}
#
# The block itself is transformers' DeepseekV3DecoderLayer (layer_idx N), fed the eh_proj output,
# with the model's rotary tables at positions 0..T-2 and an explicit causal mask (eager attention).
# The fixture's weights are random, but shaped so that the MTP is sometimes right (so a drafter
# test sees accepted and rejected proposals): eh_proj's embedding half starts near the identity
# and shared_head.head is the model's lm_head (with its bigram component) plus noise of its own,
# so a loader that used lm_head instead of shared_head.head would not match.
MTP_SEED = 4321


def add_mtp(out):
    """Replaces the placeholder MTP layer of `out`/model.safetensors (the main model's tensors are
    kept bit for bit) and writes `out`/expected_mtp.json:
      {"tokens": the teacher-forced sequence (prompt + greedy),
       "hidden": the main model's last-layer output per position (before the final norm),
       "logits": MTP logits per row i = 0..T-2 (input h_i, t_{i+1}; predicts t_{i+2}),
       "argmax_hits": rows whose argmax equals t_{i+2}}."""
    from safetensors.torch import load_file
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3DecoderLayer, DeepseekV3RMSNorm
    sd = load_file(os.path.join(out, "model.safetensors"))
    model = transformers.DeepseekV3ForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    N, H, V = cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size
    exp = json.load(open(os.path.join(out, "expected.json")))
    tokens = exp["prompt"] + exp["greedy"]
    gen = torch.Generator().manual_seed(MTP_SEED)
    torch.manual_seed(MTP_SEED)

    # The MTP module's parameters, initialised like the main model's (randomize's recipe).
    layer = DeepseekV3DecoderLayer(cfg, layer_idx=N).eval()
    enorm, hnorm, head_norm = (DeepseekV3RMSNorm(H, eps=cfg.rms_norm_eps) for _ in range(3))
    eh_proj = torch.nn.Linear(2 * H, H, bias=False)
    head = torch.nn.Linear(H, V, bias=False)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                p.copy_(INIT * torch.randn(p.shape, generator=gen))
                if name.endswith("o_proj.weight") or name.endswith("down_proj.weight") or name.endswith("experts.down_proj"):
                    p.mul_(RESID_SCALE)
        for name, b in layer.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.15 * torch.randn(b.shape, generator=gen))
        for n_ in (enorm, hnorm, head_norm):
            n_.weight.copy_(1.0 + 0.3 * torch.randn(H, generator=gen))
        eh_proj.weight.copy_(INIT * torch.randn(H, 2 * H, generator=gen))
        eh_proj.weight[:, :H] += torch.eye(H)
        head.weight.copy_(model.lm_head.weight + 0.5 * HEAD_SCALE * INIT * torch.randn(V, H, generator=gen))

    ids = torch.tensor([tokens])
    T = len(tokens)
    captured = {}
    hook = model.model.layers[-1].register_forward_hook(
        lambda m, i, o: captured.__setitem__("h", (o[0] if isinstance(o, tuple) else o).detach()))
    with torch.no_grad():
        main = model(ids).logits[0]
    hook.remove()
    prompt_logits = torch.tensor(exp["logits"])
    drift = float((main[: len(exp["prompt"])] - prompt_logits).abs().max())
    assert drift < 1e-4, f"the reloaded model differs from expected.json by {drift}"
    h = captured["h"][0]                                           # [T, H], before model.norm

    with torch.no_grad():
        emb = model.model.embed_tokens(ids[:, 1:])                 # t_{i+1} for rows i = 0..T-2
        x = eh_proj(torch.cat([enorm(emb), hnorm(h[None, :-1])], dim=-1))
        pos = torch.arange(T - 1)[None]
        cos_sin = model.model.rotary_emb(x, pos)
        mask = torch.full((T - 1, T - 1), float("-inf")).triu(1)[None, None]
        y = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin)
        y = y[0] if isinstance(y, tuple) else y
        logits = head(head_norm(y))[0]                             # [T-1, V]
    hits = int((logits[:-1].argmax(-1) == ids[0, 2:]).sum())   # the last row predicts past the sequence

    # The file as DeepSeek ships it: model.layers.{N}.{enorm,hnorm,eh_proj,embed_tokens,shared_head.*}
    # next to the block's usual names (experts per matrix, the hub layout).
    for k in [k for k in sd if k.startswith(f"model.layers.{N}.")]:
        del sd[k]
    p = f"model.layers.{N}."
    blk = hub_layout({p + k: v.detach().clone() for k, v in layer.state_dict().items()}, "DeepseekV3ForCausalLM")
    sd.update(blk)
    sd[p + "enorm.weight"] = enorm.weight.detach().clone()
    sd[p + "hnorm.weight"] = hnorm.weight.detach().clone()
    sd[p + "eh_proj.weight"] = eh_proj.weight.detach().clone()
    sd[p + "embed_tokens.weight"] = model.model.embed_tokens.weight.detach().clone()
    sd[p + "shared_head.norm.weight"] = head_norm.weight.detach().clone()
    sd[p + "shared_head.head.weight"] = head.weight.detach().clone()
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    ref = {"tokens": tokens, "hidden": [[round(float(v), 7) for v in row] for row in h],
           "logits": [[round(float(v), 7) for v in row] for row in logits], "argmax_hits": hits,
           "transformers": transformers.__version__}
    with open(os.path.join(out, "expected_mtp.json"), "w") as f:
        json.dump(ref, f)
    print(f"{out}: MTP layer {N} written; MTP argmax = t_(i+2) on {hits} of {T - 2} rows")


if __name__ == "__main__":
    if sys.argv[1:] == ["--mtp"]:   # only (re)write the MTP layer of fixtures/moe/deepseek-v3
        add_mtp(os.path.join(ROOT, "deepseek-v3"))
        sys.exit(0)
    only = sys.argv[1:]
    for name, (arch, cls, kw) in MODELS.items():
        if only and name not in only:
            continue
        build(name, arch, cls, kw, layout="fused" if name == "qwen3-moe" else "hub")
        if name == "deepseek-v3":
            add_mtp(os.path.join(ROOT, name))
    arch, cls, kw = MODELS["deepseek-v3"]
    if not only or "deepseek-v3-bf16" in only:
        build("deepseek-v3", arch, cls, kw, variant="bf16", out_name="deepseek-v3-bf16")
    if not only or "deepseek-v3-fp8" in only:
        build("deepseek-v3", arch, cls, kw, variant="fp8", out_name="deepseek-v3-fp8")
