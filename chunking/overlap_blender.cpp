#include "chunking/overlap_blender.h"

#include <fmt/format.h>

#include <utility>

#include "chunking/blend_kernel.h"
#include "runtime/error.h"

namespace wanrt {

OverlapBlender::OverlapBlender(at::Tensor output, std::int64_t dim, ChunkPlan plan, BlendKind kind)
    : output_(std::move(output)), plan_(std::move(plan)) {
  dim_ = checked_blend_dim(output_, dim, "overlap blender");
  check_plan_fits(output_, dim_, plan_, "overlap blender", "chunk");
  host_weights_ = chunk_weights(plan_, kind);
  // The tensors serve the ATen path (other devices, non-contiguous tensors); the CPU kernel
  // reads host_weights_ directly, so it skips building them.
  weights_.resize(host_weights_.size());
  if (!(output_.device().is_cpu() && output_.is_contiguous())) {
    for (std::size_t c = 0; c < host_weights_.size(); ++c) {
      weights_[c] = weight_tensor(host_weights_[c], output_.options(), output_.dim(), dim_);
    }
  }
  seen_.assign(plan_.chunks.size(), false);
  output_.zero_();
}

void OverlapBlender::add(std::size_t index, const at::Tensor& chunk) {
  const std::size_t n = plan_.chunks.size();
  if (index >= n) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("overlap blender: chunk index {} is out of range ({})", index,
                            plan_.describe()),
                fmt::format("use an index between 0 and {}", n - 1));
  }
  const Chunk& range = plan_.chunks[index];
  if (seen_[index]) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("overlap blender: chunk {} (range {}-{}) was already added", index,
                            range.start, range.end),
                "add each chunk once; make a new blender for a new output");
  }
  bool shape_ok = chunk.defined() && chunk.dim() == output_.dim();
  for (std::int64_t d = 0; shape_ok && d < output_.dim(); ++d) {
    shape_ok = chunk.size(d) == (d == dim_ ? range.size() : output_.size(d));
  }
  if (!shape_ok) {
    std::vector<std::int64_t> expected = output_.sizes().vec();
    expected[static_cast<std::size_t>(dim_)] = range.size();
    throw Error(ErrorCategory::kUsage,
                fmt::format("overlap blender: chunk {} (range {}-{}) has shape {}, expected {}",
                            index, range.start, range.end,
                            chunk.defined() ? shape_string(chunk.sizes()) : "undefined",
                            shape_string(expected)),
                fmt::format("return a tensor of the output's shape with {} indices along "
                            "dimension {}",
                            range.size(), dim_));
  }
  const at::Tensor src = to_output_options(chunk, output_);
  if (blend_cpu_kernel_applies(output_, src)) {
    BlendLayout layout;
    // The dimensions before dim_ go into `mid` (with rows = 1 it is the same as `outer`),
    // whose consecutive segments the kernel takes in one call.
    for (std::int64_t d = 0; d < dim_; ++d) layout.mid *= output_.size(d);
    for (std::int64_t d = dim_ + 1; d < output_.dim(); ++d) layout.inner *= output_.size(d);
    layout.cols = range.size();
    layout.cols_total = plan_.total;
    layout.col_start = range.start;
    blend_accumulate_cpu(output_, src, layout, {1.0}, host_weights_[index]);
  } else {
    if (!weights_[index].defined()) {
      weights_[index] = weight_tensor(host_weights_[index], output_.options(), output_.dim(), dim_);
    }
    blend_accumulate_aten(output_.narrow(dim_, range.start, range.size()), src, weights_[index]);
  }
  seen_[index] = true;
  ++added_;
}

}  // namespace wanrt
