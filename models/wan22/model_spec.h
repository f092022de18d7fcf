// What the Wan 2.2 pipeline needs to know about a bundle, read from its manifest's
// architecture / sampling / tokenizer sections.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/bundle.h"

namespace wanrt::wan22 {

/// The sampling defaults of a model (WAN22.md section 1).
struct SamplingDefaults {
  int steps = 0;
  double shift = 0;
  double guide_low = 0;              ///< guidance of the low-noise expert (or the only one)
  double guide_high = 0;             ///< guidance of the high-noise expert
  std::optional<double> boundary;    ///< fraction of num_train_timesteps; set for A14B MoE
  int frames = 0;
  int width = 0, height = 0;
  int fps = 16;
  std::string sampler = "unipc";
  int num_train_timesteps = 1000;
  std::string negative_prompt;
};

/// Architecture facts the pipeline uses.
struct WanSpec {
  std::string model_id;
  std::string task;                        ///< "t2v" | "i2v" | "ti2v"
  int z_dim = 0;                           ///< latent channels
  std::array<int, 3> vae_stride{};         ///< (t, h, w)
  std::array<int, 3> patch{};              ///< DiT patch (t, h, w)
  int dit_in_dim = 0;
  int text_len = 0;
  std::vector<std::string> experts;        ///< "dit" or {"dit_high_noise", "dit_low_noise"}
  SamplingDefaults sampling;

  /// Spatial multiple a frame size must have: VAE stride x patch.
  int size_multiple() const { return vae_stride[1] * patch[1]; }
  /// True for the two-expert (A14B) models.
  bool is_moe() const { return experts.size() == 2; }
};

/// Parses the Wan sections of a manifest; errors name the file, line and key (kBundle).
WanSpec read_wan_spec(const BundleManifest& manifest);

}  // namespace wanrt::wan22
