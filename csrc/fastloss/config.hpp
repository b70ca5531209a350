// Compile-time configuration shared by every kernel header.
#pragma once

// The extension compiles the kernels once per x86-64 level (baseline, AVX2+FMA, AVX-512) and picks one at
// run time. Each copy lives in its own inline namespace so that the copies never merge at link time (an
// AVX-512 copy of an inline function must not replace the baseline one). Standalone C++ users get
// `generic` and see the plain `fastloss::` names either way.
#ifndef FASTLOSS_ISA_NAMESPACE
#define FASTLOSS_ISA_NAMESPACE generic
#endif

// True where fused multiply-add is an instruction; the polynomial kernels use it for accuracy and speed.
// Elsewhere a*b+c is kept separate (the project builds with -ffp-contract=off so that plain losses give
// the same bits on every x86-64 level).
#ifndef FASTLOSS_HAVE_FMA
#if defined(__FMA__)
#define FASTLOSS_HAVE_FMA 1
#else
#define FASTLOSS_HAVE_FMA 0
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FASTLOSS_INLINE inline __attribute__((always_inline))
#else
#define FASTLOSS_INLINE inline
#endif

#include <atomic>
#include <chrono>

// Process-wide state shared by every SIMD copy of the kernels (outside the ISA namespaces on purpose: one
// object per process, not one per copy).
namespace fastloss {

// How a loss's per-element terms combine: the codes every front-end passes (Python's
// fastloss._specs.Reduction mirrors them, and a test checks it against fastloss._core.REDUCTIONS).
enum class Reduction : int { none = 0, sum = 1, mean = 2 };

// True in a child process forked after this module was loaded. GNU OpenMP cannot start a team in such a
// child once its parent has run one (the child waits forever on threads that were not copied), so every
// kernel runs on the calling thread there. The extension registers the at-fork handler that sets it.
inline std::atomic<bool>& forked_child() {
  static std::atomic<bool> flag{false};
  return flag;
}

// Interrupting a long call (Ctrl-C). The front-end arms the calling thread before a kernel and installs a
// poll function; the parallel drivers tick a `Poller` between blocks. On the armed (calling)
// thread it reads the clock every few blocks and, once `kPoll` has passed, asks the poll function, which
// returns true when the call must stop. A stopped call skips its remaining blocks (and every later driver
// loop of the same call); the front-end then discards the outputs and raises. Worker threads are never
// armed, so for them a tick is a test of a null pointer.
namespace interrupt {

using PollFn = bool (*)();
constexpr auto kPoll = std::chrono::milliseconds(40);

inline std::atomic<PollFn>& poll_fn() {
  static std::atomic<PollFn> fn{nullptr};
  return fn;
}

struct State {
  bool armed = false;
  bool stopped = false;
  unsigned count = 0;
  std::chrono::steady_clock::time_point next{};
};

inline State& state() {
  thread_local State s;
  return s;
}

// True once the armed call running on this thread was interrupted.
inline bool stopped() {
  const State& s = state();
  return s.armed && s.stopped;
}

// The per-thread view a driver loop takes once (one thread-local lookup per thread and loop, not one
// per block): tick() between blocks is then a register test on worker threads, and on the armed one a
// counter, a clock read every `every` blocks and, once `kPoll` has passed, the poll. True once the call
// must stop.
class Poller {
 public:
  explicit Poller(unsigned every) : s_(state().armed ? &state() : nullptr), every_(every) {}
  bool tick() {
    if (s_ == nullptr) return false;
    if (s_->stopped) return true;
    if (++s_->count < every_) return false;
    return check();
  }

 private:
  // Out of line and cold: inlined into every driver's block loop, the clock read and the poll made the
  // class-wise and row-wise kernels 10-20% slower even on one thread (nll, multiclass_hinge on 10^6
  // float64, against the same loops without the poller); kept out, the loops match them again.
  [[gnu::noinline, gnu::cold]] bool check() {
    s_->count = 0;
    const auto now = std::chrono::steady_clock::now();
    if (s_->next == std::chrono::steady_clock::time_point{}) {  // the call's first clock read
      s_->next = now + kPoll;
      return false;
    }
    if (now < s_->next) return false;
    s_->next = now + kPoll;
    const PollFn fn = poll_fn().load(std::memory_order_relaxed);
    if (fn && fn()) s_->stopped = true;
    return s_->stopped;
  }

  State* s_;
  unsigned every_;
};

// Arms the calling thread for one kernel call. The clock is first read at the first check (not here: a
// short call never reads it), and the first poll comes `kPoll` later, so a short call never polls.
struct Armed {
  Armed() {
    State& s = state();
    s.armed = true;
    s.stopped = false;
    s.count = 0;
    s.next = {};
  }
  ~Armed() { state() = State{}; }
  bool interrupted() const { return state().stopped; }
  Armed(const Armed&) = delete;
  Armed& operator=(const Armed&) = delete;
};

}  // namespace interrupt
}  // namespace fastloss
