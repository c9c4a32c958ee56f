/* Before/after timing of the quantized dot kernels in one process (developers only; not CI):
 * scripts/ab_kernels.sh builds Sources/CKernels of a git revision and of the working tree as
 * two shared libraries, and this times them on the same random weights, interleaved (best of
 * 40 runs each, 10 for the packed kernel), so that a noisy machine moves both alike: the
 * kernel table of `tiefsee bench --kernels` runs one build at a time and drifted by up to 30%
 * between runs on a shared vCPU.
 *   ab_kernels TYPE BLOCK_BYTES SCALE_OFFSET ROWS NTOK     (n = 2048; NTOK 1: tf_vec_dot_rows,
 *   2-4: tf_vec_dot_rows_n, more: tf_gemm_packed)  */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <dlfcn.h>
#include <time.h>
typedef int (*rows_t)(int type, int n, int nrows, const void *w, size_t stride, const void *x, float *out);
typedef int (*rowsn_t)(int type, int n, int nrows, const void *w, size_t stride, const void *x, size_t xs, int ntok, float *out, size_t os);
typedef void (*q_t)(const float *x, void *y, int n);
typedef size_t (*pb_t)(int n, int ntok);
typedef void (*pk_t)(int n, const void *x, size_t xstride, int ntok, void *packed);
typedef int (*gp_t)(int type, int n, int nrows, const void *w, size_t stride, const void *packed, int ntok, float *out, size_t os);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    int type = atoi(argv[1]), bb = atoi(argv[2]), doff = atoi(argv[3]), rows = atoi(argv[4]), ntok = argc > 5 ? atoi(argv[5]) : 1;
    int n = 2048, qk = 256; size_t stride = (size_t)(n / qk) * bb, bytes = stride * rows;
    void *A = dlopen("./libold.so", RTLD_NOW | RTLD_LOCAL), *B = dlopen("./libnew.so", RTLD_NOW | RTLD_LOCAL);
    rows_t ra = dlsym(A, "tf_vec_dot_rows"), rb = dlsym(B, "tf_vec_dot_rows");
    rowsn_t na = dlsym(A, "tf_vec_dot_rows_n"), nb_ = dlsym(B, "tf_vec_dot_rows_n");
    q_t q = dlsym(B, "tf_quantize_row_q8_0");
    uint8_t *w = aligned_alloc(64, (bytes + 63) / 64 * 64); srand(1);
    for (size_t i = 0; i < bytes; i++) w[i] = rand();
    for (size_t b = 0; b < bytes / bb; b++) { w[b * bb + doff] = 0; w[b * bb + doff + 1] = 0x2c; if (type == 12) { w[b*bb+2]=0; w[b*bb+3]=0x2c; } }
    pb_t pb = dlsym(B, "tf_gemm_pack_bytes"); pk_t pk = dlsym(B, "tf_gemm_pack");
    gp_t ga = dlsym(A, "tf_gemm_packed"), gb = dlsym(B, "tf_gemm_packed");
    static float x[64 * 2048]; for (int i = 0; i < 64 * n; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    size_t xs = (size_t)(n / 32) * 40; uint8_t *xq = malloc(xs * 64); for (int t = 0; t < 64; t++) q(x + t * n, xq + t * xs, n);
    void *packed = ntok > 4 ? aligned_alloc(64, (pb(n, ntok) + 63) / 64 * 64) : 0;
    if (ntok > 4) pk(n, xq, xs, ntok, packed);
    float *o1 = malloc((size_t)rows * 4 * 64), *o2 = malloc((size_t)rows * 4 * 64);
    double ba = 1e9, bbst = 1e9;
    for (int rep = 0; rep < (ntok > 4 ? 10 : 40); rep++) {
        double t0 = now();
        if (ntok > 4) ga(type, n, rows, w, stride, packed, ntok, o1, rows);
        else if (ntok == 1) ra(type, n, rows, w, stride, xq, o1); else na(type, n, rows, w, stride, xq, xs, ntok, o1, rows);
        double t1 = now();
        if (ntok > 4) gb(type, n, rows, w, stride, packed, ntok, o2, rows);
        else if (ntok == 1) rb(type, n, rows, w, stride, xq, o2); else nb_(type, n, rows, w, stride, xq, xs, ntok, o2, rows);
        double t2 = now();
        if (t1 - t0 < ba) ba = t1 - t0; if (t2 - t1 < bbst) bbst = t2 - t1;
    }
    double blocks = (double)rows * (n / qk);
    printf("type %d rows %d ntok %d (%.1f MB): old %.2f ns/block, new %.2f ns/block (%.2fx)  out %g %g\n", type, rows, ntok, bytes / 1e6,
           ba / blocks * 1e9, bbst / blocks * 1e9, ba / bbst, o1[5], o2[5]);
}
