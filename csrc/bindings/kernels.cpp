// One copy of every kernel, compiled for the x86-64 level named by FASTLOSS_ISA_NAMESPACE. CMake builds
// this file once per level; the module picks a table at import time by what the CPU supports.
//
// The level is set with `#pragma GCC target` after the standard headers, so that only fastloss's own
// functions get the wider instructions: library templates instantiated here keep the baseline target and
// stay safe to merge with the other copies at link time.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernel_table.hpp"

#if defined(FASTLOSS_TARGET_AVX512)
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi2,prefer-vector-width=512")
#define FASTLOSS_HAVE_FMA 1
#define FASTLOSS_VEC_BYTES 64
#elif defined(FASTLOSS_TARGET_AVX2)
#pragma GCC target("avx2,fma,bmi2")
#define FASTLOSS_HAVE_FMA 1
#define FASTLOSS_VEC_BYTES 32
#endif

#include "fastloss/classwise.hpp"
#include "fastloss/elementwise.hpp"
#include "fastloss/overlap.hpp"
#include "fastloss/pairwise.hpp"
#include "fastloss/reduce.hpp"

#define FASTLOSS_CAT2(a, b) a##b
#define FASTLOSS_CAT(a, b) FASTLOSS_CAT2(a, b)
#define FASTLOSS_STR2(a) #a
#define FASTLOSS_STR(a) FASTLOSS_STR2(a)

namespace fastloss_bind {
namespace {

namespace fl = fastloss;

template <class F, class T>
Result run_elementwise(const Call& c) {
  fl::ElementwiseArgs<T> x;
  x.a = static_cast<const T*>(c.a);
  x.b = static_cast<const T*>(c.b);
  x.c = static_cast<const T*>(c.c);
  x.weight = static_cast<const T*>(c.weight);
  x.weight_scalar = c.weight_scalar;
  x.n = c.n;
  x.reduction = static_cast<fl::Reduction>(c.reduction);
  x.out = static_cast<T*>(c.out);
  x.grad_a = static_cast<T*>(c.grad_a);
  x.grad_c = static_cast<T*>(c.grad_c);
  x.num_threads = c.num_threads;
  const fl::ElementwiseResult r = fl::elementwise(F(c.params), x);
  return Result{r.value, r.weight_sum, r.first_bad};
}

template <class F, class T>
Result run_classwise(const RowCall& c) {
  fl::ClasswiseArgs<T> x;
  x.x = static_cast<const T*>(c.x);
  x.outer = c.outer;
  x.classes = c.classes;
  x.inner = c.inner;
  x.target = c.target;
  x.target_prob = static_cast<const T*>(c.target_prob);
  x.class_weight = static_cast<const T*>(c.class_weight);
  x.has_ignore = c.has_ignore;
  x.ignore_index = c.ignore_index;
  x.reduction = static_cast<fl::Reduction>(c.reduction);
  x.out = static_cast<T*>(c.out);
  x.grad = static_cast<T*>(c.grad);
  x.rows_out = static_cast<T*>(c.rows_out);
  x.num_threads = c.num_threads;
  const fl::ClasswiseResult r = fl::classwise(F(c.params), x);
  return Result{r.value, r.weight_sum, r.first_bad};
}

template <class T>
double run_probe(const void* a, const void* b, std::size_t n, int nt) {
  return fl::read_probe(static_cast<const T*>(a), static_cast<const T*>(b), n, nt);
}

namespace pw = fl::pairwise;

template <class T>
double run_pair_distances(const PairCall& c) {
  pw::distances(static_cast<const T*>(c.x), c.n, static_cast<const T*>(c.y), c.m, c.d,
                static_cast<pw::Metric>(c.metric), static_cast<T*>(c.out), c.num_threads);
  return 0.0;
}

template <class T>
double run_pair_contrastive(const PairCall& c) {
  return pw::pair_contrastive(static_cast<const T*>(c.x), c.n, c.d, c.labels, c.margin, static_cast<T*>(c.grad),
                              c.gscale, c.num_threads);
}

template <class T>
double run_pair_batch_hard(const PairCall& c) {
  pw::batch_hard(static_cast<const T*>(c.x), c.n, c.d, c.labels, c.val_a, c.idx_a, c.val_b, c.idx_b,
                 c.num_threads);
  return 0.0;
}

template <class T>
double run_pair_kmeans(const PairCall& c) {
  pw::nearest_center(static_cast<const T*>(c.x), c.n, static_cast<const T*>(c.y), c.m, c.d, c.val_a, c.idx_a,
                     c.num_threads);
  return 0.0;
}

template <class T>
void run_sim_ce(const SimCeCall& c) {
  pw::SimCeArgs<T> q;
  q.a = static_cast<const T*>(c.a);
  q.n = c.n;
  q.b = static_cast<const T*>(c.b);
  q.m = c.m;
  q.d = c.d;
  q.scale = c.scale;
  q.row_scale = c.row_scale;
  q.target = c.target;
  q.exclude = c.exclude;
  q.extra = c.extra;
  q.loss = c.loss;
  q.dextra = c.dextra;
  q.grad_a = static_cast<T*>(c.grad_a);
  q.grad_b = static_cast<T*>(c.grad_b);
  q.gscale = c.gscale;
  q.num_threads = c.num_threads;
  pw::sim_ce(q);
}

template <class F, class T>
void run_rows(const RowsCall& c) {
  pw::RowArgs<T> a;
  for (int k = 0; k < 3; ++k) {
    a.in[k] = static_cast<const T*>(c.in[k]);
    a.grad[k] = static_cast<T*>(c.grad[k]);
  }
  a.target = c.target;
  a.n = c.n;
  a.d = c.d;
  a.loss = c.loss;
  a.gscale = c.gscale;
  a.num_threads = c.num_threads;
  pw::rowwise(F(c.params), a);
}

template <class T>
fl::overlap::Args<T> overlap_args(const OverlapCall& c) {
  fl::overlap::Args<T> a;
  a.x = static_cast<const T*>(c.x);
  a.batch = c.batch;
  a.channels = c.channels;
  a.spatial = c.spatial;
  a.target = static_cast<const T*>(c.target);
  a.labels = c.labels;
  a.activation = static_cast<fl::overlap::Activation>(c.activation);
  a.squared = c.squared;
  a.num_threads = c.num_threads;
  return a;
}

template <class T>
std::ptrdiff_t run_overlap_sums(const OverlapCall& c) {
  return fl::overlap::sums(overlap_args<T>(c), c.sums);
}

template <class T>
std::ptrdiff_t run_overlap_grad(const OverlapCall& c) {
  fl::overlap::grad(overlap_args<T>(c), c.coef_i, c.coef_p, static_cast<T*>(c.grad));
  return -1;
}

const KernelTable kTable = {
    FASTLOSS_STR(FASTLOSS_ISA_NAMESPACE),
    {
#define FASTLOSS_ROW(name, functor) \
  {&run_elementwise<fl::loss::functor, float>, &run_elementwise<fl::loss::functor, double>},
        FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_ROW)
#undef FASTLOSS_ROW
    },
    {
#define FASTLOSS_TRAITS(name, functor)                                             \
  {fl::loss::functor::kArity, fl::loss::functor::kGrads, fl::loss::functor::kChecks, \
   fl::loss::functor::kFloatCompute},
        FASTLOSS_ELEMENTWISE_LOSSES(FASTLOSS_TRAITS)
#undef FASTLOSS_TRAITS
    },
    {&run_probe<float>, &run_probe<double>},
    {
#define FASTLOSS_ROW(name, functor) \
  {&run_classwise<fl::classwise_fn::functor, float>, &run_classwise<fl::classwise_fn::functor, double>},
        FASTLOSS_CLASSWISE_KERNELS(FASTLOSS_ROW)
#undef FASTLOSS_ROW
    },
    {
#define FASTLOSS_TRAITS(name, functor)                                                  \
  {fl::classwise_fn::functor::kLoss, fl::classwise_fn::functor::kIndexTarget, \
   fl::classwise_fn::functor::kProbTarget, fl::classwise_fn::functor::kRowOutput},
        FASTLOSS_CLASSWISE_KERNELS(FASTLOSS_TRAITS)
#undef FASTLOSS_TRAITS
    },
    {
#define FASTLOSS_ROW(name) {&run_pair_##name<float>, &run_pair_##name<double>},
        FASTLOSS_PAIR_KERNELS(FASTLOSS_ROW)
#undef FASTLOSS_ROW
    },
    {&run_sim_ce<float>, &run_sim_ce<double>},
    {
#define FASTLOSS_ROW(name, functor) {&run_rows<pw::rows::functor, float>, &run_rows<pw::rows::functor, double>},
        FASTLOSS_ROW_LOSSES(FASTLOSS_ROW)
#undef FASTLOSS_ROW
    },
    {
#define FASTLOSS_INPUTS(name, functor) static_cast<int>(pw::rows::functor::kInputs),
        FASTLOSS_ROW_LOSSES(FASTLOSS_INPUTS)
#undef FASTLOSS_INPUTS
    },
    {&pw::fma_probe<float>, &pw::fma_probe<double>},
    {&run_overlap_sums<float>, &run_overlap_sums<double>},
    {&run_overlap_grad<float>, &run_overlap_grad<double>},
};

}  // namespace

const KernelTable& FASTLOSS_CAT(table_, FASTLOSS_ISA_NAMESPACE)() { return kTable; }

}  // namespace fastloss_bind
