// A few rows times a weight matrix held as the checkpoint stores it (float32, bfloat16 or float16), for the
// products decoding makes: y [m, n] = x [m, k] W^T, W row-major [n, k]. Each weight row is read once for all
// m rows of x and widened in registers (no float32 copy of the weight anywhere); float32 arithmetic, the sum of
// each output accumulated in float32. The rows of W are split between the cores with OpenMP (where the compiler
// has it). x86-64 CPUs with AVX2, FMA and F16C take vector code; others the portable loop. And a decoding
// step's attention (abl_decode_attention), one call in place of a dozen small kernels a layer.
// Built by scripts/native/build.ts (npm install runs it) into build/native/ and loaded through koffi
// (src/blas/linear-kernel.ts); where it is not built, the package multiplies through BLAS instead.
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#define X86 1
#include <immintrin.h>
#endif

enum { F32 = 0, BF16 = 1, F16 = 2 };
/** Rows of x multiplied together against one pass over a weight row. */
#define GROUP 4
/** Products smaller than this many weight values run on one thread. */
#define PARALLEL_VALUES (1 << 16)
/** Attention with fewer multiply-adds than this runs on one thread. */
#define ATTENTION_PARALLEL_VALUES (1 << 22)

static float widen_scalar(const void *w, int dtype, size_t j) {
  if (dtype == F32) return ((const float *)w)[j];
  uint16_t h = ((const uint16_t *)w)[j];
  if (dtype == BF16) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  // float16: sign, 5 exponent bits, 10 mantissa bits.
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0x1f) u = sign | 0x7f800000 | (man << 13);
  else if (exp != 0) u = sign | ((exp + 112) << 23) | (man << 13);
  else if (man == 0) u = sign;
  else {
    // Subnormal: normalise.
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while (!(man & 0x400));
    u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/** Rows [r0, r1) of y, portable C. */
static void rows_generic(int m, int k, int n, const float *x, const void *w, int dtype, float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++)
    for (int i = 0; i < m; i++) {
      float acc = 0;
      for (int j = 0; j < k; j++) acc += widen_scalar(w, dtype, (size_t)r * k + j) * x[(size_t)i * k + j];
      y[(size_t)i * n + r] = acc;
    }
}

#ifdef X86
__attribute__((target("avx2,fma,f16c"))) static inline __m256 widen8(const void *w, int dtype, size_t j) {
  if (dtype == F32) return _mm256_loadu_ps((const float *)w + j);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + j));
  if (dtype == F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma,f16c"))) static inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/**
 * One weight row against G rows of x (G known when compiled, so that the sums stay in registers): two sums per
 * row of x in flight, 16 values a step; the tail past a multiple of 8 in scalar code.
 */
#define GROUP_KERNEL(G)                                                                                                \
  __attribute__((target("avx2,fma,f16c"))) static void row_group##G(int k, int n, const float *x0, const void *w,     \
                                                                    int dtype, size_t base, float *y0) {              \
    __m256 a[G], b[G];                                                                                                 \
    for (int i = 0; i < G; i++) a[i] = b[i] = _mm256_setzero_ps();                                                    \
    const int k8 = k & ~7;                                                                                             \
    int j = 0;                                                                                                         \
    for (; j + 16 <= k8; j += 16) {                                                                                    \
      const __m256 v = widen8(w, dtype, base + j), u = widen8(w, dtype, base + j + 8);                                 \
      for (int i = 0; i < G; i++) {                                                                                    \
        a[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x0 + (size_t)i * k + j), a[i]);                                      \
        b[i] = _mm256_fmadd_ps(u, _mm256_loadu_ps(x0 + (size_t)i * k + j + 8), b[i]);                                  \
      }                                                                                                                \
    }                                                                                                                  \
    if (j < k8) {                                                                                                      \
      const __m256 v = widen8(w, dtype, base + j);                                                                     \
      for (int i = 0; i < G; i++) a[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x0 + (size_t)i * k + j), a[i]);          \
    }                                                                                                                  \
    for (int i = 0; i < G; i++) {                                                                                      \
      float s = sum8(_mm256_add_ps(a[i], b[i]));                                                                       \
      for (int t = k8; t < k; t++) s += widen_scalar(w, dtype, base + t) * x0[(size_t)i * k + t];                      \
      y0[(size_t)i * n] = s;                                                                                           \
    }                                                                                                                  \
  }
GROUP_KERNEL(1)
GROUP_KERNEL(2)
GROUP_KERNEL(3)
GROUP_KERNEL(4)

/** Rows [r0, r1) of y with AVX2, FMA and F16C: each weight row read once from memory for up to GROUP rows of x. */
__attribute__((target("avx2,fma,f16c"))) static void rows_avx2(int m, int k, int n, const float *x, const void *w, int dtype,
                                                                float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const size_t base = (size_t)r * k;
    for (int i0 = 0; i0 < m; i0 += GROUP) {
      const float *x0 = x + (size_t)i0 * k;
      float *y0 = y + (size_t)i0 * n + r;
      switch (m - i0 < GROUP ? m - i0 : GROUP) {
        case 1: row_group1(k, n, x0, w, dtype, base, y0); break;
        case 2: row_group2(k, n, x0, w, dtype, base, y0); break;
        case 3: row_group3(k, n, x0, w, dtype, base, y0); break;
        default: row_group4(k, n, x0, w, dtype, base, y0); break;
      }
    }
  }
}

#endif

/** Which kernel runs here: 2 for AVX2 + FMA + F16C, 1 for portable C. */
int abl_linear_isa(void) {
#ifdef X86
  static int has_avx2 = -1;
  if (has_avx2 < 0) {
    __builtin_cpu_init();
    has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
  return has_avx2 ? 2 : 1;
#else
  return 1;
#endif
}

/** Threads the products use. */
int abl_linear_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/**
 * y [m, n] = x [m, k] W^T for W [n, k] of `dtype` (0 float32, 1 bfloat16, 2 float16), row-major, all
 * contiguous; `isa` 0 picks the best kernel this CPU has, 1 forces portable C (for tests).
 */
void abl_linear(int m, int n, int k, const float *x, const void *w, int dtype, float *y, int isa) {
  const int avx2 = (isa == 0 ? abl_linear_isa() : isa) == 2 && abl_linear_isa() == 2;
  const int threads = (size_t)n * k < PARALLEL_VALUES ? 1 : abl_linear_threads();
  (void)threads;
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), count = omp_get_num_threads();
#else
    const int t = 0, count = 1;
#endif
    const int r0 = (int)((long)n * t / count), r1 = (int)((long)n * (t + 1) / count);
#ifdef X86
    if (avx2) rows_avx2(m, k, n, x, w, dtype, y, r0, r1);
    else
#endif
      rows_generic(m, k, n, x, w, dtype, y, r0, r1);
  }
  (void)avx2;
}

/** a . b over n values, eight sums in flight (the compiler vectorises them). */
static float dot(const float *a, const float *b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[j + l] * b[j + l];
  float s = 0;
  for (; j < n; j++) s += a[j] * b[j];
  for (int l = 0; l < 8; l++) s += acc[l];
  return s;
}

/**
 * A decoding step's attention in one call: for query rows q [batch, heads, pos, d] against the first `keys` rows of
 * keys and values k, v [batch, kv_heads, stride, d] (a KV cache with room for `stride` positions; query head h reads
 * kv head h / (heads / kv_heads)), scores s = (q . k) * scale,
 * capped to cap * tanh(s / cap) when cap > 0, plus the additive mask [batch, pos, keys]; softmax over the keys;
 * out [batch, pos, heads * d] = the softmax times v, the heads side by side (the layout o_proj reads). Float32
 * dot products and sums, the softmax's normaliser in float64; (batch, head) pairs split between the cores when
 * there is enough work.
 */
void abl_decode_attention(int batch, int heads, int kv_heads, int pos, int keys, int stride, int d, const float *q, const float *k,
                   const float *v, const float *mask, float scale, float cap, float *out) {
  const int group = heads / kv_heads;
  const int pairs = batch * heads;
  // One thread unless the work is large: on 2 cores, an OpenMP team that wakes between OpenBLAS calls (the float32
  // path's one-row products go to sgemv) leaves both pools' threads spinning against each other, and a batch-1 step
  // of Qwen2.5-0.5B's shapes took three times as long.
  const int threads = (size_t)pairs * pos * keys * d < ATTENTION_PARALLEL_VALUES ? 1 : abl_linear_threads();
  (void)threads;
#pragma omp parallel num_threads(threads)
  {
    float *p = (float *)malloc(sizeof(float) * (keys > 0 ? keys : 1));
#pragma omp for schedule(static)
    for (int pair = 0; pair < pairs; pair++) {
      const int b = pair / heads, h = pair % heads;
      const float *kh = k + ((size_t)b * kv_heads + h / group) * stride * d;
      const float *vh = v + ((size_t)b * kv_heads + h / group) * stride * d;
      for (int t = 0; t < pos; t++) {
        const float *qt = q + (((size_t)b * heads + h) * pos + t) * d;
        const float *mt = mask + ((size_t)b * pos + t) * keys;
        float *ot = out + (((size_t)b * pos + t) * heads + h) * d;
        float top = -INFINITY;
        for (int j = 0; j < keys; j++) {
          float s = dot(qt, kh + (size_t)j * d, d) * scale;
          if (cap > 0) s = tanhf(s / cap) * cap;
          s += mt[j];
          p[j] = s;
          if (s > top) top = s;
        }
        double total = 0;
        for (int j = 0; j < keys; j++) total += (p[j] = expf(p[j] - top));
        const float inverse = (float)(1 / total);
        for (int i = 0; i < d; i++) ot[i] = 0;
        for (int j = 0; j < keys; j++) {
          const float w = p[j] * inverse;
          const float *vj = vh + (size_t)j * d;
          for (int i = 0; i < d; i++) ot[i] += w * vj[i];
        }
      }
    }
    free(p);
  }
}
