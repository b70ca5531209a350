// The interface between the per-ISA kernel translation units and the Python module: plain function
// pointers over type-erased arguments, so no template crosses from one ISA's code into another's.
#pragma once

#include <cstddef>

namespace fastloss_bind {

// name in Python, functor in fastloss::loss
#define FASTLOSS_ELEMENTWISE_LOSSES(X) \
  X(mse, Mse)                          \
  X(mae, Mae)                          \
  X(huber, Huber)                      \
  X(smooth_l1, SmoothL1)               \
  X(log_cosh, LogCosh)                 \
  X(pseudo_huber, PseudoHuber)         \
  X(pinball, Pinball)                  \
  X(hinge, Hinge)                      \
  X(squared_hinge, SquaredHinge)       \
  X(bce, Bce)                          \
  X(bce_logits, BceLogits)             \
  X(bce_logits_pw, BceLogitsPosWeight) \
  X(sigmoid_focal, SigmoidFocal)       \
  X(margin_ranking, MarginRanking)

enum class Loss : int {
#define FASTLOSS_ENUM(name, functor) name,
  FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_ENUM)
#undef FASTLOSS_ENUM
  count
};
constexpr int kNumLosses = static_cast<int>(Loss::count);
constexpr int kMaxParams = 4;

constexpr const char* kLossNames[] = {
#define FASTLOSS_NAME(name, functor) #name,
    FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_NAME)
#undef FASTLOSS_NAME
};

struct Call {
  const void* a;
  const void* b;
  const void* c;
  const void* weight;
  double weight_scalar;
  std::size_t n;
  int reduction;
  void* out;
  void* grad_a;
  void* grad_c;
  int num_threads;
  double params[kMaxParams];
};

struct Result {
  double value;
  double weight_sum;
  std::ptrdiff_t first_bad;
};

using ElementwiseFn = Result (*)(const Call&);
using ProbeFn = double (*)(const void*, const void*, std::size_t, int);

struct KernelTable {
  const char* isa;
  ElementwiseFn elementwise[kNumLosses][2];  // [loss][0: float32, 1: float64]
  int arity[kNumLosses];                     // 2: (a, b); 3: (a, b, c)
  int grads[kNumLosses];                     // 1: d/da; 2: d/da and d/dc
  ProbeFn read_probe[2];
};

const KernelTable& table_baseline();
const KernelTable& table_avx2();
const KernelTable& table_avx512();

}  // namespace fastloss_bind
