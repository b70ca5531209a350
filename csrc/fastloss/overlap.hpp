// Overlap sums of segmentation losses (Dice, Jaccard, Tversky): for every (batch, channel) the sums
// I = sum p g, P = sum p (or p^2), G = sum g (or g^2) over the spatial positions, with p = activation(x)
// (none, sigmoid, or softmax over the channels) and g a dense target or one-hot of integer labels, never
// materialised. The loss itself is a handful of operations on these B x C x 3 sums (done by the caller),
// and its gradient is one more pass given dL/dI and dL/dP per (batch, channel).
//
// Work is cut into (batch, block of kSpan positions) units, independent of the thread count; each unit
// writes its C x 3 partial sums, combined per (batch, channel) in a fixed pairwise tree: results are
// bitwise identical for any thread count.
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
namespace overlap {

enum class Activation : int { none = 0, sigmoid = 1, softmax = 2 };

template <class T>
struct Args {
  const T* x = nullptr;                 // (B, C, S)
  std::size_t batch = 0, channels = 0, spatial = 0;
  const T* target = nullptr;            // dense (B, C, S), or null
  const std::int64_t* labels = nullptr;  // (B, S), or null
  Activation activation = Activation::none;
  bool squared = false;
  int num_threads = 0;
};

namespace detail {

// Positions per unit: about 16384 probabilities of C channels in the per-thread buffer, 256 to 8192
// positions (fewer beyond 2048 channels: a softmax buffer stays near 4 MiB), never more than S.
inline std::size_t span_of(std::size_t C, std::size_t S) {
  const std::size_t c = C > 0 ? C : 1;
  std::size_t s = 16384 / c;
  s = s < 256 ? (c <= 2048 ? 256 : (524288 / c > 8 ? 524288 / c : 8)) : (s > 8192 ? 8192 : s);
  return s < S ? s : (S > 0 ? S : 1);
}

// p = activation(x) for the len positions from s0 of batch b: into buf (C x len) for softmax; for the
// elementwise activations the callers compute p on the fly.
template <class T>
void softmax_block(const Args<T>& a, std::size_t b, std::size_t s0, std::size_t len, double* buf, double* mx,
                   double* sum) {
  const std::size_t C = a.channels, S = a.spatial;
  const T* const xb = a.x + b * C * S + s0;
  for (std::size_t s = 0; s < len; ++s) {
    mx[s] = -math::kInf;
    sum[s] = 0.0;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const T* const xr = xb + c * S;
#pragma omp simd
    for (std::size_t s = 0; s < len; ++s) {
      const double v = static_cast<double>(xr[s]);
      mx[s] = v > mx[s] ? v : mx[s];  // NaN is skipped here and brought back by exp below
    }
  }
  for (std::size_t s = 0; s < len; ++s)
    if (!(mx[s] > -math::kInf && mx[s] < math::kInf)) mx[s] = mx[s] == math::kInf ? mx[s] : 0.0;
  for (std::size_t c = 0; c < C; ++c) {
    const T* const xr = xb + c * S;
    double* const pr = buf + c * len;
#pragma omp simd
    for (std::size_t s = 0; s < len; ++s) {
      const double e = math::exp(static_cast<double>(xr[s]) - mx[s]);
      pr[s] = e;
      sum[s] += e;
    }
  }
  for (std::size_t c = 0; c < C; ++c) {
    double* const pr = buf + c * len;
#pragma omp simd
    for (std::size_t s = 0; s < len; ++s) pr[s] /= sum[s];
  }
}

FASTLOSS_INLINE double sigmoid(double v) { return 1.0 / (1.0 + math::exp(-v)); }

template <int V>
using Int = std::integral_constant<int, V>;
template <bool V>
using Bool = std::integral_constant<bool, V>;

// Calls f(activation, labels, squared) with compile-time constants, so that each inner loop reads only
// the arrays it has (no speculative loads through a null pointer in a vectorized select).
template <class T, class F>
void dispatch(const Args<T>& a, const F& f) {
  auto with_sq = [&](auto act, auto labels) {
    if (a.squared) f(act, labels, Bool<true>{});
    else f(act, labels, Bool<false>{});
  };
  auto with_labels = [&](auto act) {
    if (a.labels) with_sq(act, Bool<true>{});
    else with_sq(act, Bool<false>{});
  };
  switch (a.activation) {
    case Activation::sigmoid: with_labels(Int<1>{}); break;
    case Activation::softmax: with_labels(Int<2>{}); break;
    default: with_labels(Int<0>{}); break;
  }
}

// I, P, G of one channel's len positions; p from x (kAct 0, 1) or from softmax probabilities sp (kAct 2).
template <int kAct, bool kLabels, bool kSquared, class T>
FASTLOSS_INLINE void channel_sums(const T* x, const T* g, const std::int64_t* lab, std::int64_t c, const double* sp,
                                  std::size_t len, double* o) {
  double I = 0.0, P = 0.0, G = 0.0;
#pragma omp simd reduction(+ : I, P, G)
  for (std::size_t s = 0; s < len; ++s) {
    double p;
    if constexpr (kAct == 2) p = sp[s];
    else if constexpr (kAct == 1) p = sigmoid(static_cast<double>(x[s]));
    else p = static_cast<double>(x[s]);
    double gv;
    if constexpr (kLabels) gv = lab[s] == c ? 1.0 : 0.0;
    else gv = static_cast<double>(g[s]);
    I += p * gv;
    P += kSquared ? p * p : p;
    G += kSquared ? gv * gv : gv;
  }
  o[0] = I;
  o[1] = P;
  o[2] = G;
}

// dL/dx of one channel's len positions for the elementwise activations.
template <int kAct, bool kLabels, bool kSquared, class T>
FASTLOSS_INLINE void channel_grad(const T* x, const T* g, const std::int64_t* lab, std::int64_t c, double ki,
                                  double kp, std::size_t len, T* out) {
  if constexpr (kAct == 2) {
    return;  // softmax couples the channels: softmax_dp
  } else {
#pragma omp simd
    for (std::size_t s = 0; s < len; ++s) {
      const double v = static_cast<double>(x[s]);
      const double p = kAct == 1 ? sigmoid(v) : v;
      double gv;
      if constexpr (kLabels) gv = lab[s] == c ? 1.0 : 0.0;
      else gv = static_cast<double>(g[s]);
      const double dp = ki * gv + kp * (kSquared ? 2.0 * p : 1.0);
      out[s] = static_cast<T>(kAct == 1 ? dp * p * (1.0 - p) : dp);
    }
  }
}

// dL/dp of one channel under softmax into dp, and sum_c dL/dp_c p_c into dot.
template <bool kLabels, bool kSquared, class T>
FASTLOSS_INLINE void softmax_dp(const T* g, const std::int64_t* lab, std::int64_t c, const double* p, double ki,
                                double kp, std::size_t len, double* dp, double* dot) {
#pragma omp simd
  for (std::size_t s = 0; s < len; ++s) {
    double gv;
    if constexpr (kLabels) gv = lab[s] == c ? 1.0 : 0.0;
    else gv = static_cast<double>(g[s]);
    dp[s] = ki * gv + kp * (kSquared ? 2.0 * p[s] : 1.0);
    dot[s] += dp[s] * p[s];
  }
}

}  // namespace detail

// sums: B x C x 3 (I, P, G). Returns the flat index b S + s of the first label outside [0, C), or -1.
template <class T>
std::ptrdiff_t sums(const Args<T>& a, double* out) {
  const std::size_t B = a.batch, C = a.channels, S = a.spatial;
  for (std::size_t k = 0; k < B * C * 3; ++k) out[k] = 0.0;
  if (B == 0 || C == 0 || S == 0) return -1;
  const std::size_t span = detail::span_of(C, S);
  const std::size_t per_b = (S + span - 1) / span, units = B * per_b;
  const bool soft = a.activation == Activation::softmax;
  const std::size_t per_thread = soft ? (C + 2) * span : 0;
  const int nt = scratch_threads(resolve_threads(a.num_threads, B * C * S), units, per_thread * sizeof(double));
  // Partial sums per unit; with one unit per batch item they are the sums themselves.
  std::vector<double> part(per_b > 1 ? units * C * 3 : 0);
  double* const partp = per_b > 1 ? part.data() : out;
  std::vector<double> nbad(a.labels ? units : 0, 0.0);
  std::vector<double> scratch(static_cast<std::size_t>(nt) * per_thread);
  for_each_block(units, nt, [&](std::size_t u) {
    const std::size_t b = u / per_b, s0 = (u % per_b) * span, len = S - s0 < span ? S - s0 : span;
    double* const buf = soft ? scratch.data() + (nt > 1 ? static_cast<std::size_t>(thread_index()) : 0) * per_thread
                             : nullptr;
    if (soft) detail::softmax_block(a, b, s0, len, buf, buf + C * span, buf + C * span + span);
    const std::int64_t* const lab = a.labels ? a.labels + b * S + s0 : nullptr;
    if (lab) {
      double bad = 0.0;
      const auto Ci = static_cast<std::int64_t>(C);
#pragma omp simd reduction(+ : bad)
      for (std::size_t s = 0; s < len; ++s) bad += (lab[s] < 0 || lab[s] >= Ci) ? 1.0 : 0.0;
      nbad[u] = bad;
    }
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t row = (b * C + c) * S + s0;
      double* const o = partp + (u * C + c) * 3;
      detail::dispatch(a, [&](auto act, auto labels, auto sq) {
        detail::channel_sums<decltype(act)::value, decltype(labels)::value, decltype(sq)::value>(
            a.x + row, labels ? nullptr : a.target + row, lab, static_cast<std::int64_t>(c),
            soft ? buf + c * len : nullptr, len, o);
      });
    }
  });
  if (a.labels) {
    for (std::size_t u = 0; u < units; ++u) {
      if (nbad[u] == 0.0) continue;
      const std::size_t b = u / per_b, s0 = (u % per_b) * span;
      for (std::size_t s = s0; s < S; ++s) {
        const std::int64_t l = a.labels[b * S + s];
        if (l < 0 || l >= static_cast<std::int64_t>(C)) return static_cast<std::ptrdiff_t>(b * S + s);
      }
    }
  }
  if (per_b == 1) return -1;
  // Per (b, c): the tree over its units.
  std::vector<double> col(per_b);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t k = 0; k < 3; ++k) {
        for (std::size_t j = 0; j < per_b; ++j) col[j] = part[((b * per_b + j) * C + c) * 3 + k];
        out[(b * C + c) * 3 + k] = ::fastloss::detail::tree_sum(col.data(), 0, per_b);
      }
  return -1;
}

// grad (B, C, S) = dL/dx given dL/dI and dL/dP per (b, c) (coef_i, coef_p: B x C).
template <class T>
void grad(const Args<T>& a, const double* coef_i, const double* coef_p, T* out) {
  const std::size_t B = a.batch, C = a.channels, S = a.spatial;
  if (B == 0 || C == 0 || S == 0) return;
  const std::size_t span = detail::span_of(C, S);
  const std::size_t per_b = (S + span - 1) / span, units = B * per_b;
  const bool soft = a.activation == Activation::softmax;
  // softmax: p (C x span), dL/dp (C x span), the max and the sum, then the dot per position
  const std::size_t per_thread = soft ? (2 * C + 3) * span : 0;
  const int nt = scratch_threads(resolve_threads(a.num_threads, B * C * S), units, per_thread * sizeof(double));
  std::vector<double> scratch(static_cast<std::size_t>(nt) * per_thread);
  for_each_block(units, nt, [&](std::size_t u) {
    const std::size_t b = u / per_b, s0 = (u % per_b) * span, len = S - s0 < span ? S - s0 : span;
    const std::int64_t* const lab = a.labels ? a.labels + b * S + s0 : nullptr;
    if (!soft) {
      for (std::size_t c = 0; c < C; ++c) {
        const std::size_t row = (b * C + c) * S + s0;
        const double ki = coef_i[b * C + c], kp = coef_p[b * C + c];
        detail::dispatch(a, [&](auto act, auto labels, auto sq) {
          detail::channel_grad<decltype(act)::value, decltype(labels)::value, decltype(sq)::value>(
              a.x + row, labels ? nullptr : a.target + row, lab, static_cast<std::int64_t>(c), ki, kp, len,
              out + row);
        });
      }
      return;
    }
    double* const buf = scratch.data() + (nt > 1 ? static_cast<std::size_t>(thread_index()) : 0) * per_thread;
    double* const dbuf = buf + C * span;
    double* const dot = buf + 2 * C * span + 2 * span;
    detail::softmax_block(a, b, s0, len, buf, buf + 2 * C * span, buf + 2 * C * span + span);
    for (std::size_t s = 0; s < len; ++s) dot[s] = 0.0;
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t row = (b * C + c) * S + s0;
      const double ki = coef_i[b * C + c], kp = coef_p[b * C + c];
      detail::dispatch(a, [&](auto, auto labels, auto sq) {
        detail::softmax_dp<decltype(labels)::value, decltype(sq)::value>(
            labels ? nullptr : a.target + row, lab, static_cast<std::int64_t>(c), buf + c * len, ki, kp, len,
            dbuf + c * len, dot);
      });
    }
    for (std::size_t c = 0; c < C; ++c) {
      T* const orow = out + (b * C + c) * S + s0;
      const double* const pr = buf + c * len;
      const double* const dr = dbuf + c * len;
#pragma omp simd
      for (std::size_t s = 0; s < len; ++s) orow[s] = static_cast<T>(pr[s] * (dr[s] - dot[s]));
    }
  });
}

}  // namespace overlap
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
