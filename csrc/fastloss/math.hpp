// Branchless, vectorizable double-precision exp/log/log1p and the losses' building blocks.
//
// libm's exp/log are scalar calls that stop the compiler from vectorizing a loop; these are written
// with selects instead of branches and with integer bit tricks that AVX2 has instructions for, so a
// loop calling them becomes SIMD code. Accuracy: within a few ulp of the correctly rounded result over
// the whole double range, subnormals included; NaN and inf behave as IEEE (and libm) say.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "fastloss/config.hpp"

namespace fastloss {
inline namespace FASTLOSS_ISA_NAMESPACE {
namespace math {

// The bits of a float or double as the unsigned integer of its size, and back.
template <class To, class From>
FASTLOSS_INLINE To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
}
FASTLOSS_INLINE std::uint64_t as_bits(double x) { return bit_cast<std::uint64_t>(x); }
FASTLOSS_INLINE double from_bits(std::uint64_t u) { return bit_cast<double>(u); }
FASTLOSS_INLINE std::uint32_t as_bits(float x) { return bit_cast<std::uint32_t>(x); }
FASTLOSS_INLINE float from_bits(std::uint32_t u) { return bit_cast<float>(u); }

// a*b + c, fused where the target has FMA.
template <class V>
FASTLOSS_INLINE V fmadd(V a, V b, V c) {
#if FASTLOSS_HAVE_FMA
  if constexpr (sizeof(V) == 4) return __builtin_fmaf(a, b, c);
  else return __builtin_fma(a, b, c);
#else
  return a * b + c;
#endif
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLn2 = 0.6931471805599453;
// ln 2 split so that k * kLn2Hi is exact for |k| < 2^21 (Cody and Waite).
constexpr double kLn2Hi = 6.93147180369123816490e-01;
constexpr double kLn2Lo = 1.90821492927058770002e-10;
// Adding 1.5 * 2^52 rounds a double of magnitude < 2^51 to an integer that sits in the low mantissa bits.
constexpr double kRoundShift = 6755399441055744.0;

// 2^k for an integer-valued double k in [-1022, 1023], built from bits (no int conversion needed).
FASTLOSS_INLINE double pow2i(double k) {
  return from_bits((as_bits(k + kRoundShift) + 1023u) << 52);
}

// e^x
FASTLOSS_INLINE double exp(double x) {
  // Beyond these clamps the result is 0 or inf either way; NaN fails both comparisons and stays NaN.
  double xc = x < -746.0 ? -746.0 : x;
  xc = xc > 710.0 ? 710.0 : xc;
  const double k = fmadd(xc, 1.4426950408889634, kRoundShift) - kRoundShift;
  const double r = fmadd(-k, kLn2Lo, fmadd(-k, kLn2Hi, xc));  // |r| <= ln(2)/2
  // Taylor series of e^r to degree 13 (truncation below 5e-18 relative on |r| <= 0.347), evaluated in
  // Estrin's scheme: a dependency chain of 5 FMAs instead of Horner's 13 keeps the loop throughput-bound.
  const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const double p01 = r + 1.0;  // c0 + c1 r
  const double p23 = fmadd(r, 1.0 / 6.0, 0.5);
  const double p45 = fmadd(r, 1.0 / 120.0, 1.0 / 24.0);
  const double p67 = fmadd(r, 1.0 / 5040.0, 1.0 / 720.0);
  const double p89 = fmadd(r, 1.0 / 362880.0, 1.0 / 40320.0);
  const double pab = fmadd(r, 1.0 / 39916800.0, 1.0 / 3628800.0);
  const double pcd = fmadd(r, 1.0 / 6227020800.0, 1.0 / 479001600.0);
  const double p03 = fmadd(r2, p23, p01);
  const double p47 = fmadd(r2, p67, p45);
  const double p8b = fmadd(r2, pab, p89);
  const double p8d = fmadd(r4, pcd, p8b);
  const double p07 = fmadd(r4, p47, p03);
  const double p = fmadd(r8, p8d, p07);
  // 2^k as two factors so that overflow gives inf and underflow rounds once into the subnormals.
  const double k1 = (k * 0.5 + kRoundShift) - kRoundShift;
  return (p * pow2i(k1)) * pow2i(k - k1);
}

// log(1 + f) for f in [sqrt(2)/2 - 1, sqrt(2) - 1]: 2 atanh(s) with s = f / (2 + f), |s| <= 0.1716,
// written as f - s (f - R) so that the leading term f carries no rounding error; the series in
// z = s^2 to z^10 truncates below 1e-18 relative. Estrin's scheme keeps the dependency chain short.
FASTLOSS_INLINE double log1p_reduced(double f) {
  const double s = f / (2.0 + f);
  const double z = s * s, z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
  const double q01 = fmadd(z, 2.0 / 5.0, 2.0 / 3.0);
  const double q23 = fmadd(z, 2.0 / 9.0, 2.0 / 7.0);
  const double q45 = fmadd(z, 2.0 / 13.0, 2.0 / 11.0);
  const double q67 = fmadd(z, 2.0 / 17.0, 2.0 / 15.0);
  const double q89 = fmadd(z, 2.0 / 21.0, 2.0 / 19.0);
  const double q03 = fmadd(z2, q23, q01);
  const double q47 = fmadd(z2, q67, q45);
  const double q07 = fmadd(z4, q47, q03);
  const double q = fmadd(z8, fmadd(z2, 2.0 / 23.0, q89), q07);
  const double rr = z * q;
  return f - s * (f - rr);
}

// Natural logarithm: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf.
FASTLOSS_INLINE double log(double x) {
  const bool subnormal = x < 2.2250738585072014e-308;
  const double xs = subnormal ? x * 18014398509481984.0 : x;  // * 2^54
  const std::uint64_t u = as_bits(xs);
  double m = from_bits(std::uint64_t{(u & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull});  // [1, 2)
  // The biased exponent as a double, via the same bit trick as pow2i.
  double e = from_bits(std::uint64_t{((u >> 52) & 0x7FFull) | 0x4330000000000000ull}) - 4503599627370496.0;
  e -= subnormal ? 1077.0 : 1023.0;
  const bool high = m > 1.4142135623730951;
  m = high ? m * 0.5 : m;
  e = high ? e + 1.0 : e;
  // log(1 + f) = 2 atanh(s), s = f / (2 + f), |s| <= 0.1716; written as f - s (f - R) so that the
  // leading term f is exact (Sterbenz).
  const double lm = log1p_reduced(m - 1.0);  // m - 1 is exact (Sterbenz)
  const double res = fmadd(e, kLn2Hi, fmadd(e, kLn2Lo, lm));
  const bool finite_pos = x > 0.0 && x < kInf;
  return finite_pos ? res : (x == 0.0 ? -kInf : (x == kInf ? kInf : kNaN + x));
}

// log(1 + u) without cancellation for small u: log(y) corrected by the rounding error of y = 1 + u.
FASTLOSS_INLINE double log1p(double u) {
  const double y = 1.0 + u;
  const double corr = (y == 0.0 || y == kInf) ? 0.0 : ((y - 1.0) - u) / y;
  return math::log(y) - corr;
}

// log(1 + u) for u in [0, 1] (or NaN), as log-cosh and the logistic losses need it: 1 + u = 2^k (1 + f)
// with f computed exactly from u, so no correction term (and no second division) is needed.
FASTLOSS_INLINE double log1p_unit(double u) {
  const bool high = u > 0.41421356237309503;
  const double f = high ? (u - 1.0) * 0.5 : u;  // exact: u - 1 by Sterbenz, * 0.5 a shift
  const double k = high ? 1.0 : 0.0;
  return fmadd(k, kLn2Hi, fmadd(k, kLn2Lo, log1p_reduced(f)));
}

// ---- float versions: the same algorithms with float constants and shorter polynomials, for losses
// that compute float32 inputs in float32 (8 AVX2 lanes instead of 4). Within 2 float ulp.

constexpr float kRoundShiftF = 12582912.0f;  // 1.5 * 2^23

FASTLOSS_INLINE float pow2i(float k) { return from_bits((as_bits(k + kRoundShiftF) + 127u) << 23); }

FASTLOSS_INLINE float exp(float x) {
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  const float k = fmadd(xc, 1.44269504f, kRoundShiftF) - kRoundShiftF;
  const float r = fmadd(-k, 1.42860677e-6f, fmadd(-k, 0.693145752f, xc));  // ln 2 split, hi exact
  // Taylor to degree 7 on |r| <= 0.347: truncation below 6e-9 relative.
  const float r2 = r * r, r4 = r2 * r2;
  const float p01 = r + 1.0f;
  const float p23 = fmadd(r, 1.0f / 6.0f, 0.5f);
  const float p45 = fmadd(r, 1.0f / 120.0f, 1.0f / 24.0f);
  const float p67 = fmadd(r, 1.0f / 5040.0f, 1.0f / 720.0f);
  const float p = fmadd(r4, fmadd(r2, p67, p45), fmadd(r2, p23, p01));
  const float k1 = (k * 0.5f + kRoundShiftF) - kRoundShiftF;
  return (p * pow2i(k1)) * pow2i(k - k1);
}

FASTLOSS_INLINE float log1p_reduced(float f) {
  const float s = f / (2.0f + f);
  const float z = s * s;
  const float q = fmadd(z, fmadd(z, fmadd(z, 2.0f / 9.0f, 2.0f / 7.0f), 2.0f / 5.0f), 2.0f / 3.0f);
  return f - s * (f - z * q);
}

FASTLOSS_INLINE float log(float x) {
  const bool subnormal = x < 1.17549435e-38f;
  const float xs = subnormal ? x * 16777216.0f : x;  // * 2^24
  const std::uint32_t u = as_bits(xs);
  float m = from_bits((u & 0x007FFFFFu) | 0x3F800000u);
  float e = from_bits(((u >> 23) & 0xFFu) | 0x4B000000u) - 8388608.0f;
  e -= subnormal ? 151.0f : 127.0f;
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1.0f : e;
  const float res = fmadd(e, 0.693145752f, fmadd(e, 1.42860677e-6f, log1p_reduced(m - 1.0f)));
  const float inf = std::numeric_limits<float>::infinity();
  const bool finite_pos = x > 0.0f && x < inf;
  return finite_pos ? res : (x == 0.0f ? -inf : (x == inf ? inf : std::numeric_limits<float>::quiet_NaN() + x));
}

FASTLOSS_INLINE float log1p_unit(float u) {
  const bool high = u > 0.414213562f;
  const float f = high ? (u - 1.0f) * 0.5f : u;
  const float k = high ? 1.0f : 0.0f;
  return fmadd(k, 0.693145752f, fmadd(k, 1.42860677e-6f, log1p_reduced(f)));
}

// Shared pieces of the logistic losses, from one exp: e = exp(-|x|). V is double or float.
template <class V>
struct Logistic {
  V softplus_pos;  // log(1 + e^x)
  V softplus_neg;  // log(1 + e^-x)
  V sigmoid_pos;   // 1 / (1 + e^-x)
  V sigmoid_neg;   // 1 / (1 + e^x) = 1 - sigmoid_pos, without cancellation
};

// exp(-|x|), the one transcendental input of every logistic quantity.
template <class V>
FASTLOSS_INLINE V exp_neg_abs(V x) {
  return math::exp(x < V(0) ? x : -x);
}

// The logistic quantities of x, given e = exp_neg_abs(x).
template <class V>
FASTLOSS_INLINE Logistic<V> logistic(V x, V e) {
  const V l1p = math::log1p_unit(e);
  const V d = V(1) / (V(1) + e);
  const bool pos = x >= V(0);
  // NaN fails `x >= 0`; it reaches every field through e (and so through l1p and d).
  Logistic<V> r;
  r.softplus_pos = (pos ? x : V(0)) + l1p;
  r.softplus_neg = (pos ? V(0) : -x) + l1p;
  r.sigmoid_pos = pos ? d : e * d;
  r.sigmoid_neg = pos ? e * d : d;
  return r;
}

// q^g for q >= 0 and a fixed g >= 0, given zero_pow = 0^g (1 for g = 0, else 0). The caller computes
// zero_pow once: a select on the loop-invariant g would stop GCC from vectorizing the loop.
template <class V>
FASTLOSS_INLINE V pow_nonneg(V q, V g, V zero_pow) {
  const V r = math::exp(g * math::log(q));
  return q == V(0) ? zero_pow : r;
}

}  // namespace math
}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
