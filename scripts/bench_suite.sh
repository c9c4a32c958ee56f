#!/usr/bin/env bash
# The same-run figures BENCHMARKS.md reports, one after another (developers only; not CI).
# Run it on a quiet machine: llama.cpp's figures in particular fall apart under load. Every
# section prints the machine's load average before it starts; each result lands in OUT/NAME.txt.
#
# usage: scripts/bench_suite.sh [OUT] [SECTION...]
#   sections: default depth moe-q4 moe-q8 v4f-q4 v4f-q8 lowbit-moe lowbit-stream ttft server
#   (all of them when none is named). TIEFSEE_BIN overrides .build/release/tiefsee.
# Needs: a release build, llama-cpp-python (llama.cpp's figures), the benchmark models
# (scripts/gen_moe_bench_gguf.py --q4, scripts/gen_v4flash_bench_gguf.py --q4, and for the
# low-bit sections scripts/compare_lowbit_llama_cpp.py's R1-mix MoE file in $TIEFSEE_HOME/lowbit).
set -u
cd "$(dirname "$0")/.."
BIN=${TIEFSEE_BIN:-.build/release/tiefsee}
HOME_DIR=${TIEFSEE_HOME:-$HOME/.cache/tiefsee}
OUT=${1:-/tmp/bench-suite}; shift || true
SECTIONS=${*:-default depth moe-q4 moe-q8 v4f-q4 v4f-q8 lowbit-moe lowbit-stream ttft server}
M=$HOME_DIR/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
B=$HOME_DIR/bench
LOWBIT_MOE=$(ls "$HOME_DIR"/lowbit/moe*/*R1-llama.gguf 2>/dev/null | head -1)
mkdir -p "$OUT"
export TIEFSEE_BIN=$BIN

run() {
    local name=$1; shift
    echo "== $name ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)): $*"
    "$@" > "$OUT/$name.txt" 2>&1
    echo "rc=$?" >> "$OUT/$name.txt"
    tail -n 40 "$OUT/$name.txt"
}

for s in $SECTIONS; do
    case $s in
    default) run default "$BIN" bench "$M" -p 512 -n 64 -t 1,2 -r 3 -b 2,4 --compare-llama-cpp ;;
    depth) run depth python3 scripts/compare_llama_cpp.py "$M" --threads 2 --depths 4096,16384 --reps 2 ;;
    moe-q4) run moe-q4 "$BIN" bench "$B/moe-bench-v2lite-q4_k_m.gguf" -p 512 -n 64 -t 1,2 -r 3 --compare-llama-cpp ;;
    moe-q8) run moe-q8 "$BIN" bench "$B/moe-bench-v2lite-q8_0.gguf" -p 512 -n 64 -t 1,2 -r 3 --compare-llama-cpp ;;
    v4f-q4) run v4f-q4 python3 scripts/compare_llama_cpp.py "$B/moe-bench-v4flash-q4_k_m.gguf" --threads 1,2 --reps 3 --ttft ;;
    v4f-q8) run v4f-q8 python3 scripts/compare_llama_cpp.py "$B/moe-bench-v4flash-q8_0.gguf" --threads 1,2 --reps 3 --ttft ;;
    lowbit-moe)
        [ -n "$LOWBIT_MOE" ] || { echo "== lowbit-moe: no R1-mix MoE file in $HOME_DIR/lowbit"; continue; }
        run lowbit-moe "$BIN" bench "$LOWBIT_MOE" -p 512 -n 64 -t 1,2 -r 3 --compare-llama-cpp ;;
    lowbit-stream)
        [ -n "$LOWBIT_MOE" ] || { echo "== lowbit-stream: no R1-mix MoE file in $HOME_DIR/lowbit"; continue; }
        size=$(stat -c %s "$LOWBIT_MOE")
        args=(run "$LOWBIT_MOE" -p "The history of the city" --raw -n 64 --temp 0 --verbose --ids -t 2)
        run lowbit-free "$BIN" "${args[@]}"
        run lowbit-stream scripts/run_with_memory_limit.sh $((size / 3)) --drop "$LOWBIT_MOE" -- "$BIN" "${args[@]}" ;;
    ttft) run ttft python3 scripts/bench_prompt_cache.py --binary "$BIN" --cache-ram 256 ;;
    server)
        "$BIN" serve "$M" --parallel 4 --ctx 2048 --port 8093 > "$OUT/serve.log" 2>&1 &
        pid=$!
        for _ in $(seq 60); do curl -s -o /dev/null http://127.0.0.1:8093/health && break; sleep 1; done
        run server python3 scripts/bench_server.py --port 8093 --clients 1,2,4 --max-tokens 64
        kill $pid; wait $pid 2>/dev/null ;;
    *) echo "unknown section $s" >&2 ;;
    esac
done
