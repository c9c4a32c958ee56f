#!/usr/bin/env python3
"""Low-bit GGUFs in Tiefsee vs llama.cpp, in one run (developers only; not part of CI).

For each model (the default Qwen2.5-Coder-0.5B and a smaller variant of the MoE benchmark
model) this script makes the low-bit files, then runs every file in both engines:

  * llama.cpp-made files: llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize)
    in Q2_K, Q3_K_M, IQ4_XS and an "R1 dynamic"-like mix (ffn_gate/up IQ1_S, ffn_down IQ2_XXS,
    attention Q4_K, head Q6_K, embedding Q4_K; llama.cpp's fallbacks where rows are not whole
    256-blocks). The IQ1/IQ2 types need an importance matrix: it is made by `tiefsee imatrix`
    (llama.cpp's GGUF imatrix format) on a calibration text and handed to llama.cpp's quantizer.
  * Tiefsee-made files (--tiefsee-files): `tiefsee quantize` in Q2_K, Q3_K_M, IQ4_XS, IQ4_NL,
    IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M and the same R1-like mix, from the same source and imatrix.

Sources: the default model ships only as Q4_K_M, so an f32 GGUF is made from it (every tensor
dequantized by the gguf package) and everything is quantized from that f32 file. The MoE model
(scripts/gen_moe_bench_gguf.py, random weights, written as Q8_0) is made with --moe-layers
layers (default 3: one dense + two MoE layers, instead of 8, to save disk and time) and
quantized from its Q8_0 (allow_requantize).

Per file:
  greedy   both engines generate -n tokens (default 64) greedily from the same prompt; the
           figure is how many leading tokens agree.
  KL       teacher-forced on prompt + llama.cpp's greedy tokens: llama.cpp's logits of every
           position (logits_all) and Tiefsee's (`tiefsee logits --tokens … --last N`), the
           mean over positions of KL(llama.cpp || Tiefsee) in nats, its maximum, and top-1
           agreement. Pass: mean KL <= 0.01.
  vs ref   (Tiefsee only) mean KL of the file's logits against the reference file's (f32 for
           the default model, Q8_0 for the MoE model) on the same tokens: the quantization's cost.

usage: scripts/compare_lowbit_llama_cpp.py [--models default,moe] [--work DIR] [-n 64]
           [--llama-types Q2_K,Q3_K_M,IQ4_XS,R1] [--tiefsee-files [TYPES]] [--threads 2]
           [--json OUT.json]
Exit status 0 when every file passes (mean KL <= 0.01 between the engines), 1 otherwise.
"""
import argparse, ctypes, json, os, re, subprocess, sys, time
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
HOME = os.environ.get("TIEFSEE_HOME") or os.path.expanduser("~/.cache/tiefsee")
DEFAULT = os.path.join(HOME, "models", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
PROMPTS = {
    "default": "// Swift: a binary search over a sorted array, with a doc comment and tests\nfunc binarySearch(",
    "moe": "The quick brown fox jumps over the lazy dog. In the beginning",
}
# The R1-dynamic-like mix (regex -> type, first match wins), the same for both quantizers.
R1_MIX = [(r"ffn_(gate|up)", "IQ1_S"), (r"ffn_down", "IQ2_XXS"), (r"attn_", "Q4_K"),
          (r"^output\.weight$", "Q6_K"), (r"^token_embd\.weight$", "Q4_K")]
LLAMA_TYPES = ["Q2_K", "Q3_K_M", "IQ4_XS", "R1"]
TIEFSEE_TYPES = ["Q2_K", "Q3_K_M", "IQ4_XS", "IQ4_NL", "IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M", "R1"]
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M", "R1"}


def tiefsee_bin():
    return os.environ.get("TIEFSEE_BIN") or os.path.join(ROOT, ".build", "release", "tiefsee")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Sources, imatrix, quantized files
# ---------------------------------------------------------------------------------------------

def to_f32(src, dst):
    """An f32 GGUF with src's metadata and every tensor dequantized by the gguf package."""
    import gguf
    from gguf.quants import dequantize
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if k == "general.file_type":
            w.add_uint32(k, 0)
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), f.types[0], sub_type=sub)
    for t in r.tensors:
        shape = tuple(reversed([int(d) for d in t.shape]))
        w.add_tensor(t.name, dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def calibration_text(path):
    """The calibration text: this repository's README, docs and Swift sources (code and prose,
    like what the coder model sees), written once."""
    if not os.path.exists(path):
        parts = []
        for d in ["README.md", "docs", "Sources/Tiefsee/Models", "Sources/Tiefsee/Generation"]:
            p = os.path.join(ROOT, d)
            files = [p] if os.path.isfile(p) else sorted(os.path.join(p, f) for f in os.listdir(p))
            parts += [open(f, encoding="utf-8").read() for f in files if f.endswith((".md", ".swift"))]
        open(path, "w", encoding="utf-8").write("\n\n".join(parts))
    return path


def llama_quantize_worker(spec):
    """Runs in a child: llama.cpp's quantizer with the options in spec (JSON)."""
    import llama_cpp as L
    from gguf import GGUFReader
    p = L.llama_model_quantize_default_params()
    p.nthread = spec["threads"]
    p.allow_requantize = True
    p.ftype = getattr(L, "LLAMA_FTYPE_MOSTLY_" + spec["ftype"])
    keep = []
    if spec.get("imatrix"):
        r = GGUFReader(spec["imatrix"])
        sums = {t.name[:-len(".in_sum2")]: np.array(t.data, np.float32) for t in r.tensors if t.name.endswith(".in_sum2")}
        counts = {t.name[:-len(".counts")]: np.array(t.data, np.float32).reshape(-1) for t in r.tensors if t.name.endswith(".counts")}
        arr = (L.llama_model_imatrix_data * (len(sums) + 1))()
        for i, (name, s) in enumerate(sorted(sums.items())):
            s = s.reshape(len(counts[name]), -1)
            c = counts[name][:, None]
            # llama-quantize's reading: mean square per matrix, 1 where a matrix saw no rows.
            v = np.ascontiguousarray(np.where(c > 0, s / np.maximum(c, 1), 1).astype(np.float32).reshape(-1))
            keep += [name.encode(), v]
            arr[i].name, arr[i].data, arr[i].size = keep[-2], v.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), v.size
        arr[len(sums)].name = None
        p.imatrix = arr
    if spec.get("overrides"):
        ov = (L.llama_model_tensor_override * (len(spec["overrides"]) + 1))()
        for i, (pat, typ) in enumerate(spec["overrides"]):
            keep.append(pat.encode())
            ov[i].pattern, ov[i].type = keep[-1], int(getattr(L, "GGML_TYPE_" + typ))
        ov[len(spec["overrides"])].pattern = None
        p.tt_overrides = ov
    rc = L.llama_model_quantize(spec["src"].encode(), spec["dst"].encode(), ctypes.byref(p))
    sys.exit(0 if rc == 0 else 1)


def llama_quantize(src, dst, name, imatrix, threads):
    ftype, overrides = (("IQ1_S", R1_MIX) if name == "R1" else (name, []))
    spec = dict(src=src, dst=dst, ftype=ftype, overrides=overrides, threads=threads,
                imatrix=imatrix if name in NEEDS_IMATRIX else None)
    r = subprocess.run([sys.executable, __file__, "--llama-quantize", json.dumps(spec)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama.cpp quantize {name} failed:\n{r.stderr[-3000:]}")


def tiefsee_quantize(src, dst, name, imatrix):
    args = [tiefsee_bin(), "quantize", src, dst, "--quiet"]
    if name == "R1":
        args += ["--type", "IQ1_S", "--tensor-type", ",".join(f"{p}={t}" for p, t in R1_MIX)]
    else:
        args += ["--type", name]
    if name in NEEDS_IMATRIX:
        args += ["--imatrix", imatrix]
    subprocess.run(args, check=True, capture_output=True, text=True)


def type_mix(path):
    import gguf, collections
    c = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(path).tensors if len(t.shape) >= 2)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


# ---------------------------------------------------------------------------------------------
# Running both engines
# ---------------------------------------------------------------------------------------------

def llama_run_worker(spec):
    """In a child: greedy tokens, then teacher-forced logits of prompt + those tokens."""
    from llama_cpp import Llama
    llm = Llama(model_path=spec["model"], n_ctx=spec["n_ctx"], n_threads=spec["threads"], n_threads_batch=spec["threads"],
                n_batch=spec["n_ctx"], n_ubatch=spec["n_ctx"], logits_all=True, verbose=False)
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    prompt = llm.tokenize(spec["prompt"].encode(), add_bos=add_bos, special=False)
    gen = []
    if spec.get("seq"):
        seq = spec["seq"]   # teacher-forced logits of given tokens only
    else:
        llm.reset()
        llm.eval(list(prompt))
        for _ in range(spec["n"]):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            gen.append(nxt)
            if nxt == llm.token_eos():
                break
            llm.eval([nxt])
        seq = list(prompt) + gen[:-1]
    llm.reset()
    llm.eval(seq)
    logits = np.array(llm.scores[:len(seq)], dtype=np.float32)
    np.save(spec["out"], logits)
    print(json.dumps({"prompt": prompt, "gen": gen, "seq": seq}))


def llama_run(model, prompt, n, threads, out, seq=None):
    spec = dict(model=model, prompt=prompt, n=n, threads=threads, n_ctx=512, out=out, seq=seq)
    r = subprocess.run([sys.executable, __file__, "--llama-run", json.dumps(spec)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama.cpp failed on {model}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1]), np.load(out)


def tiefsee_greedy(model, prompt, n, threads):
    r = subprocess.run([tiefsee_bin(), "run", model, "-p", prompt, "--raw", "--temp", "0", "-n", str(n), "--ids",
                        "-t", str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tiefsee run failed on {model}:\n{r.stderr[-3000:]}")
    m = re.search(r"^ids: ([0-9,]*)$", r.stdout, re.M)
    return [int(x) for x in m.group(1).split(",") if x] if m else []


def tiefsee_logits(model, seq, threads):
    r = subprocess.run([tiefsee_bin(), "logits", model, "--tokens", ",".join(map(str, seq)), "--last", str(len(seq)),
                        "-t", str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tiefsee logits failed on {model}:\n{r.stderr[-3000:]}")
    rows = json.loads(r.stdout)["logits"]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def kl(p_logits, q_logits):
    """Per position KL(P || Q) in nats."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def leading_agreement(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def compare(path, prompt, n, threads, work, ref=None):
    """Both engines on one file; with ref = (tokens, llama.cpp's logits, Tiefsee's logits) of the
    reference file, also each engine's KL to the reference on those tokens."""
    t0 = time.time()
    lj, ll = llama_run(path, prompt, n, threads, os.path.join(work, "llama-logits.npy"))
    ours = tiefsee_greedy(path, prompt, n, threads)
    tl = tiefsee_logits(path, lj["seq"], threads)
    k = kl(ll, tl)
    res = dict(file=os.path.basename(path), bytes=os.path.getsize(path), mix=type_mix(path),
               greedy_agree=leading_agreement(lj["gen"], ours), greedy_n=len(lj["gen"]), tiefsee_n=len(ours),
               kl_mean=float(k.mean()), kl_max=float(k.max()),
               top1=float((ll.argmax(-1) == tl.argmax(-1)).mean()), positions=len(lj["seq"]),
               seconds=0)
    if ref is not None:
        seq, ref_ll, ref_tl = ref
        _, ll2 = llama_run(path, prompt, 0, threads, os.path.join(work, "llama-logits.npy"), seq=seq)
        res["kl_vs_ref_llama"] = float(kl(ref_ll, ll2).mean())
        res["kl_vs_ref_tiefsee"] = float(kl(ref_tl, tiefsee_logits(path, seq, threads)).mean())
    res["seconds"] = round(time.time() - t0, 1)
    return res, lj["seq"], ll, tl


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="default,moe")
    ap.add_argument("--work", default=os.path.join(HOME, "lowbit"))
    ap.add_argument("-n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-types", default=",".join(LLAMA_TYPES))
    ap.add_argument("--tiefsee-files", nargs="?", const=",".join(TIEFSEE_TYPES), default="")
    ap.add_argument("--moe-layers", type=int, default=3)
    ap.add_argument("--imatrix-chunks", type=int, default=16)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--llama-quantize", help=argparse.SUPPRESS)
    ap.add_argument("--llama-run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.llama_quantize:
        return llama_quantize_worker(json.loads(a.llama_quantize))
    if a.llama_run:
        return llama_run_worker(json.loads(a.llama_run))
    os.makedirs(a.work, exist_ok=True)
    text = calibration_text(os.path.join(a.work, "calibration.txt"))
    results, ok = [], True
    for model in a.models.split(","):
        if model == "default":
            src = os.path.join(a.work, "qwen-f32.gguf")
            if not os.path.exists(src):
                log("making", src); to_f32(DEFAULT, src)
        else:
            d = os.path.join(a.work, f"moe-{a.moe_layers}l")
            src = os.path.join(d, "moe-bench-v2lite-q8_0.gguf")
            if not os.path.exists(src):
                log("making", src)
                subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_moe_bench_gguf.py"), "--out-dir", d,
                                "--layers", str(a.moe_layers)], check=True)
        base = os.path.splitext(src)[0]
        imatrix = base + ".imatrix"
        if not os.path.exists(imatrix):
            log("imatrix", imatrix)
            subprocess.run([tiefsee_bin(), "imatrix", src, "--text", text, "-o", imatrix, "--chunks", str(a.imatrix_chunks),
                            "-t", str(a.threads)], check=True)
        files = []
        for t in [x for x in a.llama_types.split(",") if x]:
            out = f"{base}-{t}-llama.gguf"
            if not os.path.exists(out):
                log("llama.cpp quantize", t); llama_quantize(src, out, t, imatrix, a.threads)
            files.append(("llama.cpp", t, out))
        for t in [x for x in a.tiefsee_files.split(",") if x]:
            out = f"{base}-{t}-tiefsee.gguf"
            if not os.path.exists(out):
                log("tiefsee quantize", t); tiefsee_quantize(src, out, t, imatrix)
            files.append(("tiefsee", t, out))
        # The reference: the source file in llama.cpp, teacher-forced on each file's own tokens
        # is not possible in one pass, so every file is scored on the reference's greedy tokens.
        # The reference (the source file): its greedy tokens are what every file's quality (KL to
        # the reference, per engine) is measured on.
        log("reference", src)
        r, seq, ref_ll, ref_tl = compare(src, PROMPTS[model], a.n, a.threads, a.work)
        r.update(model=model, quantizer="source", type="f32" if model == "default" else "Q8_0")
        results.append(r)
        print_row(r)
        ok &= r["kl_mean"] <= 0.01
        for quantizer, t, path in files:
            log("compare", path)
            r = compare(path, PROMPTS[model], a.n, a.threads, a.work, (seq, ref_ll, ref_tl))[0]
            r.update(model=model, quantizer=quantizer, type=t)
            ok &= r["kl_mean"] <= 0.01
            results.append(r)
            print_row(r)
    print_table(results)
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)
    sys.exit(0 if ok else 1)


def print_row(r):
    log(f"  {r['type']:8s} {r['quantizer']:9s} {r['bytes'] / 1e6:8.1f} MB  greedy {r['greedy_agree']}/{r['greedy_n']}  "
        f"KL mean {r['kl_mean']:.5f} max {r['kl_max']:.4f}  top-1 {100 * r['top1']:.1f}%  "
        f"vs ref: tiefsee {r.get('kl_vs_ref_tiefsee', 0):.4f} llama.cpp {r.get('kl_vs_ref_llama', 0):.4f}  {r['seconds']}s")


def print_table(results):
    print("| model | file | made by | size | greedy agree | KL mean | KL max | top-1 | KL vs ref: Tiefsee / llama.cpp | tensor types |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        vs = f"{r['kl_vs_ref_tiefsee']:.4f} / {r['kl_vs_ref_llama']:.4f}" if "kl_vs_ref_tiefsee" in r else "—"
        print(f"| {r['model']} | {r['type']} | {r['quantizer']} | {r['bytes'] / 1e6:.1f} MB | {r['greedy_agree']}/{r['greedy_n']} | "
              f"{r['kl_mean']:.5f} | {r['kl_max']:.4f} | {100 * r['top1']:.1f}% | {vs} | {r['mix']} |")


if __name__ == "__main__":
    main()
