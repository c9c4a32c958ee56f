#!/usr/bin/env python3
"""DeepSeek-V4's multi-token-prediction block for the tiny V4 fixture, and its reference outputs.

Run by developers after gen_dsv4_fixtures.py (needs torch + transformers >= 5.25 + safetensors),
never by CI. It loads fixtures/dsv4/tiny as transformers does (so the main model's weights and
expected.json stay as they are), replaces the checkpoint's mtp.0.* tensors with a block shaped as
DeepSeek ships it, and writes fixtures/dsv4/tiny/mtp_expected.json.

The block, as DeepSeek's inference code (`MTPBlock`) defines it, for MTP row i (position i):
    h      = the main model's hyper-connection streams after its last layer, at position i
             ([hc_mult, hidden]: what `hc_head` collapses)
    e      = enorm(embed(t_{i+1}))
    x      = e_proj(e) (added to every stream) + h_proj(hnorm(h))  (per stream)
    x      = one V4 decoder block on x (layer index num_hidden_layers: sliding-window attention,
             score-routed MoE, its own hc_attn / hc_ffn), causal over MTP rows 0..i
    logits = head(norm(hc_head_mtp(x)))   (the main model's head, the block's own hc_head_*)
transformers does not run the block (it drops mtp.* on load), so the reference is built here
from transformers' own decoder-layer, hyper-head and norm modules.

mtp_expected.json = {"prompt": ids (the fixture's prompt), "rows": [MTP row indices kept],
                     "logits": [[vocab] per kept row]}
"""
import copy, json, os
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.masking_utils import create_sliding_window_causal_mask
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as m4

from gen_dsv4_fixtures import OUT, SEED, checkpoint_layout, randomize_parameters


class MTP(torch.nn.Module):
    def __init__(self, cfg2, n):
        super().__init__()
        H = cfg2.hidden_size
        self.e_proj = torch.nn.Linear(H, H, bias=False)
        self.h_proj = torch.nn.Linear(H, H, bias=False)
        self.enorm = m4.DeepseekV4RMSNorm(H, eps=cfg2.rms_norm_eps)
        self.hnorm = m4.DeepseekV4RMSNorm(H, eps=cfg2.rms_norm_eps)
        self.norm = m4.DeepseekV4RMSNorm(H, eps=cfg2.rms_norm_eps)
        self.hc_head = m4.DeepseekV4HyperHead(cfg2)
        self.block = m4.DeepseekV4DecoderLayer(cfg2, n)


def main():
    model = transformers.DeepseekV4ForCausalLM.from_pretrained(OUT).eval()
    cfg = model.config
    n = cfg.num_hidden_layers
    # The block's config: one more layer, sliding-window attention and top-k routing.
    cfg2 = copy.deepcopy(cfg)
    cfg2.num_hidden_layers = n + 1
    cfg2.layer_types = list(cfg.layer_types) + ["sliding_attention"]
    cfg2.mlp_layer_types = list(cfg.mlp_layer_types) + ["moe"]
    gen = torch.Generator().manual_seed(3000 + SEED)
    torch.manual_seed(3000 + SEED)
    mtp = MTP(cfg2, n).eval()
    randomize_parameters(mtp, gen, matrix_std=cfg.initializer_range)
    with torch.no_grad():
        # e_proj near the identity, so the block sees the next token and proposes something
        # correlated with the model's choice (random weights otherwise propose noise).
        mtp.e_proj.weight.add_(torch.eye(cfg.hidden_size))
        for name, b in mtp.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=gen))

    # DeepSeek's names: the block as layer n of a checkpoint, then layers.n. -> mtp.0.
    block_sd = {f"model.layers.{n}.{k}": v.detach().clone() for k, v in mtp.block.state_dict().items()}
    named = checkpoint_layout(block_sd)
    sd = {k: v for k, v in load_file(os.path.join(OUT, "model.safetensors")).items() if not k.startswith("mtp.")}
    for k, v in named.items():
        sd["mtp.0." + k[len(f"layers.{n}."):]] = v
    for k in ("e_proj", "h_proj", "enorm", "hnorm", "norm"):
        sd[f"mtp.0.{k}.weight"] = getattr(mtp, k).weight.detach().clone().contiguous()
    for k in ("fn", "base", "scale"):
        sd[f"mtp.0.hc_head_{k}"] = getattr(mtp.hc_head, "hc_" + k).detach().clone().contiguous()
    save_file(sd, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})

    # Reference: the main model's streams before hc_head over the prompt, then the MTP rows.
    exp = json.load(open(os.path.join(OUT, "expected.json")))
    prompt = exp["prompt"]
    ids = torch.tensor([prompt])
    seen = {}
    def keep(mod, inp, out):
        seen["h"] = inp[0].detach().clone()   # (a hook that returns a value would replace the output)
    hook = model.model.hc_head.register_forward_hook(keep)
    with torch.no_grad():
        main_logits = model(ids).logits[0].float()
    hook.remove()
    assert float((main_logits - torch.tensor(exp["logits"])).abs().max()) < 1e-4, "the fixture's main model changed"
    h = seen["h"][:, :-1]                              # h_0 .. h_{S-2}
    nxt = ids[:, 1:]                                   # t_1 .. t_{S-1}
    S1 = nxt.shape[1]
    with torch.no_grad():
        e = mtp.enorm(model.model.embed_tokens(nxt))
        x = mtp.e_proj(e).unsqueeze(2) + mtp.h_proj(mtp.hnorm(h))
        pos = torch.arange(S1).unsqueeze(0)
        emb = model.model.embed_tokens(nxt)
        pe = {"main": model.model.rotary_emb(emb, position_ids=pos, layer_type="main"),
              "compress": model.model.rotary_emb(emb, position_ids=pos, layer_type="compress")}
        mask = create_sliding_window_causal_mask(config=cfg2, inputs_embeds=emb, attention_mask=None, cache=None, position_ids=pos)
        y = mtp.block(x, position_embeddings=pe, position_ids=pos, attention_mask=mask, input_ids=nxt, cache=None)
        logits = model.lm_head(mtp.norm(mtp.hc_head(y)))[0].float()
    rows = sorted(set(list(range(0, S1, 4)) + list(range(S1 - 8, S1))))
    agree = int((logits.argmax(-1) == main_logits[1:].argmax(-1)).sum())
    out = {"prompt": prompt, "rows": rows, "logits": [[round(float(v), 6) for v in logits[r]] for r in rows],
           "transformers": transformers.__version__, "seed": SEED}
    with open(os.path.join(OUT, "mtp_expected.json"), "w") as f:
        json.dump(out, f)
    print(f"mtp.0: {sum(1 for k in sd if k.startswith('mtp.'))} tensors; {S1} MTP rows, {len(rows)} kept; "
          f"MTP argmax equals the model's next greedy token on {agree}/{S1 - 1} rows")


if __name__ == "__main__":
    main()
