// Chunk planning over one axis (frames, latent frames, tile rows/columns) with overlap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wanrt {

/// One chunk: the half-open range [start, end) of the axis.
struct Chunk {
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - start; }
};

/// Chunks covering [0, total): every index covered, none empty, all of size `chunk_size`
/// (the last one is aligned to the end, so its overlap with the previous one may be larger
/// than requested), consecutive chunks overlapping by at least `overlap`.
struct ChunkPlan {
  std::int64_t total = 0;
  std::int64_t chunk_size = 0;
  std::int64_t overlap = 0;  ///< requested (minimum) overlap
  std::vector<Chunk> chunks;

  /// Human-readable summary, e.g. "3 chunks of 8 over 20 (overlap >= 2)".
  std::string describe() const;
};

/// Plans chunks over [0, total). chunk_size >= total gives one chunk. Throws Error(kUsage)
/// naming what would work when chunk_size < 1, overlap < 0 or overlap >= chunk_size.
ChunkPlan plan_chunks(std::int64_t total, std::int64_t chunk_size, std::int64_t overlap);

/// Wan's frame chunking done in latent space: `frames` video frames (4n+1) map to
/// (frames - 1) / temporal_stride + 1 latent frames; a chunk of `chunk_frames` video frames
/// (4n+1) with `overlap_frames` (a multiple of the stride) becomes a latent chunk of
/// (chunk_frames - 1) / stride + 1 with overlap_frames / stride latent overlap. Throws
/// Error(kUsage) with the nearest valid values when a count breaks the 4n+1 / stride rules or
/// the chunk is larger than the video.
ChunkPlan plan_latent_frame_chunks(int frames, int chunk_frames, int overlap_frames,
                                   int temporal_stride);

}  // namespace wanrt
