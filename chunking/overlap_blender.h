// Accumulates weighted chunks of real tensors into one preallocated output.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"

namespace wanrt {

/// Blends the chunks of `plan` along dimension `dim` of `output` (zeroed on construction;
/// any floating dtype, any device). Each add() does output[chunk] += chunk * w in one fused
/// pass (memory-bound), with w from chunk_weights(plan, kind), so that after every chunk has
/// been added the output is the partition-of-unity blend; chunks may come in any order.
/// Chunks of another dtype or device are converted to the output's first (an extra copy).
/// Precision: on the CPU (contiguous output and chunk) the pass computes in fp32 (fp64 for an
/// fp64 output) with the fp64 weights and rounds once per add into the output's dtype, so a
/// bf16/fp16 index covered by k chunks is within k unit roundoffs (k * 2^-8 relative for bf16,
/// k * 2^-11 for fp16) of the exact blend. Elsewhere (CUDA, strided tensors) it is ATen's
/// addcmul_ with the weights stored in the output's dtype, which for bf16/fp16 adds their
/// rounding (2^-8 / 2^-11 relative per weight).
class OverlapBlender {
 public:
  /// `output` must have size plan.total along `dim`; throws Error(kUsage) otherwise.
  OverlapBlender(at::Tensor output, std::int64_t dim, ChunkPlan plan, BlendKind kind);

  /// Adds chunk `index`; `chunk` must match the output except along `dim`, where its size is
  /// the chunk's. Throws Error(kUsage) naming the chunk on a shape mismatch.
  void add(std::size_t index, const at::Tensor& chunk);

  /// The output tensor (complete once every chunk has been added).
  const at::Tensor& output() const { return output_; }
  /// The plan being blended.
  const ChunkPlan& plan() const { return plan_; }
  /// How many chunks have been added.
  std::size_t added() const { return added_; }

 private:
  at::Tensor output_;
  std::int64_t dim_;
  ChunkPlan plan_;
  std::vector<at::Tensor> weights_;  // per chunk, shaped to broadcast along dim_
  std::size_t added_ = 0;
  std::vector<std::vector<double>> host_weights_;  // chunk_weights(plan, kind), for the CPU kernel
  std::vector<bool> seen_;                         // which chunks were added (each one once)
};

}  // namespace wanrt
