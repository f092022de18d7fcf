// A generation request, and its resolution against a model's defaults.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chunking/chunk_plan.h"
#include "models/wan22/model_spec.h"

namespace wanrt::wan22 {

/// What a caller asks for; unset optionals take the model's sampling defaults.
struct GenerateRequest {
  std::string prompt;
  std::optional<std::string> negative_prompt;  ///< empty or unset: the manifest's default
  std::optional<int> width, height;            ///< pixels
  std::optional<int> frames;                   ///< 4n+1
  std::optional<int> steps;
  std::int64_t seed = 0;                       ///< < 0: a random seed (recorded in the result)
  std::optional<double> guidance;              ///< sets both experts' guidance scale
  std::optional<double> shift;
  std::optional<std::string> sampler;          ///< "unipc" | "euler" | "lightning"
  /// A named sampling preset (sampling_preset.h, e.g. "lightning"): fills steps, shift,
  /// guidance and sampler where this request leaves them unset, before the model's defaults.
  std::optional<std::string> preset;
  std::optional<at::Tensor> image;             ///< uint8 [H, W, 3] RGB (TI2V optional, I2V required)
  /// Sliding-window denoising: the DiT runs on windows of this many video frames (4n+1, at
  /// most `frames`) and the windows' guided velocities are blended. Unset: the whole video.
  std::optional<int> chunk_frames;
  /// Overlap of consecutive windows in video frames (a multiple of the VAE temporal stride,
  /// smaller than the window). Default: a quarter of the window rounded up to whole latent
  /// frames (4 frames for windows of 5..13 frames, 8 for 17..29). Needs chunk_frames.
  std::optional<int> chunk_overlap;
  /// Spatial VAE tiling: tiles of this many pixels (a multiple of the VAE spatial stride),
  /// overlapping by a quarter tile (vae_decoder.h). Unset: no tiling.
  std::optional<int> vae_tile;
  /// How overlapping windows and tiles are mixed: "flat", "linear" (default), "cosine" or
  /// "pyramid" (chunking/blend_weights.h).
  std::optional<std::string> blend;
};

/// A request with every value decided, and which ones the caller set.
struct ResolvedRequest {
  std::string prompt, negative_prompt;
  int width = 0, height = 0, frames = 0, steps = 0;
  std::int64_t seed = 0;
  double guide_low = 0, guide_high = 0, shift = 0;
  std::string sampler;
  std::string preset;  ///< the preset applied; empty for none
  bool has_image = false;
  int chunk_frames = 0;          ///< sliding window in video frames; 0: none
  int chunk_overlap = 0;         ///< window overlap in video frames (0 without a window)
  int vae_tile = 0;              ///< VAE tile in pixels; 0: no tiling
  std::string blend = "linear";  ///< blend of windows and tiles
  std::vector<std::string> user_set;  ///< names of the fields the caller gave

  /// Latent shape [z, lat_f, lat_h, lat_w] for this request.
  std::vector<std::int64_t> latent_shape(const WanSpec& spec) const;
  /// The denoising windows over latent frames (plan_latent_frame_chunks); one chunk covering
  /// every latent frame when chunk_frames is 0.
  ChunkPlan window_plan(const WanSpec& spec) const;
};

/// Fills defaults (the request's values, then its preset's, then the model's) and validates
/// (4n+1 frames, size multiples, steps >= 1, image presence for the task, known preset and
/// sampler, shift > 0, window and overlap sizes, VAE tile multiple of the
/// stride, known blend); throws Error(kUsage) with the nearest valid values.
ResolvedRequest resolve_request(const WanSpec& spec, const GenerateRequest& request);

}  // namespace wanrt::wan22
