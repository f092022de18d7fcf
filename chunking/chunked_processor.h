// Drives a per-chunk computation over an axis, blends the results, reports progress, can be
// cancelled, names the failing chunk in errors, and releases memory between chunks.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"

namespace wanrt {

/// Options of one chunked run.
struct ChunkedRunOptions {
  BlendKind blend = BlendKind::kLinear;
  std::string label = "chunk";                       ///< names the work in progress and errors
  std::function<void(std::size_t done, std::size_t total)> progress;
  std::function<bool()> cancelled;                   ///< polled before each chunk
  std::function<void()> release_memory;              ///< called between chunks when memory_cleanup
};

class ChunkedProcessor {
 public:
  /// chunk_size and overlap_frames along the processed axis; memory_cleanup: drop each
  /// chunk's result once blended and call options.release_memory between chunks.
  ChunkedProcessor(std::int64_t chunk_size, std::int64_t overlap_frames, bool memory_cleanup);

  /// Runs `compute(chunk)` for every chunk of plan_chunks(total, chunk_size, overlap) and
  /// blends the results along `dim` into `output` (size `total` along dim, zeroed here).
  /// Errors from compute are rethrown as wanrt::Error with the same category, prefixed by
  /// "<label> i/n (range start-end): "; cancellation throws Error(kCancelled).
  at::Tensor process_chunked_generation(at::Tensor output, std::int64_t dim,
                                        const std::function<at::Tensor(const Chunk&)>& compute,
                                        const ChunkedRunOptions& options = {}) const;

  /// The plan this processor uses for an axis of `total` indices.
  ChunkPlan plan(std::int64_t total) const;

  std::int64_t chunk_size() const { return chunk_size_; }
  std::int64_t overlap() const { return overlap_; }
  bool memory_cleanup() const { return memory_cleanup_; }

 private:
  std::int64_t chunk_size_;
  std::int64_t overlap_;
  bool memory_cleanup_;
};

}  // namespace wanrt
