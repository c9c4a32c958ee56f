#!/bin/sh
# Runs a command in a fresh memory cgroup limited to BYTES, then removes the cgroup.
#
# usage: scripts/run_with_memory_limit.sh BYTES [--drop FILE]... -- COMMAND [ARGS...]
#
#   --drop FILE   evict FILE from the page cache first. Pages already cached were charged to
#                 whichever cgroup read them first, so a model file that is still cached would
#                 be used without counting against the limit; dropped, every page the command
#                 maps is read again and charged to its cgroup.
#
# cgroup v2 (/sys/fs/cgroup/cgroup.controllers present): memory.max; v1: memory.limit_in_bytes
# under /sys/fs/cgroup/memory. File-backed pages over the limit are reclaimed (read again when
# touched); anonymous memory over it gets the command OOM-killed (exit 137).
# On exit it prints "peak_bytes=N" (the cgroup's peak usage, where the kernel reports it) to
# stderr and exits with the command's status; 77 if no cgroup could be set up (not root,
# read-only cgroupfs, no memory controller), which tests treat as "skip".
set -u
[ $# -ge 3 ] || { echo "usage: $0 BYTES [--drop FILE]... -- COMMAND [ARGS...]" >&2; exit 2; }
limit=$1; shift
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case $1 in
        --drop) dd if="$2" iflag=nocache count=0 status=none 2>/dev/null; shift 2 ;;
        *) echo "$0: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "${1:-}" = "--" ] || { echo "$0: missing -- before the command" >&2; exit 2; }
shift

name="tiefsee-limit-$$"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    grep -qw memory /sys/fs/cgroup/cgroup.controllers || { echo "$0: no memory controller" >&2; exit 77; }
    # Children get the memory controller only if the parent delegates it.
    grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null \
        || echo +memory > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
    dir=/sys/fs/cgroup/$name
    mkdir "$dir" 2>/dev/null || { echo "$0: cannot create $dir" >&2; exit 77; }
    echo "$limit" > "$dir/memory.max" 2>/dev/null || { rmdir "$dir"; echo "$0: cannot set memory.max" >&2; exit 77; }
    echo 0 > "$dir/memory.swap.max" 2>/dev/null
    peak_file=$dir/memory.peak
else
    dir=/sys/fs/cgroup/memory/$name
    mkdir "$dir" 2>/dev/null || { echo "$0: cannot create $dir" >&2; exit 77; }
    echo "$limit" > "$dir/memory.limit_in_bytes" 2>/dev/null || { rmdir "$dir"; echo "$0: cannot set the limit" >&2; exit 77; }
    peak_file=$dir/memory.max_usage_in_bytes
fi

# The child joins the cgroup before exec'ing the command, so everything it maps is charged there.
sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$dir" "$@"
status=$?
[ -r "$peak_file" ] && echo "peak_bytes=$(cat "$peak_file")" >&2
# Remaining page-cache charges move to the parent on removal; retry while the kernel finishes
# tearing the exited task down.
for _ in 1 2 3 4 5; do rmdir "$dir" 2>/dev/null && break; sleep 0.2; done
exit $status
