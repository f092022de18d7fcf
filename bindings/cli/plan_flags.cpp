#include "bindings/cli/plan_flags.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace wanrt::cli {

void PlanFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--device", device, "cpu, cuda or cuda:N (default: the largest GPU, else cpu)");
  cmd->add_option("--dtype", dtype, "fp32 | bf16 | fp16 (default: from the device)");
  cmd->add_option("--offload", offload, "none | model | sequential | full (default: planned)");
  cmd->add_option("--blocks-resident", blocks_resident, "Resident DiT blocks when streaming");
  cmd->add_option("--prefetch", prefetch, "Blocks prefetched ahead when streaming");
  cmd->add_option("--text-encoder", text_encoder, "device | offload | cpu (default: planned)");
  cmd->add_option("--attention", attention,
                  "Attention baked into the bundle: math (PyTorch 1.13 exports, default) | sdpa");
  cmd->add_option("--host-residency", host_residency, "all | on_demand (default: planned)");
}

PlanSettings PlanFlags::settings() const {
  PlanSettings s;
  if (!device.empty()) s.device = device;
  if (!dtype.empty()) s.dtype = parse_dtype(dtype, "--dtype");
  if (!offload.empty()) s.offload = parse_offload(offload, "--offload");
  if (!text_encoder.empty()) {
    s.text_encoder = parse_text_encoder_placement(text_encoder, "--text-encoder");
  }
  if (!attention.empty()) s.attention = parse_attention(attention, "--attention");
  if (!host_residency.empty()) {
    if (host_residency != "all" && host_residency != "on_demand") {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("--host-residency '{}' is not all or on_demand", host_residency));
    }
    s.host_residency = host_residency == "all" ? HostResidency::kAll : HostResidency::kOnDemand;
  }
  if (blocks_resident && *blocks_resident < 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("--blocks-resident {} is negative",
                                                   *blocks_resident));
  }
  if (prefetch && *prefetch < 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("--prefetch {} is negative", *prefetch));
  }
  s.blocks_resident = blocks_resident;
  s.prefetch = prefetch;
  return s;
}

bool PlanFlags::any() const {
  return !device.empty() || !dtype.empty() || !offload.empty() || !text_encoder.empty() ||
         !attention.empty() || !host_residency.empty() || blocks_resident || prefetch;
}

}  // namespace wanrt::cli
