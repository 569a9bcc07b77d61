// CPU kernels that read the checkpoint's packed tensors directly (kernels/cpu_fused.py).
//
// gemv:       y[m, n] = sum_k x[m, k] * (q[k, n] - z[g, n]) * s[g, n] for a few rows (decode),
//             computed per group as s * (sum_k x q) - (z s) * (sum_k x): the codes are decoded
//             once per weight word and used by every row (one row of 4-bit: gemv_*4_row).
// gemm:       prompts, AVX512-BF16: the codes as bf16 in an L2 panel, BF16 dot products,
//             scales and zeros once per segment of a group; from 128 rows, the panel
//             dequantized to bf16 weights once per chunk instead (see its comment below).
// gemm_f32:   prompts where float32 FMAs outrun BF16 dot products (dot_rates): the panel
//             dequantized to float32, float32 FMAs.
// dequant_mm: prompts elsewhere: per thread, blocks of W as bf16 (dequant_rows) times x.
// dequant:    a block of columns of W as bf16 [K, n1 - n0], (q - z) * s in float32 rounded to
//             nearest even once (what reference.py gives for bf16); tests check it bit for bit.
// Layouts (kernels/reference.py): pack_along_k (GPTQ) - qweight int32 [K/pack, N], value j
// of a word is row pack*r + j; otherwise (AWQ) qweight int32 [K, N/pack], value j of word c is
// column pack*c + order[j]. scales and zeros arrive unpacked as float32 [G, N] (true zeros).
// Plain loops written so that the compiler vectorises them along N (-O3 -march=native);
// threads come from ATen's pool, so torch.set_num_threads governs them.

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <chrono>
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
// One-row kernels: software prefetch of the same columns this many packed rows ahead. The
// hardware prefetcher alone left them at 9-16 GB/s on cold weights (2B shapes, Zen 4);
// with it 13-18 GB/s (1, 2, 4 and 8 rows ahead measured alike).
constexpr int64_t kPrefetchRows = 2;
// gemv_gptq4_row: packed rows per pass over the columns, when the row's float32 sums outgrow
// L1 (2B gate/up: 0.37 -> 0.30 ms with 4; the narrow down_proj and q/o do best with 1).
constexpr int kRowsPerPass = 4;
constexpr int64_t kL1SumColumns = 4096;

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
        if (kp + kPrefetchRows < K / pack)
          for (int w = 0; w < W; ++w)
            _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * N + n + 16 * w), _MM_HINT_T0);
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

// In every dword of `words`, nibbles p and p + 4 (bits 4p and 16 + 4p) as the bf16 pair
// (128 + nibble p, 128 + nibble p + 4): a shift and one ternary logic operation, where
// PairCodes needs a byte permutation (several uops on Intel cores). The one-row kernels of
// both layouts on cold 2B weights (Xeon, model 207, AVX512-BF16): 1.14-1.45x faster with
// this, gate/up 8.9 -> 13.0 GB/s against 10.8 for a BF16 linear.
inline __m512i nibble_pair(__m512i words, int p) {
  const __m512i shifted = p ? _mm512_srli_epi32(words, 4 * p) : words;
  // (shifted & 0x000F000F) | 0x43004300: truth table 0xF8 is a | (b & c), a the bias
  return _mm512_ternarylogic_epi32(_mm512_set1_epi32(0x43004300), shifted, _mm512_set1_epi32(0x000F000F), 0xF8);
}

// v rounded to bf16 (nearest even, as to_bf16), kept in float32: the low 16 bits zero.
inline __m512 round_to_bf16(__m512 v) {
  const __m512i b = _mm512_castps_si512(v);
  const __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF),
                                                         _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1))));
  return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u))));
}

// 16 bf16 numbers as float32: the bits shifted up by 16 (exact).
inline __m512 load_bf16(const uint16_t* in) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in))), 16));
}

inline void store_bf16(uint16_t* out, __m512 values) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(values)));
}

// One row of a 128-column 4-bit AWQ tile from the words' value order (src[16 j + lane] is
// column 8 lane + order[j]: the GEMM's panel positions and the one-row kernel's sums) to
// natural order as bf16: the rows rounded two at a time, then per 32 output columns two
// two-source word permutes and a blend. (A scalar loop took 3-6 % of an AWQ GEMM's time at
// M = 256-2048; it remains below for CPUs without AVX-512.)
struct AwqTileIndex {  // idx[t][w]: where output word w of the columns 32 t .. 32 t + 31 comes from
  alignas(64) uint16_t idx[4][32];
  AwqTileIndex() {
    for (int t = 0; t < 4; ++t)
      for (int w = 0; w < 32; ++w) {  // column 32 t + w = 8 lane + p: lane 4 t + w / 8, position p = w % 8
        const int p = w % 8 % 4;       // p < 4 from b[0], b[1]; p >= 4 the same places in b[2], b[3]
        idx[t][w] = static_cast<uint16_t>((p / 2) * 32 + (p % 2) * 16 + 4 * t + w / 8);
      }
  }
};

inline void store_awq_tile_bf16(const float* src, uint16_t* dst, const int* order) {
  static const AwqTileIndex table;
  int inv[8];
  for (int j = 0; j < 8; ++j) inv[order[j]] = j;
  __m512i b[4];  // b[q]: words 0-15 position 2 q, words 16-31 position 2 q + 1
  for (int q = 0; q < 4; ++q)
    b[q] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16 * inv[2 * q + 1]),
                                                          _mm512_loadu_ps(src + 16 * inv[2 * q])));
  for (int t = 0; t < 4; ++t) {
    const __m512i iv = _mm512_load_si512(table.idx[t]);
    const __m512i lo = _mm512_permutex2var_epi16(b[0], iv, b[1]), hi = _mm512_permutex2var_epi16(b[2], iv, b[3]);
    _mm512_storeu_si512(dst + 32 * t, _mm512_mask_blend_epi16(0xF0F0F0F0u, lo, hi));
  }
}

#else
inline void store_awq_tile_bf16(const float* src, uint16_t* dst, const int* order) {
  for (int j = 0; j < 8; ++j)
    for (int lane = 0; lane < 16; ++lane) dst[8 * lane + order[j]] = to_bf16(src[16 * j + lane]);
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

// The frame of the one-row kernels below. Threads split the weight's rows (in units of `unit`
// rows: a packed GPTQ row of 8, an AWQ pair of 2), not its columns: each streams one
// contiguous part of the weight, which the memory system serves faster than interleaved
// halves of every row (measured on the 2B shapes: see kPrefetchRows). A part goes through its
// rows one group segment at a time: segment(u0, u1, u_end, acc, xsum) adds x . codes of units
// [u0, u1) into acc (N floats, zeroed) and their x into xsum, u_end being where the part ends
// (for prefetching); then total += s * acc - zb * xsum. Returns the parts' totals added: N
// floats in the tables' column order.
template <typename Segment>
std::vector<float> row_split_sums(int64_t units, int64_t unit, int64_t group, int64_t N, const float* s,
                                  const float* zb, const Segment& segment) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), units));
  std::vector<float> partial(parts * N, 0.0f);
  at::parallel_for(0, parts, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> acc(N);
    for (int64_t c = c0; c < c1; ++c) {
      float* total = partial.data() + c * N;
      const int64_t u_end = (c + 1) * units / parts;
      for (int64_t u0 = c * units / parts; u0 < u_end;) {
        const int64_t g = u0 * unit / group, u1 = std::min(u_end, (g + 1) * group / unit);
        std::fill(acc.begin(), acc.end(), 0.0f);
        float xsum = 0.0f;
        segment(u0, u1, u_end, acc.data(), xsum);
        for (int64_t n = 0; n < N; ++n) total[n] += s[g * N + n] * acc[n] - zb[g * N + n] * xsum;
        u0 = u1;
      }
    }
  });
  std::vector<float> sums(N, 0.0f);
  for (int64_t c = 0; c < parts; ++c)
    for (int64_t n = 0; n < N; ++n) sums[n] += partial[c * N + n];
  return sums;
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
  const int64_t K = x.size(1), N = scales.size(1);
  TORCH_CHECK(K % group == 0 && group % 8 == 0 && qweight.size(0) == K / 8 && qweight.size(1) == N, "shapes");
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto y = torch::empty({1, N}, x.options());  // bf16
  const float *sp = scales.data_ptr<float>(), *zp = zeros128_scales.data_ptr<float>();
  const int32_t* qp = qweight.data_ptr<int32_t>();
  uint16_t* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  const int64_t rows_per_pass = N <= kL1SumColumns ? 1 : kRowsPerPass;
  const std::vector<float> sums = row_split_sums(K / 8, 8, group, N, sp, zp, [&](int64_t u0, int64_t u1, int64_t u_end,
                                                                               float* acc, float& xsum) {
    for (int64_t kp = u0; kp < u1; kp += rows_per_pass) {
      const int nk = static_cast<int>(std::min<int64_t>(rows_per_pass, u1 - kp));
      float xv[kRowsPerPass][8];
      for (int i = 0; i < nk; ++i)
        for (int j = 0; j < 8; ++j) {
          const uint32_t bits = static_cast<uint32_t>(xb[(kp + i) * 8 + j]) << 16;
          std::memcpy(&xv[i][j], &bits, 4);
          xsum += xv[i][j];
        }
      int64_t n = 0;
#if Q2VL_AVX512
      __m512i xpair[kRowsPerPass][4];
      for (int i = 0; i < nk; ++i)
        for (int p = 0; p < 4; ++p) {  // rows p and p + 4 of the packed row: nibbles p and p + 4
          const uint16_t* xk = xb + (kp + i) * 8 + p;
          xpair[i][p] = _mm512_set1_epi32(static_cast<int32_t>(xk[0] | (static_cast<uint32_t>(xk[4]) << 16)));
        }
      for (; n + 64 <= N; n += 64) {
        float* a = acc + n;
        __m512 r[4];
        for (int w = 0; w < 4; ++w) r[w] = _mm512_loadu_ps(a + 16 * w);
        for (int i = 0; i < nk; ++i) {
          const int32_t* row = qp + (kp + i) * N;
          if (kp + i + kPrefetchRows < u_end)
            for (int w = 0; w < 4; ++w)
              _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchRows * N + n + 16 * w), _MM_HINT_T0);
          for (int w = 0; w < 4; ++w) {
            const __m512i v = _mm512_loadu_si512(row + n + 16 * w);
            for (int p = 0; p < 4; ++p)
              r[w] = _mm512_dpbf16_ps(r[w], reinterpret_cast<__m512bh>(nibble_pair(v, p)),
                                      reinterpret_cast<__m512bh>(xpair[i][p]));
          }
        }
        for (int w = 0; w < 4; ++w) _mm512_storeu_ps(a + 16 * w, r[w]);
      }
#endif
      for (; n < N; ++n)  // ragged columns (and CPUs without AVX512-BF16)
        for (int i = 0; i < nk; ++i)
          for (int j = 0; j < 8; ++j)
            acc[n] += xv[i][j] * static_cast<float>(128 + ((qp[(kp + i) * N + n] >> (4 * j)) & 15));
    }
  });
  for (int64_t n = 0; n < N; ++n) yp[n] = to_bf16(sums[n]);
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
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto y = torch::empty({1, N}, x.options());  // bf16
  const float *sp = s_perm.data_ptr<float>(), *zp = zs_perm.data_ptr<float>();
  const int32_t* qp = qweight.data_ptr<int32_t>();
  const int* ord = order.data_ptr<int>();
  uint16_t* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  // Sums in the words' value order (position b * 128 + j * 16 + lane), as the tables.
  const int64_t blocks = words / 16;
  const std::vector<float> sums = row_split_sums(K / 2, 2, group, N, sp, zp, [&](int64_t u0, int64_t u1, int64_t u_end,
                                                                               float* acc, float& xsum) {
    for (int64_t kq = u0; kq < u1; kq += 4) {  // up to 4 pairs: a block's sums stay in registers
      const int np = static_cast<int>(std::min<int64_t>(4, u1 - kq));
      float xf[8];
      uint32_t xpair[4];
      for (int i = 0; i < np; ++i) {
        const int64_t k = 2 * (kq + i);
        xpair[i] = xb[k] | (static_cast<uint32_t>(xb[k + 1]) << 16);
        for (int h = 0; h < 2; ++h) {
          const uint32_t bits = static_cast<uint32_t>(xb[k + h]) << 16;
          std::memcpy(&xf[2 * i + h], &bits, 4);
          xsum += xf[2 * i + h];
        }
      }
      for (int64_t b = 0; b < blocks; ++b) {
        float* a = acc + b * 128;
#if Q2VL_AVX512
        __m512 r[8];
        for (int j = 0; j < 8; ++j) r[j] = _mm512_loadu_ps(a + 16 * j);
        for (int i = 0; i < np; ++i) {
          const int64_t k = 2 * (kq + i);
          if (k + 9 < 2 * u_end) {  // the next 4 pairs' lines of this block
            _mm_prefetch(reinterpret_cast<const char*>(qp + (k + 8) * words + b * 16), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(qp + (k + 9) * words + b * 16), _MM_HINT_T0);
          }
          const __m512i v0 = _mm512_loadu_si512(qp + k * words + b * 16);
          const __m512i v1 = _mm512_loadu_si512(qp + (k + 1) * words + b * 16);
          // Per dword, the halves of the two rows' words side by side: nibbles 0-3 (low) and
          // 4-7 (high) of row k in the low 16 bits, of row k + 1 in the high 16.
          constexpr __mmask32 upper = 0xAAAAAAAAu;
          const __m512i low = _mm512_mask_blend_epi16(upper, v0, _mm512_slli_epi32(v1, 16));
          const __m512i high = _mm512_mask_blend_epi16(upper, _mm512_srli_epi32(v0, 16), v1);
          const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int32_t>(xpair[i])));
          for (int j = 0; j < 8; ++j)
            r[j] = _mm512_dpbf16_ps(r[j], reinterpret_cast<__m512bh>(nibble_pair(j < 4 ? low : high, j % 4)), xv);
        }
        for (int j = 0; j < 8; ++j) _mm512_storeu_ps(a + 16 * j, r[j]);
#else
        for (int i = 0; i < np; ++i)
          for (int h = 0; h < 2; ++h) {
            const int32_t* row = qp + (2 * (kq + i) + h) * words + b * 16;
            for (int j = 0; j < 8; ++j)
              for (int lane = 0; lane < 16; ++lane)
                a[16 * j + lane] += xf[2 * i + h] * static_cast<float>(128 + ((row[lane] >> (4 * j)) & 15));
          }
#endif
      }
    }
  });
  for (int64_t b = 0; b < blocks; ++b) store_awq_tile_bf16(sums.data() + b * 128, yp + b * 128, ord);
  return y;
}

// What the dequantizers read: the checkpoint's qweight, float32 scales and true zeros [G, N].
struct Packed {
  const int32_t* qweight;
  const float *scales, *zeros;
  const int* order;  // AWQ column of each value of a word
  int64_t bits, pack, group, K, N;
  bool along_k;
};

Packed packed_of(const torch::Tensor& qweight, const torch::Tensor& scales, const torch::Tensor& zeros,
                 const torch::Tensor& order, int64_t bits, bool along_k, int64_t group) {
  TORCH_CHECK(qweight.dtype() == torch::kInt32 && qweight.is_contiguous(), "qweight: contiguous int32");
  TORCH_CHECK(scales.dtype() == torch::kFloat32 && scales.is_contiguous() && zeros.is_contiguous(),
              "scales, zeros: contiguous float32");
  const int64_t pack = 32 / bits;
  const int64_t K = along_k ? qweight.size(0) * pack : qweight.size(0);
  return {qweight.data_ptr<int32_t>(), scales.data_ptr<float>(), zeros.data_ptr<float>(), order.data_ptr<int>(),
          bits, pack, group, K, scales.size(1), along_k};
}

// Rows [k0, k1) (multiples of pack for GPTQ) and columns [n0, n1) (multiples of pack for AWQ)
// of W as bf16 into out (row k at out + (k - k0) * ld), on the calling thread.
void dequant_rows(const Packed& w, int64_t k0, int64_t k1, int64_t n0, int64_t n1, uint16_t* out, int64_t ld) {
  const int32_t mask = (1 << w.bits) - 1;
  const int64_t N = w.N, pack = w.pack;
  if (w.along_k) {
    for (int64_t kp = k0 / pack; kp < k1 / pack; ++kp) {
      const int64_t g = kp * pack / w.group;
      const int32_t* row = w.qweight + kp * N;
      const float *sg = w.scales + g * N, *zg = w.zeros + g * N;
      uint16_t* o = out + (kp * pack - k0) * ld - n0;
      int64_t start = n0;
#if Q2VL_AVX512
      const __m512i vmask = _mm512_set1_epi32(mask);
      for (; start + 16 <= n1; start += 16) {
        const __m512i v = _mm512_loadu_si512(row + start);
        const __m512 sv = _mm512_loadu_ps(sg + start), zv = _mm512_loadu_ps(zg + start);
        for (int64_t j = 0; j < pack; ++j)
          store_bf16(o + j * ld + start,
                     _mm512_mul_ps(_mm512_sub_ps(codes_f32(v, static_cast<int>(w.bits * j), vmask), zv), sv));
      }
#endif
      for (int64_t j = 0; j < pack; ++j) {
        const int shift = static_cast<int>(w.bits * j);
        for (int64_t n = start; n < n1; ++n)
          o[j * ld + n] = to_bf16((static_cast<float>((row[n] >> shift) & mask) - zg[n]) * sg[n]);
      }
    }
    return;
  }
  const int64_t words = N / pack;
  std::vector<float> codes(n1 - n0);
#if Q2VL_AVX512
  const __m512i index = w.bits == 4 ? awq4_index(w.order) : _mm512_setzero_si512();  // 8-bit: natural order
#endif
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t g = k / w.group;
    const int32_t* row = w.qweight + k * words;
    const float *sg = w.scales + g * N, *zg = w.zeros + g * N;
    uint16_t* o = out + (k - k0) * ld - n0;
    int64_t start = n0;
#if Q2VL_AVX512
    for (; start + 64 <= n1; start += 64) {
      const __m512i codes64 = w.bits == 4 ? awq_codes<4>(row + start / pack, index)
                                          : awq_codes<8>(row + start / pack, index);
      for (int q = 0; q < 4; ++q) {
        const int64_t n = start + 16 * q;
        const __m512 f = _mm512_sub_ps(byte_lane_f32(codes64, q), _mm512_loadu_ps(zg + n));
        store_bf16(o + n, _mm512_mul_ps(f, _mm512_loadu_ps(sg + n)));
      }
    }
#endif
    if (start == n1) continue;
    for (int64_t c = start / pack; c < (n1 + pack - 1) / pack; ++c)
      for (int64_t j = 0; j < pack; ++j) {
        const int64_t n = c * pack + w.order[j];
        if (n >= n0 && n < n1) codes[n - n0] = static_cast<float>((row[c] >> (w.bits * j)) & mask);
      }
    for (int64_t n = start; n < n1; ++n) o[n] = to_bf16((codes[n - n0] - zg[n]) * sg[n]);
  }
}

// Columns [n0, n1) of W as bf16 into out [K, >= n1 - n0] (row stride out.stride(0)).
void dequant(torch::Tensor qweight, torch::Tensor scales, torch::Tensor zeros, torch::Tensor order, int64_t bits,
             bool along_k, int64_t group, int64_t n0, int64_t n1, torch::Tensor out) {
  const Packed w = packed_of(qweight, scales, zeros, order, bits, along_k, group);
  TORCH_CHECK(out.dtype() == torch::kBFloat16 && out.stride(1) == 1, "out: bf16, rows contiguous");
  TORCH_CHECK(n0 >= 0 && n1 <= w.N && n0 < n1 && (along_k || n0 % w.pack == 0), "column range");
  TORCH_CHECK(out.size(0) == w.K && out.size(1) >= n1 - n0, "out shape");
  uint16_t* op = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const int64_t ld = out.stride(0), step = along_k ? w.pack : 1;
  at::parallel_for(0, w.K / step, 16, [&](int64_t b, int64_t e) {
    dequant_rows(w, b * step, e * step, n0, n1, op + b * step * ld, ld);
  });
}

// y [M, N] = x [M, K] (bf16) @ W: every thread dequantizes its own blocks of `cols` columns
// (rows in chunks of at most `k_rows`) into a bf16 buffer of its own and multiplies them with
// a single-threaded matmul. Measured on 2 cores: dequantizing on all threads and then
// multiplying on all threads (the blocks crossing from core to core) cost 1.9-2.3x the sum
// of the two parts; per thread, the sum.
torch::Tensor dequant_mm(torch::Tensor x, torch::Tensor qweight, torch::Tensor scales, torch::Tensor zeros,
                         torch::Tensor order, int64_t bits, bool along_k, int64_t group, int64_t cols,
                         int64_t k_rows) {
  const Packed w = packed_of(qweight, scales, zeros, order, bits, along_k, group);
  TORCH_CHECK(x.dtype() == torch::kBFloat16 && x.is_contiguous() && x.dim() == 2 && x.size(1) == w.K, "x: bf16 [M, K]");
  TORCH_CHECK(cols % 64 == 0 && k_rows % w.group == 0 && k_rows % w.pack == 0, "block shape");
  const int64_t M = x.size(0), blocks = (w.N + cols - 1) / cols;
  auto y = torch::empty({M, w.N}, x.options());
  at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
    auto buf = torch::empty({std::min(k_rows, w.K), cols}, x.options());
    uint16_t* bp = reinterpret_cast<uint16_t*>(buf.data_ptr<at::BFloat16>());
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t n0 = blk * cols, n1 = std::min(w.N, n0 + cols);
      auto out = y.narrow(1, n0, n1 - n0);
      for (int64_t k0 = 0; k0 < w.K; k0 += k_rows) {
        const int64_t k1 = std::min(w.K, k0 + k_rows);
        dequant_rows(w, k0, k1, n0, n1, bp, cols);
        auto part = buf.narrow(0, 0, k1 - k0).narrow(1, 0, n1 - n0);
        if (k0 == 0)
          at::mm_out(out, x.narrow(1, k0, k1 - k0), part);
        else
          out.addmm_(x.narrow(1, k0, k1 - k0), part);
      }
    }
  });
  return y;
}

#if Q2VL_AVX512
// ---- GEMM for prompts: BF16 dot products on the codes, scales and zeros once per segment ----
//
// The dequantize + matmul path above computes every weight in float32 and rounds it to bf16
// before torch's matmul reads it: about 1 ms per 2B gate/up projection whatever M is, 10-15 %
// of a BF16 linear at M = 64. Here the codes go straight into bf16 (4-bit: 128 + c by setting
// bits under 0x4300; 8-bit: c, exact in bf16), a few integer operations per 32 weights, into a
// panel of (k, k + 1) pairs for vdpbf16ps that every row of x then reads from L1/L2. The
// scales and zeros are applied once per segment of S rows (S divides the group):
//   y[m, n] = sum_seg s[g, n] * acc[m, n] - (z[g, n] + base) * s[g, n] * sum_seg x[m, k]
// with base 128 (4-bit) or 0 (8-bit). Tiles of 128 columns, split across threads; in a tile,
// rows of x in blocks of 6 against 64 columns: 24 float32 accumulators in registers.
// With dequantized_panel (cpu_fused.py: from DEQUANTIZED_PANEL_ROWS rows), the panel is
// turned into the weights themselves, s * code - zb rounded to bf16 (the reference's numbers,
// up to float32 rounding), once per chunk, and every row block runs down the whole chunk with
// no epilogue per group: applying the scales per group cost the code panel 6-10 % at 256
// rows; dequantizing the panel costs a fixed amount per chunk, which fewer rows do not
// amortise (2B shapes, Zen 4: even at 64 rows; at 128 ahead or within 1 %; at 256, 1024 and
// 2048 ahead on every shape and format).
constexpr int64_t kTileN = 128;   // columns per tile (16 words of 4-bit AWQ)
constexpr int64_t kChunkK = 512;  // rows of W decoded at a time: a 128 KB panel (L2)
constexpr int kRowBlock = 6;

// Rows [k0, k1) of the tile of columns [n0, n0 + 128) as bf16 pairs:
// panel[(k - k0) / 2 * 128 + pos] = (code(k, col), code(k + 1, col)), where pos = col - n0,
// except for 4-bit AWQ: pos = j * 16 + lane for col = n0 + 8 * lane + order[j] (the words'
// value order; the tables and the write-out use the same positions).
void decode_panel(const Packed& w, int64_t k0, int64_t k1, int64_t n0, uint32_t* panel, const PairCodes& pc) {
  const int64_t N = w.N;
  if (w.along_k && w.bits == 4) {  // word [k / 8, n]: value j is row 8 r + j
    for (int64_t kp = k0 / 8; kp < k1 / 8; ++kp) {
      uint32_t* out = panel + (kp * 8 - k0) / 2 * kTileN;
      for (int v = 0; v < 8; ++v) {
        const __m512i word = _mm512_loadu_si512(w.qweight + kp * N + n0 + 16 * v);
        const __m512i lo = _mm512_and_si512(word, pc.low);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(word, 4), pc.low);
        for (int p = 0; p < 4; ++p) _mm512_storeu_si512(out + p * kTileN + 16 * v, pc.pair(p, lo, hi));
      }
    }
  } else if (w.bits == 4) {  // AWQ: word [k, n / 8], value j is column 8 c + order[j]
    const int64_t words = N / 8;
    for (int64_t k = k0; k < k1; k += 2) {
      const __m512i v0 = _mm512_loadu_si512(w.qweight + k * words + n0 / 8);
      const __m512i v1 = _mm512_loadu_si512(w.qweight + (k + 1) * words + n0 / 8);
      const __m512i lo0 = _mm512_and_si512(v0, pc.low), hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), pc.low);
      const __m512i lo1 = _mm512_and_si512(v1, pc.low), hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), pc.low);
      uint32_t* out = panel + (k - k0) / 2 * kTileN;
      for (int j = 0; j < 8; ++j)
        _mm512_storeu_si512(out + 16 * j, j % 2 ? pc.pair(j / 2, hi0, hi1) : pc.pair(j / 2, lo0, lo1));
    }
  } else {  // 8-bit: the code as float32, whose top half is its bf16 (exact below 256)
    const __m512i ff = _mm512_set1_epi32(0xFF), top = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
    auto pair = [&](__m512 a, __m512 b) {
      return _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(a), 16), _mm512_and_si512(_mm512_castps_si512(b), top));
    };
    if (w.along_k) {  // GPTQ: word [k / 4, n], value j is row 4 r + j
      for (int64_t kq = k0 / 4; kq < k1 / 4; ++kq) {
        uint32_t* out = panel + (kq * 4 - k0) / 2 * kTileN;
        for (int v = 0; v < 8; ++v) {
          const __m512i word = _mm512_loadu_si512(w.qweight + kq * N + n0 + 16 * v);
          __m512 c[4];
          for (int j = 0; j < 4; ++j) c[j] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(word, 8 * j), ff));
          _mm512_storeu_si512(out + 16 * v, pair(c[0], c[1]));
          _mm512_storeu_si512(out + kTileN + 16 * v, pair(c[2], c[3]));
        }
      }
    } else {  // AWQ 8-bit: natural order, so row k's bytes are its columns
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(w.qweight);
      for (int64_t k = k0; k < k1; k += 2) {
        uint32_t* out = panel + (k - k0) / 2 * kTileN;
        for (int v = 0; v < 8; ++v) {
          auto codes = [&](int64_t row) {
            return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + row * N + n0 + 16 * v))));
          };
          _mm512_storeu_si512(out + 16 * v, pair(codes(k), codes(k + 1)));
        }
      }
    }
  }
}

// acc[r] += x[r, pairs] . panel's 64 columns, BF16 dot products: both GEMM kernels' inner loop
// (inlined, so that the 24 accumulators stay in registers).
template <int MR>
__attribute__((always_inline)) inline void dot_panel(const uint16_t* x, int64_t ldx, const uint32_t* panel,
                                                     int64_t pairs, __m512 (&acc)[MR][4]) {
  for (int64_t kp = 0; kp < pairs; ++kp) {
    const uint32_t* b = panel + kp * kTileN;
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b));
    const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + 16));
    const __m512bh b2 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + 32));
    const __m512bh b3 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + 48));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t xpair;
      std::memcpy(&xpair, x + r * ldx + 2 * kp, 4);
      const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(xpair));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b0, xv);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b1, xv);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], b2, xv);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], b3, xv);
    }
  }
}

// acc = x[rows, pairs] . panel; then y_tile[rows, 64] += s * acc - zb * xsum (one segment).
template <int MR>
inline void panel_kernel(const uint16_t* x, int64_t ldx, const uint32_t* panel, int64_t pairs, float* yt,
                         const float* s, const float* zb, const float* xsum, int64_t xs_stride) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
  dot_panel<MR>(x, ldx, panel, pairs, acc);
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    const __m512 sv = _mm512_loadu_ps(s + 16 * v), zv = _mm512_loadu_ps(zb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      float* y = yt + r * kTileN + 16 * v;
      const __m512 xs = _mm512_set1_ps(xsum[r * xs_stride]);
      _mm512_storeu_ps(y, _mm512_fmadd_ps(sv, acc[r][v], _mm512_fnmadd_ps(zv, xs, _mm512_loadu_ps(y))));
    }
  }
}

using PanelKernel = void (*)(const uint16_t*, int64_t, const uint32_t*, int64_t, float*, const float*, const float*,
                             const float*, int64_t);
constexpr PanelKernel kPanelKernels[kRowBlock + 1] = {nullptr,          panel_kernel<1>, panel_kernel<2>,
                                                      panel_kernel<3>, panel_kernel<4>, panel_kernel<5>,
                                                      panel_kernel<6>};

// The panel's code pairs -> pairs of dequantized weights s * code - zb, rounded to bf16
// (nearest even), for rows [k0, k1) of the tile at n0; tables in the panel's positions.
void dequantize_panel(uint32_t* panel, int64_t k0, int64_t k1, int64_t n0, int64_t N, int64_t group,
                      const float* s_tab, const float* zb_tab) {
  const __m512i top = _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  auto rounded = [](__m512 v) { return _mm512_castps_si512(round_to_bf16(v)); };
  for (int64_t g0 = k0, g1; g0 < k1; g0 = g1) {
    const int64_t g = g0 / group;
    g1 = std::min(k1, (g + 1) * group);
    __m512 sv[8], zv[8];
    for (int v = 0; v < 8; ++v) {
      sv[v] = _mm512_loadu_ps(s_tab + g * N + n0 + 16 * v);
      zv[v] = _mm512_loadu_ps(zb_tab + g * N + n0 + 16 * v);
    }
    for (int64_t k = g0; k < g1; k += 2) {
      uint32_t* row = panel + (k - k0) / 2 * kTileN;
      for (int v = 0; v < 8; ++v) {
        const __m512i pr = _mm512_loadu_si512(row + 16 * v);
        const __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(pr, 16));
        const __m512 hi = _mm512_castsi512_ps(_mm512_and_si512(pr, top));
        const __m512i rl = _mm512_srli_epi32(rounded(_mm512_fmsub_ps(lo, sv[v], zv[v])), 16);
        const __m512i rh = rounded(_mm512_fmsub_ps(hi, sv[v], zv[v]));
        _mm512_storeu_si512(row + 16 * v, _mm512_or_si512(rl, rh));
      }
    }
  }
}

// acc = x[rows, pairs] . panel (dequantized weights) over the whole chunk; y_tile[rows, 64]
// = acc on the first chunk, += acc after.
template <int MR>
inline void dequantized_kernel(const uint16_t* x, int64_t ldx, const uint32_t* panel, int64_t pairs, float* yt,
                               bool first) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt + r * kTileN + 16 * v);
  dot_panel<MR>(x, ldx, panel, pairs, acc);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(yt + r * kTileN + 16 * v, acc[r][v]);
}
using DequantizedKernel = void (*)(const uint16_t*, int64_t, const uint32_t*, int64_t, float*, bool);
constexpr DequantizedKernel kDequantizedKernels[kRowBlock + 1] = {
    nullptr, dequantized_kernel<1>, dequantized_kernel<2>, dequantized_kernel<3>,
    dequantized_kernel<4>, dequantized_kernel<5>, dequantized_kernel<6>};

// Rows [0, M) of a tile's float32 sums (M x 128, panel positions) as bf16 into y at column n0.
void write_tile(const float* yt, int64_t M, uint16_t* y, int64_t N, int64_t n0, bool awq4, const int* order) {
  for (int64_t m = 0; m < M; ++m) {
    const float* src = yt + m * kTileN;
    uint16_t* dst = y + m * N + n0;
    if (!awq4) {
      for (int v = 0; v < 8; ++v) store_bf16(dst + 16 * v, _mm512_loadu_ps(src + 16 * v));
    } else {
      store_awq_tile_bf16(src, dst, order);
    }
  }
}

// ---- GEMM for prompts in float32 FMAs: gemm_f32 ----
//
// On some cores a vdpbf16ps retires at a quarter of the rate of a float32 FMA: the Xeon model
// 207 here (AVX512-BF16, AMX hidden) issues about 0.5 of them per cycle and core against 2
// FMAs (dot_rates: 45 against 89 G multiply-adds per second and thread), which caps every
// BF16 matmul, torch's included, at half of what FMAs reach. There the prompt GEMM dequantizes
// each chunk of its tile to float32 weights (s * code - zb rounded to bf16: the reference's
// numbers, as the dequantized bf16 panel) and runs float32 FMAs on x widened to float32.
// Chunks of 128 rows, each 64-column half of the panel 32 KB: it stays in L1 while every
// block of 6 rows runs down it. cpu_fused.py picks this GEMM where dot_rates() says FMAs are
// clearly ahead.
constexpr int64_t kChunkF32 = 128;

// The nibble at bit `bit` of every dword as the float32 128 + nibble: moved to bits 16-19 and
// put under 0x43000000 (128.0f, whose mantissa step there is 1) by one ternary logic op.
inline __m512 nibble_f32(__m512i words, int bit) {
  const __m512i t = bit <= 16 ? _mm512_slli_epi32(words, 16 - bit) : _mm512_srli_epi32(words, bit - 16);
  return _mm512_castsi512_ps(
      _mm512_ternarylogic_epi32(_mm512_set1_epi32(0x43000000), t, _mm512_set1_epi32(0x000F0000), 0xF8));
}

// Rows [k0, k1) of the tile at n0 as float32 weights: out[h * kChunkF32 * 64 + (k - k0) * 64 + i]
// is panel position 64 h + i (decode_panel's positions; s_tab and zb_tab in the same). One
// group segment at a time, its 8 + 8 vectors of scales and zb in registers.
void decode_f32_panel(const Packed& w, int64_t k0, int64_t k1, int64_t n0, float* out) {
  const int64_t N = w.N;
  for (int64_t g0 = k0, g1; g0 < k1; g0 = g1) {
    const int64_t g = g0 / w.group;
    g1 = std::min(k1, (g + 1) * w.group);
    __m512 sv[8], zv[8];
    for (int v = 0; v < 8; ++v) {
      sv[v] = _mm512_loadu_ps(w.scales + g * N + n0 + 16 * v);
      zv[v] = _mm512_loadu_ps(w.zeros + g * N + n0 + 16 * v);
    }
    auto put = [&](int64_t k, int v, __m512 code) {  // position 16 v of row k
      _mm512_storeu_ps(out + (v / 4) * kChunkF32 * 64 + (k - k0) * 64 + (v % 4) * 16,
                       round_to_bf16(_mm512_fmsub_ps(code, sv[v], zv[v])));
    };
    if (w.along_k && w.bits == 4) {  // word [k / 8, n]: value j is row 8 r + j
      for (int64_t kp = g0 / 8; kp < g1 / 8; ++kp)
        for (int v = 0; v < 8; ++v) {
          const __m512i word = _mm512_loadu_si512(w.qweight + kp * N + n0 + 16 * v);
          for (int j = 0; j < 8; ++j) put(kp * 8 + j, v, nibble_f32(word, 4 * j));
        }
    } else if (w.bits == 4) {  // AWQ: row k's 16 words; value j of them are positions 16 j ..
      for (int64_t k = g0; k < g1; ++k) {
        const __m512i word = _mm512_loadu_si512(w.qweight + k * (N / 8) + n0 / 8);
        for (int j = 0; j < 8; ++j) put(k, j, nibble_f32(word, 4 * j));
      }
    } else if (w.along_k) {  // GPTQ 8-bit: word [k / 4, n], value j is row 4 r + j
      const __m512i ff = _mm512_set1_epi32(0xFF);
      for (int64_t kq = g0 / 4; kq < g1 / 4; ++kq)
        for (int v = 0; v < 8; ++v) {
          const __m512i word = _mm512_loadu_si512(w.qweight + kq * N + n0 + 16 * v);
          for (int j = 0; j < 4; ++j) put(kq * 4 + j, v, codes_f32(word, 8 * j, ff));
        }
    } else {  // AWQ 8-bit: natural order, row k's bytes are its columns
      const uint8_t* bytes = reinterpret_cast<const uint8_t*>(w.qweight);
      for (int64_t k = g0; k < g1; ++k)
        for (int v = 0; v < 8; ++v)
          put(k, v, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + k * N + n0 + 16 * v)))));
    }
  }
}

// y_tile[rows, 64] (= on the first chunk, += after) x[rows, :k] . panel half [k, 64], float32.
template <int MR>
inline void f32_kernel(const float* x, int64_t ldx, const float* panel, int64_t rows, float* yt, bool first) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(yt + r * kTileN + 16 * v);
  for (int64_t k = 0; k < rows; ++k) {
    const float* b = panel + k * 64;
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                 b3 = _mm512_loadu_ps(b + 48);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(b0, xv, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(b1, xv, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(b2, xv, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(b3, xv, acc[r][3]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(yt + r * kTileN + 16 * v, acc[r][v]);
}
using F32Kernel = void (*)(const float*, int64_t, const float*, int64_t, float*, bool);
constexpr F32Kernel kF32Kernels[kRowBlock + 1] = {nullptr,        f32_kernel<1>, f32_kernel<2>, f32_kernel<3>,
                                                  f32_kernel<4>, f32_kernel<5>, f32_kernel<6>};
#endif  // Q2VL_AVX512

// Rows per segment for gemm: the group, or a divisor of it when the group is long (per
// channel), so that a segment fits in a chunk; 0 where gemm does not apply.
int64_t gemm_segment(int64_t group) {
  for (int64_t s : {group, int64_t{128}, int64_t{64}})
    if (s <= 128 && s % 16 == 0 && group % s == 0) return s;
  return 0;
}

#if Q2VL_AVX512
// The operands of both GEMMs, checked: x bf16 [M, K]; the tables stand in Packed's scales and
// zeros (w.zeros is the zb table); N % 128 == 0 and a segment for the group.
Packed gemm_operands(const torch::Tensor& x, const torch::Tensor& qweight, const torch::Tensor& s_tab,
                     const torch::Tensor& zb_tab, const torch::Tensor& order, int64_t bits, bool along_k,
                     int64_t group) {
  const Packed w = packed_of(qweight, s_tab, zb_tab, order, bits, along_k, group);
  TORCH_CHECK(x.dtype() == torch::kBFloat16 && x.is_contiguous() && x.dim() == 2 && x.size(1) == w.K, "x: bf16 [M, K]");
  TORCH_CHECK(w.N % kTileN == 0 && gemm_segment(group) > 0 && w.K % group == 0,
              "gemm: N % 128 == 0 and a group of 16 * j rows");
  return w;
}
#endif

// x bf16 [M, K] -> y bf16 [M, N]. s_tab and zb_tab: float32 [G, N] in the panel's positions
// (see decode_panel), zb = (zeros + base) * scales with base 128 for 4-bit, 0 for 8-bit.
// Needs AVX512-BF16 (has_gemm), N % 128 == 0 and a segment (gemm_segment(group) > 0).
torch::Tensor gemm(torch::Tensor x, torch::Tensor qweight, torch::Tensor s_tab, torch::Tensor zb_tab,
                   torch::Tensor order, int64_t bits, bool along_k, int64_t group, bool dequantized_panel) {
#if Q2VL_AVX512
  const Packed w = gemm_operands(x, qweight, s_tab, zb_tab, order, bits, along_k, group);
  const int64_t K = w.K, N = w.N, S = gemm_segment(group);
  const int64_t M = x.size(0), segments = K / S;
  const uint16_t* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  std::vector<float> xsum(dequantized_panel ? 0 : M * segments);  // [M, segments]: sum of x over each segment
  if (!dequantized_panel) at::parallel_for(0, M, 16, [&](int64_t m0, int64_t m1) {
    for (int64_t i = m0 * segments; i < m1 * segments; ++i) {
      __m512 sum = _mm512_setzero_ps();
      for (int64_t k = 0; k < S; k += 16) sum = _mm512_add_ps(sum, load_bf16(xp + i * S + k));
      xsum[i] = _mm512_reduce_add_ps(sum);
    }
  });
  auto y = torch::empty({M, N}, x.options());
  const float* xs = xsum.data();
  uint16_t* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  const bool permuted = !along_k && bits == 4;
  at::parallel_for(0, N / kTileN, 1, [&](int64_t t0, int64_t t1) {
    const PairCodes pc;
    std::vector<uint32_t> panel(kChunkK / 2 * kTileN);
    std::vector<float> yt(M * kTileN);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * kTileN;
      if (!dequantized_panel) std::fill(yt.begin(), yt.end(), 0.0f);  // the dequantized kernel sets it
      for (int64_t k0 = 0; k0 < K; k0 += kChunkK) {
        const int64_t k1 = std::min(K, k0 + kChunkK);
        decode_panel(w, k0, k1, n0, panel.data(), pc);
        if (dequantized_panel) {
          dequantize_panel(panel.data(), k0, k1, n0, N, group, w.scales, w.zeros);
          for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
            const int mr = static_cast<int>(std::min<int64_t>(kRowBlock, M - m0));
            for (int64_t h = 0; h < kTileN; h += 64)
              kDequantizedKernels[mr](xp + m0 * K + k0, K, panel.data() + h, (k1 - k0) / 2,
                                      yt.data() + m0 * kTileN + h, k0 == 0);
          }
          continue;
        }
        // A block of rows walks every segment of the chunk before the next block, so its
        // float32 sums (6 x 128) stay in L1 between segments (segments outside: all M rows'
        // sums, 1 MB at M = 2048, went through L2 once per segment: 2-4 % at M >= 1024).
        for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
          const int mr = static_cast<int>(std::min<int64_t>(kRowBlock, M - m0));
          for (int64_t seg = k0; seg < k1; seg += S) {
            const int64_t g = seg / group;
            for (int64_t h = 0; h < kTileN; h += 64)  // the rows' x (L1) against both halves
              kPanelKernels[mr](xp + m0 * K + seg, K, panel.data() + (seg - k0) / 2 * kTileN + h, S / 2,
                                yt.data() + m0 * kTileN + h, w.scales + g * N + n0 + h, w.zeros + g * N + n0 + h,
                                xs + m0 * segments + seg / S, segments);
          }
        }
      }
      write_tile(yt.data(), M, yp, N, n0, permuted, w.order);
    }
  });
  return y;
#else
  TORCH_CHECK(false, "gemm needs AVX512-BF16 (has_gemm is false): use dequant_mm");
  return x;
#endif
}

// x bf16 [M, K] -> y bf16 [M, N] with float32 FMAs (see kChunkF32). Tables and the conditions
// as for gemm. Every thread takes its tiles (columns) for strips of at most kF32StripRows rows
// and, per chunk of 128 rows of W, widens the strip's slice of x to float32 itself (264 x 128
// floats, beside its sums in L2). A widened x shared by the threads (each converting half of
// it) left the 2B k/v projection, one tile per thread, at 0.9-1.0x a BF16 linear where the
// larger ones were at 1.5x: every chunk then read half of x from the other core's cache.
// Strips of 264 rows against the whole prompt: 1.0-1.3x faster at 2048 rows (2B, 7B; A/B).
constexpr int64_t kF32StripRows = 264;
constexpr int64_t kF32GroupTiles = 8, kF32SumBytes = 1 << 20;
torch::Tensor gemm_f32(torch::Tensor x, torch::Tensor qweight, torch::Tensor s_tab, torch::Tensor zb_tab,
                       torch::Tensor order, int64_t bits, bool along_k, int64_t group) {
#if Q2VL_AVX512
  const Packed w = gemm_operands(x, qweight, s_tab, zb_tab, order, bits, along_k, group);
  const int64_t K = w.K, N = w.N;
  const int64_t M = x.size(0), strip = std::min(M, kF32StripRows);
  const uint16_t* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  auto y = torch::empty({M, N}, x.options());
  if (M == 0) return y;
  uint16_t* yp = reinterpret_cast<uint16_t*>(y.data_ptr<at::BFloat16>());
  // A thread takes up to 8 neighbouring tiles at a time, chunk by chunk, so that the packed
  // rows it reads run across them (GPTQ 4-bit: 4 KB) rather than 512 B (AWQ: 64 B) per 4 KB
  // page; its float32 sums, at most kF32SumBytes, stay in L2. Against one tile at a time
  // (2B and 7B gate/up and down, A/B): 1.05-1.6x faster at 16 rows, 1.0-1.3x at 64; 8
  // tiles against 4: up to 1.28x at 16 rows, 0.98-1.13x at 64 and 256.
  const int64_t group_tiles = std::clamp<int64_t>(kF32SumBytes / (4 * strip * kTileN), 1, kF32GroupTiles);
  at::parallel_for(0, N / kTileN, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> panel(2 * kChunkF32 * 64), yt(group_tiles * strip * kTileN), xc(strip * kChunkF32);
    for (int64_t s0 = 0; s0 < M; s0 += strip) {
      const int64_t rows = std::min(M - s0, strip);
      for (int64_t tg = t0; tg < t1; tg += group_tiles) {
        const int64_t tiles = std::min(group_tiles, t1 - tg);
        for (int64_t k0 = 0; k0 < K; k0 += kChunkF32) {
          const int64_t width = std::min(K, k0 + kChunkF32) - k0;  // a multiple of 16 (the group's)
          for (int64_t m = 0; m < rows; ++m)
            for (int64_t k = 0; k < width; k += 16)
              _mm512_storeu_ps(xc.data() + m * kChunkF32 + k, load_bf16(xp + (s0 + m) * K + k0 + k));
          for (int64_t i = 0; i < tiles; ++i) {
            decode_f32_panel(w, k0, k0 + width, (tg + i) * kTileN, panel.data());
            float* sums = yt.data() + i * rows * kTileN;
            for (int64_t h = 0; h < 2; ++h)  // one half in L1 for every block of rows
              for (int64_t m0 = 0; m0 < rows; m0 += kRowBlock) {
                const int mr = static_cast<int>(std::min<int64_t>(kRowBlock, rows - m0));
                kF32Kernels[mr](xc.data() + m0 * kChunkF32, kChunkF32, panel.data() + h * kChunkF32 * 64, width,
                                sums + m0 * kTileN + 64 * h, k0 == 0);
              }
          }
        }
        for (int64_t i = 0; i < tiles; ++i)
          write_tile(yt.data() + i * rows * kTileN, rows, yp + s0 * N, N, (tg + i) * kTileN, !along_k && bits == 4,
                     w.order);
      }
    }
  });
  return y;
#else
  TORCH_CHECK(false, "gemm_f32 needs AVX512-BF16 (has_gemm is false): use dequant_mm");
  return x;
#endif
}

#if Q2VL_AVX512
// Multiply-adds per second of `step` (one instruction doing `macs` of them) on one thread: 24
// independent chains of `iters` steps, so that its throughput, not its latency, is timed.
template <typename Operand, typename Step>
double chain_rate(Operand a, Step step, double macs, int64_t iters) {
  __m512 acc[24];
  for (auto& v : acc) v = _mm512_setzero_ps();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (auto& v : acc) v = step(v, a);
    asm volatile("" : "+v"(a));  // keeps the loop from being folded
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  float sum = 0;
  for (auto& v : acc) sum += _mm512_reduce_add_ps(v);
  static volatile float keep;  // the sums are used, so the loop is not dropped
  keep = sum;
  return 24.0 * macs * iters / s;
}
#endif

// Multiply-adds per second of one thread: BF16 dot products (vdpbf16ps, 32 each) and float32
// FMAs (16 each), the two alternated `rounds` times, best of each: what the GEMM's two
// kernels can reach at most on this core.
std::vector<double> dot_rates(int64_t iters, int64_t rounds) {
#if Q2VL_AVX512
  double best_bf16 = 0, best_f32 = 0;
  const __m512bh pair = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3f803f80));  // (1, 1)
  for (int64_t round = 0; round < rounds; ++round) {
    best_bf16 = std::max(best_bf16, chain_rate(pair, [](__m512 v, __m512bh a) { return _mm512_dpbf16_ps(v, a, a); },
                                               32.0, iters));
    best_f32 = std::max(best_f32, chain_rate(_mm512_set1_ps(1.0f),
                                             [](__m512 v, __m512 a) { return _mm512_fmadd_ps(a, a, v); }, 16.0, iters));
  }
  return {best_bf16, best_f32};
#else
  return {0.0, 0.0};
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gemv", &gemv, "fused dequantize + GEMV for a few rows");
  m.def("gemv_awq4_row", &gemv_awq4_row, "fused dequantize + GEMV, one row of 4-bit AWQ");
  m.def("gemv_gptq4_row", &gemv_gptq4_row, "fused dequantize + GEMV, one row of 4-bit GPTQ, BF16 dot products");
  m.def("dequant", &dequant, "dequantize a block of columns to bf16");
  m.def("dequant_mm", &dequant_mm, "x @ W: per thread, dequantize blocks of columns and multiply");
  m.def("gemm", &gemm, "x @ W with BF16 dot products on the codes (AVX512-BF16)");
  m.def("gemm_f32", &gemm_f32, "x @ W with float32 FMAs on the dequantized weights (AVX-512)");
  m.def("dot_rates", &dot_rates, "multiply-adds per second of one thread: BF16 dot products, float32 FMAs");
  m.def("gemm_segment", &gemm_segment, "rows per scale segment of gemm for a group size (0: none)");
  m.attr("has_gemm") = static_cast<bool>(Q2VL_AVX512);
}
