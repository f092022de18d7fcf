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
                  "Attention the bundle bakes in: math | sdpa (default: the bundle's wanrt.yaml; math for a profile)");
  cmd->add_option("--vae-dtype", vae_dtype,
                  "fp32 | bf16 | fp16: the VAE's dtype (default fp32, as the official code; bf16 "
                  "decodes 3-4x faster on a CPU with bf16 units, within a few 8-bit levels)");
  cmd->add_option("--host-residency", host_residency, "all | on_demand | disk (disk: format 2 bundles page weights from their files; default: planned)");
}

}  // namespace wanrt::cli
