// fastloss._core: dtype dispatch, argument checks and GIL release around the C++ kernels. Everything
// reaching a kernel has been checked here, so no Python input can crash the interpreter: a violation
// raises ValueError or TypeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastloss/config.hpp"
#include "kernel_table.hpp"

namespace py = pybind11;
using namespace fastloss_bind;

namespace {

void check_reduction(int reduction) {
  using fastloss::Reduction;
  if (reduction < static_cast<int>(Reduction::none) || reduction > static_cast<int>(Reduction::mean))
    throw py::value_error("reduction must be 0 (none), 1 (sum) or 2 (mean)");
}

// The poll function of fastloss::interrupt: runs Python's signal handlers (with the GIL, briefly) and
// says whether one raised. Outside the main thread it finds nothing, as Python runs handlers there only.
bool poll_signals() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Runs a kernel without the GIL, interruptible (Ctrl-C) between blocks; raises what the signal handler
// raised (KeyboardInterrupt) when it stopped the call, so no partial output is ever returned.
template <class F>
auto run_kernel(F&& f) -> decltype(f()) {
  const fastloss::interrupt::Armed armed;
  if constexpr (std::is_void_v<decltype(f())>) {
    {
      py::gil_scoped_release release;
      f();
    }
    if (armed.interrupted()) throw py::error_already_set();
  } else {
    auto r = [&] {
      py::gil_scoped_release release;
      return f();
    }();
    if (armed.interrupted()) throw py::error_already_set();
    return r;
  }
}

bool cpu_supports_avx2() {
#if defined(__x86_64__) && defined(FASTLOSS_MULTI_ISA)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_supports_avx512() {
#if defined(__x86_64__) && defined(FASTLOSS_MULTI_ISA)
  __builtin_cpu_init();
  return cpu_supports_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

// Tables this CPU can run, best last.
std::vector<const KernelTable*> supported_tables() {
  std::vector<const KernelTable*> t{&table_baseline()};
#ifdef FASTLOSS_MULTI_ISA
  if (cpu_supports_avx2()) t.push_back(&table_avx2());
  if (cpu_supports_avx512()) t.push_back(&table_avx512());
#endif
  return t;
}

const KernelTable* g_table = nullptr;

void select_simd(const std::string& name) {
  for (const KernelTable* t : supported_tables())
    if (name == t->isa) {
      g_table = t;
      return;
    }
  std::string have;
  for (const KernelTable* t : supported_tables()) have += std::string(have.empty() ? "" : ", ") + t->isa;
  throw py::value_error("SIMD level '" + name + "' is not available on this CPU (available: " + have + ")");
}

Loss loss_from_name(const std::string& name) {
  for (int i = 0; i < kNumLosses; ++i)
    if (name == kLossNames[i]) return static_cast<Loss>(i);
  throw py::value_error("unknown elementwise loss '" + name + "'");
}

// Dtypes are compared by value (the normalized type number and the byte order), never by object identity:
// an array that went through pickle, or a dtype carrying metadata, is a distinct but equal descriptor.
// A byte-swapped descriptor is refused here (the Python layer converts it to native first). This costs a
// few loads, where PyArray_EquivTypes costs about a microsecond a call in NumPy 2.
template <class T>
bool has_dtype(const py::array& x) {
  const py::dtype dt = x.dtype();
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  constexpr char kSwapped = '<';
#else
  constexpr char kSwapped = '>';
#endif
  return dt.normalized_num() == py::dtype::num_of<T>() && dt.byteorder() != kSwapped;
}

// C-contiguous and aligned: the kernels read typed elements straight from the buffer.
bool is_usable(const py::array& x) {
  return (x.flags() & py::array::c_style) && (x.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_);
}

void require_usable(const py::array& x, const std::string& what) {
  if (!is_usable(x)) throw py::value_error(what + " must be C-contiguous and aligned");
}

int dtype_index(const py::array& x, const char* what) {
  if (has_dtype<float>(x)) return 0;
  if (has_dtype<double>(x)) return 1;
  throw py::type_error(std::string(what) + " must be a native float32 or float64 array, got " +
                       std::string(py::str(x.dtype())));
}

// a * b, or a ValueError where it overflows size_t (a forged call must not wrap a size check).
std::size_t checked_mul(std::size_t a, std::size_t b, const char* what) {
  std::size_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw py::value_error(std::string(what) + " overflows the size type");
  return r;
}

// A checked view of an optional input: contiguous, of the call's dtype and length.
const void* input_ptr(const py::object& o, const char* what, int dtype, std::size_t n, bool required) {
  if (o.is_none()) {
    if (required) throw py::value_error(std::string(what) + " is required by this loss");
    return nullptr;
  }
  if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(what) + " must be a NumPy array");
  const auto x = py::reinterpret_borrow<py::array>(o);
  if (dtype_index(x, what) != dtype) throw py::type_error(std::string(what) + " must have the dtype of a");
  require_usable(x, what);
  if (static_cast<std::size_t>(x.size()) != n)
    throw py::value_error(std::string(what) + " must have as many elements as a");
  return x.data();
}

py::array new_like(int dtype, std::size_t n) {
  if (dtype == 0) return py::array_t<float>(static_cast<py::ssize_t>(n));
  return py::array_t<double>(static_cast<py::ssize_t>(n));
}

py::tuple elementwise(const std::string& name, const py::array& a, const py::object& b, const py::object& c,
                      const py::object& weight, double weight_scalar, const std::vector<double>& params,
                      int reduction, bool want_grad, int num_threads) {
  const Loss loss = loss_from_name(name);
  const int li = static_cast<int>(loss);
  const int dt = dtype_index(a, "a");
  require_usable(a, "a");
  check_reduction(reduction);
  if (params.size() > static_cast<std::size_t>(kMaxParams)) throw py::value_error("too many parameters");
  const std::size_t n = static_cast<std::size_t>(a.size());

  Call call{};
  call.a = a.data();
  call.b = input_ptr(b, "b", dt, n, true);
  const bool has_c = g_table->loss_traits[li].arity == 3;
  call.c = input_ptr(c, "c", dt, n, has_c);
  if (!has_c && call.c) throw py::value_error("this loss takes no third input");
  call.weight = input_ptr(weight, "weight", dt, n, false);
  call.weight_scalar = weight_scalar;
  call.n = n;
  call.reduction = reduction;
  call.num_threads = num_threads;
  for (std::size_t i = 0; i < params.size(); ++i) call.params[i] = params[i];

  py::object out = py::none(), grad_a = py::none(), grad_c = py::none();
  if (reduction == static_cast<int>(fastloss::Reduction::none)) {
    py::array o = new_like(dt, n);
    call.out = o.mutable_data();
    out = o;
  }
  if (want_grad) {
    py::array g = new_like(dt, n);
    call.grad_a = g.mutable_data();
    grad_a = g;
    if (g_table->loss_traits[li].grads == 2) {
      py::array g2 = new_like(dt, n);
      call.grad_c = g2.mutable_data();
      grad_c = g2;
    }
  }
  const ElementwiseFn fn = g_table->elementwise[li][dt];
  const Result r = run_kernel([&] { return fn(call); });
  return py::make_tuple(r.value, r.weight_sum, static_cast<py::ssize_t>(r.first_bad), out, grad_a, grad_c);
}

RowKernel row_kernel_from_name(const std::string& name) {
  for (int i = 0; i < kNumRowKernels; ++i)
    if (name == kRowKernelNames[i]) return static_cast<RowKernel>(i);
  throw py::value_error("unknown class-wise kernel '" + name + "'");
}

// x: C-contiguous scores of `outer * classes * inner` elements, laid out (outer, classes, inner).
py::tuple classwise(const std::string& name, const py::array& x, std::size_t outer, std::size_t classes,
                    std::size_t inner, const py::object& target, const py::object& target_prob,
                    const py::object& class_weight, std::optional<std::int64_t> ignore_index,
                    const std::vector<double>& params,
                    int reduction, bool want_grad, int num_threads) {
  const int ki = static_cast<int>(row_kernel_from_name(name));
  const RowTraits tr = g_table->row_traits[ki];
  const int dt = dtype_index(x, "x");
  require_usable(x, "x");
  check_reduction(reduction);
  if (params.size() > static_cast<std::size_t>(kMaxParams)) throw py::value_error("too many parameters");
  const std::size_t n = static_cast<std::size_t>(x.size());
  const std::size_t npos = checked_mul(outer, inner, "outer * inner");
  if (checked_mul(npos, classes, "outer * classes * inner") != n)
    throw py::value_error("outer * classes * inner must equal x.size");

  RowCall call{};
  call.x = x.data();
  call.outer = outer;
  call.classes = classes;
  call.inner = inner;
  call.has_ignore = ignore_index.has_value();
  call.ignore_index = ignore_index.value_or(0);
  call.reduction = reduction;
  call.num_threads = num_threads;
  for (std::size_t i = 0; i < params.size(); ++i) call.params[i] = params[i];
  py::array tgt;
  if (tr.index_target) {
    if (target.is_none()) throw py::value_error("this kernel needs class-index targets");
    if (!py::isinstance<py::array>(target)) throw py::type_error("target must be a NumPy array");
    tgt = py::reinterpret_borrow<py::array>(target);
    if (!has_dtype<std::int64_t>(tgt) || !is_usable(tgt))
      throw py::type_error("target must be a C-contiguous, aligned int64 array");
    if (static_cast<std::size_t>(tgt.size()) != npos) throw py::value_error("target must have outer * inner elements");
    call.target = static_cast<const std::int64_t*>(tgt.data());
  }
  call.target_prob = input_ptr(target_prob, "target_prob", dt, n, tr.prob_target);
  call.class_weight = input_ptr(class_weight, "class_weight", dt, classes, false);

  py::object out = py::none(), grad = py::none(), rows_out = py::none();
  if (!tr.loss || reduction == static_cast<int>(fastloss::Reduction::none)) {
    py::array o = new_like(dt, npos);
    call.out = o.mutable_data();
    out = o;
  }
  if (tr.loss ? want_grad : tr.row_output) {
    py::array g = new_like(dt, n);
    (tr.loss ? call.grad : call.rows_out) = g.mutable_data();
    (tr.loss ? grad : rows_out) = g;
  }
  const RowFn fn = g_table->classwise[ki][dt];
  const Result r = run_kernel([&] { return fn(call); });
  return py::make_tuple(r.value, r.weight_sum, static_cast<py::ssize_t>(r.first_bad), out,
                        tr.loss ? grad : rows_out);
}

// ---- pairwise family -----------------------------------------------------------------------------

// A checked C-contiguous (rows, d) matrix of dtype `dt` (-1: any float dtype, returned in dt).
const void* matrix(const py::array& x, const char* what, int& dt, std::size_t& rows, std::size_t& d) {
  const int t = dtype_index(x, what);
  if (dt >= 0 && t != dt) throw py::type_error(std::string(what) + " must have the dtype of the first input");
  dt = t;
  if (x.ndim() != 2) throw py::value_error(std::string(what) + " must be a 2-D array");
  require_usable(x, what);
  rows = static_cast<std::size_t>(x.shape(0));
  const auto dd = static_cast<std::size_t>(x.shape(1));
  if (d != static_cast<std::size_t>(-1) && dd != d)
    throw py::value_error(std::string(what) + " must have as many columns as the first input");
  d = dd;
  return x.data();
}

template <class T>
const T* vector_of(const py::object& o, const char* what, std::size_t n, bool required) {
  if (o.is_none()) {
    if (required) throw py::value_error(std::string(what) + " is required");
    return nullptr;
  }
  if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(what) + " must be a NumPy array");
  const auto x = py::reinterpret_borrow<py::array>(o);
  if (!has_dtype<T>(x) || !is_usable(x) || x.ndim() != 1)
    throw py::type_error(std::string(what) + " must be a C-contiguous, aligned 1-D array of " +
                         std::string(py::str(py::dtype::of<T>())));
  if (static_cast<std::size_t>(x.size()) != n) throw py::value_error(std::string(what) + " has the wrong length");
  return static_cast<const T*>(x.data());
}

py::array new_matrix(int dtype, std::size_t rows, std::size_t cols) {
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)};
  if (dtype == 0) return py::array_t<float>(shape);
  return py::array_t<double>(shape);
}

constexpr std::size_t kAny = static_cast<std::size_t>(-1);

py::array pairwise_distances(const py::array& x, const py::array& y, const std::string& metric, int num_threads) {
  int dt = -1;
  std::size_t n = 0, m = 0, d = kAny;
  PairCall c{};
  c.x = matrix(x, "x", dt, n, d);
  c.y = matrix(y, "y", dt, m, d);
  const char* names[] = {"euclidean", "sqeuclidean", "cosine", "manhattan"};
  c.metric = -1;
  for (int i = 0; i < 4; ++i)
    if (metric == names[i]) c.metric = i;
  if (c.metric < 0) throw py::value_error("unknown metric '" + metric + "'");
  c.n = n;
  c.m = m;
  c.d = d;
  c.num_threads = num_threads;
  py::array out = new_matrix(dt, n, m);
  c.out = out.mutable_data();
  const PairFn fn = g_table->pair[static_cast<int>(PairKernel::distances)][dt];
  run_kernel([&] { fn(c); });
  return out;
}

py::tuple pairwise_contrastive(const py::array& x, const py::object& labels, double margin, bool want_grad,
                               double grad_scale, int num_threads) {
  int dt = -1;
  std::size_t n = 0, d = kAny;
  PairCall c{};
  c.x = matrix(x, "x", dt, n, d);
  c.n = n;
  c.d = d;
  c.labels = vector_of<std::int64_t>(labels, "labels", n, true);
  c.margin = margin;
  c.gscale = grad_scale;
  c.num_threads = num_threads;
  py::object grad = py::none();
  if (want_grad) {
    py::array g = new_matrix(dt, n, d);
    c.grad = g.mutable_data();
    grad = g;
  }
  const PairFn fn = g_table->pair[static_cast<int>(PairKernel::contrastive)][dt];
  const double value = run_kernel([&] { return fn(c); });
  return py::make_tuple(value, grad);
}

py::tuple batch_hard(const py::array& x, const py::object& labels, int num_threads) {
  int dt = -1;
  std::size_t n = 0, d = kAny;
  PairCall c{};
  c.x = matrix(x, "x", dt, n, d);
  c.n = n;
  c.d = d;
  c.labels = vector_of<std::int64_t>(labels, "labels", n, true);
  c.num_threads = num_threads;
  const auto len = static_cast<py::ssize_t>(n);
  py::array_t<double> dp(len), dn(len);
  py::array_t<std::int64_t> ip(len), in(len);
  c.val_a = dp.mutable_data();
  c.idx_a = ip.mutable_data();
  c.val_b = dn.mutable_data();
  c.idx_b = in.mutable_data();
  const PairFn fn = g_table->pair[static_cast<int>(PairKernel::batch_hard)][dt];
  run_kernel([&] { fn(c); });
  return py::make_tuple(dp, ip, dn, in);
}

py::tuple kmeans(const py::array& x, const py::array& centers, int num_threads) {
  int dt = -1;
  std::size_t n = 0, k = 0, d = kAny;
  PairCall c{};
  c.x = matrix(x, "x", dt, n, d);
  c.y = matrix(centers, "centers", dt, k, d);
  if (k == 0 && n > 0) throw py::value_error("centers must hold at least one center");
  c.n = n;
  c.m = k;
  c.d = d;
  c.num_threads = num_threads;
  const auto len = static_cast<py::ssize_t>(n);
  py::array_t<double> d2(len);
  py::array_t<std::int64_t> lab(len);
  c.val_a = d2.mutable_data();
  c.idx_a = lab.mutable_data();
  const PairFn fn = g_table->pair[static_cast<int>(PairKernel::kmeans)][dt];
  run_kernel([&] { fn(c); });
  return py::make_tuple(d2, lab);
}

py::tuple sim_ce(const py::array& a, const py::array& b, double scale, const py::object& target,
                 const py::object& exclude, const py::object& extra, bool want_grad, double grad_scale,
                 int num_threads, const py::object& row_scale) {
  int dt = -1;
  std::size_t n = 0, m = 0, d = kAny;
  SimCeCall c{};
  c.a = matrix(a, "a", dt, n, d);
  c.b = matrix(b, "b", dt, m, d);
  c.n = n;
  c.m = m;
  c.d = d;
  c.scale = scale;
  c.target = vector_of<std::int64_t>(target, "target", n, false);
  c.exclude = vector_of<std::int64_t>(exclude, "exclude", n, false);
  c.extra = vector_of<double>(extra, "extra", n, false);
  c.row_scale = vector_of<double>(row_scale, "row_scale", n, false);
  if (c.row_scale && c.a == c.b) throw py::value_error("sim_ce: row_scale needs a and b to be different arrays");
  // Every target must name a column or the extra logit: the kernel reads b's target row.
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t t = c.target ? c.target[i] : -1;
    if (t < -1 || t >= static_cast<std::int64_t>(m) || (t == -1 && !c.extra))
      throw py::value_error("sim_ce: target " + std::to_string(t) + " at row " + std::to_string(i) +
                            " is neither a column nor the extra logit");
  }
  c.gscale = grad_scale;
  c.num_threads = num_threads;
  const auto len = static_cast<py::ssize_t>(n);
  py::array_t<double> loss(len);
  c.loss = loss.mutable_data();
  py::object dextra = py::none(), ga = py::none(), gb = py::none();
  if (want_grad) {
    // The same matrix as a and b (nt_xent): one gradient, b's added to a's, returned as gb = None.
    py::array g1 = new_matrix(dt, n, d);
    c.grad_a = g1.mutable_data();
    ga = g1;
    if (c.a == c.b && n == m) {
      c.grad_b = c.grad_a;
    } else {
      py::array g2 = new_matrix(dt, m, d);
      c.grad_b = g2.mutable_data();
      gb = g2;
    }
    if (c.extra) {
      py::array_t<double> de(len);
      c.dextra = de.mutable_data();
      dextra = de;
    }
  }
  const SimCeFn fn = g_table->sim_ce[dt];
  run_kernel([&] { fn(c); });
  return py::make_tuple(loss, dextra, ga, gb);
}

py::tuple rowwise(const std::string& kernel, const std::vector<py::array>& inputs, const py::object& target,
                  const std::vector<double>& params, bool want_grad, double grad_scale, int num_threads) {
  int ki = -1;
  for (int i = 0; i < kNumRowLosses; ++i)
    if (kernel == kRowLossNames[i]) ki = i;
  if (ki < 0) throw py::value_error("unknown row-wise loss '" + kernel + "'");
  const int nin = g_table->row_inputs[ki];
  if (static_cast<int>(inputs.size()) != nin)
    throw py::value_error(kernel + " takes " + std::to_string(nin) + " inputs");
  if (params.size() > static_cast<std::size_t>(kMaxParams)) throw py::value_error("too many parameters");
  int dt = -1;
  std::size_t n = 0, d = kAny;
  RowsCall c{};
  for (int k = 0; k < nin; ++k) {
    std::size_t rows = 0;
    c.in[k] = matrix(inputs[static_cast<std::size_t>(k)], "input", dt, rows, d);
    if (k > 0 && rows != n) throw py::value_error("inputs must have the same number of rows");
    n = rows;
  }
  c.n = n;
  c.d = d;
  c.target = vector_of<double>(target, "target", n, ki != static_cast<int>(RowLoss::triplet_margin_loss));
  for (std::size_t i = 0; i < params.size(); ++i) c.params[i] = params[i];
  c.gscale = grad_scale;
  c.num_threads = num_threads;
  py::array_t<double> loss(static_cast<py::ssize_t>(n));
  c.loss = loss.mutable_data();
  py::object grads = py::none();
  if (want_grad) {
    py::list gl;
    for (int k = 0; k < nin; ++k) {
      py::array g = new_matrix(dt, n, d);
      c.grad[k] = g.mutable_data();
      gl.append(g);
    }
    grads = py::tuple(gl);
  }
  const RowsFn fn = g_table->rows[ki][dt];
  run_kernel([&] { fn(c); });
  return py::make_tuple(loss, grads);
}

// ---- segmentation overlap sums --------------------------------------------------------------------

// x: C-contiguous (B, C, S); exactly one of target (x's dtype and shape) and labels (int64 (B, S)).
OverlapCall overlap_call(const py::array& x, const py::object& target, const py::object& labels, int activation,
                         bool squared, int num_threads, int& dt) {
  dt = dtype_index(x, "x");
  if (x.ndim() != 3 || !is_usable(x)) throw py::value_error("x must be a C-contiguous, aligned (B, C, S) array");
  if (activation < 0 || activation > 2) throw py::value_error("activation must be 0, 1 or 2");
  OverlapCall c{};
  c.x = x.data();
  c.batch = static_cast<std::size_t>(x.shape(0));
  c.channels = static_cast<std::size_t>(x.shape(1));
  c.spatial = static_cast<std::size_t>(x.shape(2));
  c.target = input_ptr(target, "target", dt, static_cast<std::size_t>(x.size()), false);
  if (!labels.is_none()) {  // (B, S) class indices
    if (!py::isinstance<py::array>(labels)) throw py::type_error("labels must be a NumPy array");
    const auto l = py::reinterpret_borrow<py::array>(labels);
    if (!has_dtype<std::int64_t>(l) || !is_usable(l) ||
        static_cast<std::size_t>(l.size()) != checked_mul(c.batch, c.spatial, "B * S"))
      throw py::type_error("labels must be a C-contiguous, aligned int64 (B, S) array");
    c.labels = static_cast<const std::int64_t*>(l.data());
  }
  if ((c.target == nullptr) == (c.labels == nullptr)) throw py::value_error("give exactly one of target and labels");
  c.activation = activation;
  c.squared = squared;
  c.num_threads = num_threads;
  return c;
}

py::tuple overlap_sums(const py::array& x, const py::object& target, const py::object& labels, int activation,
                       bool squared, int num_threads) {
  int dt = 0;
  OverlapCall c = overlap_call(x, target, labels, activation, squared, num_threads, dt);
  py::array_t<double> sums({static_cast<py::ssize_t>(c.batch), static_cast<py::ssize_t>(c.channels), py::ssize_t(3)});
  c.sums = sums.mutable_data();
  const OverlapFn fn = g_table->overlap_sums[dt];
  const std::ptrdiff_t bad = run_kernel([&] { return fn(c); });
  return py::make_tuple(sums, static_cast<py::ssize_t>(bad));
}

py::array overlap_grad(const py::array& x, const py::object& target, const py::object& labels, int activation,
                       bool squared, const py::object& coef_i, const py::object& coef_p, int num_threads,
                       const py::object& out_obj) {
  int dt = 0;
  OverlapCall c = overlap_call(x, target, labels, activation, squared, num_threads, dt);
  const std::size_t bc = checked_mul(c.batch, c.channels, "B * C");
  auto coef = [&](const py::object& o, const char* what) {
    if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(what) + " must be a NumPy array");
    const auto a = py::reinterpret_borrow<py::array>(o);
    if (!has_dtype<double>(a) || !is_usable(a) || static_cast<std::size_t>(a.size()) != bc)
      throw py::type_error(std::string(what) + " must be a C-contiguous, aligned float64 (B, C) array");
    return static_cast<const double*>(a.data());
  };
  c.coef_i = coef(coef_i, "coef_i");
  c.coef_p = coef(coef_p, "coef_p");
  // The kernel reads each label as a class index: they must have been checked by overlap_sums.
  if (c.labels)
    for (std::size_t k = 0; k < c.batch * c.spatial; ++k)
      if (c.labels[k] < 0 || c.labels[k] >= static_cast<std::int64_t>(c.channels))
        throw py::value_error("labels must lie in [0, C)");
  const std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array out;
  if (out_obj.is_none()) {
    out = dt == 0 ? py::array(py::array_t<float>(shape)) : py::array(py::array_t<double>(shape));
  } else {  // a slice of the caller's gradient (the batch items of one chunk)
    if (!py::isinstance<py::array>(out_obj)) throw py::type_error("out must be a NumPy array");
    out = py::reinterpret_borrow<py::array>(out_obj);
    if (dtype_index(out, "out") != dt || !is_usable(out) || !out.writeable() ||
        std::vector<py::ssize_t>(out.shape(), out.shape() + out.ndim()) != shape)
      throw py::type_error("out must be a writeable C-contiguous, aligned array of x's dtype and shape");
  }
  c.grad = out.mutable_data();
  const OverlapFn fn = g_table->overlap_grad[dt];
  run_kernel([&] { fn(c); });
  return out;
}

double fma_probe(bool float32, std::size_t iters, int num_threads) {
  const FmaProbeFn fn = g_table->fma_probe[float32 ? 0 : 1];
  return run_kernel([&] { return fn(iters, num_threads); });
}

double read_probe(const py::array& a, const py::array& b, int num_threads) {
  const int dt = dtype_index(a, "a");
  require_usable(a, "a");
  const void* pb = input_ptr(b, "b", dt, static_cast<std::size_t>(a.size()), true);
  const ProbeFn fn = g_table->read_probe[dt];
  return run_kernel([&] { return fn(a.data(), pb, static_cast<std::size_t>(a.size()), num_threads); });
}

int max_threads() {
  if (fastloss::forked_child()) return 1;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// How many threads, the calling one included and at most n, this process can run at once now. A
// thread count above it would make the OpenMP runtime end the interpreter ("Thread creation failed")
// at the next parallel region, so the setters ask first. The probe threads wait until all are started.
int startable_threads(int n) {
  py::gil_scoped_release release;
  std::promise<void> go;
  const std::shared_future<void> started = go.get_future().share();
  std::vector<std::thread> threads;
  threads.reserve(n > 1 ? static_cast<std::size_t>(n - 1) : 0);
  try {
    for (int i = 1; i < n; ++i) threads.emplace_back([started] { started.wait(); });
  } catch (const std::system_error&) {
    // resource limit reached: `threads` holds what could start
  }
  go.set_value();
  for (std::thread& t : threads) t.join();
  return 1 + static_cast<int>(threads.size());
}

py::dict build_info() {
  py::dict d;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = "unknown";
#endif
#ifdef _OPENMP
  d["openmp"] = std::to_string(_OPENMP);
#else
  d["openmp"] = "none";
#endif
  py::list levels;
  for (const KernelTable* t : supported_tables()) levels.append(t->isa);
  d["simd_levels"] = levels;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastloss compiled kernels (C++17, OpenMP)";
  g_table = supported_tables().back();
  // A forked child runs every kernel on its calling thread (fastloss::forked_child()), and Ctrl-C reaches
  // long calls through the signal poll.
  pthread_atfork(nullptr, nullptr, [] { fastloss::forked_child().store(true); });
  fastloss::interrupt::poll_fn().store(&poll_signals);
  if (const char* env = std::getenv("FASTLOSS_SIMD"); env && *env) {
    try {
      select_simd(env);
    } catch (const std::exception&) {
      // An unusable request keeps the best level; fastloss.info() shows which one runs.
    }
  }
  m.def("elementwise", &elementwise, py::arg("loss"), py::arg("a"), py::arg("b"), py::arg("c"),
        py::arg("weight"), py::arg("weight_scalar"), py::arg("params"), py::arg("reduction"),
        py::arg("want_grad"), py::arg("num_threads"),
        "Run an elementwise loss kernel: returns (value, weight_sum, first_bad, out, grad_a, grad_c).");
  m.def("classwise", &classwise, py::arg("kernel"), py::arg("x"), py::arg("outer"), py::arg("classes"),
        py::arg("inner"), py::arg("target"), py::arg("target_prob"), py::arg("class_weight"),
        py::arg("ignore_index"), py::arg("params"), py::arg("reduction"), py::arg("want_grad"),
        py::arg("num_threads"),
        "Run a class-wise kernel: returns (value, weight_sum, first_bad, per-position out, rows).");
  m.def("read_probe", &read_probe, py::arg("a"), py::arg("b"), py::arg("num_threads"),
        "sum(a + b): the read-bandwidth probe behind the roofline.");
  m.def("pairwise_distances", &pairwise_distances, py::arg("x"), py::arg("y"), py::arg("metric"),
        py::arg("num_threads"), "Distance matrix (n, m) of the rows of x and y.");
  m.def("pairwise_contrastive", &pairwise_contrastive, py::arg("x"), py::arg("labels"), py::arg("margin"),
        py::arg("want_grad"), py::arg("grad_scale"), py::arg("num_threads"),
        "Sum of the contrastive loss over all pairs i < j: returns (value, grad).");
  m.def("batch_hard", &batch_hard, py::arg("x"), py::arg("labels"), py::arg("num_threads"),
        "Hardest positive and negative per anchor: (d_pos, i_pos, d_neg, i_neg).");
  m.def("kmeans", &kmeans, py::arg("x"), py::arg("centers"), py::arg("num_threads"),
        "Nearest center per row: (squared distance, index).");
  m.def("sim_ce", &sim_ce, py::arg("a"), py::arg("b"), py::arg("scale"), py::arg("target"),
        py::arg("exclude"), py::arg("extra"), py::arg("want_grad"), py::arg("grad_scale"),
        py::arg("num_threads"), py::arg("row_scale") = py::none(),
        "Cross-entropy of similarity rows: (loss, dextra, grad_a, grad_b); row_scale (n float64, optional) "
        "scales row i of a, grad_a being the gradient of the scaled rows.");
  m.def("rowwise", &rowwise, py::arg("kernel"), py::arg("inputs"), py::arg("target"), py::arg("params"),
        py::arg("want_grad"), py::arg("grad_scale"), py::arg("num_threads"),
        "Paired row losses: (loss per row, grads per input).");
  m.def("overlap_sums", &overlap_sums, py::arg("x"), py::arg("target"), py::arg("labels"), py::arg("activation"),
        py::arg("squared"), py::arg("num_threads"),
        "Per (batch, channel) sums I, P, G of the overlap losses: returns (sums (B, C, 3), first bad label).");
  m.def("overlap_grad", &overlap_grad, py::arg("x"), py::arg("target"), py::arg("labels"), py::arg("activation"),
        py::arg("squared"), py::arg("coef_i"), py::arg("coef_p"), py::arg("num_threads"), py::arg("out") = py::none(),
        "d L / d x of a function L of the overlap sums, given dL/dI and dL/dP per (batch, channel); into out "
        "when given (x's dtype and shape), else a new array.");
  m.def("fma_probe", &fma_probe, py::arg("float32"), py::arg("iters"), py::arg("num_threads"),
        "Register-only FMA loop: returns the floating-point operations done (time it for GFLOP/s).");
  m.def("max_threads", &max_threads, "omp_get_max_threads() of the calling thread (1 in a forked child).");
  m.def("startable_threads", &startable_threads, py::arg("n"),
        "How many threads (at most n, the caller included) the process can run at once now.");
  m.def("in_forked_child", [] { return fastloss::forked_child().load(); },
        "True in a child forked after the module was loaded: every kernel runs on one thread there.");
  m.def("build_info", &build_info, "Compiler, OpenMP version and the SIMD levels this CPU supports.");
  m.def("get_simd", [] { return std::string(g_table->isa); }, "The SIMD level in use.");
  m.def("set_simd", &select_simd, py::arg("level"), "Use another supported SIMD level (for testing).");
  py::list names, row_names;
  for (const char* n : kLossNames) names.append(n);
  for (const char* n : kRowKernelNames) row_names.append(n);
  m.attr("ELEMENTWISE_LOSSES") = names;
  m.attr("CLASSWISE_KERNELS") = row_names;
  // Every kernel's compile-time traits, which a test checks against the Python specs.
  py::dict elementwise_traits, classwise_traits, rowwise_traits;
  for (int i = 0; i < kNumLosses; ++i) {
    const LossTraits& t = g_table->loss_traits[i];
    elementwise_traits[kLossNames[i]] = py::dict(py::arg("arity") = t.arity, py::arg("grads") = t.grads,
                                                 py::arg("checks") = t.checks,
                                                 py::arg("float_compute") = t.float_compute);
  }
  for (int i = 0; i < kNumRowKernels; ++i) {
    const RowTraits& t = g_table->row_traits[i];
    classwise_traits[kRowKernelNames[i]] =
        py::dict(py::arg("loss") = t.loss, py::arg("index_target") = t.index_target,
                 py::arg("prob_target") = t.prob_target, py::arg("row_output") = t.row_output);
  }
  for (int i = 0; i < kNumRowLosses; ++i)
    rowwise_traits[kRowLossNames[i]] = py::dict(py::arg("inputs") = g_table->row_inputs[i]);
  m.attr("REDUCTIONS") = py::dict(py::arg("none") = static_cast<int>(fastloss::Reduction::none),
                                  py::arg("sum") = static_cast<int>(fastloss::Reduction::sum),
                                  py::arg("mean") = static_cast<int>(fastloss::Reduction::mean));
  m.attr("KERNEL_TRAITS") = py::dict(py::arg("elementwise") = elementwise_traits,
                                     py::arg("classwise") = classwise_traits,
                                     py::arg("rowwise") = rowwise_traits);
}
