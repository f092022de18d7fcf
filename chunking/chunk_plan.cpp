#include "chunking/chunk_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"

namespace wanrt {

namespace {

// The closest values of the form stride * n + 1 around `value` (below may be absent).
std::string nearest_frame_counts(int value, int stride) {
  if (value < 1) return "1";
  const int below = (value - 1) / stride * stride + 1;
  const int above = below + stride;
  return below == value ? std::to_string(value) : fmt::format("{} or {}", below, above);
}

bool is_frame_count(int value, int stride) { return value >= 1 && (value - 1) % stride == 0; }

}  // namespace

std::string ChunkPlan::describe() const {
  return fmt::format("{} chunk{} of {} over {} (overlap >= {})", chunks.size(),
                     chunks.size() == 1 ? "" : "s", chunk_size, total, overlap);
}

ChunkPlan plan_chunks(std::int64_t total, std::int64_t chunk_size, std::int64_t overlap) {
  if (total < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("cannot chunk an axis of {} indices", total),
                "the axis to split must have at least 1 index");
  }
  if (chunk_size < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("chunk size must be >= 1, got {}", chunk_size),
                fmt::format("use a chunk size between 1 and {} (the whole axis)", total));
  }
  if (overlap < 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("overlap must be >= 0, got {}", overlap),
                fmt::format("use an overlap between 0 and {}", chunk_size - 1));
  }
  if (overlap >= chunk_size) {
    throw Error(
        ErrorCategory::kUsage,
        fmt::format("overlap {} must be smaller than the chunk size {}", overlap, chunk_size),
        fmt::format("use an overlap between 0 and {}, or a chunk size of at least {}",
                    chunk_size - 1, overlap + 1));
  }
  ChunkPlan plan;
  plan.total = total;
  plan.chunk_size = std::min(chunk_size, total);
  plan.overlap = overlap;
  if (chunk_size >= total) {
    plan.chunks.push_back({0, total});
    return plan;
  }
  // Regular steps of chunk_size - overlap, then one chunk flush with the end: its start is
  // past the previous one's (n was rounded up) and no later than a regular step would put it,
  // so its overlap is >= the requested one.
  const std::int64_t step = chunk_size - overlap;
  const std::int64_t count = (total - chunk_size + step - 1) / step + 1;
  plan.chunks.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i + 1 < count; ++i) {
    plan.chunks.push_back({i * step, i * step + chunk_size});
  }
  plan.chunks.push_back({total - chunk_size, total});
  return plan;
}

ChunkPlan plan_latent_frame_chunks(int frames, int chunk_frames, int overlap_frames,
                                   int temporal_stride) {
  const int s = temporal_stride;
  if (s < 1) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("VAE temporal stride must be >= 1, got {}", temporal_stride),
                "the stride comes from the bundle's VAE (4 for Wan 2.2)");
  }
  if (!is_frame_count(frames, s)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("video of {} frames is not of the form {}n+1", frames, s),
                fmt::format("use {} frames", nearest_frame_counts(frames, s)));
  }
  if (!is_frame_count(chunk_frames, s)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("chunk of {} frames is not of the form {}n+1", chunk_frames, s),
                fmt::format("use {} frames per chunk",
                            nearest_frame_counts(std::min(chunk_frames, frames), s)));
  }
  if (overlap_frames < 0 || overlap_frames % s != 0) {
    const int below = overlap_frames < 0 ? 0 : overlap_frames / s * s;
    throw Error(ErrorCategory::kUsage,
                fmt::format("overlap of {} frames is not a non-negative multiple of the VAE "
                            "temporal stride {}",
                            overlap_frames, s),
                overlap_frames < 0 ? fmt::format("use 0 or {} overlap frames", s)
                                   : fmt::format("use {} or {} overlap frames", below, below + s));
  }
  if (chunk_frames > frames) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("chunk of {} frames is larger than the video ({} frames)", chunk_frames,
                            frames),
                fmt::format("use at most {} frames per chunk ({} is the whole video in one "
                            "chunk)",
                            frames, frames));
  }
  if (overlap_frames >= chunk_frames) {
    throw Error(
        ErrorCategory::kUsage,
        fmt::format("overlap of {} frames must be smaller than the chunk ({} frames)",
                    overlap_frames, chunk_frames),
        fmt::format("use an overlap of at most {} frames (a multiple of {})", chunk_frames - 1, s));
  }
  // A chunk of s*n+1 frames decodes from n+1 latent frames; an overlap of s*k frames is k
  // latent frames. overlap < chunk in frames implies k < n + 1, so plan_chunks accepts it.
  return plan_chunks((frames - 1) / s + 1, (chunk_frames - 1) / s + 1, overlap_frames / s);
}

}  // namespace wanrt
