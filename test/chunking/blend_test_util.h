// Helpers shared by the blender tests.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"

namespace wanrt_test {

inline const wanrt::BlendKind kAllBlendKinds[] = {wanrt::BlendKind::kFlat, wanrt::BlendKind::kLinear,
                                                  wanrt::BlendKind::kCosine,
                                                  wanrt::BlendKind::kPyramid};

/// How many chunks of `plan` cover each index, as a tensor broadcasting along `dim` of an
/// `ndim`-D tensor (for the rounding bounds of the half types).
inline at::Tensor coverage(const wanrt::ChunkPlan& plan, std::int64_t ndim, std::int64_t dim) {
  std::vector<double> count(static_cast<std::size_t>(plan.total), 0.0);
  for (const auto& c : plan.chunks) {
    for (std::int64_t i = c.start; i < c.end; ++i) count[static_cast<std::size_t>(i)] += 1.0;
  }
  std::vector<std::int64_t> shape(static_cast<std::size_t>(ndim - dim), 1);
  shape[0] = plan.total;
  return at::tensor(count, at::kDouble).view(shape);
}

}  // namespace wanrt_test
