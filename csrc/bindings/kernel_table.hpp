// The interface between the per-ISA kernel translation units and the Python module: plain function
// pointers over type-erased arguments, so no template crosses from one ISA's code into another's.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastloss_bind {

// name in Python, functor in fastloss::loss
#define FASTLOSS_ELEMENTWISE_LOSSES(X)                       \
  X(mse, Mse)                                                \
  X(mae, Mae)                                                \
  X(huber, Huber)                                            \
  X(smooth_l1, SmoothL1)                                     \
  X(log_cosh, LogCosh)                                       \
  X(pseudo_huber, PseudoHuber)                               \
  X(pinball, Pinball)                                        \
  X(hinge, Hinge)                                            \
  X(hinge_squared, SquaredHinge)                             \
  X(binary_cross_entropy, Bce)                               \
  X(binary_cross_entropy_with_logits, BceLogits)             \
  X(binary_cross_entropy_with_logits_pw, BceLogitsPosWeight) \
  X(sigmoid_focal_loss, SigmoidFocal)                        \
  X(margin_ranking_loss, MarginRanking)                      \
  X(sigmoid, Sigmoid)                                        \
  X(kl_div, KlDiv)                                           \
  X(kl_div_log_target, KlDivLogTarget)                       \
  X(l1_penalty, L1Penalty)                                   \
  X(l2_penalty, L2Penalty)

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

// A functor's compile-time traits, for the driver's dispatch and for the test that checks them against
// the Python specs.
struct LossTraits {
  int arity;           // 2: (a, b); 3: (a, b, c)
  int grads;           // 1: d/da; 2: d/da and d/dc
  bool checks;         // the pass checks the inputs' domain
  bool float_compute;  // float32 inputs compute in float32 lanes
};

// name in Python, functor in fastloss::classwise_fn
#define FASTLOSS_CLASSWISE_KERNELS(X)       \
  X(cross_entropy, CrossEntropy)            \
  X(cross_entropy_prob, CrossEntropyProb)   \
  X(nll_loss, Nll)                          \
  X(softmax_focal_loss, SoftmaxFocal)       \
  X(poly1_cross_entropy, Poly1)             \
  X(multiclass_hinge_ww1, MultiMarginWW<1>) \
  X(multiclass_hinge_ww2, MultiMarginWW<2>) \
  X(multiclass_hinge_cs1, MultiMarginCS<1>) \
  X(multiclass_hinge_cs2, MultiMarginCS<2>) \
  X(softmax, Softmax)                       \
  X(log_softmax, LogSoftmax)                \
  X(logsumexp, LogSumExp)

enum class RowKernel : int {
#define FASTLOSS_ENUM(name, functor) name,
  FASTLOSS_CLASSWISE_KERNELS(FASTLOSS_ENUM)
#undef FASTLOSS_ENUM
  count
};
constexpr int kNumRowKernels = static_cast<int>(RowKernel::count);
constexpr const char* kRowKernelNames[] = {
#define FASTLOSS_NAME(name, functor) #name,
    FASTLOSS_CLASSWISE_KERNELS(FASTLOSS_NAME)
#undef FASTLOSS_NAME
};

struct RowCall {
  const void* x;
  std::size_t outer, classes, inner;
  const std::int64_t* target;
  const void* target_prob;
  const void* class_weight;
  bool has_ignore;
  std::int64_t ignore_index;
  int reduction;
  void* out;
  void* grad;
  void* rows_out;
  int num_threads;
  double params[kMaxParams];
};

struct RowTraits {
  bool loss, index_target, prob_target, row_output;
};

using RowFn = Result (*)(const RowCall&);
using ProbeFn = double (*)(const void*, const void*, std::size_t, int);

// Tiled pairwise kernels (fastloss::pairwise), one call struct for all of them.
#define FASTLOSS_PAIR_KERNELS(X) \
  X(distances)                   \
  X(contrastive)                 \
  X(batch_hard)                  \
  X(kmeans)

enum class PairKernel : int {
#define FASTLOSS_ENUM(name) name,
  FASTLOSS_PAIR_KERNELS(FASTLOSS_ENUM)
#undef FASTLOSS_ENUM
  count
};
constexpr int kNumPairKernels = static_cast<int>(PairKernel::count);

struct PairCall {
  const void* x;
  std::size_t n;
  const void* y;  // distances, kmeans (centers)
  std::size_t m;
  std::size_t d;
  const std::int64_t* labels;  // contrastive, batch_hard
  int metric;                  // distances: fastloss::pairwise::Metric
  double margin;               // contrastive
  void* out;                   // distances: n x m
  void* grad;                  // contrastive: n x d, or null
  double gscale;
  double* val_a;               // batch_hard: d_pos; kmeans: min squared distance
  std::int64_t* idx_a;         // batch_hard: i_pos; kmeans: label
  double* val_b;               // batch_hard: d_neg
  std::int64_t* idx_b;         // batch_hard: i_neg
  int num_threads;
};
using PairFn = double (*)(const PairCall&);

struct SimCeCall {
  const void* a;
  std::size_t n;
  const void* b;
  std::size_t m;
  std::size_t d;
  double scale;
  const double* row_scale;
  const std::int64_t* target;
  const std::int64_t* exclude;
  const double* extra;
  double* loss;
  double* dextra;
  void* grad_a;
  void* grad_b;
  double gscale;
  int num_threads;
};
using SimCeFn = void (*)(const SimCeCall&);

// name in Python, functor in fastloss::pairwise::rows
#define FASTLOSS_ROW_LOSSES(X)              \
  X(contrastive_loss, Contrastive)          \
  X(triplet_margin_loss, Triplet)           \
  X(cosine_embedding_loss, CosineEmbedding)

enum class RowLoss : int {
#define FASTLOSS_ENUM(name, functor) name,
  FASTLOSS_ROW_LOSSES(FASTLOSS_ENUM)
#undef FASTLOSS_ENUM
  count
};
constexpr int kNumRowLosses = static_cast<int>(RowLoss::count);
constexpr const char* kRowLossNames[] = {
#define FASTLOSS_NAME(name, functor) #name,
    FASTLOSS_ROW_LOSSES(FASTLOSS_NAME)
#undef FASTLOSS_NAME
};

struct RowsCall {
  const void* in[3];
  const double* target;
  std::size_t n, d;
  double* loss;
  void* grad[3];
  double gscale;
  int num_threads;
  double params[kMaxParams];
};
using RowsFn = void (*)(const RowsCall&);
using FmaProbeFn = double (*)(std::size_t, int);

// Segmentation overlap sums (fastloss::overlap)
struct OverlapCall {
  const void* x;
  std::size_t batch, channels, spatial;
  const void* target;            // dense, or null
  const std::int64_t* labels;    // or null
  int activation;                // 0 none, 1 sigmoid, 2 softmax
  bool squared;
  double* sums;                  // B x C x 3 (overlap_sums)
  const double* coef_i;          // B x C (overlap_grad)
  const double* coef_p;
  void* grad;                    // x's shape (overlap_grad)
  int num_threads;
};
using OverlapFn = std::ptrdiff_t (*)(const OverlapCall&);

struct KernelTable {
  const char* isa;
  ElementwiseFn elementwise[kNumLosses][2];  // [loss][0: float32, 1: float64]
  LossTraits loss_traits[kNumLosses];
  ProbeFn read_probe[2];
  RowFn classwise[kNumRowKernels][2];
  RowTraits row_traits[kNumRowKernels];
  PairFn pair[kNumPairKernels][2];
  SimCeFn sim_ce[2];
  RowsFn rows[kNumRowLosses][2];
  int row_inputs[kNumRowLosses];
  FmaProbeFn fma_probe[2];
  OverlapFn overlap_sums[2];
  OverlapFn overlap_grad[2];
};

const KernelTable& table_baseline();
const KernelTable& table_avx2();
const KernelTable& table_avx512();

}  // namespace fastloss_bind
