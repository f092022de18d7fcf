// The fused accumulation behind OverlapBlender and TileBlender (internal to chunking/).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "chunking/chunk_plan.h"

namespace wanrt {

/// The layout of one weighted accumulation, with the output seen as the contiguous 5-D view
/// [outer, rows_total, mid, cols_total, inner] and the chunk as [outer, rows, mid, cols, inner]:
///   output[a, row_start + h, m, col_start + w, i] += chunk[a, h, m, w, i] * row_w[h] * col_w[w]
/// A 1-D blend uses rows = rows_total = 1 and row_w = {1}.
struct BlendLayout {
  std::int64_t outer = 1;
  std::int64_t rows = 1;
  std::int64_t rows_total = 1;
  std::int64_t row_start = 0;
  std::int64_t mid = 1;
  std::int64_t cols = 1;
  std::int64_t cols_total = 1;
  std::int64_t col_start = 0;
  std::int64_t inner = 1;
};

/// Checks that `output` is a defined floating tensor and returns `dim` wrapped into
/// [0, output.dim()) (negative counts from the end); Error(kUsage) naming `owner` otherwise.
std::int64_t checked_blend_dim(const at::Tensor& output, std::int64_t dim, const char* owner);

/// Error(kUsage) naming `owner` and `axis` unless plan.total == output.size(dim) and the plan
/// has at least one chunk.
void check_plan_fits(const at::Tensor& output, std::int64_t dim, const ChunkPlan& plan,
                     const char* owner, const char* axis);

/// "[2, 3, 4]".
std::string shape_string(at::IntArrayRef sizes);

/// Moves/casts `chunk` to the output's device and dtype when they differ (no-op otherwise).
at::Tensor to_output_options(const at::Tensor& chunk, const at::Tensor& output);

/// The fp64 weights of one chunk as a tensor with `options` (dtype, device), shaped
/// [size, 1, ..., 1] so that it broadcasts along dimension `dim` of an `ndim`-D tensor.
at::Tensor weight_tensor(const std::vector<double>& w, at::TensorOptions options, std::int64_t ndim,
                         std::int64_t dim);

/// The ATen path, for what the CPU kernel does not take: region += chunk * weights in one
/// addcmul_ pass (two passes, mul then add_, for fp16 on the CPU, which lacks addcmul_).
void blend_accumulate_aten(at::Tensor region, const at::Tensor& chunk, const at::Tensor& weights);

/// True when blend_accumulate_cpu can take `output` and `chunk`: both on the CPU, contiguous,
/// of the same floating dtype (fp32, fp64, bf16, fp16), not sharing storage.
bool blend_cpu_kernel_applies(const at::Tensor& output, const at::Tensor& chunk);

/// One pass over the chunk: reads it and the output region once, writes the region once,
/// split over LibTorch's intra-op threads (at::parallel_for). Computes in fp32 for
/// fp32/bf16/fp16 and in fp64 for fp64, from the fp64 weights, rounding once per element into
/// the output's dtype. Requires blend_cpu_kernel_applies(output, chunk).
void blend_accumulate_cpu(at::Tensor& output, const at::Tensor& chunk, const BlendLayout& layout,
                          const std::vector<double>& row_w, const std::vector<double>& col_w);

}  // namespace wanrt
