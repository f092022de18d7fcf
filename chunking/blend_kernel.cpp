#include "chunking/blend_kernel.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace wanrt {

namespace {

// Element access in the compute type. bf16 is handled on its bits so that the compiler can
// vectorise the conversions (c10::BFloat16's own are branchy); fp16 goes through c10::Half.
template <typename T>
struct Elem {
  using Op = T;
  static Op load(const T& v) { return v; }
  static T store(Op v) { return v; }
};

template <>
struct Elem<c10::BFloat16> {
  using Op = float;
  static float load(const c10::BFloat16& v) {
    const std::uint32_t bits = static_cast<std::uint32_t>(v.x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  static c10::BFloat16 store(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    // Round to nearest even; NaN stays a (quiet) NaN.
    const std::uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    const std::uint16_t out = f != f ? std::uint16_t{0x7FC0} : static_cast<std::uint16_t>(rounded);
    return c10::BFloat16(out, c10::BFloat16::from_bits());
  }
};

template <>
struct Elem<c10::Half> {
  using Op = float;
  static float load(const c10::Half& v) { return static_cast<float>(v); }
  static c10::Half store(float f) { return c10::Half(f); }
};

// The inner loops are instantiated per dtype and, with GCC on x86-64 Linux, compiled three
// times (x86-64-v4 = AVX-512, v3 = AVX2/F16C, baseline SSE2), the best one picked at load
// time. The project is built for the baseline, where the bf16 <-> fp32 conversions limited
// the bf16 blend to ~13 GB/s against 28-41 GB/s with the clones (bench/blend_bench.cpp on
// the development VM).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define WANRT_BLEND_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WANRT_BLEND_CLONES
#endif

// The loops' pointers never alias (see blend_cpu_kernel_applies): no run-time overlap checks.
#if defined(__clang__)
#define WANRT_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define WANRT_IVDEP _Pragma("GCC ivdep")
#else
#define WANRT_IVDEP
#endif

// out[i] += in[i] * w, one weight for the run.
template <typename T>
inline __attribute__((always_inline)) void axpy_const(T* __restrict out, const T* __restrict in,
                                                      std::int64_t n, typename Elem<T>::Op w) {
  WANRT_IVDEP
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = Elem<T>::store(Elem<T>::load(out[i]) + Elem<T>::load(in[i]) * w);
  }
}

// out[r * out_stride + i] += in[r * in_stride + i] * w[i] over `rows` rows of `n` elements:
// one weight per element of a row, the same for every row.
template <typename T>
inline __attribute__((always_inline)) void axpy_each(T* out, std::int64_t out_stride, const T* in,
                                                     std::int64_t in_stride, std::int64_t rows,
                                                     std::int64_t n,
                                                     const typename Elem<T>::Op* __restrict w) {
  // Short output rows out_stride apart defeat the hardware prefetcher (each row starts with a
  // miss), so the start of the row ~8 KiB ahead is requested by hand. Measured with 1 thread
  // on rows of 64-256 elements: bf16 7.5 -> 12.5 GB/s, fp32 17 -> 20 GB/s.
  const std::int64_t row_bytes = n * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t fetch_bytes = std::min<std::int64_t>(row_bytes, 4096);
  const std::int64_t ahead = std::max<std::int64_t>(
      1, std::min<std::int64_t>(16, 8192 / std::max<std::int64_t>(row_bytes, 1)));
  for (std::int64_t r = 0; r < rows; ++r) {
    T* o = out + r * out_stride;
    const T* c = in + r * in_stride;
    if (r + ahead < rows) {
      const char* next = reinterpret_cast<const char*>(o + ahead * out_stride);
      for (std::int64_t b = 0; b < fetch_bytes; b += 64) __builtin_prefetch(next + b, 1);
    }
    WANRT_IVDEP
    for (std::int64_t i = 0; i < n; ++i) {
      o[i] = Elem<T>::store(Elem<T>::load(o[i]) + Elem<T>::load(c[i]) * w[i]);
    }
  }
}

// Non-template, multi-versioned entry points, overloaded per dtype.
#define WANRT_BLEND_LOOPS(T)                                                                  \
  WANRT_BLEND_CLONES void run_const(T* out, const T* in, std::int64_t n, Elem<T>::Op w) {     \
    axpy_const(out, in, n, w);                                                                \
  }                                                                                           \
  WANRT_BLEND_CLONES void run_each(T* out, std::int64_t out_stride, const T* in,              \
                                   std::int64_t in_stride, std::int64_t rows, std::int64_t n, \
                                   const Elem<T>::Op* w) {                                    \
    axpy_each(out, out_stride, in, in_stride, rows, n, w);                                    \
  }
WANRT_BLEND_LOOPS(float)
WANRT_BLEND_LOOPS(double)
WANRT_BLEND_LOOPS(c10::BFloat16)
WANRT_BLEND_LOOPS(c10::Half)
#undef WANRT_BLEND_LOOPS

template <typename T>
void accumulate(T* out, const T* in, const BlendLayout& l, const std::vector<double>& row_w,
                const std::vector<double>& col_w) {
  using Op = typename Elem<T>::Op;
  const std::vector<Op> rw(row_w.begin(), row_w.end());
  const std::vector<Op> cw(col_w.begin(), col_w.end());
  // With one weight per element (inner == 1), the products row_w[h] * col_w[w] as a table,
  // so that the inner loop multiplies once.
  std::vector<Op> table;
  if (l.inner == 1) {
    table.resize(static_cast<std::size_t>(l.rows * l.cols));
    for (std::int64_t h = 0; h < l.rows; ++h) {
      for (std::int64_t w = 0; w < l.cols; ++w) {
        table[static_cast<std::size_t>(h * l.cols + w)] = static_cast<Op>(
            row_w[static_cast<std::size_t>(h)] * col_w[static_cast<std::size_t>(w)]);
      }
    }
  }
  // A segment is one (a, h, m): `cols * inner` elements contiguous in both tensors.
  const std::int64_t seg_len = l.cols * l.inner;
  const std::int64_t total = l.outer * l.rows * l.mid * seg_len;
  if (total == 0) return;
  const std::int64_t out_row_stride = l.cols_total * l.inner;  // between consecutive (a, h, m)
  at::parallel_for(0, total, at::internal::GRAIN_SIZE, [&](std::int64_t begin, std::int64_t end) {
    // Divide once per task, then step the (a, h, m) counters: segments can be short (a blend
    // along the last dimension has segments of one chunk width).
    std::int64_t seg = begin / seg_len;
    std::int64_t j0 = begin - seg * seg_len;
    std::int64_t m = seg % l.mid;
    std::int64_t h = (seg / l.mid) % l.rows;
    std::int64_t a = seg / (l.mid * l.rows);
    std::int64_t pos = begin;
    while (pos < end) {
      const std::int64_t j1 = std::min(seg_len, j0 + (end - pos));
      const std::int64_t out_row = (a * l.rows_total + l.row_start + h) * l.mid + m;
      T* o = out + out_row * out_row_stride + l.col_start * l.inner;
      const T* c = in + seg * seg_len;
      const Op s = rw[static_cast<std::size_t>(h)];
      if (l.inner == 1 && j0 == 0 && j1 == seg_len) {
        // Whole segments of one (a, h) in one call: they are out_row_stride apart.
        const std::int64_t count = std::min((end - pos) / seg_len, l.mid - m);
        run_each(o, out_row_stride, c, seg_len, count, seg_len, table.data() + h * l.cols);
        pos += count * seg_len;
        seg += count;
        m += count;
        if (m == l.mid) {
          m = 0;
          if (++h == l.rows) {
            h = 0;
            ++a;
          }
        }
        continue;
      }
      if (l.inner == 1) {
        run_each(o + j0, 0, c + j0, 0, 1, j1 - j0, table.data() + h * l.cols + j0);
      } else {
        std::int64_t j = j0;
        while (j < j1) {
          const std::int64_t w = j / l.inner;
          const std::int64_t run = std::min(j1, (w + 1) * l.inner) - j;
          run_const(o + j, c + j, run, s * cw[static_cast<std::size_t>(w)]);
          j += run;
        }
      }
      pos += j1 - j0;
      j0 = 0;
      ++seg;
      if (++m == l.mid) {
        m = 0;
        if (++h == l.rows) {
          h = 0;
          ++a;
        }
      }
    }
  });
}

}  // namespace

std::int64_t checked_blend_dim(const at::Tensor& output, std::int64_t dim, const char* owner) {
  if (!output.defined()) {
    throw Error(ErrorCategory::kUsage, fmt::format("{}: the output tensor is undefined", owner),
                "preallocate the output, e.g. at::empty(shape, options)");
  }
  if (!at::isFloatingType(output.scalar_type())) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: the output has dtype {}, not a floating type", owner,
                            c10::toString(output.scalar_type())),
                "blend into a float32, float64, bfloat16 or float16 tensor");
  }
  const std::int64_t ndim = output.dim();
  if (dim < -ndim || dim >= ndim) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: dimension {} is out of range for an output of shape {}", owner,
                            dim, shape_string(output.sizes())),
                fmt::format("use a dimension between {} and {}", -ndim, ndim - 1));
  }
  return dim < 0 ? dim + ndim : dim;
}

void check_plan_fits(const at::Tensor& output, std::int64_t dim, const ChunkPlan& plan,
                     const char* owner, const char* axis) {
  if (plan.chunks.empty() || plan.total != output.size(dim)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}: the {} plan ({}) does not fit dimension {} of the output, of "
                            "shape {}",
                            owner, axis, plan.describe(), dim, shape_string(output.sizes())),
                fmt::format("plan over the output's size along that dimension, e.g. "
                            "plan_chunks({}, ...)",
                            output.size(dim)));
  }
}

std::string shape_string(at::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes.begin(), sizes.end(), ", "));
}

at::Tensor to_output_options(const at::Tensor& chunk, const at::Tensor& output) {
  if (chunk.scalar_type() == output.scalar_type() && chunk.device() == output.device()) {
    return chunk;
  }
  return chunk.to(output.device(), output.scalar_type());
}

at::Tensor weight_tensor(const std::vector<double>& w, at::TensorOptions options, std::int64_t ndim,
                         std::int64_t dim) {
  std::vector<std::int64_t> shape(static_cast<std::size_t>(ndim - dim), 1);
  shape[0] = static_cast<std::int64_t>(w.size());
  const at::Tensor host = at::tensor(at::ArrayRef<double>(w), at::kDouble);
  return host.to(options).view(shape);
}

void blend_accumulate_aten(at::Tensor region, const at::Tensor& chunk, const at::Tensor& weights) {
  if (region.device().is_cpu() && region.scalar_type() == at::kHalf) {
    region.add_(chunk * weights);
  } else {
    region.addcmul_(chunk, weights);
  }
}

bool blend_cpu_kernel_applies(const at::Tensor& output, const at::Tensor& chunk) {
  const auto dtype = output.scalar_type();
  const bool known =
      dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf;
  // The loops assume that the chunk does not alias the output (see axpy_each).
  return known && chunk.scalar_type() == dtype && output.device().is_cpu() &&
         chunk.device().is_cpu() && output.is_contiguous() && chunk.is_contiguous() &&
         !chunk.is_alias_of(output);
}

void blend_accumulate_cpu(at::Tensor& output, const at::Tensor& chunk, const BlendLayout& layout,
                          const std::vector<double>& row_w, const std::vector<double>& col_w) {
  switch (output.scalar_type()) {
    case at::kFloat:
      accumulate(output.data_ptr<float>(), chunk.data_ptr<float>(), layout, row_w, col_w);
      break;
    case at::kDouble:
      accumulate(output.data_ptr<double>(), chunk.data_ptr<double>(), layout, row_w, col_w);
      break;
    case at::kBFloat16:
      accumulate(output.data_ptr<c10::BFloat16>(), chunk.data_ptr<c10::BFloat16>(), layout, row_w,
                 col_w);
      break;
    case at::kHalf:
      accumulate(output.data_ptr<c10::Half>(), chunk.data_ptr<c10::Half>(), layout, row_w, col_w);
      break;
    default:
      throw Error(ErrorCategory::kInternal,
                  fmt::format("blend_accumulate_cpu: unsupported dtype {}",
                              c10::toString(output.scalar_type())));
  }
}

}  // namespace wanrt
