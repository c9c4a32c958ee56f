/* Per-thread nesting depth of thread-pool jobs: a parallel loop started from inside another
 * runs serially on the calling thread instead of waiting on the pool it is part of. */
static _Thread_local int pool_depth;

int tf_pool_depth(void) { return pool_depth; }
void tf_pool_depth_add(int delta) { pool_depth += delta; }

/* Set on the calling thread while a model runs a decode step (every sequence of the batch
 * brings one token): its products' rows are then separate tokens, and a few of them go
 * through the row kernels (see Linear.rowKernelMaxRows). */
static _Thread_local int decode_step;

int tf_decode_step(void) { return decode_step; }
int tf_set_decode_step(int on) { int old = decode_step; decode_step = on; return old; }

/* Keep freed heap memory up to `bytes` instead of returning it to the kernel (and getting
 * fresh zeroed pages on the next allocation): glibc's mmap and trim thresholds. */
#include <malloc.h>
void tf_keep_freed_memory(int bytes) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    mallopt(M_TRIM_THRESHOLD, bytes);
}
