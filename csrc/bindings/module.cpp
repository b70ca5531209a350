// fastloss._core: dtype dispatch, argument checks and GIL release around the C++ kernels. Everything
// reaching a kernel has been checked here, so no Python input can crash the interpreter: a violation
// raises ValueError or TypeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernel_table.hpp"

namespace py = pybind11;
using namespace fastloss_bind;

namespace {

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

int dtype_index(const py::array& x, const char* what) {
  if (x.dtype().is(py::dtype::of<float>())) return 0;
  if (x.dtype().is(py::dtype::of<double>())) return 1;
  throw py::type_error(std::string(what) + " must be a float32 or float64 array, got " +
                       std::string(py::str(x.dtype())));
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
  if (!(x.flags() & py::array::c_style)) throw py::value_error(std::string(what) + " must be C-contiguous");
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
  if (!(a.flags() & py::array::c_style)) throw py::value_error("a must be C-contiguous");
  if (reduction < 0 || reduction > 2) throw py::value_error("reduction must be 0 (none), 1 (sum) or 2 (mean)");
  if (params.size() > static_cast<std::size_t>(kMaxParams)) throw py::value_error("too many parameters");
  const std::size_t n = static_cast<std::size_t>(a.size());

  Call call{};
  call.a = a.data();
  call.b = input_ptr(b, "b", dt, n, true);
  const bool has_c = g_table->arity[li] == 3;
  call.c = input_ptr(c, "c", dt, n, has_c);
  if (!has_c && call.c) throw py::value_error("this loss takes no third input");
  call.weight = input_ptr(weight, "weight", dt, n, false);
  call.weight_scalar = weight_scalar;
  call.n = n;
  call.reduction = reduction;
  call.num_threads = num_threads;
  for (std::size_t i = 0; i < params.size(); ++i) call.params[i] = params[i];

  py::object out = py::none(), grad_a = py::none(), grad_c = py::none();
  if (reduction == 0) {
    py::array o = new_like(dt, n);
    call.out = o.mutable_data();
    out = o;
  }
  if (want_grad) {
    py::array g = new_like(dt, n);
    call.grad_a = g.mutable_data();
    grad_a = g;
    if (g_table->grads[li] == 2) {
      py::array g2 = new_like(dt, n);
      call.grad_c = g2.mutable_data();
      grad_c = g2;
    }
  }
  const ElementwiseFn fn = g_table->elementwise[li][dt];
  Result r;
  {
    py::gil_scoped_release release;
    r = fn(call);
  }
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
  if (!(x.flags() & py::array::c_style)) throw py::value_error("x must be C-contiguous");
  if (reduction < 0 || reduction > 2) throw py::value_error("reduction must be 0 (none), 1 (sum) or 2 (mean)");
  if (params.size() > static_cast<std::size_t>(kMaxParams)) throw py::value_error("too many parameters");
  const std::size_t n = static_cast<std::size_t>(x.size());
  if (outer * classes * inner != n) throw py::value_error("outer * classes * inner must equal x.size");
  const std::size_t npos = outer * inner;

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
    tgt = py::reinterpret_borrow<py::array>(target);
    if (!tgt.dtype().is(py::dtype::of<std::int64_t>()) || !(tgt.flags() & py::array::c_style))
      throw py::type_error("target must be a C-contiguous int64 array");
    if (static_cast<std::size_t>(tgt.size()) != npos) throw py::value_error("target must have outer * inner elements");
    call.target = static_cast<const std::int64_t*>(tgt.data());
  }
  call.target_prob = input_ptr(target_prob, "target_prob", dt, n, tr.prob_target);
  call.class_weight = input_ptr(class_weight, "class_weight", dt, classes, false);

  py::object out = py::none(), grad = py::none(), rows_out = py::none();
  if (!tr.loss || reduction == 0) {
    py::array o = new_like(dt, npos);
    call.out = o.mutable_data();
    out = o;
  }
  if (!tr.loss || want_grad) {
    py::array g = new_like(dt, n);
    (tr.loss ? call.grad : call.rows_out) = g.mutable_data();
    (tr.loss ? grad : rows_out) = g;
  }
  const RowFn fn = g_table->classwise[ki][dt];
  Result r;
  {
    py::gil_scoped_release release;
    r = fn(call);
  }
  return py::make_tuple(r.value, r.weight_sum, static_cast<py::ssize_t>(r.first_bad), out,
                        tr.loss ? grad : rows_out);
}

double read_probe(const py::array& a, const py::array& b, int num_threads) {
  const int dt = dtype_index(a, "a");
  if (!(a.flags() & py::array::c_style)) throw py::value_error("a must be C-contiguous");
  const void* pb = input_ptr(b, "b", dt, static_cast<std::size_t>(a.size()), true);
  const ProbeFn fn = g_table->read_probe[dt];
  py::gil_scoped_release release;
  return fn(a.data(), pb, static_cast<std::size_t>(a.size()), num_threads);
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
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
  m.def("max_threads", &max_threads, "omp_get_max_threads() of the calling thread.");
  m.def("build_info", &build_info, "Compiler, OpenMP version and the SIMD levels this CPU supports.");
  m.def("get_simd", [] { return std::string(g_table->isa); }, "The SIMD level in use.");
  m.def("set_simd", &select_simd, py::arg("level"), "Use another supported SIMD level (for testing).");
  py::list names, row_names;
  for (const char* n : kLossNames) names.append(n);
  for (const char* n : kRowKernelNames) row_names.append(n);
  m.attr("ELEMENTWISE_LOSSES") = names;
  m.attr("CLASSWISE_KERNELS") = row_names;
}
