// Named sampling presets: one switch for a set of sampling options that belong together, such
// as the 4-step recipe of the distilled Wan 2.2 LoRAs (docs/lora.md).
#pragma once

#include <string>
#include <vector>

namespace wanrt::wan22 {

/// Sampling values a preset sets; a request's own values take precedence over them, and they
/// take precedence over the bundle's defaults. The MoE boundary stays the bundle's.
struct SamplingPreset {
  std::string name;
  std::string sampler;
  int steps = 0;
  double shift = 0;
  double guidance = 0;  ///< both experts
  std::string summary;  ///< one line for help texts
};

/// Every preset: "lightning" (sampler lightning, 4 steps, shift 5, guidance 1).
const std::vector<SamplingPreset>& sampling_presets();

/// The preset called `name`; Error(kUsage) listing the known ones otherwise.
const SamplingPreset& find_sampling_preset(const std::string& name);

}  // namespace wanrt::wan22
