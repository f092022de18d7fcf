#include "bindings/common/plan_settings_text.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace wanrt::bindings {

bool PlanSettingsText::any() const {
  return !device.empty() || !dtype.empty() || !offload.empty() || !text_encoder.empty() ||
         !attention.empty() || !host_residency.empty() || !vae_dtype.empty() ||
         blocks_resident.has_value() || prefetch.has_value();
}

PlanSettings parse_plan_settings(const PlanSettingsText& t, const std::string& prefix) {
  PlanSettings s;
  if (!t.device.empty()) s.device = t.device;
  if (!t.dtype.empty()) s.dtype = parse_dtype(t.dtype, prefix + "dtype");
  if (!t.offload.empty()) s.offload = parse_offload(t.offload, prefix + "offload");
  if (!t.text_encoder.empty()) {
    s.text_encoder = parse_text_encoder_placement(t.text_encoder, prefix + "text-encoder");
  }
  if (!t.attention.empty()) s.attention = parse_attention(t.attention, prefix + "attention");
  if (!t.host_residency.empty()) {
    s.host_residency = parse_host_residency(t.host_residency, prefix + "host-residency");
  }
  if (!t.vae_dtype.empty()) s.vae_dtype = parse_dtype(t.vae_dtype, prefix + "vae-dtype");
  if (t.blocks_resident && *t.blocks_resident < 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{}blocks-resident {} is negative", prefix, *t.blocks_resident));
  }
  if (t.prefetch && *t.prefetch < 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("{}prefetch {} is negative", prefix, *t.prefetch));
  }
  s.blocks_resident = t.blocks_resident;
  s.prefetch = t.prefetch;
  return s;
}

}  // namespace wanrt::bindings
