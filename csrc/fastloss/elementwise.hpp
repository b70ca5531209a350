// Per-element loss functors. Each is a small struct with
//   Eval operator()(a, b, c) const   -> the loss and its derivatives (returned by value: out-parameters
//                                       would become memory in an `omp simd` loop and stop vectorization)
//   bool valid(a, b, c) const        -> the input's domain check
// where (a, b) are (prediction, target) and c is a third per-element input for the losses that have
// one (kArity == 3). The derivative the caller did not ask for is dead code once inlined. The driver in
// reduce.hpp owns threads, blocking, weights and reduction; a functor only knows its formula.
//
// Conventions: NaN in any input propagates to the loss and its derivative; at a kink the derivative is
// 0 (a valid subgradient); domain checks let NaN through (it propagates) and reject anything else.
#pragma once

#include "fastloss/config.hpp"
#include "fastloss/math.hpp"

namespace fastloss {
inline namespace FASTLOSS_ISA_NAMESPACE {
namespace loss {

template <class V>
struct EvalT {
  V loss;
  V grad_a;  // d loss / d a
  V grad_c;  // d loss / d c, for kGrads == 2
};
using Eval = EvalT<double>;

struct PairLoss {
  static constexpr int kArity = 2;     // inputs read: (a, b) or (a, b, c)
  static constexpr int kGrads = 1;     // derivatives written: d/da, or d/da and d/dc
  static constexpr bool kChecks = false;
  // True for transcendental losses whose operator() is a template on the compute type: float32 inputs
  // are then computed in float32 (twice the SIMD lanes), still summed in float64. Memory-bound losses
  // compute in float64 always: it costs them nothing.
  static constexpr bool kFloatCompute = false;
  // True for functors split in two: stage(a, b, c) is computed for a chunk of elements first, then
  // operator()(a, b, c, stage) (see elementwise_block).
  static constexpr bool kStaged = false;
  FASTLOSS_INLINE bool valid(double, double, double) const { return true; }
};

// x if x is NaN, else v: keeps NaN flowing through a derivative that a comparison would drop.
FASTLOSS_INLINE double nan_or(double x, double v) { return x == x ? v : x; }
FASTLOSS_INLINE double abs(double x) { return x < 0.0 ? -x : x; }
FASTLOSS_INLINE double sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x * 0.0); }
FASTLOSS_INLINE double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }
FASTLOSS_INLINE bool is_pm1(double t) { return t == 1.0 || t == -1.0 || !(t == t); }
FASTLOSS_INLINE bool in_unit(double p) { return !(p < 0.0 || p > 1.0); }
// t a + (1 - t) b, where a term whose factor is exactly 0 is dropped even if the other factor is infinite
// (a hard label t in {0, 1} with an infinite logit gives the limit, not 0 * inf = NaN).
template <class V>
FASTLOSS_INLINE V mix(V t, V a, V b) {
  return (t == V(0) ? V(0) : t * a) + (t == V(1) ? V(0) : (V(1) - t) * b);
}
template <class V>
FASTLOSS_INLINE bool in_unit_v(V p) { return !(p < V(0) || p > V(1)); }

// l = (p - t)^2 ; dl/dp = 2 (p - t)
struct Mse : PairLoss {
  explicit Mse(const double*) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    const double d = p - t;
    gp = 2.0 * d;
    return {d * d, gp, 0.0};
  }
};

// Regularisers of one array (the driver passes it as both inputs; the second is not used).
// l = |w| ; dl/dw = sign(w)
struct L1Penalty : PairLoss {
  explicit L1Penalty(const double*) {}
  FASTLOSS_INLINE Eval operator()(double w, double, double) const { return {w < 0.0 ? -w : w, sign(w), 0.0}; }
};

// l = w^2 ; dl/dw = 2 w
struct L2Penalty : PairLoss {
  explicit L2Penalty(const double*) {}
  FASTLOSS_INLINE Eval operator()(double w, double, double) const { return {w * w, 2.0 * w, 0.0}; }
};

// l = |p - t| ; dl/dp = sign(p - t)
struct Mae : PairLoss {
  explicit Mae(const double*) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    const double d = p - t;
    gp = sign(d);
    return {abs(d), gp, 0.0};
  }
};

// l = 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta), d = p - t  (torch huber_loss)
// Branchless: with a = min(|d|, delta), l = a (|d| - a/2); dl/dp = clamp(d, -delta, delta).
struct Huber : PairLoss {
  double delta;
  explicit Huber(const double* prm) : delta(prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    const double d = p - t;
    const double ad = abs(d);
    const double a = ad < delta ? ad : delta;
    gp = clamp(d, -delta, delta);
    return {a * (ad - 0.5 * a), gp, 0.0};
  }
};

// l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta  (torch smooth_l1_loss, beta > 0; beta = 0 is Mae)
// That is Huber with delta = beta, divided by beta.
struct SmoothL1 : Huber {
  double inv_beta;
  explicit SmoothL1(const double* prm) : Huber(prm), inv_beta(1.0 / prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    const Eval e = Huber::operator()(p, t, 0.0);
    return {e.loss * inv_beta, e.grad_a * inv_beta, 0.0};
  }
};

// l = log cosh d = |d| + log1p(exp(-2|d|)) - log 2 (series d^2/2 - d^4/12 + d^6/45 for |d| < 2^-7,
// where the stable form cancels) ; dl/dp = tanh d
struct LogCosh : PairLoss {
  static constexpr bool kStaged = true;
  explicit LogCosh(const double*) {}
  FASTLOSS_INLINE double stage(double p, double t, double) const { return math::exp(-2.0 * abs(p - t)); }
  FASTLOSS_INLINE Eval operator()(double p, double t, double c) const { return (*this)(p, t, c, stage(p, t, c)); }
  FASTLOSS_INLINE Eval operator()(double p, double t, double, double e) const {
    const double d = p - t;
    const double ad = abs(d);
    const double big = ad + math::log1p_unit(e) - math::kLn2;
    const double d2 = d * d;
    const double small = d2 * (0.5 + d2 * (-1.0 / 12.0 + d2 * (1.0 / 45.0)));
    const double gp = nan_or(d, sign(d) * ((1.0 - e) / (1.0 + e)));
    return {ad < 0.0078125 ? small : big, gp, 0.0};
  }
};

// l = delta^2 (sqrt(1 + (d/delta)^2) - 1)  (scipy.special.pseudo_huber) ; dl/dp = d / sqrt(1 + (d/delta)^2)
struct PseudoHuber : PairLoss {
  double delta, inv_delta;
  explicit PseudoHuber(const double* prm) : delta(prm[0]), inv_delta(1.0 / prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    const double d = p - t;
    const double u = d * inv_delta;
    const double z = u * u;
    const double root = __builtin_sqrt(1.0 + z);
    // sqrt(1 + z) - 1 = z / (sqrt(1 + z) + 1) avoids cancellation for small z; the plain form keeps
    // z = inf finite-free.
    const double l = z > 1.0 ? delta * delta * (root - 1.0) : d * d / (root + 1.0);
    gp = abs(u) > 1e150 ? delta * sign(u) : d / root;
    return {l, gp, 0.0};
  }
};

// l = q (t - p) if t >= p else (q - 1)(t - p)  (sklearn mean_pinball_loss, alpha = q)
struct Pinball : PairLoss {
  double q;
  explicit Pinball(const double* prm) : q(prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    const double d = t - p;
    gp = d > 0.0 ? -q : (d < 0.0 ? 1.0 - q : d * 0.0);
    return {d < 0.0 ? (q - 1.0) * d : q * d, gp, 0.0};
  }
};

// l = max(0, margin - t s)  with t in {-1, +1}  (sklearn hinge_loss for margin = 1)
// Squared: l = max(0, margin - t s)^2. Two functors, not a flag: a select on a loop-invariant flag
// stops GCC from vectorizing.
template <bool Squared>
struct HingeT : PairLoss {
  static constexpr bool kChecks = true;
  double margin;
  explicit HingeT(const double* prm) : margin(prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double s, double t, double) const {
    const double v = margin - t * s;
    const double h = v < 0.0 ? 0.0 : v;  // NaN stays NaN
    if constexpr (Squared) return {h * h, -2.0 * t * h, 0.0};
    return {h, nan_or(v, v > 0.0 ? -t : 0.0), 0.0};
  }
  FASTLOSS_INLINE bool valid(double, double t, double) const { return is_pm1(t); }
};
using Hinge = HingeT<false>;
using SquaredHinge = HingeT<true>;

// l = -(t max(log p, -100) + (1 - t) max(log(1 - p), -100))  (torch binary_cross_entropy)
// dl/dp = (p - t) / max(p (1 - p), 1e-12)  (torch's backward)
struct Bce : PairLoss {
  static constexpr bool kChecks = true;
  explicit Bce(const double*) {}
  FASTLOSS_INLINE Eval operator()(double p, double t, double) const {
    double gp = 0.0;
    double lp = math::log(p);
    double lq = math::log1p(-p);
    lp = lp < -100.0 ? -100.0 : lp;
    lq = lq < -100.0 ? -100.0 : lq;
    const double den = p * (1.0 - p);
    gp = (p - t) / (den < 1e-12 ? 1e-12 : den);
    return {(t - 1.0) * lq - t * lp, gp, 0.0};
  }
  FASTLOSS_INLINE bool valid(double p, double t, double) const { return in_unit(p) && in_unit(t); }
};

// l = t w softplus(-x) + (1 - t) softplus(x)  (torch binary_cross_entropy_with_logits, w = pos_weight)
// This sum of two non-negative terms equals torch's (1 - t) x + (1 + (w - 1) t) softplus(-x) without
// its cancellation. dl/dx = (1 - t) sigmoid(x) - t w sigmoid(-x).
// kArity 3 reads a per-element pos_weight from c; otherwise it is the constant prm[0].
template <int Arity>
struct BceLogitsT : PairLoss {
  static constexpr int kArity = Arity;
  static constexpr bool kChecks = true;
  static constexpr bool kFloatCompute = true;
  double pos_weight;
  explicit BceLogitsT(const double* prm) : pos_weight(prm[0]) {}
  static constexpr bool kStaged = true;
  template <class V>
  FASTLOSS_INLINE V stage(V x, V, V) const { return math::exp_neg_abs(x); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V t, V c) const { return (*this)(x, t, c, math::exp_neg_abs(x)); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V t, V c, V e) const {
    const V w = Arity == 3 ? c : V(pos_weight);
    const math::Logistic<V> s = math::logistic(x, e);
    return {mix(t, w * s.softplus_neg, s.softplus_pos), (V(1) - t) * s.sigmoid_pos - t * w * s.sigmoid_neg,
            V(0)};
  }
  template <class V>
  FASTLOSS_INLINE bool valid(V, V t, V) const { return in_unit_v(t); }
};
using BceLogits = BceLogitsT<2>;
using BceLogitsPosWeight = BceLogitsT<3>;

// l = alpha_t (1 - p_t)^gamma bce_logits(x, t), p = sigmoid(x), p_t = p t + (1 - p)(1 - t),
// alpha_t = alpha t + (1 - alpha)(1 - t), or 1 when alpha < 0  (torchvision sigmoid_focal_loss)
struct SigmoidFocal : PairLoss {
  static constexpr bool kChecks = true;
  static constexpr bool kFloatCompute = true;
  double gamma, zero_pow, a0, a1;  // alpha_t = a0 + a1 t
  explicit SigmoidFocal(const double* prm)
      : gamma(prm[1]), zero_pow(prm[1] == 0.0 ? 1.0 : 0.0),
        a0(prm[0] < 0.0 ? 1.0 : 1.0 - prm[0]), a1(prm[0] < 0.0 ? 0.0 : 2.0 * prm[0] - 1.0) {}
  static constexpr bool kStaged = true;
  template <class V>
  FASTLOSS_INLINE V stage(V x, V, V) const { return math::exp_neg_abs(x); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V t, V c) const { return (*this)(x, t, c, math::exp_neg_abs(x)); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V t, V, V e) const {
    const math::Logistic<V> s = math::logistic(x, e);
    const V ce = mix(t, s.softplus_neg, s.softplus_pos);
    const V dce = (V(1) - t) * s.sigmoid_pos - t * s.sigmoid_neg;           // p - t
    const V q = s.sigmoid_pos * (V(1) - t) + s.sigmoid_neg * t;             // 1 - p_t
    const V g = V(gamma);
    // q^gamma in double even for float inputs: exp(gamma log q) in float would carry log's absolute
    // error into the exponent (1e-6 relative where q is small).
    const V mod = static_cast<V>(math::pow_nonneg(static_cast<double>(q), gamma, zero_pow));
    const V at = V(a0) + V(a1) * t;
    // d(q^gamma)/dx = gamma q^(gamma-1) p (1 - p)(1 - 2t); its limit at q = 0 is 0.
    const V pq = s.sigmoid_pos * s.sigmoid_neg * (V(1) - V(2) * t);
    const V dmod = q > V(0) ? g * mod * pq / q : V(0) * q;
    return {at * ce * mod, at * (dce * mod + ce * dmod), V(0)};
  }
  template <class V>
  FASTLOSS_INLINE bool valid(V, V t, V) const { return in_unit_v(t); }
};

// KL divergence term (torch kl_div), a = log q, b = p:  l = p (log p - a), 0 where p = 0 (torch gives
// NaN there when a = -inf; the term's limit is 0); dl/da = -p. p must be >= 0.
struct KlDiv : PairLoss {
  static constexpr bool kChecks = true;
  static constexpr bool kFloatCompute = true;  // float32: a float32 log, summed in float64
  explicit KlDiv(const double*) {}
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V a, V p, V) const {
    const V l = p * (math::log(p) - a);
    return {p == V(0) ? V(0) : l, -p, V(0)};
  }
  template <class V>
  FASTLOSS_INLINE bool valid(V, V p, V) const { return !(p < V(0)); }
};

// The same with the target given as log p (torch kl_div, log_target=True): l = exp(b) (b - a); dl/da = -exp(b)
struct KlDivLogTarget : PairLoss {
  static constexpr bool kFloatCompute = true;
  explicit KlDivLogTarget(const double*) {}
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V a, V b, V) const {
    const V p = math::exp(b);
    const V l = p * (b - a);
    return {p == V(0) ? V(0) : l, -p, V(0)};
  }
};

// The logistic function as an elementwise map: l = sigmoid(a) (b is ignored); dl/da = s (1 - s)
// (float32 inputs compute in float32: a map has no sum to protect, and the result is float32 anyway.)
struct Sigmoid : PairLoss {
  static constexpr bool kFloatCompute = true;
  static constexpr bool kStaged = true;
  explicit Sigmoid(const double*) {}
  template <class V>
  FASTLOSS_INLINE V stage(V x, V, V) const { return math::exp_neg_abs(x); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V b, V c) const { return (*this)(x, b, c, math::exp_neg_abs(x)); }
  template <class V>
  FASTLOSS_INLINE EvalT<V> operator()(V x, V, V, V e) const {
    const math::Logistic<V> s = math::logistic(x, e);
    return {s.sigmoid_pos, s.sigmoid_pos * s.sigmoid_neg, V(0)};
  }
};

// l = max(0, -y (x1 - x2) + margin), y in {-1, +1}  (torch margin_ranking_loss); a = x1, b = y, c = x2
struct MarginRanking : PairLoss {
  static constexpr int kArity = 3;
  static constexpr int kGrads = 2;
  static constexpr bool kChecks = true;
  double margin;
  explicit MarginRanking(const double* prm) : margin(prm[0]) {}
  FASTLOSS_INLINE Eval operator()(double x1, double y, double x2) const {
    double g1 = 0.0, g2 = 0.0;
    const double v = margin - y * (x1 - x2);
    g1 = nan_or(v, v > 0.0 ? -y : 0.0);
    g2 = 0.0 - g1;  // not -g1: no -0.0 where the margin holds
    return {v < 0.0 ? 0.0 : v, g1, g2};
  }
  FASTLOSS_INLINE bool valid(double, double y, double) const { return is_pm1(y); }
};

}  // namespace loss
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
