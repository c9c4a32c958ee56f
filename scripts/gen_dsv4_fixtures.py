#!/usr/bin/env python3
"""Generate a tiny random DeepSeek-V4 model with transformers (deepseek_v4) and its reference outputs.

Run by developers (needs torch + transformers >= 5.25 + safetensors), never by CI. Writes
fixtures/dsv4/tiny/{config.json, model.safetensors, expected.json, tokenizer.json, tokenizer_config.json}.

The config exercises every V4 feature on a prompt long enough for all of them:
  * compress_ratios [0, 4, 128, 4]: a sliding-only layer, two compressed-sparse (CSA, m=4, with
    the lightning indexer keeping index_topk of the compressed entries) and a heavily compressed
    one (HCA, m'=128: the prompt crosses position 128, so one entry is emitted in the prompt);
  * sliding_window 16, shorter than the prompt; per-head attention sinks;
  * hc_mult 4 hyper-connection streams with 7 Sinkhorn iterations;
  * num_hash_layers 2: the first two MoE layers route by the frozen tid2eid table;
  * sqrt-softplus gating with a correction bias, swiglu_limit low enough to clip;
  * o_groups 2 / o_lora_rank 16 grouped output projection; YaRN on the compress rope;
  * MTP weights (mtp.0.*) present in the checkpoint (transformers ignores them, so must Tiefsee).
Every norm, bias, sink, position bias, hyper-connection base/scale is random (transformers
initialises them to 1 or 0, which would hide mistakes).

The safetensors use the names of DeepSeek's own checkpoint (`embed.weight`, `layers.N.attn.wq_a`,
`layers.N.attn.kv_norm`, `layers.N.attn.compressor.norm`, `layers.N.ffn.experts.E.w1`, `hc_head_fn`,
...), which transformers maps on load; the generator checks that transformers, loading this folder,
reproduces the logits of the model it built.

expected.json = {"prompt": ids, "logits": [[vocab] per prompt position] (one full forward),
                 "greedy": N_GEN ids from transformers generate (its own cache, token by token),
                 "decode_logits": [[vocab] per generated step, from that cached decode],
                 "routing": [per layer: [per prompt token: {"experts": sorted ids, "weights": same order}]],
                 "decode_routing": same for the tokens fed during generate,
                 "indexer": [per CSA layer: {"layer": i, "topk": [per prompt token: sorted entry ids]}],
                 "min_logit_gap", "min_route_gap", "min_index_gap", "decode_vs_full": max diff}
"""
import json, os, sys
import torch
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "dsv4", "tiny")
sys.path.insert(0, HERE)
from gen_moe_fixtures import write_tokenizer  # the tiny 128-token byte-level BPE of the MoE fixtures

PROMPT_LEN = 140
N_GEN = 12
SEED = int(os.environ.get("DSV4_SEED", "6"))

CONFIG = dict(
    vocab_size=128, hidden_size=64, moe_intermediate_size=32, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=1, head_dim=32, qk_rope_head_dim=16, q_lora_rank=32,
    num_experts_per_tok=2, n_routed_experts=8, n_shared_experts=1, scoring_func="sqrtsoftplus",
    norm_topk_prob=True, routed_scaling_factor=1.5, max_position_embeddings=1024,
    rope_theta=10000.0, compress_rope_theta=160000.0,
    rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                     "beta_fast": 32.0, "beta_slow": 1.0},
    compress_ratios=[0, 4, 128, 4], num_hash_layers=2,
    hc_mult=4, hc_sinkhorn_iters=7, hc_eps=1e-6, swiglu_limit=0.6, sliding_window=16,
    o_groups=2, o_lora_rank=16, index_n_heads=8, index_head_dim=24, index_topk=5,
    num_nextn_predict_layers=1, rms_norm_eps=1e-6, initializer_range=0.08,
    bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
)


def randomize_parameters(module, gen, matrix_std=None):
    """Random norms, sinks, position biases and hyper-connection base/scale/fn (transformers
    initialises them to 1 or 0); with matrix_std, every other matrix from N(0, matrix_std)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".sinks"):
                p.copy_(0.8 * torch.randn(p.shape, generator=gen))
            elif name.endswith("position_bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("_hc.base") or name.endswith("hc_base"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("_hc.scale") or name.endswith("hc_scale"):
                p.copy_(1.0 + 0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith("_hc.fn") or name.endswith("hc_fn"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif matrix_std is not None and p.dim() >= 2:
                p.copy_(matrix_std * torch.randn(p.shape, generator=gen))


def randomize(model, gen):
    cfg = model.config
    randomize_parameters(model, gen)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))
            elif name.endswith("tid2eid"):
                # distinct experts per token, as DeepSeek's table has
                rows = [torch.randperm(cfg.n_routed_experts, generator=gen)[: cfg.num_experts_per_tok]
                        for _ in range(cfg.vocab_size)]
                b.copy_(torch.stack(rows))
        # Confident greedy tokens: a scaled head plus a "bigram" vote (as the MoE fixtures do).
        model.lm_head.weight.mul_(6.0)
        emb = model.model.embed_tokens.weight
        unit = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        perm = torch.randperm(emb.shape[0], generator=gen)
        model.lm_head.weight[perm] += 3.0 * unit


# transformers' state_dict name -> DeepSeek's checkpoint name (the inverse of transformers'
# conversion mapping for deepseek_v4; fused experts are split back per expert).
RENAMES = [
    (".self_attn.compressor.indexer.scorer.weights_proj.", ".attn.indexer.weights_proj."),
    (".self_attn.compressor.indexer.q_b_proj.", ".attn.indexer.wq_b."),
    (".self_attn.compressor.indexer.", ".attn.indexer.compressor."),
    (".self_attn.", ".attn."), (".mlp.", ".ffn."),
    (".input_layernorm.", ".attn_norm."), (".post_attention_layernorm.", ".ffn_norm."),
    (".attn_hc.fn", ".hc_attn_fn"), (".attn_hc.base", ".hc_attn_base"), (".attn_hc.scale", ".hc_attn_scale"),
    (".ffn_hc.fn", ".hc_ffn_fn"), (".ffn_hc.base", ".hc_ffn_base"), (".ffn_hc.scale", ".hc_ffn_scale"),
    (".sinks", ".attn_sink"), (".compressor.kv_norm.", ".compressor.norm."), (".position_bias", ".ape"),
    (".q_a_proj.", ".wq_a."), (".q_b_proj.", ".wq_b."), (".kv_proj.", ".wkv."), (".gate_proj.", ".wgate."),
    (".o_a_proj.", ".wo_a."), (".o_b_proj.", ".wo_b."), (".q_a_norm.", ".q_norm."),
    (".gate.e_score_correction_bias", ".gate.bias"),
]


def checkpoint_layout(sd):
    out = {}
    for k, v in sd.items():
        if k == "model.embed_tokens.weight":
            out["embed.weight"] = v; continue
        if k == "lm_head.weight":
            out["head.weight"] = v; continue
        if k == "model.norm.weight":
            out["norm.weight"] = v; continue
        if k.startswith("model.hc_head."):
            out["hc_head_" + k.split(".")[-1][3:]] = v; continue
        n = k[len("model."):]
        if n.endswith("experts.gate_up_proj"):
            base = n[: -len("gate_up_proj")].replace(".mlp.", ".ffn.")
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{base}{e}.w1.weight"], out[f"{base}{e}.w3.weight"] = v[e, :inter], v[e, inter:]
            continue
        if n.endswith("experts.down_proj"):
            base = n[: -len("down_proj")].replace(".mlp.", ".ffn.")
            for e in range(v.shape[0]):
                out[f"{base}{e}.w2.weight"] = v[e]
            continue
        if ".shared_experts." in n:
            n = n.replace(".gate_proj.", ".w1.").replace(".down_proj.", ".w2.").replace(".up_proj.", ".w3.")
        for a, b in RENAMES:
            n = n.replace(a, b)
        out[n] = v
    return {k: v.contiguous() for k, v in out.items()}


def add_mtp(sd, cfg, gen):
    """A multi-token-prediction block as DeepSeek ships it (mtp.0.*: projections of the next
    token's embedding and the last hidden state, their norms, and a full block of layer 0's shape)."""
    H = cfg.hidden_size
    sd["mtp.0.e_proj.weight"] = 0.05 * torch.randn(H, H, generator=gen)
    sd["mtp.0.h_proj.weight"] = 0.05 * torch.randn(H, H, generator=gen)
    sd["mtp.0.enorm.weight"] = torch.ones(H)
    sd["mtp.0.hnorm.weight"] = torch.ones(H)
    sd["mtp.0.norm.weight"] = torch.ones(H)
    for k in list(sd):
        if k.startswith("layers.0."):
            sd["mtp.0." + k[len("layers.0."):]] = sd[k].clone()


class Capture:
    """Forward hooks on every router and CSA indexer: routing and indexer picks per fed token."""

    def __init__(self, model):
        self.model = model
        self.routing = [[] for _ in model.model.layers]
        self.indexer = {}
        self.route_gaps, self.index_gaps = [], []
        self.hooks = []
        for i, layer in enumerate(model.model.layers):
            self.hooks.append(layer.mlp.gate.register_forward_hook(self.route_hook(i)))
            comp = layer.self_attn.compressor
            if comp is not None and hasattr(comp, "indexer"):
                self.indexer[i] = []
                self.hooks.append(comp.indexer.scorer.register_forward_hook(self.index_hook(i, comp.indexer)))
                self.hooks.append(comp.indexer.register_forward_hook(self.index_out_hook(i)))

    def route_hook(self, i):
        def hook(mod, inp, out):
            logits, weights, idx = out
            hash_routed = hasattr(mod, "tid2eid")
            sel = mod.score_fn(logits.float())
            if not hash_routed:
                sel = sel + mod.e_score_correction_bias.float()
            for t in range(idx.shape[0]):
                chosen = idx[t].tolist()
                order = sorted(range(len(chosen)), key=lambda j: chosen[j])
                self.routing[i].append({"experts": [chosen[j] for j in order],
                                        "weights": [round(float(weights[t, j]), 8) for j in order]})
                if not hash_routed:
                    rest = [float(sel[t, e]) for e in range(sel.shape[1]) if e not in chosen]
                    self.route_gaps.append(min(float(sel[t, e]) for e in chosen) - max(rest))
        return hook

    def index_hook(self, i, indexer):
        # scores [B, S, T] before the causal mask: the gap at the top-k boundary among valid entries
        def hook(mod, inp, out):
            q = inp[0]
            S = out.shape[1]
            self._pending = (i, out[0].detach().clone(), S)
        return hook

    def index_out_hook(self, i):
        def hook(mod, inp, out):
            _, scores, S = self._pending
            position_ids = inp[2][0]
            m = mod.compress_rate
            for s in range(S):
                valid = int(position_ids[s] + 1) // m
                picks = sorted(int(x) for x in out[0, s].tolist() if x >= 0)
                self.indexer[i].append(picks)
                if valid > mod.index_topk:
                    row = sorted((float(scores[s, e]) for e in range(valid)), reverse=True)
                    self.index_gaps.append(row[mod.index_topk - 1] - row[mod.index_topk])
        return hook

    def take(self):
        r, x = self.routing, self.indexer
        self.routing = [[] for _ in self.model.model.layers]
        self.indexer = {k: [] for k in x}
        return r, x

    def remove(self):
        for h in self.hooks:
            h.remove()


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(1000 + SEED)
    cfg = transformers.DeepseekV4Config(**CONFIG)
    cfg.architectures = ["DeepseekV4ForCausalLM"]
    model = transformers.DeepseekV4ForCausalLM(cfg).eval()
    randomize(model, gen)
    prompt = [1] + torch.randint(3, cfg.vocab_size, (PROMPT_LEN - 1,), generator=gen).tolist()
    ids = torch.tensor([prompt])

    cap = Capture(model)
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    routing, indexer = cap.take()
    with torch.no_grad():
        g = model.generate(ids, max_new_tokens=N_GEN, min_new_tokens=N_GEN, do_sample=False,
                           pad_token_id=0, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    decode_routing, _ = cap.take()
    cap.remove()
    greedy = g.sequences[0, PROMPT_LEN:].tolist()
    decode_logits = torch.stack([l[0].float() for l in g.logits])
    # The cached decode must agree with one full forward over prompt + generated tokens: the
    # compressed / windowed cache loses nothing the full pass sees.
    with torch.no_grad():
        full = model(g.sequences[:, :-1]).logits[0, PROMPT_LEN - 1:].float()
    decode_vs_full = float((full - decode_logits).abs().max())
    top2 = full.topk(2, dim=-1).values
    logit_gap = float((top2[:, 0] - top2[:, 1]).min())
    # the first decode routing rows are the prefill's (generate runs the prompt first)
    decode_routing = [rows[PROMPT_LEN:] for rows in decode_routing]

    os.makedirs(OUT, exist_ok=True)
    cfg.save_pretrained(OUT)
    # config.json as DeepSeek ships it: legacy per-layer compress_ratios and num_hash_layers
    cj = json.load(open(os.path.join(OUT, "config.json")))
    cj.pop("layer_types"); cj.pop("mlp_layer_types")
    cj["compress_ratios"] = CONFIG["compress_ratios"]
    cj["num_hash_layers"] = CONFIG["num_hash_layers"]
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cj, f, indent=2, sort_keys=True)
    gpath = os.path.join(OUT, "generation_config.json")
    if os.path.exists(gpath):
        os.remove(gpath)
    sd = checkpoint_layout({k: v.detach().clone() for k, v in model.state_dict().items()})
    add_mtp(sd, cfg, gen)
    save_file(sd, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(OUT, cfg.vocab_size)

    # transformers, loading the folder written here, must give the same logits.
    reloaded = transformers.DeepseekV4ForCausalLM.from_pretrained(OUT).eval()
    with torch.no_grad():
        again = reloaded(ids).logits[0].float()
    reload_diff = float((again - logits).abs().max())
    assert reload_diff < 1e-5, f"checkpoint layout does not load back: {reload_diff}"

    exp = {"prompt": prompt, "logits": [[round(float(x), 6) for x in row] for row in logits],
           "greedy": greedy, "decode_logits": [[round(float(x), 6) for x in row] for row in decode_logits],
           "routing": routing, "decode_routing": decode_routing,
           "indexer": [{"layer": i, "topk": rows} for i, rows in sorted(indexer.items())],
           "min_logit_gap": logit_gap, "min_route_gap": min(cap.route_gaps),
           "min_index_gap": min(cap.index_gaps), "decode_vs_full": decode_vs_full,
           "transformers": transformers.__version__, "seed": SEED}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(f"seed {SEED}: {os.path.getsize(os.path.join(OUT, 'model.safetensors'))} bytes, greedy {greedy}, "
          f"min logit gap {logit_gap:.4f}, min route gap {exp['min_route_gap']:.5f}, "
          f"min index gap {exp['min_index_gap']:.5f}, cached decode vs full {decode_vs_full:.2e}, "
          f"reload {reload_diff:.1e}")


if __name__ == "__main__":
    main()
