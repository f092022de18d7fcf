// Chunked, optionally tiled, causal VAE decoding with flat memory: the latent is decoded a few
// latent frames at a time and each chunk's frames go to a sink as soon as they exist.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstdint>
#include <functional>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"

namespace wanrt::wan22 {

/// Spatial tiling of the latent: square tiles of `tile` latent pixels whose neighbours overlap
/// by `overlap` latent pixels. tile == 0: no tiling.
struct VaeTiling {
  std::int64_t tile = 0;
  std::int64_t overlap = 0;
};

/// The tiling for a pixel tile size: tile = pixels / stride latent pixels, overlap a quarter of
/// the tile rounded up to whole latent pixels (i.e. up to a multiple of the stride in pixels)
/// and at most tile - 1: ceil(tile / 4), 0 for a one-pixel tile. Error(kUsage) naming the
/// nearest valid sizes when `pixels` is not a positive multiple of `spatial_stride`.
VaeTiling vae_tiling_for_pixels(int pixels, int spatial_stride);

/// How VaeDecoder splits its work.
struct VaeDecodeOptions {
  /// Latent frames decoded before each sink call (the chunk; plan over latent frames with
  /// overlap 0). The first latent frame gives 1 video frame, each later one temporal-stride
  /// frames. More than the latent's frames: one chunk.
  std::int64_t chunk_latent_frames = 1;
  VaeTiling tiling;                      ///< spatial tiles (tile 0: the whole frame at once)
  BlendKind blend = BlendKind::kLinear;  ///< how overlapping tiles are mixed in pixel space
  std::function<bool()> cancelled;       ///< polled before every decode step
  /// After each chunk: (latent frames decoded, latent frames in all).
  std::function<void(int done, int total)> progress;
  /// Called after each chunk has gone to the sink and its tensors are freed (e.g. to give
  /// freed heap memory back to the system with trim_host_memory(), runtime/host_allocator.h:
  /// the decoder's large, short-lived activations otherwise leave the heap fragmented and RSS
  /// creeps up with every step).
  std::function<void()> release_memory;
};

/// Decodes with the VAE component's init_decode_cache(z) / decode_step(z_t, cache) methods
/// (models/export/wanrt_export/vae_common.py). The decoder is causal: each decode step takes one
/// latent frame and a cache of the previous ones, so chunks in time need no blending and their
/// concatenation equals the VAE's full decode() exactly, whatever the chunk size. Tiles are
/// decoded independently, each with its own cache carried across time chunks, and blended with
/// TileBlender (pixel plans = latent plans x spatial stride); at the tile borders the result
/// differs from the untiled decode (each tile sees zero padding instead of its neighbours), by
/// less the larger the overlap. A tiling whose tile covers the latent is the untiled decode.
class VaeDecoder {
 public:
  /// Frames of one chunk: float32 [3, n, H, W] in [-1, 1], in time order.
  using Sink = std::function<void(const at::Tensor& video)>;

  /// `vae`: the VAE module (shared, not copied); strides of the latent (time, space).
  VaeDecoder(torch::jit::Module vae, int temporal_stride, int spatial_stride);

  /// Decodes `latent` [z, T, h, w] and calls sink once per chunk. Returns the number of video
  /// frames produced, 1 + stride_t * (T - 1). Error(kCancelled) when cancelled, Error(kUsage) on
  /// a bad latent or options.
  std::int64_t decode(const at::Tensor& latent, const VaeDecodeOptions& options,
                      const Sink& sink) const;

  /// The chunks in time for T latent frames (chunk_latent_frames, overlap 0; a last chunk that
  /// plan_chunks aligns to the end only decodes the frames not decoded before).
  static ChunkPlan time_plan(std::int64_t latent_frames, std::int64_t chunk_latent_frames);
  /// The tile plan along one latent axis of `size` (one chunk without tiling).
  static ChunkPlan tile_plan(std::int64_t size, const VaeTiling& tiling);
  /// `plan` in pixels: every index multiplied by `stride`.
  static ChunkPlan scale_plan(const ChunkPlan& plan, std::int64_t stride);

 private:
  torch::jit::Module vae_;
  int temporal_stride_;
  int spatial_stride_;
};

}  // namespace wanrt::wan22
