#!/usr/bin/env bash
# Before/after kernel timing in one process (see scripts/ab_kernels.c). Developers only.
#   scripts/ab_kernels.sh REV [TYPE BLOCK_BYTES SCALE_OFFSET ROWS NTOK]...
# REV: the "old" git revision (e.g. HEAD~1); "new" is the working tree. Without cases it runs
# the low-bit MoE types (IQ1_S, IQ2_XXS) and the K-quants (Q4_K, Q6_K) at 1, 2 and 16 tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1; shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/old" "$work/new"
cp -r Sources/CKernels/. "$work/new/"
git archive "$rev" Sources/CKernels | tar -x -C "$work/old" --strip-components=2
for v in old new; do
    clang -O3 -mavx2 -mfma -mf16c -fPIC -shared -I"$work/$v/include" -I"$work/$v" "$work/$v"/*.c -o "$work/lib$v.so" -lm -lpthread
done
clang -O2 scripts/ab_kernels.c -o "$work/ab" -ldl
cd "$work"
if [ $# -eq 0 ]; then
    set -- "19 50 0 2048 1" "19 50 0 2048 2" "19 50 0 2048 16" "16 66 0 2048 1" "16 66 0 2048 2" "16 66 0 2048 16" \
           "12 144 0 2048 1" "12 144 0 2048 2" "14 210 208 2048 1" "14 210 208 2048 2"
fi
for c in "$@"; do ./ab $c; done
