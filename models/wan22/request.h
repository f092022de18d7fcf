// A generation request, and its resolution against a model's defaults.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  std::optional<std::string> sampler;          ///< "unipc" | "euler"
  std::optional<at::Tensor> image;             ///< uint8 [H, W, 3] RGB (TI2V optional, I2V required)
};

/// A request with every value decided, and which ones the caller set.
struct ResolvedRequest {
  std::string prompt, negative_prompt;
  int width = 0, height = 0, frames = 0, steps = 0;
  std::int64_t seed = 0;
  double guide_low = 0, guide_high = 0, shift = 0;
  std::string sampler;
  bool has_image = false;
  std::vector<std::string> user_set;  ///< names of the fields the caller gave

  /// Latent shape [z, lat_f, lat_h, lat_w] for this request.
  std::vector<std::int64_t> latent_shape(const WanSpec& spec) const;
};

/// Fills defaults and validates (4n+1 frames, size multiples, steps >= 1, image presence for
/// the task, known sampler, shift > 0); throws Error(kUsage) with the nearest valid values.
ResolvedRequest resolve_request(const WanSpec& spec, const GenerateRequest& request);

}  // namespace wanrt::wan22
