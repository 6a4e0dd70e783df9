/* FMA throughput and clock probe for benchmarks/speed.py (compiled on the fly by _bench_machine.py).

   Prints one JSON object: the core clock measured with a chain of dependent integer adds (one per
   cycle), and fp32 FMA throughput (GFLOP/s, 2 FLOPs per lane per FMA) with many independent
   accumulators at 256 and 512 bits, on 1 thread and on N threads (argv[1]). 512-bit numbers are only
   printed when the binary was built with -mavx512f. */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double clock_ghz(void) {
    uint64_t iters = 200000000ULL, x = 0, n = iters;
    double t0 = now();
    __asm__ volatile(
        "1:\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "dec %1\n\tjnz 1b\n\t"
        : "+r"(x), "+r"(n));
    return 10.0 * iters / (now() - t0) / 1e9;
}

#define ITERS 20000000L

/* Twelve independent accumulators in registers (FMA latency 4 cycles x 2-3 pipes needs >= 8-12). */
#define FMA_KERNEL(name, vec, set1, fmadd, lanes)                                                         \
    static double name(void) {                                                                              \
        vec b = set1(0.999999f), c = set1(1e-7f);                                                           \
        vec a0 = set1(0.f), a1 = set1(1.f), a2 = set1(2.f), a3 = set1(3.f), a4 = set1(4.f), a5 = set1(5.f); \
        vec a6 = set1(6.f), a7 = set1(7.f), a8 = set1(8.f), a9 = set1(9.f), a10 = set1(10.f);               \
        vec a11 = set1(11.f);                                                                               \
        double t0 = now();                                                                                  \
        for (long k = 0; k < ITERS; k++) {                                                                  \
            a0 = fmadd(a0, b, c); a1 = fmadd(a1, b, c); a2 = fmadd(a2, b, c); a3 = fmadd(a3, b, c);         \
            a4 = fmadd(a4, b, c); a5 = fmadd(a5, b, c); a6 = fmadd(a6, b, c); a7 = fmadd(a7, b, c);         \
            a8 = fmadd(a8, b, c); a9 = fmadd(a9, b, c); a10 = fmadd(a10, b, c); a11 = fmadd(a11, b, c);     \
            __asm__ volatile("" ::: "memory");                                                              \
        }                                                                                                   \
        double dt = now() - t0;                                                                             \
        vec s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                               \
        if (s[0] == 12345.f) puts("");                                                                      \
        return 12.0 * lanes * 2 * ITERS / dt / 1e9;                                                         \
    }

FMA_KERNEL(fma256, __m256, _mm256_set1_ps, _mm256_fmadd_ps, 8)
#ifdef __AVX512F__
FMA_KERNEL(fma512, __m512, _mm512_set1_ps, _mm512_fmadd_ps, 16)
#endif

typedef double (*kernel)(void);
static void *run(void *k) {
    double *r = malloc(sizeof(double));
    *r = ((kernel)k)();
    return r;
}

static double threaded(kernel k, int n) {
    pthread_t t[64];
    double sum = 0;
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, run, (void *)k);
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += *(double *)r;
        free(r);
    }
    return sum;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 64) n = 1;
    double ghz = clock_ghz();
    printf("{\"clock_ghz\": %.4f, \"threads\": %d, \"fma256_1t\": %.2f, \"fma256_nt\": %.2f", ghz, n, fma256(),
           threaded(fma256, n));
#ifdef __AVX512F__
    printf(", \"fma512_1t\": %.2f, \"fma512_nt\": %.2f", fma512(), threaded(fma512, n));
#endif
    printf("}\n");
    return 0;
}
