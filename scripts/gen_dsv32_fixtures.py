#!/usr/bin/env python3
"""Generate the tiny DeepSeek-V3.2 fixture (DeepSeek Sparse Attention) with transformers, and its
GGUF twin as llama.cpp's converter writes architecture `deepseek32`.

Run by developers (needs torch + transformers >= 5.25 + safetensors + gguf), never by CI. Writes
fixtures/moe/deepseek-v32/{config.json, model.safetensors, tokenizer*.json, expected.json,
model-f32.gguf}:

  expected.json = {"prompt": ids, "index_topk": k,
                   "logits": [[vocab] per prompt position]              (one prefill pass),
                   "routing": [per layer: null | per prompt token {"experts", "weights"}],
                   "selected": [per layer: per prompt token: the indexer's top-k positions, ascending],
                   "greedy": N_GEN ids, decoded token by token with the cache,
                   "decode_logits": [[vocab] per decode step] (the step that reads greedy[i-1]),
                   "decode_routing": [per layer: null | per decode step {"experts", "weights"}],
                   "decode_selected": [per layer: per decode step: top-k positions, ascending],
                   "full_logits_last": last position of prompt + greedy[:-1] in one pass,
                   "min_index_gap": smallest distance between the k-th and (k+1)-th indexer score
                                    over every query that had more than k candidates,
                   "min_logit_gap", "min_route_gap": how far the reference is from a tie}

The model: 3 layers (first dense, then MoE), q_lora (the indexer reads its output), YaRN,
attention_bias on (q_a / kv_a / o_proj biases), every RMSNorm, the indexer's LayerNorm (weight
and bias) and the router's correction bias random; index_topk = 6 < the 12-token prompt, so
queries from position 6 on attend to a strict subset of the cache and the selection matters.
The indexer's heads get larger weights than transformers' default init so its scores are spread
out (no near ties at the k-th place; the generator asserts the margin).

GGUF (`deepseek32`, as llama.cpp's DeepseekV32Model converter writes it): the deepseek2 keys
(MQA view of MLA, *_mla lengths, attn_k_b/attn_v_b split of kv_b_proj), plus
deepseek32.attention.indexer.{head_count,key_length,top_k}, nextn_predict_layers, block_count
counting the MTP layer, and per layer blk.N.indexer.{attn_q_b, attn_k, k_norm (+bias), proj}.
"""
import json, os, sys
import numpy as np
import torch
import transformers
import gguf
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_moe_fixtures as moe  # randomize, hub_layout, write_tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "moe")
NAME = "deepseek-v32"
PROMPT = [1, 17, 42, 99, 3, 120, 127, 7, 64, 100, 31, 5]
N_GEN = 16
INDEX_INIT = 0.5  # std of the indexer's wq_b / wk / weights_proj

CONFIG = dict(
    vocab_size=128, hidden_size=64, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
    max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=moe.INIT,
    bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    intermediate_size=64, moe_intermediate_size=32, n_routed_experts=8, num_experts_per_tok=2,
    n_shared_experts=1, n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5,
    first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=64, qk_nope_head_dim=32,
    qk_rope_head_dim=16, v_head_dim=32, attention_bias=True,
    index_topk=6, index_n_heads=16, index_head_dim=32,
    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                     "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0,
                     "mscale": 1.0, "mscale_all_dim": 1.0})
MTP_LAYERS = 1


def build_model():
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    cfg = transformers.DeepseekV32Config(**CONFIG)
    cfg.architectures = ["DeepseekV32ForCausalLM"]
    cfg._attn_implementation = "eager"
    model = transformers.DeepseekV32ForCausalLM(cfg).eval()
    moe.randomize(model, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".indexer." in name and name.endswith(".weight") and "k_norm" not in name:
                p.copy_(INDEX_INIT * torch.randn(p.shape, generator=gen))
            if name.endswith("o_proj.bias"):
                # one constant vector added to the residual stream by every layer would make
                # greedy repeat a single token: keep it small
                p.mul_(0.1)
    for name, p in model.named_parameters():
        if name.endswith("k_norm.bias"):
            assert float(p.abs().max()) > 0, name
    return cfg, model


class Recorder:
    """Hooks every layer's indexer (its top-k, and the margin at the k-th place recomputed from
    the cached indexer keys) and every router."""

    def __init__(self, model):
        self.model = model
        L = model.config.num_hidden_layers
        self.selected = [[] for _ in range(L)]
        self.routing = [None if not hasattr(l.mlp, "gate") else [] for l in model.model.layers]
        self.gaps = []
        self.route_gaps = []
        self.hooks = []
        for i, layer in enumerate(model.model.layers):
            self.hooks.append(layer.self_attn.indexer.register_forward_hook(self.indexer_hook(i), with_kwargs=True))
            if hasattr(layer.mlp, "gate"):
                self.hooks.append(layer.mlp.gate.register_forward_hook(self.gate_hook(i)))

    def indexer_hook(self, i):
        def hook(mod, args, kwargs, out):
            hidden, q_resid, (cos, sin), mask = args[0], args[1], args[2], args[3]
            cache = kwargs["cache"]
            keys = cache.layers[i].indexer_keys[0].float()  # [T, D], roped, as cached
            B, S, _ = hidden.shape
            q = mod.wq_b(q_resid).view(B, S, mod.n_heads, mod.head_dim)
            rd = mod.qk_rope_head_dim
            q_rot, q_pass = q[..., :rd], q[..., rd:]
            c, s = cos.unsqueeze(2), sin.unsqueeze(2)
            half = rd // 2
            rot = torch.cat((-q_rot[..., half:], q_rot[..., :half]), -1)
            q = torch.cat([q_rot * c + rot * s, q_pass], -1)[0].float()  # [S, H, D]
            w = mod.weights_proj(hidden)[0].float() * mod.n_heads ** -0.5  # [S, H]
            scores = torch.relu(torch.einsum("shd,td->sht", q, keys) * mod.softmax_scale)
            index = torch.einsum("sh,sht->st", w, scores)  # [S, T]
            T = keys.shape[0]
            for srow in range(S):
                pos = T - S + srow
                cand = index[srow, :pos + 1]
                k = min(mod.index_topk, pos + 1)
                got = sorted(int(x) for x in out[0, srow].tolist() if int(x) <= pos)
                if pos + 1 > mod.index_topk:
                    order = torch.sort(cand, descending=True)
                    mine = sorted(order.indices[:k].tolist())
                    assert mine == got, (i, pos, mine, got, cand.tolist())
                    self.gaps.append(float(order.values[k - 1] - order.values[k]))
                else:
                    assert got == list(range(pos + 1)), (i, pos, got)
                self.selected[i].append(got)
        return hook

    def gate_hook(self, i):
        def hook(mod, inp, out):
            logits, weights, idx = out
            sel = logits.float().sigmoid() + mod.e_score_correction_bias.float()
            for t in range(idx.shape[0]):
                chosen = idx[t].tolist()
                key = [float(sel[t, e]) for e in chosen]
                order = sorted(range(len(chosen)), key=lambda j: (-key[j], chosen[j]))
                w = weights[t].float().tolist()
                self.routing[i].append({"experts": [chosen[j] for j in order], "weights": [round(w[j], 8) for j in order]})
                # margin at the k-th place among the experts of the kept groups, and between the
                # last kept group and the best dropped one (both must be clear of ties)
                G = mod.num_group
                groups = sel[t].view(G, -1).topk(2, dim=-1)[0].sum(-1)
                kept = groups.topk(mod.topk_group).indices.tolist()
                size = sel.shape[1] // G
                rest = [float(sel[t, e]) for e in range(sel.shape[1]) if e not in chosen and e // size in kept]
                gap = min(key) - max(rest) if rest else 1.0
                gs = groups.sort(descending=True).values
                if mod.topk_group < G:
                    gap = min(gap, float(gs[mod.topk_group - 1] - gs[mod.topk_group]))
                self.route_gaps.append(gap)
        return hook

    def take(self):
        out = (self.selected, self.routing)
        L = self.model.config.num_hidden_layers
        self.selected = [[] for _ in range(L)]
        self.routing = [None if r is None else [] for r in self.routing]
        return out

    def remove(self):
        for h in self.hooks:
            h.remove()


def reference(model):
    rec = Recorder(model)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        out = model(ids, use_cache=True)
        logits = out.logits[0].float()
        selected, routing = rec.take()
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        nxt = int(logits[-1].argmax())
        greedy, dec_logits, dec_sel, dec_route = [nxt], [], [[] for _ in selected], [None if r is None else [] for r in routing]
        gaps = []
        while len(greedy) < N_GEN:
            step = model(torch.tensor([[nxt]]), cache=cache, use_cache=True)
            cache = step.cache if hasattr(step, "cache") else step.past_key_values
            row = step.logits[0, -1].float()
            s, r = rec.take()
            for l in range(len(s)):
                dec_sel[l] += s[l]
                if r[l] is not None:
                    dec_route[l] += r[l]
            dec_logits.append(row)
            top2 = row.topk(2).values
            gaps.append(float(top2[0] - top2[1]))
            nxt = int(row.argmax())
            greedy.append(nxt)
        full = model(torch.tensor([PROMPT + greedy[:-1]])).logits[0].float()
        rec.take()
    rec.remove()
    # The one-pass run over prompt + greedy agrees with the cached decode on every token.
    assert full[len(PROMPT) - 1:].argmax(-1).tolist() == greedy, "one-pass greedy differs from cached decode"
    r3 = lambda v: [round(float(x), 7) for x in v]
    return {"prompt": PROMPT, "index_topk": CONFIG["index_topk"],
            "logits": [r3(row) for row in logits], "routing": routing, "selected": selected,
            "greedy": greedy, "decode_logits": [r3(row) for row in dec_logits],
            "decode_routing": dec_route, "decode_selected": dec_sel,
            "full_logits_last": r3(full[-1]),
            "min_index_gap": min(rec.gaps), "min_logit_gap": min(gaps), "min_route_gap": min(rec.route_gaps),
            "transformers": transformers.__version__}


def write_hf(cfg, model, out):
    sd = moe.hub_layout({k: v.detach().clone() for k, v in model.state_dict().items()}, "DeepseekV32ForCausalLM")
    # DeepSeek's checkpoints carry the multi-token-prediction layer after the last one: loadable, ignored.
    n, H = cfg.num_hidden_layers, cfg.hidden_size
    sd[f"model.layers.{n}.eh_proj.weight"] = torch.zeros(H, 2 * H)
    sd[f"model.layers.{n}.enorm.weight"] = torch.ones(H)
    sd[f"model.layers.{n}.hnorm.weight"] = torch.ones(H)
    os.makedirs(out, exist_ok=True)
    cfg.num_nextn_predict_layers = MTP_LAYERS
    cfg.dtype = torch.float32
    cfg.save_pretrained(out)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    moe.write_tokenizer(out, cfg.vocab_size)
    return sd


def tname(t, bid=None, suffix="weight"):
    n = gguf.TENSOR_NAMES[t]
    return (n.format(bid=bid) if bid is not None else n) + "." + suffix


def write_gguf(cfg, sd, out):
    """deepseek32 as llama.cpp writes it (the gguf package here predates the arch: names by hand)."""
    K, arch = gguf.MODEL_TENSOR, "deepseek32"
    c = json.load(open(os.path.join(out, "config.json")))
    L, H, heads = c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"]
    lora, nope, rope, vd = c["kv_lora_rank"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    rp = c["rope_parameters"]
    path = os.path.join(out, "model-f32.gguf")
    w = gguf.GGUFWriter(path, arch)
    w.add_name(NAME)
    w.add_block_count(L + MTP_LAYERS)
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(H)
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_rope_freq_base(rp["rope_theta"])
    w.add_vocab_size(c["vocab_size"])
    w.add_leading_dense_block_count(c["first_k_dense_replace"])
    w.add_q_lora_rank(c["q_lora_rank"])
    w.add_kv_lora_rank(lora)
    w.add_key_length(lora + rope); w.add_value_length(lora)
    w.add_key_length_mla(nope + rope); w.add_value_length_mla(vd)
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_expert_count(c["n_routed_experts"]); w.add_expert_used_count(c["num_experts_per_tok"])
    w.add_expert_shared_count(c["n_shared_experts"])
    w.add_expert_weights_scale(c["routed_scaling_factor"])
    w.add_expert_weights_norm(True)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_expert_group_count(c["n_group"]); w.add_expert_group_used_count(c["topk_group"])
    w.add_rope_dimension_count(rope)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(rp["factor"])
    w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_log_mul(0.1 * rp["mscale_all_dim"])
    w.add_uint32(f"{arch}.nextn_predict_layers", MTP_LAYERS)
    w.add_uint32(gguf.Keys.Attention.Indexer.HEAD_COUNT.format(arch=arch), c["index_n_heads"])
    w.add_uint32(gguf.Keys.Attention.Indexer.KEY_LENGTH.format(arch=arch), c["index_head_dim"])
    w.add_uint32(gguf.Keys.Attention.Indexer.TOP_K.format(arch=arch), c["index_topk"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    t = [(tname(K.TOKEN_EMBD), sd["model.embed_tokens.weight"]), (tname(K.OUTPUT_NORM), sd["model.norm.weight"]),
         (tname(K.OUTPUT), sd["lm_head.weight"])]
    E = c["n_routed_experts"]
    for i in range(L):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
        t += [(tname(K.ATTN_NORM, i), sd[p + "input_layernorm.weight"]),
              (tname(K.FFN_NORM, i), sd[p + "post_attention_layernorm.weight"]),
              (tname(K.ATTN_Q_A, i), sd[a + "q_a_proj.weight"]), (tname(K.ATTN_Q_A, i, "bias"), sd[a + "q_a_proj.bias"]),
              (tname(K.ATTN_Q_A_NORM, i), sd[a + "q_a_layernorm.weight"]), (tname(K.ATTN_Q_B, i), sd[a + "q_b_proj.weight"]),
              (tname(K.ATTN_KV_A_MQA, i), sd[a + "kv_a_proj_with_mqa.weight"]),
              (tname(K.ATTN_KV_A_MQA, i, "bias"), sd[a + "kv_a_proj_with_mqa.bias"]),
              (tname(K.ATTN_KV_A_NORM, i), sd[a + "kv_a_layernorm.weight"]),
              (tname(K.ATTN_OUT, i), sd[a + "o_proj.weight"]), (tname(K.ATTN_OUT, i, "bias"), sd[a + "o_proj.bias"]),
              (tname(K.INDEXER_ATTN_Q_B, i), sd[a + "indexer.wq_b.weight"]),
              (tname(K.INDEXER_ATTN_K, i), sd[a + "indexer.wk.weight"]),
              (tname(K.INDEXER_K_NORM, i), sd[a + "indexer.k_norm.weight"]),
              (tname(K.INDEXER_K_NORM, i, "bias"), sd[a + "indexer.k_norm.bias"]),
              (tname(K.INDEXER_PROJ, i), sd[a + "indexer.weights_proj.weight"])]
        kv = sd[a + "kv_b_proj.weight"].view(heads, nope + vd, lora)
        k_b, v_b = torch.split(kv, [nope, vd], dim=1)
        t += [(tname(K.ATTN_K_B, i), k_b.transpose(1, 2).contiguous()), (tname(K.ATTN_V_B, i), v_b.contiguous())]
        if p + "mlp.gate.weight" not in sd:
            t += [(tname(K.FFN_GATE, i), sd[p + "mlp.gate_proj.weight"]), (tname(K.FFN_UP, i), sd[p + "mlp.up_proj.weight"]),
                  (tname(K.FFN_DOWN, i), sd[p + "mlp.down_proj.weight"])]
            continue
        t += [(tname(K.FFN_GATE_INP, i), sd[p + "mlp.gate.weight"]),
              (tname(K.FFN_EXP_PROBS_B, i, "bias"), sd[p + "mlp.gate.e_score_correction_bias"])]
        for proj, key in (("gate", K.FFN_GATE_EXP), ("up", K.FFN_UP_EXP), ("down", K.FFN_DOWN_EXP)):
            t.append((tname(key, i), torch.stack([sd[f"{p}mlp.experts.{e}.{proj}_proj.weight"] for e in range(E)])))
        s = p + "mlp.shared_experts."
        t += [(tname(K.FFN_GATE_SHEXP, i), sd[s + "gate_proj.weight"]), (tname(K.FFN_UP_SHEXP, i), sd[s + "up_proj.weight"]),
              (tname(K.FFN_DOWN_SHEXP, i), sd[s + "down_proj.weight"])]
    # The MTP block (skip_mtp = False in the converter): its projection and norms, never used for decoding.
    t += [(tname(K.NEXTN_EH_PROJ, L), sd[f"model.layers.{L}.eh_proj.weight"]),
          (tname(K.NEXTN_ENORM, L), sd[f"model.layers.{L}.enorm.weight"]),
          (tname(K.NEXTN_HNORM, L), sd[f"model.layers.{L}.hnorm.weight"])]
    for name, v in t:
        w.add_tensor(name, v.float().contiguous().numpy().astype(np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    cfg, model = build_model()
    out = os.path.join(ROOT, NAME)
    exp = reference(model)
    sd = write_hf(cfg, model, out)
    write_gguf(cfg, sd, out)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(f"{NAME}: greedy {exp['greedy']}, min index gap {exp['min_index_gap']:.4g}, "
          f"min logit gap {exp['min_logit_gap']:.4f}, min route gap {exp['min_route_gap']:.4g}, "
          f"{os.path.getsize(os.path.join(out, 'model.safetensors'))} bytes")
