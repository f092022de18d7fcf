#include "models/wan22/vae_decoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chunking/tile_blender.h"
#include "runtime/error.h"

namespace wanrt::wan22 {
namespace {

// One spatial tile: its latent rectangle, its latent view and its decoder cache.
struct Tile {
  std::size_t row = 0, col = 0;
  at::Tensor z;       // [1, z, T, th, tw], a view of the latent
  c10::IValue cache;  // List[Tensor] of this tile's decoder
};

}  // namespace

VaeTiling vae_tiling_for_pixels(int pixels, int spatial_stride) {
  if (spatial_stride < 1) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("VAE spatial stride must be >= 1, got {}", spatial_stride));
  }
  if (pixels < spatial_stride || pixels % spatial_stride != 0) {
    const int below = pixels / spatial_stride * spatial_stride;
    const std::string nearest = below < spatial_stride
                                    ? std::to_string(spatial_stride)
                                    : fmt::format("{} or {}", below, below + spatial_stride);
    throw Error(ErrorCategory::kUsage,
                fmt::format("--vae-tile {} is not a positive multiple of the VAE's spatial "
                            "stride {}",
                            pixels, spatial_stride),
                fmt::format("use --vae-tile {}", nearest));
  }
  VaeTiling tiling;
  tiling.tile = pixels / spatial_stride;
  tiling.overlap = std::min<std::int64_t>((tiling.tile + 3) / 4, tiling.tile - 1);
  return tiling;
}

VaeDecoder::VaeDecoder(torch::jit::Module vae, int temporal_stride, int spatial_stride)
    : vae_(std::move(vae)), temporal_stride_(temporal_stride), spatial_stride_(spatial_stride) {}

ChunkPlan VaeDecoder::time_plan(std::int64_t latent_frames, std::int64_t chunk_latent_frames) {
  return plan_chunks(latent_frames, chunk_latent_frames, 0);
}

ChunkPlan VaeDecoder::tile_plan(std::int64_t size, const VaeTiling& tiling) {
  if (tiling.tile <= 0) return plan_chunks(size, size, 0);
  return plan_chunks(size, tiling.tile, std::min(tiling.overlap, tiling.tile - 1));
}

ChunkPlan VaeDecoder::scale_plan(const ChunkPlan& plan, std::int64_t stride) {
  ChunkPlan scaled = plan;
  scaled.total *= stride;
  scaled.chunk_size *= stride;
  scaled.overlap *= stride;
  for (Chunk& c : scaled.chunks) {
    c.start *= stride;
    c.end *= stride;
  }
  return scaled;
}

std::int64_t VaeDecoder::decode(const at::Tensor& latent, const VaeDecodeOptions& options,
                                const Sink& sink) const {
  if (!latent.defined() || latent.dim() != 4 || latent.size(1) < 1) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("VAE decode needs a latent [z, T >= 1, h, w], got {}",
                            latent.defined() ? c10::str(latent.sizes()) : "an undefined tensor"));
  }
  if (options.tiling.tile < 0 || options.tiling.overlap < 0 ||
      (options.tiling.tile > 0 && options.tiling.overlap >= options.tiling.tile)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("VAE tiling: tile {} with overlap {} (latent pixels) is invalid",
                            options.tiling.tile, options.tiling.overlap),
                "the tile must be >= 1 and the overlap between 0 and tile - 1");
  }
  torch::jit::Module vae = vae_;  // a handle to the same module
  torch::jit::Method init_cache = vae.get_method("init_decode_cache");
  torch::jit::Method step = vae.get_method("decode_step");

  const at::Tensor z = latent.unsqueeze(0);
  const std::int64_t frames_total = z.size(2);
  const ChunkPlan time = time_plan(frames_total, options.chunk_latent_frames);
  const ChunkPlan rows = tile_plan(z.size(3), options.tiling);
  const ChunkPlan cols = tile_plan(z.size(4), options.tiling);
  const bool tiled = rows.chunks.size() * cols.chunks.size() > 1;

  std::vector<Tile> tiles;
  for (std::size_t r = 0; r < rows.chunks.size(); ++r) {
    for (std::size_t c = 0; c < cols.chunks.size(); ++c) {
      Tile tile;
      tile.row = r;
      tile.col = c;
      tile.z = z.slice(3, rows.chunks[r].start, rows.chunks[r].end)
                   .slice(4, cols.chunks[c].start, cols.chunks[c].end);
      tile.cache = init_cache({tile.z});
      tiles.push_back(std::move(tile));
    }
  }

  // Latent frames [start, end) of one tile, in order, carrying its cache.
  auto decode_tile = [&](Tile& tile, std::int64_t start, std::int64_t end) {
    std::vector<at::Tensor> pieces;
    for (std::int64_t t = start; t < end; ++t) {
      if (options.cancelled && options.cancelled()) {
        throw Error(ErrorCategory::kCancelled,
                    fmt::format("cancelled during VAE decode (latent frame {} of {})", t + 1,
                                frames_total));
      }
      auto out = step({tile.z.slice(2, t, t + 1), tile.cache}).toTuple();
      pieces.push_back(out->elements()[0].toTensor());
      tile.cache = out->elements()[1];
    }
    at::Tensor video = pieces.size() == 1 ? pieces[0] : at::cat(pieces, 2);
    return video[0].to(at::kCPU).to(at::kFloat);
  };

  std::int64_t next = 0, produced = 0;
  const std::int64_t stride = spatial_stride_;
  for (const Chunk& chunk : time.chunks) {
    // With overlap 0 only the end-aligned last chunk can reach back; its frames are done.
    const std::int64_t start = std::max(chunk.start, next);
    if (start >= chunk.end) continue;
    at::Tensor video;
    if (!tiled) {
      video = decode_tile(tiles[0], start, chunk.end);
    } else {
      // The output is allocated once the first tile tells how many frames this chunk has.
      std::optional<TileBlender> blender;
      for (Tile& tile : tiles) {
        const at::Tensor part = decode_tile(tile, start, chunk.end);
        if (!blender) {
          at::Tensor out = at::empty({3, part.size(1), z.size(3) * stride, z.size(4) * stride},
                                     at::TensorOptions().dtype(at::kFloat));
          blender.emplace(out, 2, 3, scale_plan(rows, stride), scale_plan(cols, stride),
                          options.blend);
        }
        blender->add(tile.row, tile.col, part);
      }
      video = blender->output();
    }
    produced += video.size(1);
    next = chunk.end;
    sink(video);
    video = at::Tensor();
    if (options.release_memory) options.release_memory();
    if (options.progress) {
      options.progress(static_cast<int>(next), static_cast<int>(frames_total));
    }
  }
  const std::int64_t expected = 1 + temporal_stride_ * (frames_total - 1);
  if (produced != expected) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("the VAE decoded {} latent frames into {} video frames, expected {} "
                            "(temporal stride {})",
                            frames_total, produced, expected, temporal_stride_),
                "the bundle's VAE does not match its manifest's vae_stride");
  }
  return produced;
}

}  // namespace wanrt::wan22
