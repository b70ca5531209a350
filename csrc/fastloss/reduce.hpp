// The deterministic parallel map-reduce driver for elementwise losses: the only OpenMP in the
// elementwise family lives here.
//
// Determinism: the input is cut into blocks of kBlock elements, independent of the thread count. Each
// block's partial sum is a fixed expression of its elements (the vector lanes of one `omp simd`
// reduction, a fixed order for a given build and SIMD level), and block partials are combined in a
// fixed pairwise tree. Threads only decide who computes which block, so every thread count and every run
// gives the same bits. Machines running different SIMD levels (AVX2 vs AVX-512) sum a block's lanes in a
// different order and may differ in the last bits of a reduced value; per-element outputs agree exactly.
// (Summing into a fixed number of lanes through an L1 buffer would make them agree too, and cost 15-25%
// of float32 bandwidth; the design asks for thread- and run-determinism.) float64 accumulation over short blocks with pairwise combination keeps a float32 mean of
// 10^7 elements within 1 float32 ulp of the exact value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastloss/config.hpp"

namespace fastloss {
inline namespace FASTLOSS_ISA_NAMESPACE {

constexpr std::size_t kBlock = 2048;
// Elementwise blocks between two clock reads of the interrupt check (about 30 us of work at memory speed).
constexpr unsigned kCheckEvery = 32;
// Inputs shorter than this run on the calling thread: waking a team costs more than it saves
// (measured with bench/threshold.py; see the README).
constexpr std::size_t kParallelMin = std::size_t(1) << 13;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The calling thread's index in the current parallel region (0 outside one).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Threads for n elements: `requested` if positive, else OpenMP's default for the calling thread; one
// thread in a forked child (see forked_child()).
inline int resolve_threads(int requested, std::size_t n, std::size_t min_per_thread = kParallelMin) {
  if (forked_child().load(std::memory_order_relaxed)) return 1;
  int nt = requested > 0 ? requested : max_threads();
  const std::size_t useful = n / min_per_thread;
  if (useful < static_cast<std::size_t>(nt)) nt = static_cast<int>(useful > 1 ? useful : 1);
  return nt;
}

// Per-thread scratch of a driver stays within this many bytes over all its threads: a call whose
// scratch per thread is large (a few huge rows, thousands of channels) runs on fewer threads rather than
// allocating a block per thread, so that its peak memory does not grow with the thread count.
inline constexpr std::size_t kThreadScratchBytes = std::size_t(32) << 20;

// Threads for a loop over nblocks blocks: no more than nt, than blocks, and, with `bytes` of scratch per
// thread (0 for none), than kThreadScratchBytes allows (at least one).
inline int scratch_threads(int nt, std::size_t nblocks, std::size_t bytes) {
  std::size_t cap = nblocks > 0 ? nblocks : 1;
  if (bytes > 0) {
    const std::size_t fit = kThreadScratchBytes / bytes;
    cap = fit < 1 ? 1 : (fit < cap ? fit : cap);
  }
  return static_cast<std::size_t>(nt) > cap ? static_cast<int>(cap) : nt;
}

// Runs body(b) for every block b in [0, nblocks), in parallel over a static schedule. Between blocks the
// calling thread checks for an interrupt (interrupt::Poller, a clock read every `check_every` of its
// blocks); once one comes, every thread skips its remaining blocks.
template <class Body>
void for_each_block(std::size_t nblocks, int nthreads, const Body& body, unsigned check_every = 1) {
  if (interrupt::stopped()) return;
  const auto nb = static_cast<std::ptrdiff_t>(nblocks);
#ifdef _OPENMP
  if (nthreads > 1) {
    std::atomic<bool> stop{false};
#pragma omp parallel num_threads(nthreads)
    {
      interrupt::Poller poll(check_every);
#pragma omp for schedule(static) nowait  // the region's end is the one barrier
      for (std::ptrdiff_t b = 0; b < nb; ++b) {
        if (stop.load(std::memory_order_relaxed)) continue;
        body(static_cast<std::size_t>(b));
        if (poll.tick()) stop.store(true, std::memory_order_relaxed);
      }
    }
    return;
  }
#endif
  (void)nthreads;
  interrupt::Poller poll(check_every);
  for (std::ptrdiff_t b = 0; b < nb; ++b) {
    body(static_cast<std::size_t>(b));
    if (poll.tick()) return;
  }
}

// Runs body(b) for every task b in [0, ntasks) with a dynamic schedule, for tasks of unequal cost (the
// triangle of a pairwise matrix). Which thread runs a task never changes what the task computes. Tasks
// are large: the calling thread checks for an interrupt after each of its own.
template <class Body>
void for_each_task(std::size_t ntasks, int nthreads, const Body& body) {
  if (interrupt::stopped()) return;
  const auto nb = static_cast<std::ptrdiff_t>(ntasks);
#ifdef _OPENMP
  if (nthreads > 1) {
    std::atomic<bool> stop{false};
#pragma omp parallel num_threads(nthreads)
    {
      interrupt::Poller poll(1);
#pragma omp for schedule(dynamic, 1) nowait
      for (std::ptrdiff_t b = 0; b < nb; ++b) {
        if (stop.load(std::memory_order_relaxed)) continue;
        body(static_cast<std::size_t>(b));
        if (poll.tick()) stop.store(true, std::memory_order_relaxed);
      }
    }
    return;
  }
#endif
  (void)nthreads;
  interrupt::Poller poll(1);
  for (std::ptrdiff_t b = 0; b < nb; ++b) {
    body(static_cast<std::size_t>(b));
    if (poll.tick()) return;
  }
}

namespace detail {

// Sum of x[0, len) in float64. The pre-pass over weights and the main pass both use it, so they agree
// to the bit.
template <class T>
double block_sum(const T* x, std::size_t len) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < len; ++i) s += static_cast<double>(x[i]);
  return s;
}

// Pairwise (fixed binary tree) sum of v[lo, hi).
inline double tree_sum(const double* v, std::size_t lo, std::size_t hi) {
  if (hi - lo <= 2) return hi == lo ? 0.0 : (hi - lo == 1 ? v[lo] : v[lo] + v[lo + 1]);
  const std::size_t mid = lo + (hi - lo) / 2;
  return tree_sum(v, lo, mid) + tree_sum(v, mid, hi);
}

}  // namespace detail

// One call of the elementwise driver. Pointers are to contiguous arrays of n elements; the optional ones
// are null when absent. With `weight` null every element has weight `weight_scalar` (1 by default).
template <class T>
struct ElementwiseArgs {
  const T* a = nullptr;        // prediction (or first score)
  const T* b = nullptr;        // target
  const T* c = nullptr;        // third per-element input, for functors with kArity == 3
  const T* weight = nullptr;
  double weight_scalar = 1.0;
  std::size_t n = 0;
  Reduction reduction = Reduction::mean;
  T* out = nullptr;            // reduction == none: w * l
  T* grad_a = nullptr;         // d(result)/da, or null
  T* grad_c = nullptr;         // d(result)/dc for functors with kGrads == 2, or null
  int num_threads = 0;         // 0: OpenMP's default
};

struct ElementwiseResult {
  double value = 0.0;          // sum(w l), or its weighted mean; unused with reduction none
  double weight_sum = 0.0;     // sum(w)
  std::ptrdiff_t first_bad = -1;  // first element outside the loss's domain, or -1
};

namespace detail {

// What F returns for compute type V.
template <class F, class V>
using EvalResult = decltype(std::declval<const F&>()(V(), V(), V()));

struct Partial {
  double sum;
  double wsum;
  double nbad;  // a double counter vectorizes more cheaply than an integer one; exact below 2^53
};

// The compute type of functor F on inputs of type T: float32 inputs of a kFloatCompute functor run in
// float, all else in double.
template <class F, class T>
using compute_t = std::conditional_t<std::is_same_v<T, float> && F::kFloatCompute, float, double>;

// Elements [lo, lo + len) of one block: writes outputs, adds sum(w l) and the domain-violation count.
// `stage` holds F::stage of these elements for kStaged functors.
template <bool kWeights, bool kOut, bool kGrad, class F, class T, class V>
FASTLOSS_INLINE void elementwise_span(const F& f, const ElementwiseArgs<T>& x, std::size_t lo, std::size_t len,
                                      double gscale, const V* stage, double& sum_out, double& nbad_out) {
  const T* const a = x.a + lo;
  const T* const b = x.b + lo;
  const T* const c = F::kArity == 3 ? x.c + lo : nullptr;
  const T* const w = kWeights ? x.weight + lo : nullptr;
  T* const out = kOut ? x.out + lo : nullptr;
  T* const ga = kGrad ? x.grad_a + lo : nullptr;
  T* const gc = (kGrad && F::kGrads == 2) ? x.grad_c + lo : nullptr;
  const double ws = x.weight_scalar;
  double sum = 0.0, nbad = 0.0;
#pragma omp simd reduction(+ : sum, nbad)
  for (std::size_t i = 0; i < len; ++i) {
    const V ai = static_cast<V>(a[i]);
    const V bi = static_cast<V>(b[i]);
    V ci = V(0);
    if constexpr (F::kArity == 3) ci = static_cast<V>(c[i]);
    EvalResult<F, V> e;
    if constexpr (F::kStaged) e = f(ai, bi, ci, stage[i]);
    else e = f(ai, bi, ci);
    double wi = ws;
    if constexpr (kWeights) wi = static_cast<double>(w[i]);
    const double l = static_cast<double>(e.loss);
    // Without per-element weights the sum is scaled by ws once, after the loop (one multiply per
    // element fewer, which float32 inputs at memory speed notice).
    sum += kWeights ? wi * l : l;
    if constexpr (F::kChecks) nbad += f.valid(ai, bi, ci) ? 0.0 : 1.0;
    if constexpr (kOut) out[i] = static_cast<T>(wi * l);
    if constexpr (kGrad) {
      const double s = gscale * wi;
      ga[i] = static_cast<T>(s * static_cast<double>(e.grad_a));
      if constexpr (F::kGrads == 2) gc[i] = static_cast<T>(s * static_cast<double>(e.grad_c));
    }
  }
  sum_out += kWeights ? sum : ws * sum;
  nbad_out += nbad;
}

template <bool kWeights, bool kOut, bool kGrad, class F, class T>
Partial elementwise_block(const F& functor, const ElementwiseArgs<T>& x, std::size_t lo, std::size_t len,
                          double gscale) {
  // A local copy keeps the functor's parameters in registers: read through the reference inside a
  // select they would need masked loads, and the loop would not vectorize.
  const F f = functor;
  using V = compute_t<F, T>;
  double sum = 0.0, nbad = 0.0;
  if constexpr (F::kStaged) {
    // Two loops over short chunks instead of one: each has a short dependency chain, so the core keeps
    // more iterations in flight (26% faster for the logistic losses).
    constexpr std::size_t kChunk = 256;
    alignas(64) V st[kChunk];
    for (std::size_t c0 = 0; c0 < len; c0 += kChunk) {
      const std::size_t m = len - c0 < kChunk ? len - c0 : kChunk;
      const T* const a = x.a + lo + c0;
      const T* const b = x.b + lo + c0;
      const T* const c = F::kArity == 3 ? x.c + lo + c0 : nullptr;
#pragma omp simd
      for (std::size_t i = 0; i < m; ++i) {
        V ci = V(0);
        if constexpr (F::kArity == 3) ci = static_cast<V>(c[i]);
        st[i] = f.stage(static_cast<V>(a[i]), static_cast<V>(b[i]), ci);
      }
      elementwise_span<kWeights, kOut, kGrad>(f, x, lo + c0, m, gscale, st, sum, nbad);
    }
  } else {
    elementwise_span<kWeights, kOut, kGrad>(f, x, lo, len, gscale, static_cast<const V*>(nullptr), sum, nbad);
  }
  Partial p;
  p.sum = sum;
  p.wsum = kWeights ? block_sum(x.weight + lo, len) : x.weight_scalar * static_cast<double>(len);
  p.nbad = nbad;
  return p;
}

template <bool kWeights, bool kOut, bool kGrad, class F, class T>
void elementwise_run(const F& f, const ElementwiseArgs<T>& x, ElementwiseResult& r) {
  const std::size_t nblocks = (x.n + kBlock - 1) / kBlock;
  const int nt = resolve_threads(x.num_threads, x.n);
  auto block_len = [&](std::size_t blk) {
    const std::size_t lo = blk * kBlock;
    return x.n - lo < kBlock ? x.n - lo : kBlock;
  };
  std::vector<double> sums(nblocks), wsums(nblocks);
  std::vector<double> nbad(nblocks);

  // The gradient of a mean is scaled by 1/sum(w): with per-element weights that sum is needed before the
  // main pass. It is computed block by block exactly as the main pass does, so it has the same bits.
  double gscale = 1.0;
  if (kGrad && x.reduction == Reduction::mean) {
    double total_w = x.weight_scalar * static_cast<double>(x.n);
    if constexpr (kWeights) {
      for_each_block(nblocks, nt, [&](std::size_t blk) {
        wsums[blk] = block_sum(x.weight + blk * kBlock, block_len(blk));
      }, kCheckEvery);
      total_w = tree_sum(wsums.data(), 0, nblocks);
    } else {
      // Same expression as the main pass's sum of per-block ws * len.
      for (std::size_t blk = 0; blk < nblocks; ++blk)
        wsums[blk] = x.weight_scalar * static_cast<double>(block_len(blk));
      total_w = tree_sum(wsums.data(), 0, nblocks);
    }
    gscale = 1.0 / total_w;
  }

  for_each_block(nblocks, nt, [&](std::size_t blk) {
    const Partial p = elementwise_block<kWeights, kOut, kGrad>(f, x, blk * kBlock, block_len(blk), gscale);
    sums[blk] = p.sum;
    wsums[blk] = p.wsum;
    nbad[blk] = p.nbad;
  }, kCheckEvery);

  if constexpr (F::kChecks) {
    for (std::size_t blk = 0; blk < nblocks; ++blk) {
      if (nbad[blk] == 0.0) continue;
      const std::size_t lo = blk * kBlock, hi = lo + block_len(blk);
      using V = compute_t<F, T>;
      for (std::size_t i = lo; i < hi; ++i) {
        const V ci = F::kArity == 3 ? static_cast<V>(x.c[i]) : V(0);
        if (!f.valid(static_cast<V>(x.a[i]), static_cast<V>(x.b[i]), ci)) {
          r.first_bad = static_cast<std::ptrdiff_t>(i);
          return;
        }
      }
    }
  }
  r.value = tree_sum(sums.data(), 0, nblocks);
  r.weight_sum = tree_sum(wsums.data(), 0, nblocks);
  if (x.reduction == Reduction::mean) r.value /= r.weight_sum;
}

}  // namespace detail

// Runs functor f over the inputs: writes out/grads as requested and returns the reduction. Elements
// outside f's domain are reported in first_bad (and the outputs are then meaningless).
template <class F, class T>
ElementwiseResult elementwise(const F& f, const ElementwiseArgs<T>& x) {
  ElementwiseResult r;
  const bool w = x.weight != nullptr;
  const bool out = x.reduction == Reduction::none && x.out != nullptr;
  const bool grad = x.grad_a != nullptr;
  using detail::elementwise_run;
  if (w) {
    if (out) grad ? elementwise_run<true, true, true>(f, x, r) : elementwise_run<true, true, false>(f, x, r);
    else grad ? elementwise_run<true, false, true>(f, x, r) : elementwise_run<true, false, false>(f, x, r);
  } else {
    if (out) grad ? elementwise_run<false, true, true>(f, x, r) : elementwise_run<false, true, false>(f, x, r);
    else grad ? elementwise_run<false, false, true>(f, x, r) : elementwise_run<false, false, false>(f, x, r);
  }
  return r;
}

// Bandwidth probe for the roofline: sum of a[i] + b[i], the simplest read of the same bytes a
// two-input loss reads, over the same blocks and threads, into 16 independent accumulators. Not a loss:
// `fastloss bench` times it beside the losses as the machine's read bandwidth.
template <class T>
double read_probe(const T* a, const T* b, std::size_t n, int num_threads) {
  constexpr std::size_t kLanes = 16;
  const std::size_t nblocks = (n + kBlock - 1) / kBlock;
  std::vector<double> sums(nblocks);
  for_each_block(nblocks, resolve_threads(num_threads, n), [&](std::size_t blk) {
    const T* const pa = a + blk * kBlock;
    const T* const pb = b + blk * kBlock;
    const std::size_t len = n - blk * kBlock < kBlock ? n - blk * kBlock : kBlock;
    const std::size_t full = len / kLanes * kLanes;
    double acc[kLanes] = {};
    for (std::size_t i = 0; i < full; i += kLanes)
      for (std::size_t k = 0; k < kLanes; ++k)
        acc[k] += static_cast<double>(pa[i + k]) + static_cast<double>(pb[i + k]);
    for (std::size_t i = full; i < len; ++i) acc[0] += static_cast<double>(pa[i]) + static_cast<double>(pb[i]);
    double s = 0.0;
    for (std::size_t k = 0; k < kLanes; ++k) s += acc[k];
    sums[blk] = s;
  }, kCheckEvery);
  return detail::tree_sum(sums.data(), 0, nblocks);
}

}  // namespace FASTLOSS_ISA_NAMESPACE
}  // namespace fastloss
