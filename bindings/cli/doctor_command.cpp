// `wanrun doctor`: what this machine has (CPU, flags, RAM, GPUs, CUDA backend) and, planned on
// the installed profiles, which of the real models it can run at their default sizes and how.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "bindings/cli/cli_common.h"
#include "bindings/cli/commands.h"
#include "bindings/cli/plan_report.h"
#include "models/wan22/memory_model.h"
#include "runtime/device_backend.h"
#include "runtime/version.h"

namespace wanrt::cli {
namespace {

struct DoctorOptions {
  bool json = false;
  MachineOptions machine;
};

std::string how(const OptimizationResult& r) {
  const OptimizationPlan& p = r.plan;
  if (!p.feasible) {
    std::string needs;
    for (const auto& line : p.guidance) {
      if (line.find("would fit") != std::string::npos) needs += (needs.empty() ? "" : "; ") + line;
    }
    return needs.empty() ? "wanrun plan --profile " + r.model_id + " shows the guidance" : needs;
  }
  std::string out =
      fmt::format("{} {}, offload {}", p.device, dtype_name(p.dtype), offload_name(p.offload));
  if (p.blocks_resident >= 0)
    out += fmt::format(" (k={}, prefetch {})", p.blocks_resident, p.prefetch);
  out += fmt::format(", text encoder {}", text_encoder_placement_name(p.text_encoder));
  if (p.vae_tiling.enabled)
    out += fmt::format(", VAE tiles {}x{}", p.vae_tiling.tile_h, p.vae_tiling.tile_w);
  if (p.frame_chunking.enabled)
    out += fmt::format(", windows of {} latent frames", p.frame_chunking.window);
  return out;
}

int run_doctor(const DoctorOptions& o) {
  const SystemResources res = o.machine.resources();
  const OptimizationManager manager = wan22::make_optimization_manager(o.machine.config());
  const bool cuda_built = built_with_cuda();
  const int cuda_devices = cuda_device_count();

  nlohmann::json doc = {{"version", build_info()},
                        {"cuda_backend_built", cuda_built},
                        {"cuda_devices_visible", cuda_devices},
                        {"machine", resources_json(res)},
                        {"simulated", o.machine.overrides().any()},
                        {"models", nlohmann::json::array()}};
  std::vector<OptimizationResult> results;
  for (const auto& profile : list_profiles()) {
    results.push_back(manager.get_optimization_recommendations(profile, {}, {}, res));
    const auto& r = results.back();
    nlohmann::json entry = {{"model_id", r.model_id},
                            {"profile", profile},
                            {"workload",
                             {{"width", r.workload.width},
                              {"height", r.workload.height},
                              {"frames", r.workload.frames},
                              {"image", r.workload.image}}},
                            {"feasible", r.plan.feasible},
                            {"rung", r.plan.rung},
                            {"how", how(r)},
                            {"summary", summary_line(r)},
                            {"device_peak", r.estimate.device_peak},
                            {"host_peak", r.estimate.host_peak},
                            {"guidance", r.plan.guidance}};
    doc["models"].push_back(entry);
  }
  if (o.json) {
    fmt::print("{}\n", doc.dump(2));
    return 0;
  }
  fmt::print("{}\n\n", build_info());
  fmt::print("CPU       {} ({} cores for this process)\n",
             res.cpu_model.empty() ? "unknown" : res.cpu_model, res.cpu_cores);
  fmt::print("flags     avx512_bf16 {}, amx {} -> {}\n", res.cpu_avx512_bf16 ? "yes" : "no",
             res.cpu_amx ? "yes" : "no",
             res.cpu_avx512_bf16 || res.cpu_amx
                 ? "bf16 runs natively on the CPU"
                 : "fp32 on the CPU (bf16 emulated, fp16 unsupported)");
  fmt::print("RAM       {} total, {} available\n", format_bytes(res.ram_total),
             format_bytes(res.ram_available));
  fmt::print("CUDA      backend {}; {} device(s) visible\n",
             cuda_built ? "built in" : "not built (CPU-only LibTorch)", cuda_devices);
  if (res.gpus.empty()) fmt::print("GPUs      none\n");
  for (const auto& g : res.gpus) {
    fmt::print("GPU {}     {} cc {}.{}, {} total, {} free, bf16 {}, fp16 {}\n", g.index, g.name,
               g.cc_major, g.cc_minor, format_bytes(g.total_bytes), format_bytes(g.free_bytes),
               g.bf16 ? "yes" : "no", g.fp16 ? "yes" : "no");
  }
  if (o.machine.overrides().any())
    fmt::print("(simulated values from --vram/--ram/--gpu-cc/--gpu-count/--cpu-bf16)\n");
  fmt::print("\nmodels at their default sizes (wanrun plan --profile NAME for the details)\n");
  if (results.empty()) {
    std::string dirs;
    for (const auto& d : profile_dirs()) dirs += (dirs.empty() ? "" : ", ") + d;
    fmt::print("  no planning profiles found in {}\n", dirs);
  }
  for (const auto& r : results) {
    fmt::print("  {:<18} {}x{}x{}: {}\n      {}\n", r.model_id, r.workload.width, r.workload.height,
               r.workload.frames, r.plan.feasible ? "runs" : "does not fit", how(r));
    fmt::print("      {}\n", summary_line(r));
  }
  return 0;
}

}  // namespace

CommandAction add_doctor_command(CLI::App& app) {
  auto o = std::make_shared<DoctorOptions>();
  CLI::App* cmd =
      app.add_subcommand("doctor", "Show what this machine has and which models it can run");
  o->machine.add_to(cmd);
  cmd->add_flag("--json", o->json, "Print one JSON document");
  return [o] { return run_doctor(*o); };
}

}  // namespace wanrt::cli
