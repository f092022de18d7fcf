// What the Wan 2.2 pipeline needs to know about a bundle, read from its manifest's
// architecture / sampling / tokenizer sections.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "optim/model_requirements.h"
#include "runtime/bundle.h"

namespace wanrt::wan22 {

/// Component names of a Wan 2.2 bundle (keys under `components:` in wanrt.yaml).
namespace component {
constexpr const char* kTextEncoder = "text_encoder";
constexpr const char* kDit = "dit";                    ///< the only DiT of TI2V-5B
constexpr const char* kDitHighNoise = "dit_high_noise";  ///< A14B expert for t >= boundary
constexpr const char* kDitLowNoise = "dit_low_noise";    ///< A14B expert for t < boundary
constexpr const char* kVae = "vae";
}  // namespace component

/// One component a Wan 2.2 bundle may hold and what it does.
struct ComponentSlot {
  const char* name;
  ComponentRole role;
};

/// Every component a Wan 2.2 bundle may hold, in the order a run uses them: the text encoder,
/// the DiT(s), the VAE. The one table the pipeline, the memory model and the spec reader use.
const std::vector<ComponentSlot>& component_table();

/// The role of component `name` in component_table(); kOther for names not in it.
ComponentRole component_role(const std::string& name);

/// The sampling defaults of a model (docs/wan22.md section 3).
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
  int dit_heads = 0;                       ///< attention heads of the DiT
  int text_len = 0;
  std::vector<std::string> experts;        ///< {kDit} or {kDitHighNoise, kDitLowNoise}
  SamplingDefaults sampling;

  /// Spatial multiple a frame size must have: VAE stride x patch.
  int size_multiple() const { return vae_stride[1] * patch[1]; }
  /// True for the two-expert (A14B) models.
  bool is_moe() const { return experts.size() == 2; }
  /// The bundle's components in run order: text encoder, experts, VAE.
  std::vector<std::string> components() const;
  /// The expert that denoises at timestep `t` (0..num_train_timesteps): the high-noise expert
  /// for t >= boundary x num_train_timesteps, else the low-noise one; the only DiT otherwise.
  const std::string& expert_at(double t) const;
};

/// Parses the Wan sections of a manifest; errors name the file, line and key (kBundle).
WanSpec read_wan_spec(const BundleManifest& manifest);

}  // namespace wanrt::wan22
