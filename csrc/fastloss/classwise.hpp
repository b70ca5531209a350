// Row-wise kernels over class scores: the class-wise driver and its row functors.
//
// Scores have layout (outer, C, inner), C-contiguous: (N, C) has inner = 1, a segmentation map
// (N, C, H, W) has inner = H W. A "position" is one (n, s); its C scores are strided by `inner`. The
// driver cuts the positions into fixed tiles (independent of the thread count), copies each tile's rows
// into a contiguous float64 buffer (a transpose when inner > 1), and hands every row to the functor, so a
// loss is written once for every layout. Per row it computes the max and the log-sum-exp in two passes
// over the L1-resident row (one pass over memory; the online form would need two exps per element).
// Tile partials are combined in a fixed pairwise tree: results are bitwise identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fastloss/config.hpp"
#include "fastloss/math.hpp"
#include "fastloss/reduce.hpp"

namespace fastloss {
inline namespace FASTLOSS_ISA_NAMESPACE {

template <class T>
struct ClasswiseArgs {
  const T* x = nullptr;                   // scores (outer, classes, inner)
  std::size_t outer = 0, classes = 0, inner = 1;
  const std::int64_t* target = nullptr;   // class indices (outer, inner), for kIndexTarget functors
  const T* target_prob = nullptr;         // target distributions of x's shape, for kProbTarget functors
  const T* class_weight = nullptr;        // (classes,), or null for all ones
  std::int64_t ignore_index = -100;
  Reduction reduction = Reduction::mean;
  T* out = nullptr;                       // (outer, inner): the loss per position, reduction none
  T* grad = nullptr;                      // x's shape: d(result)/dx, or null
  T* rows_out = nullptr;                  // x's shape: a row map's output (softmax, ...)
  int num_threads = 0;
  double params[4] = {0, 0, 0, 0};
};

struct ClasswiseResult {
  double value = 0.0;
  double weight_sum = 0.0;
  std::ptrdiff_t first_bad = -1;  // first position whose target is not a class in [0, C) nor ignore_index,
                                  // or whose target distribution has an entry outside [0, 1]
};

// What a row functor sees of one position.
struct Row {
  const double* x;     // the C scores, contiguous
  const double* tp;    // target distribution row (kProbTarget), else null
  std::int64_t y;      // target class (kIndexTarget; never ignore_index here), else -1
  std::size_t C;
  double lse;          // log sum_c exp(x_c) (kNeedsLse)
  const double* e;     // exp(x_c - shift) for some shift (kNeedsLse) ...
  double inv_sum;      // ... and 1 / sum_c e_c: softmax(x)_c = e_c inv_sum
  const double* cw;    // class weights, or null
  double W;            // sum of class weights (C without weights)
};

namespace detail {

FASTLOSS_INLINE double row_max(const double* x, std::size_t C) {
  double m = -math::kInf;
#pragma omp simd reduction(max : m)
  for (std::size_t c = 0; c < C; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

// log sum exp x without overflow, writing e_c = exp(x_c - shift) to e and returning 1 / sum e in inv_sum,
// so that softmax(x)_c = e_c inv_sum. The exps are a map loop, summed afterwards: a reduction through
// the exp's long dependency chain would be latency-bound. NaN anywhere in the row gives NaN; a row of
// -inf gives -inf.
FASTLOSS_INLINE double row_lse(const double* x, std::size_t C, double* e, double& inv_sum) {
  const double m = row_max(x, C);  // the max skips NaN; exp(NaN - m) brings it back into the sum
  const double shift = (m == -math::kInf || m == math::kInf) ? 0.0 : m;  // all -inf, or some +inf
#pragma omp simd
  for (std::size_t c = 0; c < C; ++c) e[c] = math::exp(x[c] - shift);
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::size_t c = 0; c < C; ++c) s += e[c];
  inv_sum = 1.0 / s;
  return shift + math::log(s);
}

}  // namespace detail

// Runs row functor F over every position: the reduction of its losses (with F::kLoss), its gradient,
// and its per-position or per-row outputs.
template <class F, class T>
ClasswiseResult classwise(const F& functor, const ClasswiseArgs<T>& a) {
  const F f = functor;
  ClasswiseResult r;
  const std::size_t C = a.classes, npos = a.outer * a.inner;
  if (npos == 0 || C == 0) {
    r.value = a.reduction == Reduction::mean ? math::kNaN : 0.0;
    return r;
  }
  std::vector<double> cw;
  double W = static_cast<double>(C);
  if (a.class_weight) {
    cw.assign(a.class_weight, a.class_weight + C);
    W = detail::tree_sum(cw.data(), 0, C);
  }
  const double* const cwp = a.class_weight ? cw.data() : nullptr;

  // Tiles of P positions, about 4096 scores each.
  const std::size_t P = C >= 4096 ? 1 : (4096 / C < 256 ? 4096 / C : 256);
  const std::size_t ntiles = (npos + P - 1) / P;
  const int nt = resolve_threads(a.num_threads, npos * C);
  auto tile_len = [&](std::size_t t) { return npos - t * P < P ? npos - t * P : P; };
  auto offset = [&](std::size_t p) { return (p / a.inner) * C * a.inner + p % a.inner; };
  auto valid = [&](std::int64_t y) {
    return y == a.ignore_index || (y >= 0 && static_cast<std::size_t>(y) < C);
  };
  // A position's weight in the mean: w_y for index targets (0 when ignored), 1 otherwise.
  auto pos_weight = [&](std::size_t p) {
    if constexpr (F::kIndexTarget) {
      const std::int64_t y = a.target[p];
      if (y == a.ignore_index || !valid(y)) return 0.0;
      return cwp ? cwp[y] : 1.0;
    }
    (void)p;
    return 1.0;
  };

  std::vector<double> sums(ntiles), wsums(ntiles);
  std::vector<std::ptrdiff_t> bad(ntiles, -1);
  // The gradient of a mean is scaled by 1 / sum of weights, known from the targets alone: a pre-pass.
  double gscale = 1.0;
  if (F::kLoss && a.grad && a.reduction == Reduction::mean) {
    for_each_block(ntiles, nt, [&](std::size_t t) {
      double s = 0.0;
      for (std::size_t j = 0; j < tile_len(t); ++j) s += pos_weight(t * P + j);
      wsums[t] = s;
    });
    gscale = 1.0 / detail::tree_sum(wsums.data(), 0, ntiles);
  }

  for_each_block(ntiles, nt, [&](std::size_t t) {
    const std::size_t p0 = t * P, m = tile_len(t);
    // Per-thread tile buffers, grown once and reused (no allocation or zeroing per tile).
    thread_local std::vector<double> buf_, tbuf_, gbuf_, ebuf_;
    if (buf_.size() < m * C) buf_.resize(m * C);
    if (F::kNeedsLse && ebuf_.size() < C) ebuf_.resize(C);
    if (F::kProbTarget && tbuf_.size() < m * C) tbuf_.resize(m * C);
    const bool rows = a.grad || a.rows_out;
    if (rows && gbuf_.size() < m * C) gbuf_.resize(m * C);
    double* const buf = buf_.data();
    double* const tbuf = tbuf_.data();
    double* const gbuf = rows ? gbuf_.data() : nullptr;
    // Gather the tile's rows (contiguous reads either way).
    auto gather = [&](const T* src, double* dst) {
      if (a.inner == 1) {
        const T* s = src + p0 * C;
        for (std::size_t k = 0; k < m * C; ++k) dst[k] = static_cast<double>(s[k]);
      } else {
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t j = 0; j < m; ++j) dst[j * C + c] = static_cast<double>(src[offset(p0 + j) + c * a.inner]);
      }
    };
    auto scatter = [&](const double* src, T* dst, double scale) {
      if (a.inner == 1) {
        T* d = dst + p0 * C;
        for (std::size_t k = 0; k < m * C; ++k) d[k] = static_cast<T>(scale * src[k]);
      } else {
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t j = 0; j < m; ++j) dst[offset(p0 + j) + c * a.inner] = static_cast<T>(scale * src[j * C + c]);
      }
    };
    gather(a.x, buf);
    if constexpr (F::kProbTarget) {
      gather(a.target_prob, tbuf);
      // Target probabilities must lie in [0, 1] (NaN passes and propagates).
      double nbad = 0.0;
#pragma omp simd reduction(+ : nbad)
      for (std::size_t k = 0; k < m * C; ++k) nbad += (tbuf[k] < 0.0 || tbuf[k] > 1.0) ? 1.0 : 0.0;
      if (nbad > 0.0)
        for (std::size_t k = 0; k < m * C; ++k)
          if (tbuf[k] < 0.0 || tbuf[k] > 1.0) {
            bad[t] = static_cast<std::ptrdiff_t>(p0 + k / C);
            return;
          }
    }
    double sum = 0.0, wsum = 0.0;
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t p = p0 + j;
      Row row{buf + j * C, F::kProbTarget ? tbuf + j * C : nullptr, -1, C, 0.0, ebuf_.data(), 0.0, cwp, W};
      double* g = gbuf ? gbuf + j * C : nullptr;
      if constexpr (F::kIndexTarget) {
        row.y = a.target[p];
        if (!valid(row.y)) {
          if (bad[t] < 0) bad[t] = static_cast<std::ptrdiff_t>(p);
          continue;
        }
        if (row.y == a.ignore_index) {
          if (g)
            for (std::size_t c = 0; c < C; ++c) g[c] = 0.0;
          if (F::kLoss && a.out) a.out[p] = T(0);
          continue;
        }
      }
      if constexpr (F::kNeedsLse) row.lse = detail::row_lse(row.x, C, ebuf_.data(), row.inv_sum);
      const double l = f(row, g);
      if constexpr (F::kLoss) {
        const double w = pos_weight(p);
        sum += l;
        wsum += w;
        if (a.out) a.out[p] = static_cast<T>(l);
      } else if (a.out) {
        a.out[p] = static_cast<T>(l);  // a per-position map (logsumexp)
      }
    }
    if (a.grad) scatter(gbuf, a.grad, a.reduction == Reduction::mean ? gscale : 1.0);
    if (a.rows_out) scatter(gbuf, a.rows_out, 1.0);
    sums[t] = sum;
    wsums[t] = wsum;
  });

  for (std::size_t t = 0; t < ntiles; ++t)
    if (bad[t] >= 0) {
      r.first_bad = bad[t];
      return r;
    }
  r.value = detail::tree_sum(sums.data(), 0, ntiles);
  r.weight_sum = detail::tree_sum(wsums.data(), 0, ntiles);
  if (a.reduction == Reduction::mean) r.value /= r.weight_sum;
  return r;
}

namespace classwise_fn {

struct RowBase {
  static constexpr bool kLoss = true;         // reduces losses (else a map: activations)
  static constexpr bool kIndexTarget = false;
  static constexpr bool kProbTarget = false;
  static constexpr bool kNeedsLse = true;
};

// Cross-entropy with class-index targets and label smoothing eps (torch cross_entropy):
// l = (1 - eps) w_y (lse - x_y) + eps / C sum_c w_c (lse - x_c)
// dl/dx_c = (1 - eps) w_y (p_c - [c = y]) + eps / C (W p_c - w_c),  p = softmax(x)
struct CrossEntropy : RowBase {
  static constexpr bool kIndexTarget = true;
  double eps;
  explicit CrossEntropy(const double* prm) : eps(prm[0]) {}
  double operator()(const Row& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    const double wy = r.cw ? r.cw[y] : 1.0;
    const double k = eps / static_cast<double>(C);
    double wx = 0.0;
    if (eps != 0.0) {
      if (r.cw) {
#pragma omp simd reduction(+ : wx)
        for (std::size_t c = 0; c < C; ++c) wx += r.cw[c] * r.x[c];
      } else {
#pragma omp simd reduction(+ : wx)
        for (std::size_t c = 0; c < C; ++c) wx += r.x[c];
      }
    }
    const double l = (1.0 - eps) * wy * (r.lse - r.x[y]) + (eps != 0.0 ? k * (r.W * r.lse - wx) : 0.0);
    if (g) {
      const double a = (1.0 - eps) * wy + k * r.W;
#pragma omp simd
      for (std::size_t c = 0; c < C; ++c) g[c] = a * (r.e[c] * r.inv_sum) - k * (r.cw ? r.cw[c] : 1.0);
      g[y] -= (1.0 - eps) * wy;
    }
    return l;
  }
};

// Cross-entropy with target distributions t (torch cross_entropy with probability targets):
// t'_c = (1 - eps) t_c + eps / C,  l = sum_c w_c t'_c (lse - x_c),  dl/dx_c = (sum w t') p_c - w_c t'_c
struct CrossEntropyProb : RowBase {
  static constexpr bool kProbTarget = true;
  double eps;
  explicit CrossEntropyProb(const double* prm) : eps(prm[0]) {}
  double operator()(const Row& r, double* g) const {
    const std::size_t C = r.C;
    const double k = eps / static_cast<double>(C);
    double swt = 0.0, swtx = 0.0;
#pragma omp simd reduction(+ : swt, swtx)
    for (std::size_t c = 0; c < C; ++c) {
      const double wt = (r.cw ? r.cw[c] : 1.0) * ((1.0 - eps) * r.tp[c] + k);
      swt += wt;
      swtx += wt * r.x[c];
    }
    if (g) {
#pragma omp simd
      for (std::size_t c = 0; c < C; ++c)
        g[c] = swt * (r.e[c] * r.inv_sum) - (r.cw ? r.cw[c] : 1.0) * ((1.0 - eps) * r.tp[c] + k);
    }
    return swt * r.lse - swtx;
  }
};

// Negative log-likelihood of log-probabilities x (torch nll_loss): l = -w_y x_y
struct Nll : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kNeedsLse = false;
  explicit Nll(const double*) {}
  double operator()(const Row& r, double* g) const {
    const std::size_t y = static_cast<std::size_t>(r.y);
    const double wy = r.cw ? r.cw[y] : 1.0;
    if (g) {
      for (std::size_t c = 0; c < r.C; ++c) g[c] = 0.0;
      g[y] = -wy;
    }
    return -wy * r.x[y];
  }
};

// Row maps (activations): write the row output into g, return a per-position value.
struct MapBase : RowBase {
  static constexpr bool kLoss = false;
};

// softmax(x)_c = exp(x_c - lse)
struct Softmax : MapBase {
  explicit Softmax(const double*) {}
  double operator()(const Row& r, double* out) const {
#pragma omp simd
    for (std::size_t c = 0; c < r.C; ++c) out[c] = r.e[c] * r.inv_sum;
    return r.lse;
  }
};

// log_softmax(x)_c = x_c - lse
struct LogSoftmax : MapBase {
  explicit LogSoftmax(const double*) {}
  double operator()(const Row& r, double* out) const {
#pragma omp simd
    for (std::size_t c = 0; c < r.C; ++c) out[c] = r.x[c] - r.lse;
    return r.lse;
  }
};

// logsumexp(x) = lse, per position
struct LogSumExp : MapBase {
  explicit LogSumExp(const double*) {}
  double operator()(const Row& r, double*) const { return r.lse; }
};

}  // namespace classwise_fn
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
