#include "models/wan22/sampling_preset.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace wanrt::wan22 {

const std::vector<SamplingPreset>& sampling_presets() {
  static const std::vector<SamplingPreset> presets{
      {"lightning", "lightning", 4, 5.0, 1.0,
       "4-step distilled sampling (Wan2.2-Lightning / LightX2V LoRAs): Euler on the "
       "distilled schedule, shift 5, guidance 1"},
  };
  return presets;
}

const SamplingPreset& find_sampling_preset(const std::string& name) {
  std::string known;
  for (const SamplingPreset& p : sampling_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw Error(ErrorCategory::kUsage, fmt::format("unknown sampling preset '{}'", name),
              fmt::format("known presets: {}", known));
}

}  // namespace wanrt::wan22
