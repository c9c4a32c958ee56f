#!/usr/bin/env python3
"""Tiny random cross-encoders and an XLM-RoBERTa embedding model for the Swift parity tests
(developers only; CI reads the committed outputs).

Writes under fixtures/rerankers/:
  bert-cross-encoder/   BertForSequenceClassification (num_labels 1) + a WordPiece tokenizer
  xlmr-cross-encoder/   XLMRobertaForSequenceClassification (bge-reranker style) + a Unigram tokenizer
  xlmr-embedding/       SentenceTransformer: XLMRobertaModel + CLS pooling + Normalize (bge-m3 style)
  reference.json        token ids (single texts and query/document pairs) from the HF tokenizers,
                        CrossEncoder.predict scores and raw logits, SentenceTransformer embeddings
The tokenizers are trained on the EN/DE corpus (fixtures/kb-corpus/docs): WordPiece with the
tokenizers library, Unigram with sentencepiece (nmt_nfkc, so tokenizer.json carries a Precompiled
charsmap as XLM-R's does). Weights are random with fixed seeds.
Usage: python3 scripts/gen_reranker_fixtures.py
"""
import glob, json, os, random, shutil, tempfile

import sentencepiece as spm
import torch
from sentencepiece import sentencepiece_model_pb2 as spm_pb2
from sentence_transformers import CrossEncoder, SentenceTransformer, models
from tokenizers import BertWordPieceTokenizer
from transformers import (BertConfig, BertForSequenceClassification, BertTokenizer, XLMRobertaConfig,
                          XLMRobertaForSequenceClassification, XLMRobertaModel, XLMRobertaTokenizer)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "rerankers")
MAX_LEN = 64   # small, so that the long pairs below are truncated (longest_first)

def corpus_lines():
    lines = []
    for p in sorted(glob.glob(os.path.join(ROOT, "fixtures/kb-corpus/docs/**/*"), recursive=True)):
        if p.endswith((".md", ".txt")):
            with open(p, encoding="utf-8") as f:
                lines += [l.strip() for l in f if l.strip()]
    return lines

TEXTS = [
    "Who leads project Kompassrose?",
    "Wer leitet das Projekt Kompassrose?",
    "Expense reports must be submitted within 14 days of travel.",
    "Urlaubsanträge müssen spätestens zwei Wochen vorher eingereicht werden.",
    "Straße, Grüße, Äpfel, Öl und Übungen — deutsche Sonderzeichen.",
    "Unicode: naïve café, ﬁle, ①②, ＡＢＣ full width, “quotes”, emoji 🙂 and Zürich.",
    "  leading and   repeated    spaces\tand a tab  ",
    "zzqx unseen Qwerty-Wörter: Xylophon, 東京, São Paulo.",
    "A",
    "",
]
QUERY_DOCS = [
    ("Wer leitet das Projekt Kompassrose?",
     ["Das Projekt Kompassrose wird von Jana Vogt geleitet; Start war im März 2024.",
      "Die Kantine bietet täglich ein vegetarisches Gericht an.",
      "Project Kompassrose is led by Jana Vogt.",
      "Fahrtkosten werden mit 0,30 € pro Kilometer erstattet."]),
    ("How many days of remote work are allowed?",
     ["Remote work is allowed up to three days per week after the probation period.",
      "The cafeteria is closed on public holidays.",
      "A much longer passage to exercise truncation: the company handbook describes onboarding, "
      "equipment, security training, travel policy, expense limits, working hours, overtime "
      "compensation, parental leave, sabbaticals, internal mobility, feedback cycles, promotion "
      "criteria and the code of conduct in separate chapters, each with a named owner who answers "
      "questions and reviews the text once a year."]),
]

def wordpiece_tokenizer(lines, folder):
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(lines, vocab_size=700, min_frequency=2)
    tok = BertTokenizer(vocab=wp.get_vocab(), do_lower_case=True, model_max_length=MAX_LEN)
    tok.save_pretrained(folder)
    return tok

def unigram_tokenizer(lines, folder):
    tmp = tempfile.mkdtemp()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=tmp + "/spm", vocab_size=800,
                                   model_type="unigram", normalization_rule_name="nmt_nfkc",
                                   character_coverage=0.9995, seed_sentencepiece_size=20000, num_threads=1,
                                   minloglevel=2)
    proto = spm_pb2.ModelProto()
    with open(tmp + "/spm.model", "rb") as f:
        proto.ParseFromString(f.read())
    shutil.rmtree(tmp)
    # XLM-R's layout (fairseq): <s> <pad> </s> <unk>, then the sentencepiece pieces, <mask> last.
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(p.piece, p.score) for p in proto.pieces if p.type == 1]
    vocab += [("<mask>", 0.0)]
    tok = XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap,
                              model_max_length=MAX_LEN)
    tok.save_pretrained(folder)
    return tok

def xlmr_config(tok):
    return XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=MAX_LEN + 2, type_vocab_size=1,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2, initializer_range=0.1, num_labels=1)

def spread_head(linear):
    """Random heads score every pair about the same; a larger last layer spreads the scores over
    (0, 1) so that a 1e-4 tolerance tells pairs apart."""
    with torch.no_grad():
        linear.weight.mul_(30.0)

def main():
    os.makedirs(OUT, exist_ok=True)
    lines = corpus_lines()
    random.Random(0).shuffle(lines)
    ref = {"max_length": MAX_LEN, "texts": TEXTS, "models": {}}

    # 1. BERT cross-encoder.
    folder = os.path.join(OUT, "bert-cross-encoder")
    shutil.rmtree(folder, ignore_errors=True)
    wtok = wordpiece_tokenizer(lines, folder)
    torch.manual_seed(1)
    bcfg = BertConfig(vocab_size=len(wtok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=MAX_LEN, type_vocab_size=2,
                      initializer_range=0.1, num_labels=1)
    bert = BertForSequenceClassification(bcfg).eval()
    spread_head(bert.classifier)
    bert.save_pretrained(folder)

    # 2. XLM-RoBERTa cross-encoder (bge-reranker style) and 3. embedding model (bge-m3 style).
    ufolder = os.path.join(OUT, "xlmr-cross-encoder")
    shutil.rmtree(ufolder, ignore_errors=True)
    utok = unigram_tokenizer(lines, ufolder)
    torch.manual_seed(2)
    xlmr = XLMRobertaForSequenceClassification(xlmr_config(utok)).eval()
    spread_head(xlmr.classifier.out_proj)
    xlmr.save_pretrained(ufolder)

    efolder = os.path.join(OUT, "xlmr-embedding")
    shutil.rmtree(efolder, ignore_errors=True)
    tmp = tempfile.mkdtemp()
    utok.save_pretrained(tmp)
    torch.manual_seed(3)
    XLMRobertaModel(xlmr_config(utok), add_pooling_layer=False).eval().save_pretrained(tmp)
    tr = models.Transformer(tmp, max_seq_length=MAX_LEN)
    st = SentenceTransformer(modules=[tr, models.Pooling(32, pooling_mode="cls"), models.Normalize()], device="cpu")
    st.save(efolder)
    shutil.rmtree(tmp)

    for name, folder, tok in [("bert-cross-encoder", folder, wtok), ("xlmr-cross-encoder", ufolder, utok)]:
        ce = CrossEncoder(folder, device="cpu", max_length=MAX_LEN)
        pairs = [(q, d) for q, ds in QUERY_DOCS for d in ds]
        scores = ce.predict(pairs, batch_size=4)
        enc = [tok(q, d, truncation=True, max_length=MAX_LEN) for q, d in pairs]
        with torch.no_grad():
            hf = ce.model if hasattr(ce, "model") else None
            logits = [float(ce.predict([p], activation_fn=torch.nn.Identity())[0]) for p in pairs]
        ref["models"][name] = {
            "single_ids": [tok(t, truncation=True, max_length=MAX_LEN)["input_ids"] for t in TEXTS],
            "pairs": [{"query": q, "document": d, "ids": e["input_ids"],
                       "type_ids": e.get("token_type_ids", [0] * len(e["input_ids"])),
                       "score": float(s), "logit": l} for (q, d), e, s, l in zip(pairs, enc, scores, logits)],
        }
    st = SentenceTransformer(efolder, device="cpu")
    emb = st.encode(TEXTS + [d for _, ds in QUERY_DOCS for d in ds], batch_size=4, convert_to_numpy=True)
    all_texts = TEXTS + [d for _, ds in QUERY_DOCS for d in ds]
    ref["models"]["xlmr-embedding"] = {
        "texts": all_texts,
        "ids": [st.tokenizer(t, truncation=True, max_length=MAX_LEN)["input_ids"] for t in all_texts],
        "embeddings": [[round(float(x), 7) for x in e] for e in emb],
    }
    with open(os.path.join(OUT, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=0)
    print("wrote", OUT)

if __name__ == "__main__":
    main()
