#!/usr/bin/env python3
"""Compare Tiefsee with llama.cpp on the same GGUF file, same machine, same thread counts,
in one run. llama.cpp runs through the `llama-cpp-python` package (pip builds it from source:
CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python). Not part of CI.

usage: scripts/compare_llama_cpp.py [MODEL.gguf] [--threads 1,2] [--pp 512] [--tg 64] [--reps 3]
                                    [--ttft] [--tiefsee-args "--expert-cache-mb 0"]
                                    [--depths 4096,16384] [--cache-type-k q8_0 --cache-type-v q8_0]
MODEL defaults to the default model; any GGUF both engines load works (e.g. the MoE benchmark
model from scripts/gen_moe_bench_gguf.py). Prints both engines' prompt-processing and generation
tokens/s and the ratio Tiefsee/llama.cpp; with --ttft also the time to first token for a
PP-token prompt (prefill + one decode step) and each engine's peak RSS over the run.
Each engine runs in its own process per thread count (llama.cpp in a child of this script), so
peak RSS is per engine. The ratio compares medians of --reps repetitions; the machine is shared,
so read it together with the load average printed per row.
--depths D1,D2 adds llama-bench's "-d": generation of TG tokens after D prompt tokens are already
in the cache (tgTG@dD), for both engines; --cache-type-k/-v store both engines' KV caches in
f16/q8_0/q4_0 (llama.cpp needs flash attention for a quantized V cache: it is turned on then).
"""
import argparse, json, os, random, resource, shlex, statistics, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT = os.path.expanduser("~/.cache/tiefsee/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}


def llama_worker(model, threads, pp, tg, reps, ttft, depths=(), type_k="f32", type_v="f32"):
    """Runs in a child process: prints {"pp", "tg", "ttft", "peak_rss", "depth": {D: tg}} as JSON."""
    from llama_cpp import Llama
    import numpy as np
    kw = {}
    if type_k != "f32" or type_v != "f32":
        kw = {"type_k": GGML_TYPES[type_k], "type_v": GGML_TYPES[type_v], "flash_attn": type_v != "f32" or None}
        kw = {k: v for k, v in kw.items() if v is not None}
    llm = Llama(model_path=model, n_ctx=max([pp, tg] + [d + tg for d in depths]) + 16, n_threads=threads,
                n_threads_batch=threads, n_batch=max(pp, 512), n_ubatch=max(pp, 512), verbose=False, logits_all=False, **kw)
    n_vocab = llm.n_vocab()
    rng = random.Random(42)
    toks = [rng.randrange(100, min(n_vocab, 30000)) for _ in range(pp)]
    llm.reset(); llm.eval(toks[:8])  # warm-up
    pps, tgs, ttfts = [], [], []
    for _ in range(reps):
        llm.reset()
        t0 = time.perf_counter(); llm.eval(toks); pps.append(pp / (time.perf_counter() - t0))
        llm.reset(); llm.eval(toks[:1])
        t0 = time.perf_counter()
        for _ in range(tg):
            llm.eval([toks[rng.randrange(pp)]])  # decode cost does not depend on which token
        tgs.append(tg / (time.perf_counter() - t0))
        if ttft:
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(toks)
            # (without logits_all the wrapper keeps no scores: read the context's last row)
            llm.eval([int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))])
            ttfts.append(time.perf_counter() - t0)
    at_depth = {}
    for d in depths:
        rates = []
        for _ in range(max(1, reps if d <= 4096 else 1)):
            llm.reset()
            ctx_toks = [rng.randrange(100, min(n_vocab, 30000)) for _ in range(d)]
            for lo in range(0, d, 512):
                llm.eval(ctx_toks[lo:lo + 512])
            t0 = time.perf_counter()
            for _ in range(tg):
                llm.eval([toks[rng.randrange(pp)]])
            rates.append(tg / (time.perf_counter() - t0))
        at_depth[str(d)] = statistics.median(rates)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"pp": statistics.median(pps), "tg": statistics.median(tgs),
                      "ttft": statistics.median(ttfts) if ttfts else None, "peak_rss": peak, "depth": at_depth}))


def llama_cpp(model, threads, pp, tg, reps, ttft, depths=(), type_k="f32", type_v="f32"):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), model, "--llama-worker", "--threads", str(threads),
                          "--pp", str(pp), "--tg", str(tg), "--reps", str(reps), "--cache-type-k", type_k,
                          "--cache-type-v", type_v] + (["--ttft"] if ttft else [])
                         + (["--depths", ",".join(map(str, depths))] if depths else []),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def tiefsee(model, threads, pp, tg, reps, ttft, extra, depths=(), type_k="f32", type_v="f32"):
    exe = os.environ.get("TIEFSEE_BIN") or os.path.join(ROOT, ".build", "release", "tiefsee")
    args = [exe, "bench", model, "-p", str(pp), "-n", str(tg), "-t", str(threads), "-r", str(reps),
            "--ttft", str(pp if ttft else 0), "--json", "--cache-type-k", type_k, "--cache-type-v", type_v] + extra
    if depths:
        args += ["-d", ",".join(map(str, depths))]
    res = {r["test"]: r for r in json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)}
    tg_r = res[f"tg{tg}"]
    return {"pp": res[f"pp{pp}"]["tokens_per_second"], "tg": tg_r["tokens_per_second"], "roofline": tg_r["roofline_fraction"],
            "ttft": res[f"ttft{pp}"]["seconds"] if ttft else None, "memory": res.get("memory"),
            "depth": {str(d): res[f"tg{tg}@d{d}"]["tokens_per_second"] for d in depths},
            "depth_roofline": {str(d): res[f"tg{tg}@d{d}"]["roofline_fraction"] for d in depths}}


def mib(b):
    return f"{b / 1048576:.0f} MiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=DEFAULT)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ttft", action="store_true", help="also time to first token and peak RSS")
    ap.add_argument("--tiefsee-args", default="", help="extra arguments for tiefsee bench")
    ap.add_argument("--depths", default="", help="llama-bench -d: generation after D tokens in the cache")
    ap.add_argument("--cache-type-k", default="f32", choices=sorted(GGML_TYPES))
    ap.add_argument("--cache-type-v", default="f32", choices=sorted(GGML_TYPES))
    ap.add_argument("--llama-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    threads = [int(x) for x in a.threads.split(",")]
    depths = [int(x) for x in a.depths.split(",") if x]
    if a.llama_worker:
        llama_worker(a.model, threads[0], a.pp, a.tg, a.reps, a.ttft, depths, a.cache_type_k, a.cache_type_v)
        return
    print(f"model: {a.model}  KV cache K {a.cache_type_k} / V {a.cache_type_v}")
    print(f"{'threads':>7} {'test':>7} {'llama.cpp':>10} {'tiefsee':>10} {'ratio':>6}   load average")
    for t in threads:
        load = os.getloadavg()[0]
        lc = llama_cpp(a.model, t, a.pp, a.tg, a.reps, a.ttft, depths, a.cache_type_k, a.cache_type_v)
        ts = tiefsee(a.model, t, a.pp, a.tg, a.reps, a.ttft, shlex.split(a.tiefsee_args), depths, a.cache_type_k, a.cache_type_v)
        load = f"{load:.2f} → {os.getloadavg()[0]:.2f}"
        print(f"{t:>7} {'pp' + str(a.pp):>7} {lc['pp']:>10.2f} {ts['pp']:>10.2f} {ts['pp'] / lc['pp']:>6.2f}   {load}")
        print(f"{t:>7} {'tg' + str(a.tg):>7} {lc['tg']:>10.2f} {ts['tg']:>10.2f} {ts['tg'] / lc['tg']:>6.2f}   "
              f"(tiefsee at {100 * ts['roofline']:.0f}% of roofline)")
        for d in depths:
            lt, tt = lc["depth"][str(d)], ts["depth"][str(d)]
            print(f"{t:>7} {'tg' + str(a.tg) + '@d' + str(d):>7} {lt:>10.2f} {tt:>10.2f} {tt / lt:>6.2f}   "
                  f"(tiefsee at {100 * ts['depth_roofline'][str(d)]:.0f}% of roofline)")
        if a.ttft:
            print(f"{t:>7} {'ttft' + str(a.pp):>7} {lc['ttft']:>9.2f}s {ts['ttft']:>9.2f}s {lc['ttft'] / ts['ttft']:>6.2f}   (speed ratio)")
            m = ts["memory"]
            print(f"{t:>7} {'peakRSS':>7} {mib(lc['peak_rss']):>10} {mib(m['peak_rss_bytes']):>10}"
                  f"          tiefsee: {mib(m['mapped_weights_touched_bytes'])} mapped weights touched + "
                  f"{mib(m['kv_cache_bytes'])} KV + {mib(m['expert_cache_bytes'])} resident experts + {mib(m['other_bytes'])} other")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
