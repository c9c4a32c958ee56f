#!/usr/bin/env python3
"""Time to first token of a second conversation with the same long system prompt, after
another request used the only slot, with and without the RAM prompt cache (--cache-ram).

  swift build -c release
  python3 scripts/bench_prompt_cache.py --binary .build/release/tiefsee --cache-ram 256

For each setting a fresh `tiefsee serve --parallel 1` is started; the requests are:
  A: system prompt S (about --system-tokens tokens) + question 1   (fills the slot)
  C: an unrelated prompt                                           (takes the slot)
  B: S + question 2                                                (TTFT measured)
B is repeated --repeat times (each after a fresh A/C pair) and the median is printed.
Standard library only; loopback only.
"""
import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time

WORDS = ("policy office badge visitor invoice travel expense laptop holiday contract supplier "
         "server backup password printer parking canteen safety training manager").split()


def system_prompt(n_words):
    out, i = [], 0
    while len(out) < n_words:
        w = WORDS[i % len(WORDS)]
        out.append(f"Rule {i}: every {w} request at site {i % 17} is approved by team {i % 5}.")
        i += 1
        n_words -= 10
    return "You answer questions about the company handbook below.\n" + " ".join(out)


def ttft(port, system, question):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    body = json.dumps({"messages": msgs, "max_tokens": 8, "temperature": 0, "stream": True})
    t0 = time.time()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    first = None
    for raw in conn.getresponse():
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        delta = json.loads(line[6:])["choices"][0]["delta"]
        if first is None and delta.get("content"):
            first = time.time() - t0
    conn.close()
    return first


def metric(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def run(binary, cache_ram, port, system, repeat, threads):
    args = [binary, "serve", "--parallel", "1", "--ctx", "8192", "--port", str(port), "--cache-ram", str(cache_ram)]
    if threads:
        args += ["--threads", str(threads)]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "listening on" in line:
            break
    try:
        times = []
        for r in range(repeat):
            ttft(port, system, f"Which team approves rule {r}?")
            ttft(port, None, f"Write one line about the sea, number {r}.")
            times.append(ttft(port, system, f"Which site does rule {r + 3} name?"))
        restored = metric(port, "tiefsee_prompt_cache_tokens_total")
        return statistics.median(times), restored
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/tiefsee")
    ap.add_argument("--cache-ram", type=int, default=256)
    ap.add_argument("--system-words", type=int, default=2400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--port", type=int, default=8193)
    a = ap.parse_args()
    system = system_prompt(a.system_words)
    off, _ = run(a.binary, 0, a.port, system, a.repeat, a.threads)
    on, restored = run(a.binary, a.cache_ram, a.port + 1, system, a.repeat, a.threads)
    print(f"system prompt: {len(system)} characters; TTFT of B (median of {a.repeat}):")
    print(f"  --cache-ram 0:   {off * 1000:8.1f} ms")
    print(f"  --cache-ram {a.cache_ram}: {on * 1000:8.1f} ms   ({off / on:.1f}x faster; {int(restored or 0)} prompt tokens restored in all)")


if __name__ == "__main__":
    sys.exit(main())
