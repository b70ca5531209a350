// Pairwise kernels over embeddings: the tiled distance / similarity driver and the losses fused into
// its epilogues, plus the row-wise driver of the paired losses (one row of each input per loss).
//
// The tile driver. Rows of X are cut into blocks of kTile rows (independent of the thread count); one
// thread owns a row block and walks the column blocks of Y in order, so every per-row result (a sum, a
// max, an online log-sum-exp, a gradient row) is a fixed expression, and per-block partials are
// combined in a fixed pairwise tree: results are bitwise identical for any thread count. Y is packed
// into column panels (for each block of kTile rows of Y, its values k-major; up front, or a k-chunk at a
// time where the panels would be big: the same tiles either way), so the micro-kernel
// broadcasts one x_ik and reads contiguous vectors of y_jk; a tile of kTile x kTile values is computed
// into a per-thread buffer, handed to the loss's epilogue and never written to memory as a matrix.
//
// Distances come from exact differences, sum_k (x_ik - y_jk)^2: no cancellation on near-identical rows,
// where the GEMM expansion |x|^2 + |y|^2 - 2 x.y loses every digit. On cores with separate add and FMA
// pipes the subtraction is free beside the FMA, so this runs at the speed of a GEMM.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "fastloss/config.hpp"
#include "fastloss/math.hpp"
#include "fastloss/reduce.hpp"

// Bytes of the SIMD vectors the tile micro-kernel uses; kernels.cpp sets it per x86-64 level.
#ifndef FASTLOSS_VEC_BYTES
#define FASTLOSS_VEC_BYTES 16
#endif

namespace fastloss {
inline namespace FASTLOSS_ISA_NAMESPACE {
namespace pairwise {

enum class Kind { sqdiff, absdiff, dot };
enum class Metric : int { euclidean = 0, sqeuclidean = 1, cosine = 2, manhattan = 3 };

constexpr std::size_t kTile = 64;  // rows of a row block, columns of a column panel
// Rows of the micro-kernel: 8 rows x 2 vectors = 16 accumulators with AVX-512 (32 registers), enough to
// cover the FMA latency; 4 x 2 with 16 registers.
constexpr std::size_t kMR = FASTLOSS_VEC_BYTES >= 64 ? 8 : 4;
// Pairs below this much work (n m d) per thread stay on the calling thread: two threads on 128 rows of
// 32 features (2^19) are no faster than one, on 256 rows 1.6x faster (pairwise_contrastive, measured).
constexpr std::size_t kParallelWork = std::size_t(1) << 19;

template <class T>
struct Simd {
  typedef T V __attribute__((vector_size(FASTLOSS_VEC_BYTES)));
  static constexpr std::size_t W = FASTLOSS_VEC_BYTES / sizeof(T);
  static constexpr std::size_t NR = 2 * W;  // columns of the micro-kernel: two vectors
  // k-chunk of the panel: kChunk x kTile values of T are 16 KiB, resident in L1 with the row block's
  // four current rows.
  static constexpr std::size_t kChunk = 16384 / (kTile * sizeof(T));
};

namespace detail {

// x in every lane. Not V{} + x: that is 0 + x, which must turn -0 into +0, so the compiler emits a scalar
// add and a shuffle on the FP pipes; x - 0 is x exactly, and folds to a broadcast load.
template <class V, class T>
FASTLOSS_INLINE V splat(T x) {
  return x - V{};
}

template <class V, class T>
FASTLOSS_INLINE V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
FASTLOSS_INLINE void vstore(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// a*b + c, fused where the level has FMA (the project compiles with -ffp-contract=off).
template <class V>
FASTLOSS_INLINE V vfma(V a, V b, V c) {
#if FASTLOSS_HAVE_FMA && FASTLOSS_VEC_BYTES == 64
  if constexpr (sizeof(a[0]) == 4) return (V)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
  else return (V)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
#elif FASTLOSS_HAVE_FMA && FASTLOSS_VEC_BYTES == 32
  if constexpr (sizeof(a[0]) == 4) return (V)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
  else return (V)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
  return a * b + c;
#endif
}

template <class V>
FASTLOSS_INLINE V vabs(V a) {
  typedef std::conditional_t<sizeof(a[0]) == 4, std::uint32_t, std::uint64_t> U;
  typedef U IV __attribute__((vector_size(sizeof(V))));
  constexpr U mask = ~(U(1) << (8 * sizeof(U) - 1));
  return (V)((IV)a & mask);
}

template <Kind K, class V>
FASTLOSS_INLINE V step(V acc, V xb, V y) {
  if constexpr (K == Kind::dot) {
    return vfma(xb, y, acc);
  } else if constexpr (K == Kind::sqdiff) {
    const V t = xb - y;
    return vfma(t, t, acc);
  } else {
    return acc + vabs(xb - y);
  }
}

}  // namespace detail

// tile[r][c] (row stride kTile) = sum_k op(x_{i0+r,k}, y_{j,k}) for the ni rows from i0 and the kTile
// columns of one panel. chunk(k0, k1) gives the panel's values for k in [k0, k1) (k1 - k0 <= kChunk), k-major
// with row stride kTile, from k0. Rows past ni are not written; columns past the panel's rows hold values
// of zero rows.
template <Kind K, class T, class Chunk>
void compute_tile(const T* x, std::size_t d, std::size_t i0, std::size_t ni, const Chunk& chunk, T* tile) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr std::size_t W = S::W, NR = S::NR;
  for (std::size_t r = 0; r < ni; ++r)
    for (std::size_t c = 0; c < kTile; ++c) tile[r * kTile + c] = T(0);
  for (std::size_t k0 = 0; k0 < d; k0 += S::kChunk) {
    const std::size_t k1 = d - k0 < S::kChunk ? d : k0 + S::kChunk;
    const T* const pk = chunk(k0, k1);
    for (std::size_t r0 = 0; r0 < ni; r0 += kMR) {
      const T* xr[kMR];
      for (std::size_t r = 0; r < kMR; ++r) xr[r] = x + (i0 + (r0 + r < ni ? r0 + r : ni - 1)) * d;
      for (std::size_t c0 = 0; c0 < kTile; c0 += NR) {
        // Each k-chunk sums from zero and is then added to the tile: two-level summation, so that a float32
        // sum over a huge d errs like d / kChunk + kChunk additions, not d (the same sums for d <= kChunk).
        V acc[kMR][2];
        for (std::size_t r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = V{};
        const T* py = pk + c0;
        for (std::size_t k = k0; k < k1; ++k, py += kTile) {
          const V y0 = detail::vload<V>(py), y1 = detail::vload<V>(py + W);
          for (std::size_t r = 0; r < kMR; ++r) {
            const V xb = detail::splat<V>(xr[r][k]);
            acc[r][0] = detail::step<K>(acc[r][0], xb, y0);
            acc[r][1] = detail::step<K>(acc[r][1], xb, y1);
          }
        }
        for (std::size_t r = 0; r < kMR && r0 + r < ni; ++r) {
          T* const t = tile + (r0 + r) * kTile + c0;
          detail::vstore(t, detail::vload<V>(t) + acc[r][0]);
          detail::vstore(t + W, detail::vload<V>(t + W) + acc[r][1]);
        }
      }
    }
  }
}

// Packing every panel of Y costs kTile d values per panel however few rows it has (2 rows of 10^6 values:
// 32x the input). Beyond this many bytes of panels nothing is packed up front: each k-chunk of a panel
// is packed into a 16 KiB buffer on the thread's stack just before the micro-kernel reads it. That costs
// about 1/kTile of the tile's arithmetic, and gives the same tile bit for bit.
constexpr std::size_t kMaxPackBytes = std::size_t(16) << 20;

// Y as column panels: panel J holds rows [J kTile, J kTile + kTile) of Y as d x kTile values, k-major,
// zero past the last row; packed up front, or chunk by chunk (see kMaxPackBytes). tile<K> computes the
// tile of a row block against panel J either way.
template <class T>
struct Panels {
  std::vector<T> data;
  const T* y = nullptr;
  std::size_t rows = 0, d = 0, blocks = 0;
  bool packed = false;
  template <Kind K>
  void tile(const T* x, std::size_t i0, std::size_t ni, std::size_t J, T* out) const {
    if (!packed) return tile_by_chunks<K>(x, i0, ni, J, out);
    const T* const panel = data.data() + J * d * kTile;
    compute_tile<K>(x, d, i0, ni, [&](std::size_t k0, std::size_t) { return panel + k0 * kTile; }, out);
  }
  // Out of line: the packed path above stays as small as it was.
  template <Kind K>
  __attribute__((noinline)) void tile_by_chunks(const T* x, std::size_t i0, std::size_t ni, std::size_t J,
                                                T* out) const {
    alignas(64) T buf[Simd<T>::kChunk * kTile];
    const std::size_t j0 = J * kTile, nj = rows - j0 < kTile ? rows - j0 : kTile;
    auto chunk = [&](std::size_t k0, std::size_t k1) {
      for (std::size_t c = 0; c < nj; ++c) {
        const T* const src = y + (j0 + c) * d;
        for (std::size_t k = k0; k < k1; ++k) buf[(k - k0) * kTile + c] = src[k];
      }
      for (std::size_t k = k0; k < k1; ++k)
        for (std::size_t c = nj; c < kTile; ++c) buf[(k - k0) * kTile + c] = T(0);
      return static_cast<const T*>(buf);
    };
    compute_tile<K>(x, d, i0, ni, chunk, out);
  }
};

template <class T>
Panels<T> pack(const T* y, std::size_t m, std::size_t d, int nt) {
  Panels<T> p;
  p.y = y;
  p.rows = m;
  p.d = d;
  p.blocks = (m + kTile - 1) / kTile;
  p.packed = p.blocks * d * kTile * sizeof(T) <= kMaxPackBytes;
  if (!p.packed) return p;
  p.data.assign(p.blocks * d * kTile, T(0));
  for_each_block(p.blocks, nt, [&](std::size_t J) {
    T* const dst = p.data.data() + J * d * kTile;
    const std::size_t j0 = J * kTile, nj = m - j0 < kTile ? m - j0 : kTile;
    for (std::size_t c = 0; c < nj; ++c) {
      const T* const src = y + (j0 + c) * d;
      for (std::size_t k = 0; k < d; ++k) dst[k * kTile + c] = src[k];
    }
  });
  return p;
}

// g[r][:] += sum_c coef[r][c] y_{j0+c} for the ni x nj coefficients of a tile (row stride kTile): the
// gradient rows a row block owns, as a small GEMM in float64 (kMR rows x two vectors of d in registers,
// the tile's columns as its inner dimension).
template <class T>
void accumulate_rows(const double* coef, std::size_t ni, std::size_t nj, const T* y, std::size_t j0,
                     std::size_t d, double* g) {
  using S = Simd<double>;
  using V = typename S::V;
  constexpr std::size_t W = S::W, NR = S::NR;
  typedef T VT __attribute__((vector_size(W * sizeof(T))));  // W values of T, converted to W doubles
  const std::size_t dv = d / NR * NR;
  for (std::size_t r0 = 0; r0 < ni; r0 += kMR) {
    std::size_t rr[kMR];
    for (std::size_t r = 0; r < kMR; ++r) rr[r] = r0 + r < ni ? r0 + r : ni - 1;
    for (std::size_t k0 = 0; k0 < dv; k0 += NR) {
      V acc[kMR][2];
      for (std::size_t r = 0; r < kMR; ++r) {
        acc[r][0] = detail::vload<V>(g + rr[r] * d + k0);
        acc[r][1] = detail::vload<V>(g + rr[r] * d + k0 + W);
      }
      for (std::size_t c = 0; c < nj; ++c) {
        const T* const yc = y + (j0 + c) * d + k0;
        const V y0 = __builtin_convertvector(detail::vload<VT>(yc), V);
        const V y1 = __builtin_convertvector(detail::vload<VT>(yc + W), V);
        for (std::size_t r = 0; r < kMR; ++r) {
          const V cb = detail::splat<V>(coef[rr[r] * kTile + c]);
          acc[r][0] = detail::vfma(cb, y0, acc[r][0]);
          acc[r][1] = detail::vfma(cb, y1, acc[r][1]);
        }
      }
      for (std::size_t r = 0; r < kMR && r0 + r < ni; ++r) {
        detail::vstore(g + (r0 + r) * d + k0, acc[r][0]);
        detail::vstore(g + (r0 + r) * d + k0 + W, acc[r][1]);
      }
    }
    for (std::size_t r = r0; r < ni && r < r0 + kMR; ++r)
      for (std::size_t c = 0; c < nj; ++c) {
        const double w = coef[r * kTile + c];
        const T* const yc = y + (j0 + c) * d;
        for (std::size_t k = dv; k < d; ++k) g[r * d + k] += w * static_cast<double>(yc[k]);
      }
  }
}

// Per-thread scratch of the tile driver, allocated before the parallel region (so that running out of
// memory raises instead of terminating inside it). The gradient rows of a row block accumulate in float64:
// in the output rows themselves where those are float64 and free (in_output), else in block_rows x d
// doubles per thread, for the rows a block actually has.
template <class T>
struct Scratch {
  std::vector<T> tiles;       // kTile x kTile per thread
  std::vector<double> coefs;  // kTile x kTile per thread (epilogues with gradients)
  std::vector<double> rows;   // block_rows x d per thread (gradient rows not kept in the output)
  std::size_t row_len = 0;
  static constexpr bool kInOutput = std::is_same_v<T, double>;
  Scratch(int nt, bool with_grad, std::size_t d, std::size_t block_rows = 0, bool in_output = kInOutput)
      : tiles(kTile * kTile * static_cast<std::size_t>(nt)),
        coefs(with_grad ? kTile * kTile * static_cast<std::size_t>(nt) : 0),
        row_len(with_grad && !in_output ? block_rows * d : 0) {
    rows.resize(row_len * static_cast<std::size_t>(nt));
  }
  // Where the gradient rows of a row block accumulate; out: its rows in the output.
  double* grad_rows(std::size_t slot, T* out) {
    if (row_len == 0) {
      if constexpr (kInOutput) return out;
    }
    return rows.data() + slot * row_len;
  }
};

inline int pair_threads(int requested, std::size_t n, std::size_t m, std::size_t d) {
  return resolve_threads(requested, n * m * (d > 0 ? d : 1), kParallelWork);
}

// The slot of the calling thread in per-thread scratch (see classwise.hpp).
inline std::size_t slot_of(int nt) { return nt > 1 ? static_cast<std::size_t>(thread_index()) : 0; }

// ------------------------------------------------------------------------------------------------
// Distances: out (n x m) = metric(x_i, y_j).

template <class T>
void distances(const T* x, std::size_t n, const T* y, std::size_t m, std::size_t d, Metric metric, T* out,
               int num_threads) {
  if (n == 0 || m == 0) return;
  const int nt = pair_threads(num_threads, n, m, d);
  const Panels<T> py = pack(y, m, d, nt);
  std::vector<double> nx, ny;  // norms for the cosine
  if (metric == Metric::cosine) {
    nx.resize(n);
    ny.resize(m);
    auto norms = [&](const T* a, std::size_t rows, std::vector<double>& o) {
      for (std::size_t i = 0; i < rows; ++i) {
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (std::size_t k = 0; k < d; ++k) s += static_cast<double>(a[i * d + k]) * static_cast<double>(a[i * d + k]);
        o[i] = std::sqrt(s);
      }
    };
    norms(x, n, nx);
    norms(y, m, ny);
  }
  Scratch<T> s(nt, false, d);
  const std::size_t nib = (n + kTile - 1) / kTile;
  for_each_block(nib, nt, [&](std::size_t I) {
    T* const tile = s.tiles.data() + slot_of(nt) * kTile * kTile;
    const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
    for (std::size_t J = 0; J < py.blocks; ++J) {
      const std::size_t j0 = J * kTile, nj = m - j0 < kTile ? m - j0 : kTile;
      switch (metric) {
        case Metric::manhattan: py.template tile<Kind::absdiff>(x, i0, ni, J, tile); break;
        case Metric::cosine: py.template tile<Kind::dot>(x, i0, ni, J, tile); break;
        default: py.template tile<Kind::sqdiff>(x, i0, ni, J, tile); break;
      }
      for (std::size_t r = 0; r < ni; ++r) {
        T* const o = out + (i0 + r) * m + j0;
        const T* const t = tile + r * kTile;
        if (metric == Metric::euclidean) {
#pragma omp simd
          for (std::size_t c = 0; c < nj; ++c) o[c] = std::sqrt(t[c]);
        } else if (metric == Metric::cosine) {
          for (std::size_t c = 0; c < nj; ++c) {
            double cs = static_cast<double>(t[c]) / (nx[i0 + r] * ny[j0 + c]);
            cs = cs > 1.0 ? 1.0 : (cs < -1.0 ? -1.0 : cs);  // NaN (a zero vector) stays NaN
            o[c] = static_cast<T>(1.0 - cs);
          }
        } else {
          for (std::size_t c = 0; c < nj; ++c) o[c] = t[c];
        }
      }
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Contrastive loss over all pairs i < j: returns sum_{i<j} l_ij; with grad, grad = gscale d(sum)/dx.
// l_ij = 0.5 d^2 (similar) or 0.5 max(0, margin - d)^2; d l_ij / d x_i = c_ij (x_i - x_j) with c_ij = 1
// (similar) or -(margin - d) / d (dissimilar, 0 < d < margin), else 0.

template <class T>
double pair_contrastive(const T* x, std::size_t n, std::size_t d, const std::int64_t* labels, double margin,
                        T* grad, double gscale, int num_threads) {
  if (n == 0) return 0.0;
  const bool want_grad = grad != nullptr;
  const std::size_t nib = (n + kTile - 1) / kTile, brows = n < kTile ? n : kTile;
  const bool own_rows = want_grad && !Scratch<T>::kInOutput;
  const int nt = scratch_threads(pair_threads(num_threads, n, n, d), nib, own_rows ? brows * d * 8 : 0);
  const Panels<T> px = pack(x, n, d, nt);
  const T mT = static_cast<T>(margin);
  Scratch<T> s(nt, want_grad, d, brows);
  std::vector<double> sums(nib);
  // Value only: the tiles on and above the diagonal. With the gradient every row block needs all its
  // pairs, so it walks every column block (twice the tiles).
  for_each_task(nib, nt, [&](std::size_t I) {
    const std::size_t slot = slot_of(nt);
    T* const tile = s.tiles.data() + slot * kTile * kTile;
    double* const coef = want_grad ? s.coefs.data() + slot * kTile * kTile : nullptr;
    const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
    double* const g = want_grad ? s.grad_rows(slot, grad + i0 * d) : nullptr;
    if (g)
      for (std::size_t k = 0; k < ni * d; ++k) g[k] = 0.0;
    double rowsum[kTile] = {};
    double sum = 0.0;
    for (std::size_t J = want_grad ? 0 : I; J < nib; ++J) {
      const std::size_t j0 = J * kTile, nj = n - j0 < kTile ? n - j0 : kTile;
      px.template tile<Kind::sqdiff>(x, i0, ni, J, tile);
      const std::int64_t* const lj = labels + j0;
      for (std::size_t r = 0; r < ni; ++r) {
        const std::size_t i = i0 + r;
        const std::int64_t yi = labels[i];
        const T* const tr = tile + r * kTile;
        double* const cr = coef ? coef + r * kTile : nullptr;
        double part = 0.0, rs = 0.0;
        // Branch-free over the tile row, so that it vectorizes: labels decide similar or not.
        // The pair's loss in T (float32 inputs: float32 sqrt, twice the lanes of a double one; about
        // 1e-7 relative per pair), summed in double.
#pragma omp simd reduction(+ : part, rs)
        for (std::size_t c = 0; c < nj; ++c) {
          const T v = tr[c];
          const bool similar = lj[c] == yi;
          const T dist = std::sqrt(v);
          const T h = mT - dist < T(0) ? T(0) : mT - dist;  // NaN stays NaN
          const T l = similar ? T(0.5) * v : T(0.5) * h * h;
          part += j0 + c > i ? static_cast<double>(l) : 0.0;
          if (cr) {
            // A NaN distance gives a NaN coefficient, for similar pairs too, so the whole row follows it
            // (PyTorch's autograd, through the distance, gives NaN in every component). 0 * h is 0 for a
            // finite h and NaN for NaN: no extra compare in the loop.
            const double hd = static_cast<double>(h);
            const double cd = (h > T(0) && dist > T(0)) ? -hd / static_cast<double>(dist) : 0.0 * hd;
            const double cs = v != v ? static_cast<double>(v) : 1.0;  // inf: the finite components stay finite
            const double cij = j0 + c == i ? 0.0 : (similar ? cs : cd);
            cr[c] = cij;
            rs += cij;
          }
        }
        sum += part;
        rowsum[r] += rs;
      }
      if (g) accumulate_rows(coef, ni, nj, x, j0, d, g);
    }
    sums[I] = sum;
    if (g) {
      for (std::size_t r = 0; r < ni; ++r) {
        const T* const xi = x + (i0 + r) * d;
        T* const gi = grad + (i0 + r) * d;
        for (std::size_t k = 0; k < d; ++k)
          gi[k] = static_cast<T>(gscale * (rowsum[r] * static_cast<double>(xi[k]) - g[r * d + k]));
      }
    }
  });
  return ::fastloss::detail::tree_sum(sums.data(), 0, nib);
}

// ------------------------------------------------------------------------------------------------
// Nearest / farthest searches over the distance tiles. A NaN distance among the candidates wins (its
// row's result becomes NaN, with the index of the first NaN): NaN is never silently skipped.

struct Extreme {
  double v;
  std::int64_t i;
  bool nan;
};

// Folds the candidates of one tile row (v[c] for c < nj where keep(c), column index j0 + c) into e:
// a vectorized min/max and NaN scan first, then a scalar look for the first index only where the row's
// extreme improves (rarely, after the first tiles).
template <bool kMax, class T, class Keep>
FASTLOSS_INLINE void scan_row(Extreme& e, const T* v, std::size_t nj, std::size_t j0, const Keep& keep) {
  if (e.nan) return;
  const double none = kMax ? -math::kInf : math::kInf;
  double best = -math::kInf, nnan = 0.0, nkeep = 0.0;  // the max of v (kMax) or of -v
#pragma omp simd reduction(max : best) reduction(+ : nnan, nkeep)
  for (std::size_t c = 0; c < nj; ++c) {
    const bool k = keep(c);
    const double x = static_cast<double>(v[c]);
    const double y = k && x == x ? x : none;
    if constexpr (kMax) best = y > best ? y : best;
    else best = -y > best ? -y : best;  // a max of negated values: one reduction operator for both
    nnan += k && x != x ? 1.0 : 0.0;
    nkeep += k ? 1.0 : 0.0;
  }
  if (nkeep == 0.0) return;
  if (nnan > 0.0) {
    for (std::size_t c = 0; c < nj; ++c)
      if (keep(c) && v[c] != v[c]) {
        e = Extreme{math::kNaN, static_cast<std::int64_t>(j0 + c), true};
        return;
      }
  }
  if (!kMax) best = -best;
  // Keep the earlier index at a tie with an earlier tile; the first candidate when all are +-inf.
  if (e.i >= 0 && !(kMax ? best > e.v : best < e.v)) return;
  for (std::size_t c = 0; c < nj; ++c)
    if (keep(c) && static_cast<double>(v[c]) == best) {
      e.v = best;
      e.i = static_cast<std::int64_t>(j0 + c);
      return;
    }
}

// For each anchor i: the farthest row with its label (j != i) and the nearest row with another label,
// as Euclidean distances and indices (-1 and NaN when there is none).
template <class T>
void batch_hard(const T* x, std::size_t n, std::size_t d, const std::int64_t* labels, double* dpos,
                std::int64_t* ipos, double* dneg, std::int64_t* ineg, int num_threads) {
  if (n == 0) return;
  const int nt = pair_threads(num_threads, n, n, d);
  const Panels<T> px = pack(x, n, d, nt);
  Scratch<T> s(nt, false, d);
  for_each_block(px.blocks, nt, [&](std::size_t I) {
    T* const tile = s.tiles.data() + slot_of(nt) * kTile * kTile;
    const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
    Extreme pos[kTile], neg[kTile];
    for (std::size_t r = 0; r < ni; ++r) pos[r] = neg[r] = Extreme{0.0, -1, false};
    for (std::size_t J = 0; J < px.blocks; ++J) {
      const std::size_t j0 = J * kTile, nj = n - j0 < kTile ? n - j0 : kTile;
      px.template tile<Kind::sqdiff>(x, i0, ni, J, tile);
      const std::int64_t* const lj = labels + j0;
      for (std::size_t r = 0; r < ni; ++r) {
        const std::size_t i = i0 + r;
        const std::int64_t yi = labels[i];
        const T* const tr = tile + r * kTile;
        scan_row<false>(neg[r], tr, nj, j0, [&](std::size_t c) { return lj[c] != yi; });
        // A bitwise and, not &&: GCC 12 miscompiles the short-circuit form inside scan_row's vectorized
        // max (AVX2, float32: a wrong farthest positive, caught by test_benchcases).
        scan_row<true>(pos[r], tr, nj, j0, [&](std::size_t c) { return (lj[c] == yi) & (j0 + c != i); });
      }
    }
    for (std::size_t r = 0; r < ni; ++r) {
      const std::size_t i = i0 + r;
      dpos[i] = pos[r].i < 0 ? math::kNaN : std::sqrt(pos[r].v);
      ipos[i] = pos[r].i;
      dneg[i] = neg[r].i < 0 ? math::kNaN : std::sqrt(neg[r].v);
      ineg[i] = neg[r].i;
    }
  });
}

// For each row of x: the squared distance to its nearest center and that center's index (the lowest at
// a tie).
template <class T>
void nearest_center(const T* x, std::size_t n, const T* centers, std::size_t k, std::size_t d, double* d2,
                    std::int64_t* label, int num_threads) {
  if (n == 0 || k == 0) return;
  const int nt = pair_threads(num_threads, n, k, d);
  const Panels<T> pc = pack(centers, k, d, nt);
  Scratch<T> s(nt, false, d);
  for_each_block((n + kTile - 1) / kTile, nt, [&](std::size_t I) {
    T* const tile = s.tiles.data() + slot_of(nt) * kTile * kTile;
    const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
    Extreme best[kTile];
    for (std::size_t r = 0; r < ni; ++r) best[r] = Extreme{0.0, -1, false};
    for (std::size_t J = 0; J < pc.blocks; ++J) {
      const std::size_t j0 = J * kTile, nj = k - j0 < kTile ? k - j0 : kTile;
      pc.template tile<Kind::sqdiff>(x, i0, ni, J, tile);
      for (std::size_t r = 0; r < ni; ++r)
        scan_row<false>(best[r], tile + r * kTile, nj, j0, [](std::size_t) { return true; });
    }
    for (std::size_t r = 0; r < ni; ++r) {
      d2[i0 + r] = best[r].v;
      label[i0 + r] = best[r].i;
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Similarity cross-entropy: row i's logits are scale * a_i . b_j for every column j != exclude[i], plus
// an optional extra logit extra[i]; its target is column target[i], or the extra logit where target[i]
// is -1 (or target is null). loss[i] = logsumexp - target logit, by an online log-sum-exp over the
// column panels: no N x M matrix. Gradients of gscale * sum_i loss[i]: for a, accumulated in the same
// pass (rescaled whenever a row's running max grows); for b, by a second pass over tiles of b against
// a, which needs only each row's final log-sum-exp; for the extra logit, per row. With row_scale, row i
// of a is row_scale[i] a_i throughout (logits and b's gradient), and grad_a is the gradient of those
// scaled rows: the normalised rows of ge2e without a normalised copy of its embeddings.

template <class T>
struct SimCeArgs {
  const T* a = nullptr;
  std::size_t n = 0;
  const T* b = nullptr;
  std::size_t m = 0;
  std::size_t d = 0;
  double scale = 1.0;
  const double* row_scale = nullptr;      // n, or null for all ones
  const std::int64_t* target = nullptr;   // null: every target is the extra logit
  const std::int64_t* exclude = nullptr;  // null, or -1 per row: nothing excluded
  const double* extra = nullptr;
  double* loss = nullptr;    // n
  double* dextra = nullptr;  // n, with the gradient and extra
  T* grad_a = nullptr;       // n x d, or null
  T* grad_b = nullptr;       // m x d, with grad_a; grad_a itself (a is b): b's gradient is added to a's
  double gscale = 1.0;
  int num_threads = 0;
};

template <class T>
void sim_ce(const SimCeArgs<T>& q) {
  const std::size_t n = q.n, m = q.m, d = q.d;
  const bool want_grad = q.grad_a != nullptr;
  if (n == 0) {  // no rows: b's gradient is zero
    if (want_grad)
      for (std::size_t k = 0; k < m * d; ++k) q.grad_b[k] = T(0);
    return;
  }
  // One scratch for both passes: blocks of a rows, then (gradient) blocks of b rows.
  const std::size_t brows = n > kTile || m > kTile ? kTile : (n > m ? n : m);
  const std::size_t nblocks = ((n > m ? n : m) + kTile - 1) / kTile;
  // b's gradient added to a's (grad_b == grad_a, when a is b): pass 2 reads grad_a, so no gradient rows
  // accumulate in an output.
  const bool fused = want_grad && q.grad_b == q.grad_a;
  const bool in_output = Scratch<T>::kInOutput && !fused;
  const bool own_rows = want_grad && !in_output;
  const int nt =
      scratch_threads(pair_threads(q.num_threads, n, m > 0 ? m : 1, d), nblocks, own_rows ? brows * d * 8 : 0);
  Panels<T> pb = pack(q.b, m, d, nt);
  Scratch<T> s(nt, want_grad, d, brows, in_output);
  std::vector<double> lse(n);
  auto tgt_of = [&](std::size_t i) { return q.target ? q.target[i] : std::int64_t(-1); };
  auto exc_of = [&](std::size_t i) { return q.exclude ? q.exclude[i] : std::int64_t(-1); };
  auto scale_of = [&](std::size_t i) { return q.row_scale ? q.scale * q.row_scale[i] : q.scale; };
  const double ninf = -math::kInf;

  for_each_block((n + kTile - 1) / kTile, nt, [&](std::size_t I) {
    const std::size_t slot = slot_of(nt);
    T* const tile = s.tiles.data() + slot * kTile * kTile;
    double* const coef = want_grad ? s.coefs.data() + slot * kTile * kTile : nullptr;
    const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
    double* const g = want_grad ? s.grad_rows(slot, q.grad_a + i0 * d) : nullptr;
    double mx[kTile], sum[kTile], tl[kTile];
    for (std::size_t r = 0; r < ni; ++r) {
      const std::size_t i = i0 + r;
      mx[r] = q.extra ? q.extra[i] : ninf;
      sum[r] = q.extra ? 1.0 : 0.0;
      tl[r] = tgt_of(i) < 0 && q.extra ? q.extra[i] : ninf;
    }
    if (g)
      for (std::size_t k = 0; k < ni * d; ++k) g[k] = 0.0;
    for (std::size_t J = 0; J < pb.blocks; ++J) {
      const std::size_t j0 = J * kTile, nj = m - j0 < kTile ? m - j0 : kTile;
      pb.template tile<Kind::dot>(q.a, i0, ni, J, tile);
      for (std::size_t r = 0; r < ni; ++r) {
        const std::size_t i = i0 + r;
        const std::int64_t ex = exc_of(i), tg = tgt_of(i);
        const double sc = scale_of(i);
        double lg[kTile];
        double tmax = ninf;
        for (std::size_t c = 0; c < nj; ++c) {
          const double l = sc * static_cast<double>(tile[r * kTile + c]);
          const bool excluded = static_cast<std::int64_t>(j0 + c) == ex;
          lg[c] = excluded ? ninf : l;
          tmax = lg[c] > tmax ? lg[c] : tmax;
          if (static_cast<std::int64_t>(j0 + c) == tg) tl[r] = l;
        }
        const double nm = tmax > mx[r] ? tmax : mx[r];
        if (nm > mx[r]) {  // the running max grew: rescale the row's sums
          const double f = mx[r] == ninf ? 0.0 : math::exp(mx[r] - nm);
          sum[r] *= f;
          if (g)
            for (std::size_t k = 0; k < d; ++k) g[r * d + k] *= f;
          mx[r] = nm;
        }
        const double shift = mx[r] == ninf ? 0.0 : mx[r];
        double es = 0.0;
        double* const cr = coef ? coef + r * kTile : lg;  // without a gradient the exps overwrite lg
#pragma omp simd reduction(+ : es)
        for (std::size_t c = 0; c < nj; ++c) {
          const double e = math::exp(lg[c] - shift);
          cr[c] = e;
          es += e;
        }
        sum[r] += es;
      }
      if (g) accumulate_rows(coef, ni, nj, q.b, j0, d, g);
    }
    for (std::size_t r = 0; r < ni; ++r) {
      const std::size_t i = i0 + r;
      const double l = (mx[r] == ninf ? 0.0 : mx[r]) + math::log(sum[r]);
      lse[i] = l;
      q.loss[i] = l - tl[r];
      if (!g) continue;
      const std::int64_t tg = tgt_of(i);
      const double inv = 1.0 / sum[r], k = q.gscale * q.scale;
      const T* const bt = tg >= 0 ? q.b + static_cast<std::size_t>(tg) * d : nullptr;
      T* const ga = q.grad_a + i * d;
      for (std::size_t kk = 0; kk < d; ++kk) {
        const double v = g[r * d + kk] * inv - (bt ? static_cast<double>(bt[kk]) : 0.0);
        ga[kk] = static_cast<T>(k * v);
      }
      if (q.extra && q.dextra)
        q.dextra[i] = q.gscale * (math::exp(q.extra[i] - l) - (tg < 0 ? 1.0 : 0.0));
    }
  });
  if (!want_grad || m == 0) return;

  // d/db_j = gscale scale sum_i (p_ij - [j = t_i]) a_i, by blocks of b rows against panels of a.
  // Panels of a; b's are not needed any more (they are a's when a is b, as in nt_xent).
  const std::size_t mblocks = pb.blocks;
  if (q.a != q.b || n != m) {
    pb.data = std::vector<T>();  // freed before a's are packed: the peak holds one set of panels
    pb = pack(q.a, n, d, nt);
  }
  const Panels<T>& pa = pb;
  for_each_block(mblocks, nt, [&](std::size_t J) {
    const std::size_t slot = slot_of(nt);
    T* const tile = s.tiles.data() + slot * kTile * kTile;
    double* const coef = s.coefs.data() + slot * kTile * kTile;
    const std::size_t j0 = J * kTile, nj = m - j0 < kTile ? m - j0 : kTile;
    double* const g = s.grad_rows(slot, q.grad_b + j0 * d);
    for (std::size_t k = 0; k < nj * d; ++k) g[k] = 0.0;
    for (std::size_t I = 0; I < pa.blocks; ++I) {
      const std::size_t i0 = I * kTile, ni = n - i0 < kTile ? n - i0 : kTile;
      pa.template tile<Kind::dot>(q.b, j0, nj, I, tile);
      for (std::size_t r = 0; r < nj; ++r) {
        const auto j = static_cast<std::int64_t>(j0 + r);
        for (std::size_t c = 0; c < ni; ++c) {
          const std::size_t i = i0 + c;
          const double l = scale_of(i) * static_cast<double>(tile[r * kTile + c]);
          double p = exc_of(i) == j ? 0.0 : math::exp(l - lse[i]);
          if (tgt_of(i) == j) p -= 1.0;
          coef[r * kTile + c] = q.row_scale ? p * q.row_scale[i] : p;  // times the scaled row a_i
        }
      }
      accumulate_rows(coef, nj, ni, q.a, i0, d, g);
    }
    const double k = q.gscale * q.scale;
    for (std::size_t r = 0; r < nj; ++r) {
      T* const gb = q.grad_b + (j0 + r) * d;
      if (fused)
        for (std::size_t kk = 0; kk < d; ++kk) gb[kk] = static_cast<T>(static_cast<double>(gb[kk]) + k * g[r * d + kk]);
      else
        for (std::size_t kk = 0; kk < d; ++kk) gb[kk] = static_cast<T>(k * g[r * d + kk]);
    }
  });
}

// ------------------------------------------------------------------------------------------------
// The row-wise driver of the paired losses: row i of each input gives loss[i] (float64) and, on
// request, gscale * d loss[i] / d input row i. Rows are independent, so only the blocking is shared.

template <class T>
struct RowArgs {
  const T* in[3] = {nullptr, nullptr, nullptr};
  const double* target = nullptr;
  std::size_t n = 0, d = 0;
  double* loss = nullptr;
  T* grad[3] = {nullptr, nullptr, nullptr};
  double gscale = 1.0;
  int num_threads = 0;
};

template <class F, class T>
void rowwise(const F& f, const RowArgs<T>& a) {
  constexpr std::size_t kRows = 256;
  const std::size_t nblocks = (a.n + kRows - 1) / kRows;
  const bool want_grad = a.grad[0] != nullptr;
  // One float64 gradient row per input and thread, for a gradient only.
  const std::size_t row_len = want_grad ? F::kInputs * a.d : 0;
  const int nt = scratch_threads(resolve_threads(a.num_threads, a.n * (a.d > 0 ? a.d : 1), kParallelMin), nblocks,
                                 row_len * sizeof(double));
  std::vector<double> scratch(static_cast<std::size_t>(nt) * row_len);
  for_each_block(nblocks, nt, [&](std::size_t blk) {
    double* const g = scratch.data() + slot_of(nt) * row_len;
    const std::size_t lo = blk * kRows, hi = a.n - lo < kRows ? a.n : lo + kRows;
    for (std::size_t i = lo; i < hi; ++i) {
      const T* rows[3];
      for (std::size_t q = 0; q < F::kInputs; ++q) rows[q] = a.in[q] + i * a.d;
      const double t = a.target ? a.target[i] : 0.0;
      a.loss[i] = f(rows, a.d, t, want_grad ? g : nullptr);
      if (!want_grad) continue;
      for (std::size_t q = 0; q < F::kInputs; ++q) {
        T* const out = a.grad[q] + i * a.d;
        const double* const gq = g + q * a.d;
        for (std::size_t k = 0; k < a.d; ++k) out[k] = static_cast<T>(a.gscale * gq[k]);
      }
    }
  });
}

namespace rows {

// Hadsell contrastive loss of a pair: l = 0.5 [t d^2 + (1 - t) max(0, margin - d)^2], d = ||x1 - x2||
struct Contrastive {
  static constexpr std::size_t kInputs = 2;
  double margin;
  explicit Contrastive(const double* p) : margin(p[0]) {}
  template <class T>
  double operator()(const T* const* x, std::size_t d, double t, double* g) const {
    // The row pointers in locals: read through x inside the loop, they were reloaded every iteration
    // (two threads ran slower than one).
    const T* const x0 = x[0];
    const T* const x1 = x[1];
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (std::size_t k = 0; k < d; ++k) {
      const double u = static_cast<double>(x0[k]) - static_cast<double>(x1[k]);
      v += u * u;
    }
    const double dist = std::sqrt(v);
    const double h = margin - dist < 0.0 ? 0.0 : margin - dist;
    if (g) {
      const double c = t - (1.0 - t) * ((h > 0.0 && dist > 0.0) ? h / dist : (h != h ? h : 0.0));  // NaN follows
      for (std::size_t k = 0; k < d; ++k) {
        const double u = static_cast<double>(x0[k]) - static_cast<double>(x1[k]);
        g[k] = c * u;
        g[d + k] = -c * u;
      }
    }
    return 0.5 * (t * v + (1.0 - t) * h * h);
  }
};

// torch triplet_margin_loss: l = max(||a - p + eps||_p - ||a - n + eps||_p + margin, 0), with the swap
// min(||a - n + eps||, ||p - n + eps||) on request.
struct Triplet {
  static constexpr std::size_t kInputs = 3;
  double margin, p, eps;
  bool swap;
  explicit Triplet(const double* prm) : margin(prm[0]), p(prm[1]), eps(prm[2]), swap(prm[3] != 0.0) {}

  // ||u - v + eps||_p, and d/du of it into g (g null: value only).
  template <class T>
  double dist(const T* u, const T* v, std::size_t d, double* g) const {
    double s = 0.0;
    if (p == 2.0) {
#pragma omp simd reduction(+ : s)
      for (std::size_t k = 0; k < d; ++k) {
        const double w = static_cast<double>(u[k]) - static_cast<double>(v[k]) + eps;
        s += w * w;
      }
      const double nrm = std::sqrt(s);
      if (g)
        for (std::size_t k = 0; k < d; ++k)
          g[k] = nrm == 0.0 ? 0.0 : (static_cast<double>(u[k]) - static_cast<double>(v[k]) + eps) / nrm;
      return nrm;
    }
    // ||w||_p = m (sum_k (|w_k| / m)^p)^(1/p) with m = max_k |w_k|: no power over- or underflows for
    // any p (a huge p gives the max norm, its limit, where the unscaled sum is inf or 0); an inf component
    // makes it inf, a NaN one NaN.
    double m = 0.0;
    for (std::size_t k = 0; k < d; ++k) {
      const double w = std::fabs(static_cast<double>(u[k]) - static_cast<double>(v[k]) + eps);
      if (p == 1.0) s += w;
      m = w > m || w != w ? w : m;
      if (m != m) break;
    }
    double nrm = p == 1.0 ? s : m;  // p = 1: the plain sum; else m where it is 0, inf or NaN
    if (p != 1.0 && m > 0.0 && m < std::numeric_limits<double>::infinity()) {
      for (std::size_t k = 0; k < d; ++k)
        s += std::pow(std::fabs(static_cast<double>(u[k]) - static_cast<double>(v[k]) + eps) / m, p);
      nrm = m * std::pow(s, 1.0 / p);
    }
    if (g) {
      for (std::size_t k = 0; k < d; ++k) {
        const double w = static_cast<double>(u[k]) - static_cast<double>(v[k]) + eps;
        // sign(w) (|w| / ||w||)^(p-1): the ratio lies in [0, 1], so neither power over- nor underflows
        // for a large p, where |w|^(p-1) / ||w||^(p-1) is inf / inf. A zero component has derivative 0
        // (as PyTorch's norm backward says), also for p < 1: never 0 * inf. A NaN component gives NaN.
        const double sg = w > 0.0 ? 1.0 : -1.0;
        g[k] = w == 0.0 ? 0.0 : sg * (p == 1.0 ? 1.0 : std::pow(std::fabs(w) / nrm, p - 1.0));
      }
    }
    return nrm;
  }

  template <class T>
  double operator()(const T* const* x, std::size_t d, double, double* g) const {
    double* const gap = g ? g + 0 * d : nullptr;  // scratch: d d_ap / d a, then the final grads
    double* const gan = g ? g + 1 * d : nullptr;
    double* const gpn = g ? g + 2 * d : nullptr;
    const double dap = dist(x[0], x[1], d, gap);
    const double dan = dist(x[0], x[2], d, gan);
    double dneg = dan;
    bool swapped = false;
    if (swap) {
      const double dpn = dist(x[1], x[2], d, gpn);
      if (dpn < dan) {
        dneg = dpn;
        swapped = true;
      }
    }
    const double v = dap - dneg + margin;
    const double l = v > 0.0 ? v : (v == v ? 0.0 : v);
    if (g) {
      // The hinge's slope multiplies the distances' derivatives, as autograd does: 0 where inactive (a NaN
      // hinge input too, as torch's clamp_min backward), and a NaN derivative stays NaN even there.
      const double h = v > 0.0 ? 1.0 : 0.0;
      for (std::size_t k = 0; k < d; ++k) {
        const double a1 = h * gap[k];                  // d d_ap / d a (= -d/dp)
        const double a2 = swapped ? 0.0 : h * gan[k];  // d d_an / d a (= -d/dn)
        const double a3 = swapped ? h * gpn[k] : 0.0;  // d d_pn / d p (= -d/dn)
        g[k] = a1 - a2;               // d l / d a
        g[d + k] = -a1 - a3;          // d l / d p
        g[2 * d + k] = a2 + a3;       // d l / d n
      }
    }
    return l;
  }
};

// torch cosine_embedding_loss: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12));
// l = 1 - cos (t = 1) or max(0, cos - margin) (t = -1)
struct CosineEmbedding {
  static constexpr std::size_t kInputs = 2;
  double margin;
  explicit CosineEmbedding(const double* p) : margin(p[0]) {}
  template <class T>
  double operator()(const T* const* x, std::size_t d, double t, double* g) const {
    // The row pointers in locals: read through x inside the loop, they were reloaded every iteration.
    const T* const x0 = x[0];
    const T* const x1 = x[1];
    double dot = 0.0, n1 = 0.0, n2 = 0.0;
#pragma omp simd reduction(+ : dot, n1, n2)
    for (std::size_t k = 0; k < d; ++k) {
      const double a = static_cast<double>(x0[k]), b = static_cast<double>(x1[k]);
      dot += a * b;
      n1 += a * a;
      n2 += b * b;
    }
    n1 += 1e-12;
    n2 += 1e-12;
    const double den = std::sqrt(n1 * n2), cs = dot / den;
    double l, dl;
    if (t > 0.0) {
      l = 1.0 - cs;
      dl = -1.0;
    } else {
      const double h = cs - margin;
      l = h > 0.0 ? h : (h == h ? 0.0 : h);
      dl = h > 0.0 ? 1.0 : 0.0;
    }
    if (g)
      for (std::size_t k = 0; k < d; ++k) {
        const double a = static_cast<double>(x0[k]), b = static_cast<double>(x1[k]);
        g[k] = dl * (b / den - cs * a / n1);
        g[d + k] = dl * (a / den - cs * b / n2);
      }
    return l;
  }
};

}  // namespace rows

// Register-only FMA throughput for the roofline: `iters` rounds of 16 independent vector FMA chains per
// thread; returns the number of floating-point operations done (2 per FMA lane).
template <class T>
double fma_probe(std::size_t iters, int num_threads) {
  using V = typename Simd<T>::V;
  constexpr std::size_t kChains = 16;
  const int nt = resolve_threads(num_threads, static_cast<std::size_t>(-1), 1);
  std::vector<double> sink(static_cast<std::size_t>(nt));
  for_each_block(static_cast<std::size_t>(nt), nt, [&](std::size_t t) {
    V acc[kChains];
    for (std::size_t c = 0; c < kChains; ++c) acc[c] = V{} + T(c) * T(1e-3);
    const V a = V{} + T(0.999999), b = V{} + T(1e-7) + T(t) * T(1e-9);
    for (std::size_t it = 0; it < iters; ++it)
      for (std::size_t c = 0; c < kChains; ++c) acc[c] = detail::vfma(acc[c], a, b);
    double s = 0.0;
    for (std::size_t c = 0; c < kChains; ++c)
      for (std::size_t l = 0; l < Simd<T>::W; ++l) s += static_cast<double>(acc[c][l]);
    sink[t] = s;
  });
  volatile double keep = sink[0];
  (void)keep;
  return 2.0 * static_cast<double>(iters) * kChains * Simd<T>::W * static_cast<double>(nt);
}

}  // namespace pairwise
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
