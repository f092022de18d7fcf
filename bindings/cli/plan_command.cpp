// `wanrun plan`: a dry run that prints the optimization plan, its memory estimate per stage and
// the reason for every choice, for a bundle or a planning profile on this or a simulated
// machine. Exit 0 when the plan fits, 4 (resources) with guidance when it does not.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "bindings/cli/cli_common.h"
#include "bindings/cli/commands.h"
#include "bindings/cli/lora_flags.h"
#include "bindings/cli/plan_flags.h"
#include "bindings/cli/plan_report.h"
#include "dist/parallel_layout.h"
#include "models/wan22/memory_model.h"
#include "optim/machine.h"
#include "runtime/bundle.h"
#include "runtime/error.h"

namespace wanrt::cli {
namespace {

struct PlanOptions {
  std::string model, profile, size;
  int frames = 0;
  bool image = false, json = false, details = false;
  PlanFlags flags;
  LoraFlags loras;
  std::optional<int> frame_chunk, vae_tile;
  MachineOptions machine;
  int ranks = 1, cfg_parallel = 0;
};

PlanSettings settings_of(const PlanOptions& o) {
  PlanSettings s = o.flags.settings();
  s.frame_chunk = o.frame_chunk;
  s.vae_tile = o.vae_tile;
  return s;
}

// The LoRAs the estimate counts (their items are in the stage table: "<dit> LoRA merge" at
// load, "<dit> LoRA-merged weights" with host residency disk).
void print_loras(const wan22::WanLoras& loras) {
  fmt::print("\nLoRAs merged at load (counted in the estimate above):\n");
  for (const auto& [spec, file] : loras.files()) {
    fmt::print("  {} strength {} on {} expert(s): {} tensor bytes, rank {}\n", spec.path,
               spec.strength, wan22::lora_experts_name(spec.experts),
               format_bytes(file->tensor_bytes()),
               file->min_rank == file->max_rank
                   ? fmt::format("{}", file->max_rank)
                   : fmt::format("{}..{}", file->min_rank, file->max_rank));
  }
}

int run_plan(const PlanOptions& o) {
  if (o.model.empty() == o.profile.empty()) {
    throw Error(ErrorCategory::kUsage, "wanrun plan needs exactly one of --model and --profile",
                "e.g. --profile wan2.2-t2v-a14b, or --model BUNDLE_DIR");
  }
  const std::string source = o.model.empty() ? find_profile(o.profile) : o.model;
  std::shared_ptr<const wan22::WanLoras> loras;
  const std::vector<wan22::LoraSpec> lora_specs = o.loras.specs();
  if (!lora_specs.empty()) {
    BundleOptions sizes_only;
    sizes_only.verify = false;
    const BundleManifest m = std::filesystem::is_directory(source) ? read_bundle(source, sizes_only)
                                                                   : read_profile(source);
    loras = std::make_shared<const wan22::WanLoras>(wan22::read_wan_spec(m), lora_specs,
                                                    o.loras.partial);
    loras->check(m);  // a bundle's shapes (format 2); a profile has none to check
  }
  const OptimizationManager manager = wan22::make_optimization_manager(o.machine.config(), loras);
  Workload w;
  if (!o.size.empty()) std::tie(w.width, w.height) = parse_size(o.size);
  w.frames = o.frames;
  w.image = o.image;
  // Several ranks, all on this machine: each plans with its share of the RAM and cores, and the
  // activations of its share of the tokens (guidance above 1 assumed, as the models' defaults).
  const dist::ParallelLayout layout = dist::choose_layout(o.ranks, true, o.cfg_parallel);
  w.ranks = layout.world();
  w.seq_ranks = layout.seq;
  const OptimizationResult result = manager.get_optimization_recommendations(
      source, w, settings_of(o), per_rank_resources(o.machine.resources(), o.ranks));
  if (o.json) {
    fmt::print("{}\n", result_json(result).dump(2));
  } else {
    print_result(result, o.details);
    if (loras) print_loras(*loras);
  }
  if (!result.feasible()) {
    fmt::print(stderr, "error [resources]: {} at {}x{}, {} frames does not fit this machine{}\n",
               result.model_id, result.workload.width, result.workload.height,
               result.workload.frames,
               o.json ? " (see \"guidance\")" : " (see the guidance above)");
    return exit_code(ErrorCategory::kResources);
  }
  return 0;
}

}  // namespace

CommandAction add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Dry run: show the optimization plan and memory estimate for a request");
  cmd->add_option("--model", o->model, "Bundle directory");
  cmd->add_option("--profile", o->profile,
                  "Planning profile: a name (wan2.2-t2v-a14b, ...) or a YAML file");
  cmd->add_option("--size", o->size, "WIDTHxHEIGHT (default: the model's)");
  cmd->add_option("--frames", o->frames, "Frames, 4n+1 (default: the model's)");
  cmd->add_flag("--image", o->image, "Image-conditioned request (TI2V: per-token timesteps)");
  o->flags.add_to(cmd);
  o->loras.add_to(cmd);
  cmd->add_option("--frame-chunk", o->frame_chunk, "Latent frames per denoising window (0: off)");
  cmd->add_option("--vae-tile", o->vae_tile, "Latent pixels per VAE decode tile side (0: off)");
  o->machine.add_to(cmd);
  cmd->add_option("--ranks", o->ranks,
                  "Plan for N ranks on this machine (wanrun generate --ranks N): per rank")
      ->default_val(1);
  cmd->add_option("--cfg-parallel", o->cfg_parallel,
                  "Ranks that split the guidance passes: 1 or 2 (default: 2 for an even --ranks)")
      ->default_val(0);
  cmd->add_flag("--json", o->json, "Print one JSON document");
  cmd->add_flag("--details", o->details, "List every memory item with its formula");
  return [o] { return run_plan(*o); };
}

}  // namespace wanrt::cli
