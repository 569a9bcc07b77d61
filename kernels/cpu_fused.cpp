// CPU kernels that read the checkpoint's packed tensors directly (kernels/cpu_fused.py).
//
// gemv:     y[m, n] = sum_k x[m, k] * (q[k, n] - z[g, n]) * s[g, n] for a few rows (decode),
//           computed per group as s * (sum_k x q) - (z s) * (sum_k x): the codes are decoded
//           once per weight word and used by every row.
// dequant:  a block of columns of W as bf16 [K, n1 - n0], (q - z) * s in float32 rounded to
//           nearest even once (what reference.py gives for bf16), for dequantize + matmul.
//
// Layouts (kernels/reference.py): pack_along_k (GPTQ) - qweight int32 [K/pack, N], value j
// of a word is row pack*r + j; otherwise (AWQ) qweight int32 [K, N/pack], value j of word c is
// column pack*c + order[j]. scales and zeros arrive unpacked as float32 [G, N] (true zeros).
// Plain loops written so that the compiler vectorises them along N (-O3 -march=native);
// threads come from ATen's pool, so torch.set_num_threads governs them.

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#define Q2VL_AVX512 1
#else
#define Q2VL_AVX512 0
#endif

namespace {

constexpr int kTile = 64;  // output columns (GPTQ) or words (AWQ) per tile

inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

template <int M, int BITS>
void gemv_gptq(const float* x, const int32_t* qw, const float* s, const float* zs, const float* xs, float* y,
               int64_t K, int64_t N, int64_t group, int64_t n0, int64_t n1) {
  constexpr int pack = 32 / BITS;
  constexpr int32_t mask = (1 << BITS) - 1;
  const int64_t groups = K / group;
  for (int64_t t0 = n0; t0 < n1; t0 += kTile) {
    const int64_t width = std::min<int64_t>(kTile, n1 - t0);
    float out[M][kTile] = {};
    for (int64_t g = 0; g < groups; ++g) {
      float acc[M][kTile] = {};
      for (int64_t kp = g * group / pack; kp < (g + 1) * group / pack; ++kp) {
        const int32_t* row = qw + kp * N + t0;
        float xv[M][pack];
        for (int m = 0; m < M; ++m)
          for (int j = 0; j < pack; ++j) xv[m][j] = x[m * K + kp * pack + j];
        for (int64_t t = 0; t < width; ++t) {
          const int32_t word = row[t];
          for (int j = 0; j < pack; ++j) {
            const float c = static_cast<float>((word >> (BITS * j)) & mask);
            for (int m = 0; m < M; ++m) acc[m][t] += xv[m][j] * c;
          }
        }
      }
      const float* sg = s + g * N + t0;
      const float* zg = zs + g * N + t0;
      for (int m = 0; m < M; ++m) {
        const float xsum = xs[m * groups + g];
        for (int64_t t = 0; t < width; ++t) out[m][t] += sg[t] * acc[m][t] - zg[t] * xsum;
      }
    }
    for (int m = 0; m < M; ++m) std::memcpy(y + m * N + t0, out[m], width * sizeof(float));
  }
}

template <int M, int BITS>
void gemv_awq(const float* x, const int32_t* qw, const float* s, const float* zs, const float* xs, float* y,
              const int* order, int64_t K, int64_t N, int64_t group, int64_t w0, int64_t w1) {
  constexpr int pack = 32 / BITS;
  constexpr int32_t mask = (1 << BITS) - 1;
  const int64_t words = N / pack;
  const int64_t groups = K / group;
  for (int64_t c0 = w0; c0 < w1; c0 += kTile) {
    const int64_t width = std::min<int64_t>(kTile, w1 - c0);
    float out[M][kTile * pack] = {};
    for (int64_t g = 0; g < groups; ++g) {
      float acc[M][pack][kTile] = {};
      for (int64_t k = g * group; k < (g + 1) * group; ++k) {
        const int32_t* row = qw + k * words + c0;
        float xv[M];
        for (int m = 0; m < M; ++m) xv[m] = x[m * K + k];
        for (int64_t c = 0; c < width; ++c) {
          const int32_t word = row[c];
          for (int j = 0; j < pack; ++j) {
            const float v = static_cast<float>((word >> (BITS * j)) & mask);
            for (int m = 0; m < M; ++m) acc[m][j][c] += xv[m] * v;
          }
        }
      }
      const float* sg = s + g * N + c0 * pack;
      const float* zg = zs + g * N + c0 * pack;
      for (int m = 0; m < M; ++m) {
        const float xsum = xs[m * groups + g];
        for (int j = 0; j < pack; ++j)
          for (int64_t c = 0; c < width; ++c) {
            const int64_t n = c * pack + order[j];
            out[m][n] += sg[n] * acc[m][j][c] - zg[n] * xsum;
          }
      }
    }
    for (int m = 0; m < M; ++m) std::memcpy(y + m * N + c0 * pack, out[m], width * pack * sizeof(float));
  }
}


#if Q2VL_AVX512
// AVX-512 versions of the loops above, for CPUs with AVX512-BF16 and VBMI (Zen 4, Sapphire
// Rapids and later): 16 columns per vector, the codes widened in registers, bf16 stores with
// the hardware's round-to-nearest-even (the same rounding as to_bf16 above).

inline __m512 codes_f32(__m512i words, int shift, __m512i mask) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(words, shift), mask));
}

// Both gemv versions below stream the packed weight row by row (the checkpoint's rows are
// contiguous in memory), keeping the float32 partial sums of the thread's columns in a small
// buffer (L1/L2) rather than walking down a column tile with a page-sized stride.

inline void apply_group(float* y, const float* acc, const float* s, const float* zs, float xsum, int64_t width) {
  int64_t n = 0;
  const __m512 xv = _mm512_set1_ps(xsum);
  for (; n + 16 <= width; n += 16)
    _mm512_storeu_ps(y + n, _mm512_fnmadd_ps(_mm512_loadu_ps(zs + n), xv,
                                             _mm512_fmadd_ps(_mm512_loadu_ps(s + n), _mm512_loadu_ps(acc + n),
                                                             _mm512_loadu_ps(y + n))));
  for (; n < width; ++n) y[n] += s[n] * acc[n] - zs[n] * xsum;
}

// GPTQ: columns [n0, n1) of M rows, 16 * W columns per step.
template <int M, int W, int BITS>
void gemv_gptq_avx512(const float* x, const int32_t* qw, const float* s, const float* zs, const float* xs,
                      float* y, int64_t K, int64_t N, int64_t group, int64_t n0, int64_t n1) {
  constexpr int pack = 32 / BITS;
  constexpr int32_t scalar_mask = (1 << BITS) - 1;
  const __m512i mask = _mm512_set1_epi32(scalar_mask);
  const int64_t groups = K / group, width = n1 - n0;
  std::vector<float> acc(M * width);
  for (int m = 0; m < M; ++m) std::fill(y + m * N + n0, y + m * N + n1, 0.0f);
  for (int64_t g = 0; g < groups; ++g) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t kp = g * group / pack; kp < (g + 1) * group / pack; ++kp) {
      const int32_t* row = qw + kp * N;
      float xv[M][pack];
      for (int m = 0; m < M; ++m)
        for (int j = 0; j < pack; ++j) xv[m][j] = x[m * K + kp * pack + j];
      int64_t n = n0;
      for (; n + 16 * W <= n1; n += 16 * W) {
        __m512i words[W];
        __m512 a[M][W];
        for (int w = 0; w < W; ++w) words[w] = _mm512_loadu_si512(row + n + 16 * w);
        for (int m = 0; m < M; ++m)
          for (int w = 0; w < W; ++w) a[m][w] = _mm512_loadu_ps(acc.data() + m * width + n - n0 + 16 * w);
        for (int j = 0; j < pack; ++j)
          for (int w = 0; w < W; ++w) {
            const __m512 c = codes_f32(words[w], BITS * j, mask);
            for (int m = 0; m < M; ++m) a[m][w] = _mm512_fmadd_ps(c, _mm512_set1_ps(xv[m][j]), a[m][w]);
          }
        for (int m = 0; m < M; ++m)
          for (int w = 0; w < W; ++w) _mm512_storeu_ps(acc.data() + m * width + n - n0 + 16 * w, a[m][w]);
      }
      for (; n < n1; ++n)  // ragged columns
        for (int j = 0; j < pack; ++j) {
          const float c = static_cast<float>((row[n] >> (BITS * j)) & scalar_mask);
          for (int m = 0; m < M; ++m) acc[m * width + n - n0] += xv[m][j] * c;
        }
    }
    for (int m = 0; m < M; ++m)
      apply_group(y + m * N + n0, acc.data() + m * width, s + g * N + n0, zs + g * N + n0, xs[m * groups + g], width);
  }
}

// AWQ 4-bit: 8 words = 64 columns per step; the interleaved nibbles are put back in column
// order with one byte permutation (VBMI) per 64 columns.
inline __m512i awq4_index(const int* order) {  // order: 8 entries (4-bit words only)
  alignas(64) uint8_t idx[64];
  int inverse[8];
  for (int j = 0; j < 8; ++j) inverse[order[j]] = j;
  for (int w = 0; w < 8; ++w)
    for (int c = 0; c < 8; ++c) {
      const int nibble = inverse[c];  // value j of a word holds column order[j]
      idx[w * 8 + c] = static_cast<uint8_t>((nibble % 2 ? 64 : 0) + 4 * w + nibble / 2);
    }
  return _mm512_load_si512(idx);
}

// 64 codes of 8 consecutive words (4-bit AWQ) or 16 words (8-bit, natural order), in
// column order, as bytes.
template <int BITS>
inline __m512i awq_codes(const int32_t* words, __m512i index) {
  if constexpr (BITS == 8) {
    return _mm512_loadu_si512(words);
  } else {
    const __m512i v = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(words)));
    const __m512i low = _mm512_set1_epi8(0x0F);
    const __m512i lo = _mm512_and_si512(v, low);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    return _mm512_permutex2var_epi8(lo, index, hi);
  }
}

inline __m512 byte_lane_f32(__m512i bytes, int q) {
  __m128i part;
  switch (q) {
    case 0: part = _mm512_extracti32x4_epi32(bytes, 0); break;
    case 1: part = _mm512_extracti32x4_epi32(bytes, 1); break;
    case 2: part = _mm512_extracti32x4_epi32(bytes, 2); break;
    default: part = _mm512_extracti32x4_epi32(bytes, 3); break;
  }
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(part));
}

// AWQ: words [w0, w1) of M rows (M <= 4: 4 accumulators per row), 64 columns per step.
template <int M, int BITS>
void gemv_awq_avx512(const float* x, const int32_t* qw, const float* s, const float* zs, const float* xs,
                     float* y, const int* order, int64_t K, int64_t N, int64_t group, int64_t w0, int64_t w1) {
  constexpr int pack = 32 / BITS;
  constexpr int step = 64 / pack;  // words per 64 columns
  constexpr int kRows = 8;  // rows whose sums stay in registers (group % 32 == 0)
  constexpr int32_t scalar_mask = (1 << BITS) - 1;
  const int64_t words = N / pack, groups = K / group;
  const int64_t n0 = w0 * pack, n1 = w1 * pack, width = n1 - n0;
  const int64_t full = w0 + (w1 - w0) / step * step;  // words handled 64 columns at a time
  const __m512i index = BITS == 4 ? awq4_index(order) : _mm512_setzero_si512();  // 8-bit: natural order
  std::vector<float> acc(M * width);
  for (int m = 0; m < M; ++m) std::fill(y + m * N + n0, y + m * N + n1, 0.0f);
  for (int64_t g = 0; g < groups; ++g) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t k0 = g * group; k0 < (g + 1) * group; k0 += kRows) {
      for (int64_t c0 = w0; c0 < full; c0 += step) {
        float* a = acc.data() + (c0 - w0) * pack;
        __m512 r[M][4];
        for (int m = 0; m < M; ++m)
          for (int q = 0; q < 4; ++q) r[m][q] = _mm512_loadu_ps(a + m * width + 16 * q);
        for (int64_t k = k0; k < k0 + kRows; ++k) {
          const __m512i codes = awq_codes<BITS>(qw + k * words + c0, index);
          for (int q = 0; q < 4; ++q) {
            const __m512 c = byte_lane_f32(codes, q);
            for (int m = 0; m < M; ++m) r[m][q] = _mm512_fmadd_ps(c, _mm512_set1_ps(x[m * K + k]), r[m][q]);
          }
        }
        for (int m = 0; m < M; ++m)
          for (int q = 0; q < 4; ++q) _mm512_storeu_ps(a + m * width + 16 * q, r[m][q]);
      }
      for (int64_t k = k0; k < k0 + kRows; ++k)
        for (int64_t c = full; c < w1; ++c)  // ragged words
          for (int j = 0; j < pack; ++j) {
            const float v = static_cast<float>((qw[k * words + c] >> (BITS * j)) & scalar_mask);
            const int64_t n = c * pack + order[j] - n0;
            for (int m = 0; m < M; ++m) acc[m * width + n] += x[m * K + k] * v;
          }
    }
    for (int m = 0; m < M; ++m)
      apply_group(y + m * N + n0, acc.data() + m * width, s + g * N + n0, zs + g * N + n0, xs[m * groups + g], width);
  }
}

// Codes as bf16 pairs for vdpbf16ps: pair(p, a, b) has in dword i the bf16 numbers
// (128 + byte 4i + p of a, 128 + byte 4i + p of b), a and b being nibbles widened to bytes.
struct PairCodes {
  __m512i idx[4];
  const __m512i low = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi32(0x43004300);
  static constexpr __mmask64 even = 0x5555555555555555ULL;  // bytes 4i and 4i + 2

  PairCodes() {
    alignas(64) uint8_t index[4][64] = {};
    for (int p = 0; p < 4; ++p)
      for (int i = 0; i < 16; ++i) {
        index[p][4 * i] = static_cast<uint8_t>(4 * i + p);
        index[p][4 * i + 2] = static_cast<uint8_t>(64 + 4 * i + p);
      }
    for (int p = 0; p < 4; ++p) idx[p] = _mm512_load_si512(index[p]);
  }
  __m512i pair(int p, __m512i a, __m512i b) const {
    return _mm512_or_si512(_mm512_maskz_permutex2var_epi8(even, a, idx[p], b), bias);
  }
};

inline void store_bf16(uint16_t* out, __m512 values) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(values)));
}
#endif  // Q2VL_AVX512

template <int M>
void gemv_rows(const float* x, const int32_t* qw, const float* s, const float* zs, const float* xs, float* y,
               const int* order, int64_t bits, bool along_k, int64_t K, int64_t N, int64_t group) {
  const int64_t pack = 32 / bits;
  const int64_t units = along_k ? N : N / pack;  // columns (GPTQ) or words (AWQ)
  const int64_t tiles = (units + kTile - 1) / kTile;
  at::parallel_for(0, tiles, 1, [&](int64_t b, int64_t e) {
    const int64_t u0 = b * kTile, u1 = std::min(units, e * kTile);
#if Q2VL_AVX512
    constexpr int W = M <= 2 ? 4 : M <= 4 ? 2 : 1;  // M x W accumulator vectors in registers
    if (along_k) {
      if (bits == 4) gemv_gptq_avx512<M, W, 4>(x, qw, s, zs, xs, y, K, N, group, u0, u1);
      else gemv_gptq_avx512<M, W, 8>(x, qw, s, zs, xs, y, K, N, group, u0, u1);
      return;
    }
    if constexpr (M <= 4) {
      if (bits == 4) gemv_awq_avx512<M, 4>(x, qw, s, zs, xs, y, order, K, N, group, u0, u1);
      else gemv_awq_avx512<M, 8>(x, qw, s, zs, xs, y, order, K, N, group, u0, u1);
      return;
    }
#endif
    if (along_k) {
      if (bits == 4) gemv_gptq<M, 4>(x, qw, s, zs, xs, y, K, N, group, u0, u1);
      else gemv_gptq<M, 8>(x, qw, s, zs, xs, y, K, N, group, u0, u1);
    } else {
      if (bits == 4) gemv_awq<M, 4>(x, qw, s, zs, xs, y, order, K, N, group, u0, u1);
      else gemv_awq<M, 8>(x, qw, s, zs, xs, y, order, K, N, group, u0, u1);
    }
  });
}

}  // namespace

// x float32 [M, K] (M <= 8), qweight int32, scales / zeros_times_scales float32 [G, N],
// order int32 [pack] (AWQ column order; unused for GPTQ) -> y float32 [M, N].
torch::Tensor gemv(torch::Tensor x, torch::Tensor qweight, torch::Tensor scales, torch::Tensor zero_scales,
                   torch::Tensor order, int64_t bits, bool along_k, int64_t group) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2, "x: contiguous float32 [M, K]");
  TORCH_CHECK(qweight.dtype() == torch::kInt32 && qweight.is_contiguous(), "qweight: contiguous int32");
  TORCH_CHECK(scales.dtype() == torch::kFloat32 && zero_scales.dtype() == torch::kFloat32, "float32 scales");
  TORCH_CHECK(bits == 4 || bits == 8, "bits 4 or 8");
  const int64_t M = x.size(0), K = x.size(1), N = scales.size(1);
  TORCH_CHECK(M >= 1 && M <= 8, "gemv takes 1 to 8 rows");
  TORCH_CHECK(K % group == 0 && group % (32 / bits) == 0 && scales.size(0) == K / group, "group");
  const int64_t groups = K / group;
  auto xs = x.view({M, groups, group}).sum(-1).contiguous();
  auto y = torch::empty({M, N}, x.options());
  const int* ord = order.data_ptr<int>();
  const float *xp = x.data_ptr<float>(), *sp = scales.data_ptr<float>(), *zp = zero_scales.data_ptr<float>();
  const float* xsp = xs.data_ptr<float>();
  const int32_t* qp = qweight.data_ptr<int32_t>();
  float* yp = y.data_ptr<float>();
  switch (M) {
#define CASE(R) \
  case R: gemv_rows<R>(xp, qp, sp, zp, xsp, yp, ord, bits, along_k, K, N, group); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
  }
  return y;
}

// One row of 4-bit GPTQ (decode) with BF16 dot products: a code c becomes the bf16 number
// 128 + c by setting its bits under 0x4300 (exact for c < 128), so one vdpbf16ps multiplies
// two rows of 16 columns at once against a pair of x values, and the 128 * sum(x) this adds
// is taken out with the zeros: y = sum_g s * acc - (z + 128) * s * sum(x_g). The sums stay in
// float32 (|acc| about 128 times the true sum: some 1e-6 relative error, far below bf16's).
torch::Tensor gemv_gptq4_row(torch::Tensor x, torch::Tensor qweight, torch::Tensor scales, torch::Tensor zeros128_scales,
                             int64_t group) {
  TORCH_CHECK(x.dtype() == torch::kBFloat16 && x.is_contiguous() && x.dim() == 2 && x.size(0) == 1, "x: bf16 [1, K]");
  TORCH_CHECK(qweight.dtype() == torch::kInt32 && qweight.is_contiguous(), "qweight: contiguous int32");
  const int64_t K = x.size(1), N = scales.size(1), groups = K / group;
  TORCH_CHECK(K % group == 0 && group % 8 == 0 && qweight.size(0) == K / 8 && qweight.size(1) == N, "shapes");
  auto xs = x.to(torch::kFloat32).view({groups, group}).sum(-1).contiguous();
  auto y = torch::empty({1, N}, x.options().dtype(torch::kFloat32));
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  const float *sp = scales.data_ptr<float>(), *zp = zeros128_scales.data_ptr<float>(), *xsp = xs.data_ptr<float>();
  const int32_t* qp = qweight.data_ptr<int32_t>();
  float* yp = y.data_ptr<float>();
  constexpr int64_t kWidth = 64;  // columns per step: 4 vectors
  at::parallel_for(0, (N + kWidth - 1) / kWidth, 1, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * kWidth, n1 = std::min(N, b1 * kWidth), width = n1 - n0;
    std::vector<float> acc(width);
    std::fill(yp + n0, yp + n1, 0.0f);
#if Q2VL_AVX512
    const PairCodes pc;
#endif
    for (int64_t g = 0; g < groups; ++g) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t kp = g * group / 8; kp < (g + 1) * group / 8; ++kp) {
        const int32_t* row = qp + kp * N;
        const uint16_t* xk = xb + kp * 8;
        int64_t n = n0;
#if Q2VL_AVX512
        __m512i xpair[4];
        for (int p = 0; p < 4; ++p)
          xpair[p] = _mm512_set1_epi32(static_cast<int32_t>(xk[2 * p] | (static_cast<uint32_t>(xk[2 * p + 1]) << 16)));
        for (; n + 64 <= n1; n += 64) {
          float* a = acc.data() + n - n0;
          __m512 r[4];
          for (int w = 0; w < 4; ++w) r[w] = _mm512_loadu_ps(a + 16 * w);
          for (int w = 0; w < 4; ++w) {
            const __m512i v = _mm512_loadu_si512(row + n + 16 * w);
            const __m512i lo = _mm512_and_si512(v, pc.low);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), pc.low);
            for (int p = 0; p < 4; ++p)
              r[w] = _mm512_dpbf16_ps(r[w], reinterpret_cast<__m512bh>(pc.pair(p, lo, hi)),
                                      reinterpret_cast<__m512bh>(xpair[p]));
          }
          for (int w = 0; w < 4; ++w) _mm512_storeu_ps(a + 16 * w, r[w]);
        }
#endif
        for (; n < n1; ++n)  // ragged columns (and CPUs without AVX512-BF16)
          for (int j = 0; j < 8; ++j) {
            uint32_t bits = static_cast<uint32_t>(xk[j]) << 16;
            float xv;
            std::memcpy(&xv, &bits, 4);
            acc[n - n0] += xv * static_cast<float>(128 + ((row[n] >> (4 * j)) & 15));
          }
      }
      for (int64_t t = 0; t < width; ++t) yp[n0 + t] += sp[g * N + n0 + t] * acc[t] - zp[g * N + n0 + t] * xsp[g];
    }
  });
  return y;
}

// One row of 4-bit AWQ (decode), N % 128 == 0: the codes are used in the order they sit in
// the words (value j of word c is column 8c + order[j]), with scales and (zeros + 128) x
// scales pre-arranged in that order (position b*128 + j*16 + lane of a group's row holds
// column 8 * (16 b + lane) + order[j]); the columns are put back in order once per block of
// 16 words. BF16 dot products as in gemv_gptq4_row, the pair taken from rows k and k + 1.
torch::Tensor gemv_awq4_row(torch::Tensor x, torch::Tensor qweight, torch::Tensor s_perm, torch::Tensor zs_perm,
                            torch::Tensor order, int64_t group) {
  TORCH_CHECK(x.dtype() == torch::kBFloat16 && x.is_contiguous() && x.dim() == 2 && x.size(0) == 1, "x: bf16 [1, K]");
  TORCH_CHECK(qweight.dtype() == torch::kInt32 && qweight.is_contiguous(), "qweight: contiguous int32");
  const int64_t K = x.size(1), N = s_perm.size(1), words = N / 8, groups = K / group;
  TORCH_CHECK(N % 128 == 0 && K % group == 0 && group % 2 == 0 && s_perm.size(0) == groups && qweight.size(1) == words,
              "shapes");
  auto xs = x.to(torch::kFloat32).view({groups, group}).sum(-1).contiguous();
  auto y = torch::empty({1, N}, x.options().dtype(torch::kFloat32));
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  const float *sp = s_perm.data_ptr<float>(), *zp = zs_perm.data_ptr<float>(), *xsp = xs.data_ptr<float>();
  const int32_t* qp = qweight.data_ptr<int32_t>();
  const int* ord = order.data_ptr<int>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, words / 16, 1, [&](int64_t b0, int64_t b1) {
#if Q2VL_AVX512
    const PairCodes pc;
#endif
    for (int64_t b = b0; b < b1; ++b) {
      alignas(64) float out[8][16];
#if Q2VL_AVX512
      __m512 total[8];
      for (int j = 0; j < 8; ++j) total[j] = _mm512_setzero_ps();
      for (int64_t g = 0; g < groups; ++g) {
        __m512 acc[8];
        for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_ps();
        for (int64_t k = g * group; k < (g + 1) * group; k += 2) {
          const __m512i v0 = _mm512_loadu_si512(qp + k * words + b * 16);
          const __m512i v1 = _mm512_loadu_si512(qp + (k + 1) * words + b * 16);
          const __m512i lo0 = _mm512_and_si512(v0, pc.low), hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), pc.low);
          const __m512i lo1 = _mm512_and_si512(v1, pc.low), hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), pc.low);
          const __m512bh xv = reinterpret_cast<__m512bh>(
              _mm512_set1_epi32(static_cast<int32_t>(xb[k] | (static_cast<uint32_t>(xb[k + 1]) << 16))));
          for (int j = 0; j < 8; ++j) {
            const __m512i pair = j % 2 ? pc.pair(j / 2, hi0, hi1) : pc.pair(j / 2, lo0, lo1);
            acc[j] = _mm512_dpbf16_ps(acc[j], reinterpret_cast<__m512bh>(pair), xv);
          }
        }
        const __m512 xsum = _mm512_set1_ps(xsp[g]);
        for (int j = 0; j < 8; ++j) {
          const float* at = sp + g * N + b * 128 + j * 16;
          const float* zt = zp + g * N + b * 128 + j * 16;
          total[j] = _mm512_fnmadd_ps(_mm512_loadu_ps(zt), xsum, _mm512_fmadd_ps(_mm512_loadu_ps(at), acc[j], total[j]));
        }
      }
      for (int j = 0; j < 8; ++j) _mm512_store_ps(out[j], total[j]);
#else
      for (int j = 0; j < 8; ++j)
        for (int lane = 0; lane < 16; ++lane) {
          float sum = 0.0f;
          for (int64_t g = 0; g < groups; ++g) {
            float a = 0.0f;
            for (int64_t k = g * group; k < (g + 1) * group; ++k) {
              uint32_t bits = static_cast<uint32_t>(xb[k]) << 16;
              float xv;
              std::memcpy(&xv, &bits, 4);
              a += xv * static_cast<float>(128 + ((qp[k * words + b * 16 + lane] >> (4 * j)) & 15));
            }
            const int64_t at = g * N + b * 128 + j * 16 + lane;
            sum += sp[at] * a - zp[at] * xsp[g];
          }
          out[j][lane] = sum;
        }
#endif
      for (int j = 0; j < 8; ++j)
        for (int lane = 0; lane < 16; ++lane) yp[8 * (16 * b + lane) + ord[j]] = out[j][lane];
    }
  });
  return y;
}

// Columns [n0, n1) of W as bf16 into out [K, >= n1 - n0] (row stride out.stride(0)).
void dequant(torch::Tensor qweight, torch::Tensor scales, torch::Tensor zeros, torch::Tensor order, int64_t bits,
             bool along_k, int64_t group, int64_t n0, int64_t n1, torch::Tensor out) {
  TORCH_CHECK(qweight.dtype() == torch::kInt32 && qweight.is_contiguous(), "qweight: contiguous int32");
  TORCH_CHECK(out.dtype() == torch::kBFloat16 && out.stride(1) == 1, "out: bf16, rows contiguous");
  const int64_t pack = 32 / bits, N = scales.size(1);
  const int64_t K = along_k ? qweight.size(0) * pack : qweight.size(0);
  TORCH_CHECK(n0 >= 0 && n1 <= N && n0 < n1 && (along_k || n0 % pack == 0), "column range");
  TORCH_CHECK(out.size(0) == K && out.size(1) >= n1 - n0, "out shape");
  const int32_t mask = (1 << bits) - 1;
  const int32_t* qp = qweight.data_ptr<int32_t>();
  const float *sp = scales.data_ptr<float>(), *zp = zeros.data_ptr<float>();
  const int* ord = order.data_ptr<int>();
  uint16_t* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const int64_t ld = out.stride(0);
  if (along_k) {
    at::parallel_for(0, K / pack, 16, [&](int64_t b, int64_t e) {
      for (int64_t kp = b; kp < e; ++kp) {
        const int64_t g = kp * pack / group;
        const int32_t* row = qp + kp * N;
        const float *sg = sp + g * N, *zg = zp + g * N;
        int64_t start = n0;
#if Q2VL_AVX512
        const __m512i vmask = _mm512_set1_epi32(mask);
        for (; start + 16 <= n1; start += 16) {
          const __m512i v = _mm512_loadu_si512(row + start);
          const __m512 sv = _mm512_loadu_ps(sg + start), zv = _mm512_loadu_ps(zg + start);
          for (int64_t j = 0; j < pack; ++j)
            store_bf16(op + (kp * pack + j) * ld + start - n0,
                       _mm512_mul_ps(_mm512_sub_ps(codes_f32(v, static_cast<int>(bits * j), vmask), zv), sv));
        }
#endif
        for (int64_t j = 0; j < pack; ++j) {
          uint16_t* o = op + (kp * pack + j) * ld - n0;
          const int shift = static_cast<int>(bits * j);
          for (int64_t n = start; n < n1; ++n)
            o[n] = to_bf16((static_cast<float>((row[n] >> shift) & mask) - zg[n]) * sg[n]);
        }
      }
    });
  } else {
    const int64_t words = N / pack;
    at::parallel_for(0, K, 16, [&](int64_t b, int64_t e) {
      std::vector<float> codes(n1 - n0);
#if Q2VL_AVX512
      const __m512i index = bits == 4 ? awq4_index(ord) : _mm512_setzero_si512();  // 8-bit: natural order
#endif
      for (int64_t k = b; k < e; ++k) {
        const int64_t g = k / group;
        const int32_t* row = qp + k * words;
        int64_t start = n0;
#if Q2VL_AVX512
        for (; start + 64 <= n1; start += 64) {
          const __m512i codes64 = bits == 4 ? awq_codes<4>(row + start / pack, index)
                                            : awq_codes<8>(row + start / pack, index);
          for (int q = 0; q < 4; ++q) {
            const int64_t n = start + 16 * q;
            const __m512 f = _mm512_sub_ps(byte_lane_f32(codes64, q), _mm512_loadu_ps(zp + g * N + n));
            store_bf16(op + k * ld + n - n0, _mm512_mul_ps(f, _mm512_loadu_ps(sp + g * N + n)));
          }
        }
#endif
        if (start == n1) continue;
        for (int64_t c = start / pack; c < (n1 + pack - 1) / pack; ++c)
          for (int64_t j = 0; j < pack; ++j) {
            const int64_t n = c * pack + ord[j];
            if (n >= n0 && n < n1) codes[n - n0] = static_cast<float>((row[c] >> (bits * j)) & mask);
          }
        const float *sg = sp + g * N, *zg = zp + g * N;
        uint16_t* o = op + k * ld - n0;
        for (int64_t n = start; n < n1; ++n) o[n] = to_bf16((codes[n - n0] - zg[n]) * sg[n]);
      }
    });
  }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gemv", &gemv, "fused dequantize + GEMV for a few rows");
  m.def("gemv_awq4_row", &gemv_awq4_row, "fused dequantize + GEMV, one row of 4-bit AWQ");
  m.def("gemv_gptq4_row", &gemv_gptq4_row, "fused dequantize + GEMV, one row of 4-bit GPTQ, BF16 dot products");
  m.def("dequant", &dequant, "dequantize a block of columns to bf16");
}
