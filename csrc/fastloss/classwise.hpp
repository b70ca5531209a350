// Row-wise kernels over class scores: the class-wise driver and its row functors.
//
// Scores have layout (outer, C, inner), C-contiguous: (N, C) has inner = 1, a segmentation map
// (N, C, H, W) has inner = H W. A "position" is one (n, s); its C scores are strided by `inner`. The
// driver cuts the positions into fixed tiles (independent of the thread count), copies each tile's rows
// into a contiguous float64 buffer (a transpose when inner > 1; float64 rows already contiguous, and huge
// rows, are read where they are or in their own type, see classwise()), and hands every row to the
// functor, so a loss is written once for every layout. Per row it computes the max and the log-sum-exp in two passes
// over the L1-resident row (one pass over memory; the online form would need two exps per element).
// Tile partials are combined in a fixed pairwise tree: results are bitwise identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
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
  bool has_ignore = true;                 // whether ignore_index applies at all
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

// What a row functor sees of one position. The scores and target rows are S: float64 copies, or the input's
// own type for a huge row (C >= kHugeRowClasses: read in place, or gathered as is), which the functors'
// arithmetic promotes to float64 exactly.
template <class S>
struct RowT {
  const S* x;          // the C scores, contiguous
  const S* tp;         // target distribution row (kProbTarget), else null
  std::int64_t y;      // target class (kIndexTarget; never ignore_index here), else -1
  std::size_t C;
  double shift;        // log sum_c exp(x_c) = shift + log_sum (kNeedsLse); the row max when finite
  double log_sum;
  const double* e;     // exp(x_c - shift) ...
  double inv_sum;      // ... and 1 / sum_c e_c: softmax(x)_c = e_c inv_sum
  const double* cw;    // class weights, or null
  double W;            // sum of class weights (C without weights)
  double xy;           // x[y], read straight from the input (kIndexTarget); x itself is unset when
                       // the functor does not read whole rows (!kReadsRow)
};

namespace detail {

template <class S>
FASTLOSS_INLINE double row_max(const S* x, std::size_t C) {
  double m = -math::kInf;
#pragma omp simd reduction(max : m)
  for (std::size_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(x[c]);
    m = v > m ? v : m;
  }
  return m;
}

// log sum exp x = shift + log_sum without overflow or cancellation: shift is the row's max m, and
// log_sum = log1p(sum over the other scores of exp(x_c - m) + (copies of m - 1)), so that a confident row's
// small log-probabilities (x_c - shift) - log_sum keep their relative accuracy (SciPy's logsumexp does the
// same). Writes e_c = exp(x_c - shift) and returns 1 / sum e in inv_sum: softmax(x)_c = e_c inv_sum. The
// exps are a map loop, summed afterwards: a reduction through exp's dependency chain is latency-bound.
// NaN anywhere in the row gives NaN; a row of -inf gives -inf; a +inf score gives +inf and NaN
// probabilities (inf / inf), as SciPy and torch.
template <class S>
FASTLOSS_INLINE double row_lse(const S* x, std::size_t C, double* e, double& shift, double& inv_sum) {
  const double m = row_max(x, C);  // the max skips NaN; exp(NaN - m) brings it back into the sums
  const bool finite = m > -math::kInf && m < math::kInf;
  shift = finite ? m : 0.0;
#pragma omp simd
  for (std::size_t c = 0; c < C; ++c) e[c] = math::exp(static_cast<double>(x[c]) - shift);
  double s = 0.0, others = 0.0, copies = 0.0;
#pragma omp simd reduction(+ : s, others, copies)
  for (std::size_t c = 0; c < C; ++c) {
    s += e[c];
    const bool at_max = static_cast<double>(x[c]) == m;
    others += at_max ? 0.0 : e[c];
    copies += at_max ? 1.0 : 0.0;
  }
  inv_sum = m == math::kInf ? math::kNaN : 1.0 / s;
  return finite ? math::log1p(others + (copies - 1.0)) : math::log(s);
}

}  // namespace detail

inline constexpr std::size_t kMaxTilePositions = 256;
// Rows of at most this many classes run through the column code (ce_run) in the 2-D layout too: at
// C = 10 it is twice as fast as the row path, at C = 32 about even, beyond it slower (measured, 10^7 scores).
inline constexpr std::size_t kColumnsMaxClasses = 32;
// Rows of at least this many float32 scores: see huge_rows in classwise().
inline constexpr std::size_t kHugeRowClasses = std::size_t(1) << 20;

struct Partial2 {
  double sum = 0.0, wsum = 0.0;
  std::ptrdiff_t bad = -1;
};

// Cross-entropy over a run of `len` positions whose C scores lie in planes: score c of position i at
// xs[c * plane + i], contiguous in i. Vectorized across positions instead of along short rows; the same
// formulas as row_lse and CrossEntropy, so value and gradient agree with the row path to rounding, and the
// value does not depend on whether the gradient is asked for. Positions are p0 + i (targets, outputs);
// the gradient of score c of position i goes to g[i * gpos + c * gcls]. mx ... amul hold kMaxTilePositions
// values each; e (C x len) goes to ebuf.
template <class F, class T, class S, class Valid, class Ignored, class PosWeight>
void ce_run(const F& f, const ClasswiseArgs<T>& a, std::size_t p0, std::size_t len, std::size_t C, const S* xs,
            std::size_t plane, const double* cwp, double W, double* ebuf, double gscale, T* g, std::size_t gpos,
            std::size_t gcls, const Valid& valid, const Ignored& ignored, const PosWeight& pos_weight,
            Partial2& r) {
  const double eps = f.eps, k = eps / static_cast<double>(C);
  double mx[kMaxTilePositions], sh[kMaxTilePositions], s[kMaxTilePositions], others[kMaxTilePositions],
      copies[kMaxTilePositions], wd[kMaxTilePositions], amul[kMaxTilePositions];
  for (std::size_t i = 0; i < len; ++i) mx[i] = -math::kInf;
  for (std::size_t c = 0; c < C; ++c) {
    const S* xc = xs + c * plane;
#pragma omp simd
    for (std::size_t i = 0; i < len; ++i) {
      const double v = static_cast<double>(xc[i]);
      mx[i] = v > mx[i] ? v : mx[i];  // skips NaN, as row_max
    }
  }
  for (std::size_t i = 0; i < len; ++i) {
    sh[i] = (mx[i] > -math::kInf && mx[i] < math::kInf) ? mx[i] : 0.0;
    s[i] = others[i] = copies[i] = wd[i] = 0.0;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const S* xc = xs + c * plane;
    double* ec = ebuf + c * len;
    const double wc = cwp ? cwp[c] : 1.0;
#pragma omp simd
    for (std::size_t i = 0; i < len; ++i) {
      const double v = static_cast<double>(xc[i]);
      const double e = math::exp(v - sh[i]);
      ec[i] = e;
      s[i] += e;
      const bool at_max = v == mx[i];
      others[i] += at_max ? 0.0 : e;
      copies[i] += at_max ? 1.0 : 0.0;
      wd[i] += wc * (sh[i] - v);
    }
  }
  for (std::size_t i = 0; i < len; ++i) {
    const std::size_t pj = p0 + i;
    amul[i] = 0.0;
    const std::int64_t y = a.target[pj];
    if (!valid(y)) {
      if (r.bad < 0) r.bad = static_cast<std::ptrdiff_t>(pj);
      continue;
    }
    if (ignored(y)) {
      if (a.out) a.out[pj] = T(0);
      continue;
    }
    const bool finite = mx[i] > -math::kInf && mx[i] < math::kInf;
    const double log_sum = finite ? math::log1p(others[i] + (copies[i] - 1.0)) : math::log(s[i]);
    const std::size_t yc = static_cast<std::size_t>(y);
    const double wy = cwp ? cwp[yc] : 1.0;
    const double nll = (sh[i] - static_cast<double>(xs[yc * plane + i])) + log_sum;
    const double l = (1.0 - eps) * wy * nll + (eps != 0.0 ? k * (W * log_sum + wd[i]) : 0.0);
    r.sum += l;
    r.wsum += pos_weight(pj);
    if (a.out) a.out[pj] = static_cast<T>(l);
    // the gradient's factor of p_c; s becomes 1 / sum e (NaN for a +inf score, as row_lse)
    amul[i] = (1.0 - eps) * wy + k * W;
    s[i] = mx[i] == math::kInf ? math::kNaN : 1.0 / s[i];
  }
  if (!g) return;
  for (std::size_t c = 0; c < C; ++c) {
    T* gc = g + c * gcls;
    const double* ec = ebuf + c * len;
    const double kw = k * (cwp ? cwp[c] : 1.0);
#pragma omp simd
    for (std::size_t i = 0; i < len; ++i) gc[i * gpos] = static_cast<T>(gscale * (amul[i] * (ec[i] * s[i]) - kw));
  }
  for (std::size_t i = 0; i < len; ++i) {
    const std::int64_t y = a.target[p0 + i];
    if (!valid(y)) continue;
    if (ignored(y)) {
      for (std::size_t c = 0; c < C; ++c) g[i * gpos + c * gcls] = T(0);
      continue;
    }
    const std::size_t yc = static_cast<std::size_t>(y);
    const double wy = cwp ? cwp[yc] : 1.0;
    const double gy = amul[i] * (ebuf[yc * len + i] * s[i]) - k * wy;
    g[i * gpos + yc * gcls] = static_cast<T>(gscale * (gy - (1.0 - eps) * wy));
  }
}

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
  const std::size_t P = C >= 4096 ? 1 : (4096 / C < kMaxTilePositions ? 4096 / C : kMaxTilePositions);
  const std::size_t ntiles = (npos + P - 1) / P;
  // Work: every score, or one per position for a value-only functor that reads x[y] alone (NLL), which
  // would otherwise pay a thread start (35 us) for a few microseconds of gathering.
  const bool whole_rows = F::kReadsRow || a.grad || a.rows_out;
  const int nt_req = resolve_threads(a.num_threads, whole_rows ? npos * C : npos);
  auto tile_len = [&](std::size_t t) { return npos - t * P < P ? npos - t * P : P; };
  auto offset = [&](std::size_t p) { return (p / a.inner) * C * a.inner + p % a.inner; };
  auto ignored = [&](std::int64_t y) { return a.has_ignore && y == a.ignore_index; };
  auto valid = [&](std::int64_t y) { return ignored(y) || (y >= 0 && static_cast<std::size_t>(y) < C); };
  // A position's weight in the mean: w_y for index targets (0 when ignored), 1 otherwise.
  auto pos_weight = [&](std::size_t p) {
    if constexpr (F::kIndexTarget) {
      const std::int64_t y = a.target[p];
      if (ignored(y) || !valid(y)) return 0.0;
      return (F::kMeanByClassWeight && cwp) ? cwp[y] : 1.0;
    }
    (void)p;
    return 1.0;
  };

  // Per-thread scratch: the tile's scores, target distributions and output rows, and one row of exps.
  // Allocated here, before the parallel region, so that running out of memory raises instead of
  // terminating inside it.
  const std::size_t tile = P * C;
  // Only the buffers a call uses (one row each for a huge C): a functor that reads x[y] alone (NLL, value
  // only) needs none, zeroing them cost more than its gathers. float64 rows contiguous in memory are read
  // in place and get their gradient (or row output) written straight into the output. The column code
  // (channel-first maps, short 2-D rows) uses the whole tile-sized layout.
  // Huge rows (C >= kHugeRowClasses, one per tile) keep no float64 copy of their scores: float32 ones
  // contiguous in memory are read in place (a column functor runs through the column code one position
  // at a time), strided ones (an activation over a leading axis) are gathered in their own type. A row
  // functor then writes its gradient or row output over the exps (every functor writes g_c only after its
  // reductions, from e_c itself). Scratch is one row of exps, not three float64 copies.
  constexpr bool is_double = std::is_same_v<T, double>;
  const bool huge_c = C >= kHugeRowClasses;
  const bool huge = !is_double && a.inner == 1 && huge_c;
  const bool huge_rows = F::kColumns && huge;
  const bool columns = F::kColumns && (a.inner != 1 || C <= kColumnsMaxClasses || huge_rows);
  const bool in_place = a.inner == 1 && (is_double || huge);
  const bool typed_rows = huge_c && a.inner != 1 && !columns;  // gathered as T
  // float64 contiguous rows with one row output (a gradient or an activation) write it in place.
  const bool out_in_place = is_double && a.inner == 1 && ((a.grad != nullptr) != (a.rows_out != nullptr));
  const bool g_over_e = (huge || typed_rows) && F::kNeedsLse;
  const bool needs_g = (a.grad || a.rows_out) && !out_in_place && !g_over_e;
  const bool tiled = !huge_rows;  // the row code and the tiled column code
  const bool reads = F::kReadsRow || a.grad || a.rows_out;
  const bool copied = !in_place && !typed_rows;
  const std::size_t xlen = tiled && (columns || (copied && reads)) ? tile : 0;
  const std::size_t tlen = tiled && (columns || (F::kProbTarget && copied)) ? tile : 0;
  const std::size_t glen = tiled && (columns || needs_g) ? tile : 0;
  const std::size_t elen = columns || F::kNeedsLse ? C : 0;
  const std::size_t scratch = xlen + tlen + glen + elen;
  const std::size_t trow = typed_rows ? (reads ? C : 0) + (F::kProbTarget ? C : 0) : 0;  // T per thread
  // Never more threads than tiles, nor than kThreadScratchBytes allows (a few rows of a million classes).
  const int nt = scratch_threads(nt_req, ntiles, scratch * sizeof(double) + trow * sizeof(T));
  std::vector<double> arena(scratch * static_cast<std::size_t>(nt));
  std::vector<T> typed(trow * static_cast<std::size_t>(nt));
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
    // With every position ignored (a zero total), every gradient row is zero, as in torch, not 0 * inf.
    const double total = detail::tree_sum(wsums.data(), 0, ntiles);
    gscale = total == 0.0 ? 0.0 : 1.0 / total;
  }

  for_each_block(ntiles, nt, [&](std::size_t t) {
    const std::size_t p0 = t * P, m = tile_len(t);
    // for_each_block opens a parallel region only for nt > 1; on one thread the caller may itself be an
    // OpenMP thread with a nonzero index, and slot 0 is ours.
    const std::size_t slot = nt > 1 ? static_cast<std::size_t>(thread_index()) : 0;
    double* const buf = arena.data() + scratch * slot;
    double* const tbuf = buf + xlen;
    double* const ebuf = tbuf + tlen + glen;
    double* gbuf = needs_g ? tbuf + tlen : (g_over_e && (a.grad || a.rows_out) ? ebuf : nullptr);
    if constexpr (is_double)
      if (out_in_place) gbuf = (a.grad ? a.grad : a.rows_out) + p0 * C;
    // Gather the tile's rows (contiguous reads either way).
    // Where each of the tile's positions starts in a channel-first map, computed once per tile: a
    // 64-bit division per score made the gather of segmentation maps several times slower than the math.
    std::size_t off[kMaxTilePositions];
    if (a.inner != 1)
      for (std::size_t j = 0; j < m; ++j) off[j] = offset(p0 + j);
    if constexpr (F::kColumns) {
      // Channel-first maps: runs of positions within one batch item, read in place. Short rows of a 2-D
      // (N, C) input: the tile transposed into buf (C planes of m), then the same column code.
      if (columns) {
        Partial2 pr;
        const double gs = a.reduction == Reduction::mean ? gscale : 1.0;
        if (huge_rows) {
          for (std::size_t j = 0; j < m; ++j) {
            const std::size_t p = p0 + j;
            ce_run(f, a, p, 1, C, a.x + p * C, 1, cwp, W, ebuf, gs, a.grad ? a.grad + p * C : nullptr, C, 1, valid,
                   ignored, pos_weight, pr);
          }
        } else if (a.inner != 1) {
          for (std::size_t j0 = 0; j0 < m;) {
            const std::size_t p = p0 + j0, n = p / a.inner, s0 = p % a.inner;
            const std::size_t len = m - j0 < a.inner - s0 ? m - j0 : a.inner - s0;
            const std::size_t base = n * C * a.inner + s0;
            ce_run(f, a, p, len, C, a.x + base, a.inner, cwp, W, buf, gs, a.grad ? a.grad + base : nullptr, 1,
                   a.inner, valid, ignored, pos_weight, pr);
            j0 += len;
          }
        } else {
          const T* src = a.x + p0 * C;
          for (std::size_t j = 0; j < m; ++j)
            for (std::size_t c = 0; c < C; ++c) buf[c * m + j] = static_cast<double>(src[j * C + c]);
          ce_run(f, a, p0, m, C, static_cast<const double*>(buf), m, cwp, W, tbuf, gs,
                 a.grad ? a.grad + p0 * C : nullptr, C, 1, valid, ignored, pos_weight, pr);
        }
        sums[t] = pr.sum;
        wsums[t] = pr.wsum;
        bad[t] = pr.bad;
        return;
      }
    }
    auto gather = [&](const T* src, auto* dst) {  // into float64, or T for typed_rows
      using D = std::remove_pointer_t<decltype(dst)>;
      if (a.inner == 1) {
        const T* s = src + p0 * C;
        for (std::size_t k = 0; k < m * C; ++k) dst[k] = static_cast<D>(s[k]);
      } else {
        for (std::size_t c = 0; c < C; ++c) {
          const T* s = src + c * a.inner;
          for (std::size_t j = 0; j < m; ++j) dst[j * C + c] = static_cast<D>(s[off[j]]);
        }
      }
    };
    auto scatter = [&](const double* src, T* dst, double scale) {
      if (a.inner == 1) {
        T* d = dst + p0 * C;
        for (std::size_t k = 0; k < m * C; ++k) d[k] = static_cast<T>(scale * src[k]);
      } else {
        for (std::size_t c = 0; c < C; ++c) {
          T* d = dst + c * a.inner;
          for (std::size_t j = 0; j < m; ++j) d[off[j]] = static_cast<T>(scale * src[j * C + c]);
        }
      }
    };
    // The tile's rows, and its target distributions for kProbTarget: xr and tr are T where they are read
    // in place, the gathered float64 copies otherwise.
    auto run_rows = [&](const auto* xr, const auto* tr) {
      if constexpr (F::kProbTarget) {
        // Target probabilities must lie in [0, 1] (NaN passes and propagates).
        double nbad = 0.0;
#pragma omp simd reduction(+ : nbad)
        for (std::size_t k = 0; k < m * C; ++k) nbad += (tr[k] < 0.0 || tr[k] > 1.0) ? 1.0 : 0.0;
        if (nbad > 0.0)
          for (std::size_t k = 0; k < m * C; ++k)
            if (tr[k] < 0.0 || tr[k] > 1.0) {
              bad[t] = static_cast<std::ptrdiff_t>(p0 + k / C);
              return false;
            }
      }
      using S = std::remove_cv_t<std::remove_pointer_t<decltype(xr)>>;
      double sum = 0.0, wsum = 0.0;
      for (std::size_t j = 0; j < m; ++j) {
        const std::size_t p = p0 + j;
        RowT<S> row{xr + j * C, F::kProbTarget ? tr + j * C : nullptr, -1, C, 0.0, 0.0, ebuf, 0.0, cwp, W, 0.0};
        double* g = gbuf ? gbuf + j * C : nullptr;
        if constexpr (F::kIndexTarget) {
          row.y = a.target[p];
          if (!valid(row.y)) {
            if (bad[t] < 0) bad[t] = static_cast<std::ptrdiff_t>(p);
            continue;
          }
          if (ignored(row.y)) {
            if (g)
              for (std::size_t c = 0; c < C; ++c) g[c] = 0.0;
            if (F::kLoss && a.out) a.out[p] = T(0);
            continue;
          }
          row.xy =
              static_cast<double>(a.x[(a.inner == 1 ? p * C : off[j]) + static_cast<std::size_t>(row.y) * a.inner]);
        }
        if constexpr (F::kNeedsLse) row.log_sum = detail::row_lse(row.x, C, ebuf, row.shift, row.inv_sum);
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
      sums[t] = sum;
      wsums[t] = wsum;
      return true;
    };
    const T* const tp_in_place = F::kProbTarget ? a.target_prob + p0 * C : nullptr;
    if (in_place) {
      if (!run_rows(a.x + p0 * C, tp_in_place)) return;
    } else if (typed_rows) {
      T* const xt = typed.data() + trow * slot;
      T* const tt = xt + (reads ? C : 0);
      if (reads) gather(a.x, xt);
      if (F::kProbTarget) gather(a.target_prob, tt);
      if (!run_rows(static_cast<const T*>(xt), static_cast<const T*>(tt))) return;
    } else {
      // Rows are gathered when the functor reads them, or for a gradient or row output.
      if (F::kReadsRow || gbuf) gather(a.x, buf);
      if (F::kProbTarget) gather(a.target_prob, tbuf);
      if (!run_rows(static_cast<const double*>(buf), static_cast<const double*>(tbuf))) return;
    }
    if (a.grad) {
      const double gs = a.reduction == Reduction::mean ? gscale : 1.0;
      if (!out_in_place) {
        scatter(gbuf, a.grad, gs);
      } else if (gs != 1.0) {
#pragma omp simd
        for (std::size_t k = 0; k < m * C; ++k) gbuf[k] *= gs;
      }
    }
    if (a.rows_out && !out_in_place) scatter(gbuf, a.rows_out, 1.0);
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
  // Reads the whole row of scores; false: only x[y] (RowT::xy), so a value-only call never gathers rows.
  static constexpr bool kReadsRow = true;
  // Has a column form for channel-first maps (inner > 1), vectorized across positions: ce_columns.
  static constexpr bool kColumns = false;
  // The mean divides by the sum of w_y over the counted positions (torch's cross_entropy, nll_loss);
  // false: by the number of counted positions (torch's multi_margin_loss, focal and poly losses).
  static constexpr bool kMeanByClassWeight = true;
  static constexpr bool kRowOutput = false;  // a map's per-position row (softmax), in rows_out
};

// Cross-entropy with class-index targets and label smoothing eps (torch cross_entropy):
// l = (1 - eps) w_y (lse - x_y) + eps / C sum_c w_c (lse - x_c)
// dl/dx_c = (1 - eps) w_y (p_c - [c = y]) + eps / C (W p_c - w_c),  p = softmax(x); lse = shift + log_sum
struct CrossEntropy : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kColumns = true;
  double eps;
  explicit CrossEntropy(const double* prm) : eps(prm[0]) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    const double wy = r.cw ? r.cw[y] : 1.0;
    const double k = eps / static_cast<double>(C);
    // sum_c w_c (lse - x_c) = W log_sum + sum_c w_c (shift - x_c), for the smoothing term
    double wd = 0.0;
    if (eps != 0.0) {
      if (r.cw) {
#pragma omp simd reduction(+ : wd)
        for (std::size_t c = 0; c < C; ++c) wd += r.cw[c] * (r.shift - r.x[c]);
      } else {
#pragma omp simd reduction(+ : wd)
        for (std::size_t c = 0; c < C; ++c) wd += r.shift - r.x[c];
      }
    }
    const double nll = (r.shift - r.x[y]) + r.log_sum;  // lse - x_y without cancellation
    const double l = (1.0 - eps) * wy * nll + (eps != 0.0 ? k * (r.W * r.log_sum + wd) : 0.0);
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
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C;
    const double k = eps / static_cast<double>(C);
    double swt = 0.0, swtd = 0.0;
#pragma omp simd reduction(+ : swt, swtd)
    for (std::size_t c = 0; c < C; ++c) {
      const double wt = (r.cw ? r.cw[c] : 1.0) * ((1.0 - eps) * r.tp[c] + k);
      swt += wt;
      swtd += wt * (r.shift - r.x[c]);
    }
    if (g) {
#pragma omp simd
      for (std::size_t c = 0; c < C; ++c)
        g[c] = swt * (r.e[c] * r.inv_sum) - (r.cw ? r.cw[c] : 1.0) * ((1.0 - eps) * r.tp[c] + k);
    }
    return swt * r.log_sum + swtd;  // sum_c w_c t'_c (lse - x_c)
  }
};

// Negative log-likelihood of log-probabilities x (torch nll_loss): l = -w_y x_y
struct Nll : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kNeedsLse = false;
  static constexpr bool kReadsRow = false;
  explicit Nll(const double*) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t y = static_cast<std::size_t>(r.y);
    const double wy = r.cw ? r.cw[y] : 1.0;
    if (g) {
      for (std::size_t c = 0; c < r.C; ++c) g[c] = 0.0;
      g[y] = -wy;
    }
    return -wy * r.xy;
  }
};

// Softmax focal loss: l = -a_y (1 - p_y)^gamma log p_y, a = class weights (alpha) or 1; gamma = 0 is
// cross-entropy. With q = 1 - p_y (summed from the other classes' probabilities, no cancellation) and
// K = q^gamma - gamma q^(gamma-1) p_y log p_y:  dl/dx_c = a_y K (p_c - [c = y]).
struct SoftmaxFocal : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kMeanByClassWeight = false;
  double gamma, zero_pow;
  explicit SoftmaxFocal(const double* prm) : gamma(prm[0]), zero_pow(prm[0] == 0.0 ? 1.0 : 0.0) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    const double ay = r.cw ? r.cw[y] : 1.0;
    double other = 0.0;
#pragma omp simd reduction(+ : other)
    for (std::size_t c = 0; c < C; ++c) other += c == y ? 0.0 : r.e[c];
    const double lp = (r.x[y] - r.shift) - r.log_sum;  // log p_y
    const double py = r.e[y] * r.inv_sum;
    const double q = other * r.inv_sum;      // 1 - p_y
    // q^0 = 1 for every q, NaN included (an inf logit elsewhere): gamma = 0 is cross-entropy exactly.
    const double mod = gamma == 0.0 ? 1.0 : math::pow_nonneg(q, gamma, zero_pow);
    if (g) {
      const double dmod = q > 0.0 ? gamma * mod / q : 0.0;  // gamma q^(gamma-1)
      const double k = ay * (mod - dmod * py * lp);
#pragma omp simd
      for (std::size_t c = 0; c < C; ++c) g[c] = k * (r.e[c] * r.inv_sum);
      g[y] -= k;
    }
    return -ay * mod * lp;
  }
};

// Poly-1 cross-entropy (Leng et al. 2022): l = -log p_y + eps (1 - p_y); dl/dx_c = (1 + eps p_y)(p_c - [c = y])
struct Poly1 : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kMeanByClassWeight = false;
  double eps;
  explicit Poly1(const double* prm) : eps(prm[0]) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    double other = 0.0;
#pragma omp simd reduction(+ : other)
    for (std::size_t c = 0; c < C; ++c) other += c == y ? 0.0 : r.e[c];
    const double py = r.e[y] * r.inv_sum;
    if (g) {
      const double k = 1.0 + eps * py;
#pragma omp simd
      for (std::size_t c = 0; c < C; ++c) g[c] = k * (r.e[c] * r.inv_sum);
      g[y] -= k;
    }
    return ((r.shift - r.x[y]) + r.log_sum) + eps * (other * r.inv_sum);
  }
};

// Weston-Watkins multi-class hinge (torch multi_margin_loss):
// l = w_y / C sum_{j != y} max(0, margin - x_y + x_j)^p,  p in {1, 2}
template <int Power>
struct MultiMarginWW : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kNeedsLse = false;
  static constexpr bool kMeanByClassWeight = false;
  double margin;
  explicit MultiMarginWW(const double* prm) : margin(prm[0]) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    const double k = (r.cw ? r.cw[y] : 1.0) / static_cast<double>(C);
    const double xy = r.x[y];
    // The value's loop is the same with or without the gradient (so is its rounding), and has no
    // conditional store in it, which kept it from vectorizing.
    double l = 0.0;
#pragma omp simd reduction(+ : l)
    for (std::size_t c = 0; c < C; ++c) {
      const double v = margin - xy + r.x[c];
      const double h = (c == y || v < 0.0) ? 0.0 : v;  // NaN stays NaN
      l += Power == 1 ? h : h * h;
    }
    if (g) {
      double gy = 0.0;
#pragma omp simd reduction(+ : gy)
      for (std::size_t c = 0; c < C; ++c) {
        const double v = margin - xy + r.x[c];
        const double h = (c == y || v < 0.0) ? 0.0 : v;
        const double d = Power == 1 ? (h > 0.0 ? 1.0 : (h == h ? 0.0 : h)) : 2.0 * h;  // d h^p / d v
        g[c] = k * d;
        gy += d;
      }
      g[y] = -k * gy;
    }
    return k * l;
  }
};

// Crammer-Singer multi-class hinge (sklearn hinge_loss, multi-class):
// l = w_y max(0, margin + max_{j != y} x_j - x_y)^p;  the gradient goes to y and the first argmax j.
template <int Power>
struct MultiMarginCS : RowBase {
  static constexpr bool kIndexTarget = true;
  static constexpr bool kNeedsLse = false;
  static constexpr bool kMeanByClassWeight = false;
  double margin;
  explicit MultiMarginCS(const double* prm) : margin(prm[0]) {}
  template <class R>
  double operator()(const R& r, double* g) const {
    const std::size_t C = r.C, y = static_cast<std::size_t>(r.y);
    const double wy = r.cw ? r.cw[y] : 1.0;
    if (g)
      for (std::size_t c = 0; c < C; ++c) g[c] = 0.0;
    // The largest other score and a NaN count in one vectorized pass over the classes before y and one
    // after it (no per-class test of c != y: with it the loop's speed depended on where it was inlined,
    // 1.8x); the argmax only for the gradient.
    double xmax = -math::kInf, nans = r.x[y] != r.x[y] ? 1.0 : 0.0;
#pragma omp simd reduction(max : xmax) reduction(+ : nans)
    for (std::size_t c = 0; c < y; ++c) {
      const double v = r.x[c];
      nans += v != v ? 1.0 : 0.0;
      xmax = v > xmax ? v : xmax;
    }
#pragma omp simd reduction(max : xmax) reduction(+ : nans)
    for (std::size_t c = y + 1; c < C; ++c) {
      const double v = r.x[c];
      nans += v != v ? 1.0 : 0.0;
      xmax = v > xmax ? v : xmax;
    }
    if (nans > 0.0) {
      if (g)
        for (std::size_t c = 0; c < C; ++c) g[c] = math::kNaN;
      return math::kNaN;
    }
    if (C == 1) return 0.0;  // a single class: nothing to violate the margin
    const double v = margin + xmax - r.x[y];
    const double h = v < 0.0 ? 0.0 : v;
    if (g && h > 0.0) {
      std::size_t jmax = y == 0 ? 1 : 0;  // the first other class at the max (xmax may be -inf)
      for (std::size_t c = 0; c < C; ++c)
        if (c != y && r.x[c] == xmax) {
          jmax = c;
          break;
        }
      const double d = wy * (Power == 1 ? 1.0 : 2.0 * h);
      g[jmax] = d;
      g[y] = -d;
    }
    return wy * (Power == 1 ? h : h * h);
  }
};

// Row maps (activations): write the row output into g, return a per-position value.
struct MapBase : RowBase {
  static constexpr bool kLoss = false;
  static constexpr bool kRowOutput = true;  // writes a row per position (else only a value per position)
};

// softmax(x)_c = exp(x_c - lse)
struct Softmax : MapBase {
  explicit Softmax(const double*) {}
  template <class R>
  double operator()(const R& r, double* out) const {
#pragma omp simd
    for (std::size_t c = 0; c < r.C; ++c) out[c] = r.e[c] * r.inv_sum;
    return r.shift + r.log_sum;
  }
};

// log_softmax(x)_c = x_c - lse = (x_c - shift) - log_sum
struct LogSoftmax : MapBase {
  explicit LogSoftmax(const double*) {}
  template <class R>
  double operator()(const R& r, double* out) const {
#pragma omp simd
    for (std::size_t c = 0; c < r.C; ++c) out[c] = (r.x[c] - r.shift) - r.log_sum;
    return r.shift + r.log_sum;
  }
};

// logsumexp(x) = lse, per position
struct LogSumExp : MapBase {
  static constexpr bool kRowOutput = false;
  explicit LogSumExp(const double*) {}
  template <class R>
  double operator()(const R& r, double*) const {
    return r.shift + r.log_sum;
  }
};

}  // namespace classwise_fn
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
