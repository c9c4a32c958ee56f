#!/usr/bin/env python3
"""Fixture for Kimi-K2's tokenizer format (tiktoken.model + tokenizer_config.json), developers only.

Kimi-K2 ships no tokenizer.json: its remote code (tokenization_kimi.py) builds a tiktoken
Encoding from tiktoken.model (one "base64(token bytes) rank" line per regular token), its own
pre-tokenization pattern (o200k's with a leading Han-run branch and Han taken out of the letter
classes) and the special tokens of tokenizer_config.json's added_tokens_decoder, numbered after
the ranks. The real file (163,840 ranks) is not reachable offline, so this makes a smaller one
with real-looking merges: the first 20,000 regular tokens of the default model's vocabulary
(Qwen2.5's byte-level BPE), rank = their order. Expected ids come from the tiktoken package with
Kimi's pattern, i.e. exactly what tokenization_kimi.py computes.

usage: scripts/gen_tiktoken_fixture.py [--gguf MODEL.gguf] [--out fixtures/tokenizers/kimi-tiktoken]
needs: pip install gguf tiktoken
"""
import argparse, base64, json, os
import gguf, tiktoken

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT = os.path.expanduser("~/.cache/tiefsee/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
KIMI_PAT = "|".join([
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
SPECIALS = ["[BOS]", "[EOS]", "<|im_end|>", "<|im_user|>", "<|im_assistant|>", "<|im_system|>", "<|im_middle|>",
            "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
            "<|tool_call_argument_begin|>", "<|tool_call_end|>"]
TEXTS = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "  leading spaces and trailing   ",
    "I'm sure they'll say it's DON'T or WE'VE", "numbers: 1 12 123 1234 12345 3.14159 -42",
    "中文English混合", "北京市 Pascal", "汉字abc，标点。还有“引号”", "日本語のテキストとカタカナ", "한국어 문장입니다",
    "Größe, Übermaß und Straße — äöü ÄÖÜ", "Ελληνικά και русский текст", "emoji 🙂🚀 and ZWJ 👩‍💻",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))", "tabs\tand\r\nwindows\r\n\r\nnewlines",
    "<|im_user|>user<|im_middle|>Hi there<|im_end|><|im_assistant|>assistant<|im_middle|>",
    "[BOS]text between [EOS] specials", "mixed CamelCaseWords and snake_case_names and HTTPServer",
    "a\u0301 combining marks e\u0308", "URL https://example.com/path?q=1&r=2#frag", "   \n\n   \n x",
    "$$$ ### !!! ??? ...", "x" * 300, "ÀÉÎÕÜ lowerUPPER MiXeD", "٣٤٥ Arabic digits and العربية",
]


def unicode_to_bytes():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=DEFAULT)
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "tokenizers", "kimi-tiktoken"))
    ap.add_argument("--ranks", type=int, default=20000)
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf)
    f = r.fields["tokenizer.ggml.tokens"]
    types = r.fields["tokenizer.ggml.token_type"]
    u2b = unicode_to_bytes()
    ranks = {}
    for i, idx in enumerate(f.data):
        if len(ranks) >= a.ranks:
            break
        if int(types.parts[types.data[i]][0]) != 1:
            continue
        s = bytes(f.parts[idx]).decode("utf-8")
        b = bytes(u2b[c] for c in s)
        if b not in ranks:
            ranks[b] = len(ranks)
    for b in range(256):  # every byte must be a token
        ranks.setdefault(bytes([b]), len(ranks))
    base = len(ranks)
    specials = {name: base + i for i, name in enumerate(SPECIALS)}
    enc = tiktoken.Encoding("kimi-fixture", pat_str=KIMI_PAT, mergeable_ranks=ranks, special_tokens=specials)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tiktoken.model"), "w") as fh:
        for b, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            fh.write(f"{base64.b64encode(b).decode()} {rank}\n")
    decoder = {str(i): {"content": n, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for n, i in specials.items()}
    cfg = {"added_tokens_decoder": decoder, "bos_token": "[BOS]", "eos_token": "[EOS]", "pad_token": None,
           "tokenizer_class": "TikTokenTokenizer",
           "auto_map": {"AutoTokenizer": ["tokenization_kimi.TikTokenTokenizer", None]}}
    json.dump(cfg, open(os.path.join(a.out, "tokenizer_config.json"), "w"), indent=1, ensure_ascii=False)
    cases = [{"text": t, "ids": enc.encode(t, allowed_special="all"), "ids_plain": enc.encode_ordinary(t)} for t in TEXTS]
    json.dump({"format": 1, "ranks": base, "cases": cases}, open(os.path.join(a.out, "expected.json"), "w"),
              ensure_ascii=False)
    print(f"{base} ranks, {len(specials)} specials, {len(cases)} cases -> {a.out}")


if __name__ == "__main__":
    main()
