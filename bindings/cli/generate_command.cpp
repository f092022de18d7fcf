#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include <ATen/Parallel.h>

#include "bindings/cli/cli_common.h"
#include "bindings/common/engine.h"
#include "bindings/common/json_reports.h"
#include "bindings/cli/commands.h"
#include "bindings/cli/lora_flags.h"
#include "bindings/cli/plan_flags.h"
#include "bindings/cli/plan_report.h"
#include "bindings/cli/progress_bar.h"
#include "dist/agreed_resources.h"
#include "dist/dist_env.h"
#include "dist/local_launcher.h"
#include "dist/parallel_layout.h"
#include "models/wan22/memory_model.h"
#include "models/wan22/pipeline.h"
#include "models/wan22/request_plan.h"
#include "runtime/bundle.h"
#include "optim/machine.h"
#include "optim/optimization_manager.h"
#include "runtime/error.h"
#include "io/image_reader.h"
#include "io/video_writer.h"
#include "models/wan22/scheduler.h"

namespace wanrt::cli {
namespace {

struct GenerateOptions {
  std::string model, prompt, negative_prompt, image, size, sampler, preset, out = "output.mp4";
  std::optional<int> frames, steps, chunk_frames, chunk_overlap, vae_tile;
  std::optional<double> guidance, shift;
  std::string blend;
  long long seed = 0;
  int threads = 0;
  // Several ranks (docs/distributed.md).
  int ranks = 1, cfg_parallel = 0;
  std::string progress = "auto";
  bool json = false, no_verify = false, no_stream = false;
  // Memory optimization (docs/optimization.md).
  bool auto_optimize = false, no_fallback = false;
  PlanFlags flags;
  LoraFlags loras;
  std::string vram_budget, optim_config;
};

// The plan to run with: none (the plain pipeline: everything resident on the CPU in the stored
// dtype) unless --auto-optimize, a plan flag or --optim-config is given; then the planner's,
// with the flags fixed. A plan the estimate says does not fit is refused with its guidance.
// With several ranks the plan is each rank's: the RAM and cores of this machine shared among
// its ranks, the denoise activations of its share of the tokens.
// Every rank plans against the same figures (the tightest rank's: dist/agreed_resources.h), so
// all of them choose the same plan.
std::optional<OptimizationResult> plan_for(const GenerateOptions& o, const std::string& bundle,
                                           const wan22::GenerateRequest& request,
                                           std::int64_t vram_budget,
                                           const std::vector<wan22::LoraSpec>& loras,
                                           const dist::ParallelLayout& layout,
                                           const dist::DistEnv& env, dist::ProcessGroup& world) {
  if (!o.auto_optimize && !o.flags.any() && o.optim_config.empty()) return std::nullopt;
  const OptimizationConfig config =
      o.optim_config.empty() ? OptimizationConfig{} : load_optimization_config(o.optim_config);
  const SystemResources resources = dist::agree_on_resources(
      world, per_rank_resources(bindings::machine_within_budget(vram_budget), env.local_world_size),
      env.local_rank);
  OptimizationResult result = wan22::plan_request(bundle, request, o.flags.settings(), config,
                                                  resources, loras, layout.world(), layout.seq);
  if (!result.feasible()) {
    print_result(result, false);
    throw Error(ErrorCategory::kResources,
                fmt::format("{} at {}x{}, {} frames does not fit this machine", result.model_id,
                            result.workload.width, result.workload.height,
                            result.workload.frames),
                "see the guidance above; `wanrun plan` shows the same plan without loading");
  }
  return result;
}

// Where a run was when it stopped: the last progress event seen.
struct StopPoint {
  std::string stage = "start";
  int step = 0, total = 0;
  void at(const std::string& s, int i, int n) {
    stage = s;
    step = i;
    total = n;
    test_signal_hook(s, i);
  }
};

// The split of a multi-process run, as --cfg-parallel and the request's guidance say. Every
// rank reads the same manifest and request, so all choose alike.
dist::ParallelLayout rank_layout(const dist::DistEnv& env, const GenerateOptions& o,
                                 const std::string& bundle,
                                 const wan22::GenerateRequest& request) {
  if (!env.distributed()) return {};
  BundleOptions read;
  read.verify = false;  // the pipeline verifies when it loads
  const wan22::ResolvedRequest r =
      wan22::resolve_request(wan22::read_wan_spec(read_bundle(bundle, read)), request);
  const bool guidance = r.guide_low != 1.0 || r.guide_high != 1.0;
  return dist::choose_layout(env.world_size, guidance, o.cfg_parallel);
}

int generate_once(const GenerateOptions& o, StopPoint& where, const dist::DistEnv& env) {
  std::string bundle = o.model.empty() ? default_bundle_dir() : o.model;
  if (bundle.empty()) {
    throw Error(ErrorCategory::kUsage, "no --model given and no demo bundle next to wanrun",
                "pass --model BUNDLE_DIR (export one with models/export, see docs/exporter.md)");
  }
  output_format_for(o.out);  // reject a bad output path before any heavy work
  install_interrupt_handler();
  const auto start = std::chrono::steady_clock::now();
  // In a run of several ranks only the leader (rank 0) shows progress, writes and reports; the
  // others print nothing but errors.
  const bool leader = env.rank == 0;
  ProgressBar bar(leader ? ProgressBar::parse_mode(o.progress) : ProgressBar::Mode::kNone);

  const std::int64_t vram_budget =
      o.vram_budget.empty() ? 0 : parse_byte_size(o.vram_budget, "--vram-budget");
  wan22::GenerateRequest request;
  request.prompt = o.prompt;
  if (!o.negative_prompt.empty()) request.negative_prompt = o.negative_prompt;
  if (!o.size.empty()) {
    const auto [w, h] = parse_size(o.size);
    request.width = w;
    request.height = h;
  }
  request.frames = o.frames;
  request.steps = o.steps;
  request.seed = o.seed;
  request.guidance = o.guidance;
  request.shift = o.shift;
  if (!o.sampler.empty()) request.sampler = o.sampler;
  if (!o.preset.empty()) request.preset = o.preset;
  if (!o.image.empty()) request.image = read_image(o.image);
  request.chunk_frames = o.chunk_frames;
  request.chunk_overlap = o.chunk_overlap;
  request.vae_tile = o.vae_tile;
  if (!o.blend.empty()) request.blend = o.blend;
  const std::vector<wan22::LoraSpec> loras = o.loras.specs();
  const dist::ParallelLayout layout = rank_layout(env, o, bundle, request);
  std::shared_ptr<dist::ProcessGroup> world = dist::ProcessGroup::single();
  if (env.distributed()) {
    where.at("join ranks", 0, 0);
    world = dist::ProcessGroup::connect(env);  // Gloo: planning's agreement, and the CPU's work
  }
  const std::optional<OptimizationResult> planned =
      plan_for(o, bundle, request, vram_budget, loras, layout, env, *world);

  wan22::LoadOptions load;
  load.verify = !o.no_verify;
  if (planned) load.plan = planned->plan;
  // One GPU per rank: the one LOCAL_RANK names.
  if (load.plan && load.plan->on_gpu() && env.distributed()) {
    load.plan->device = fmt::format("cuda:{}", env.local_rank);
  }
  std::shared_ptr<dist::Parallelism> parallel;
  if (env.distributed()) {
    // Ranks on GPUs exchange through NCCL where LibTorch has it (dist/process_group.h).
    const std::string device = load.plan && load.plan->on_gpu() ? load.plan->device : "cpu";
    parallel = std::make_shared<dist::Parallelism>(
        dist::make_parallelism(world->for_device(device), layout));
  }
  load.vram_budget = vram_budget;
  load.fallback = !o.no_fallback;
  load.threads = o.threads;
  if (load.threads <= 0 && env.local_world_size > 1) {
    // The machine's cores shared among the ranks on it.
    load.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                   env.local_world_size);
  }
  load.parallel = parallel;
  load.loras = loras;
  load.lora_allow_partial = o.loras.partial;
  load.hash_progress = [&bar, &where](const std::string& file, std::int64_t done,
                                      std::int64_t total) {
    const auto mib = [](std::int64_t b) { return static_cast<int>(b >> 20); };
    const std::string stage = "verify " + std::filesystem::path(file).filename().string();
    where.at(stage, mib(done), mib(total));
    bar.update(stage, mib(done), mib(total));
  };
  where.at("load", 0, 0);
  auto pipeline = wan22::Pipeline::load(bundle, load);
  if (planned) wan22::apply_plan_chunking(planned->plan, pipeline->spec(), request);
  if (!o.json && planned && leader) {
    fmt::print(stderr, "plan: {} ({})\n", summary_line(*planned), planned->plan.rung);
  }

  // Frames go to the writer as the VAE decodes them (only FILE.pt collects them); the
  // writer's temporary is removed if anything fails before finish().
  const wan22::ResolvedRequest resolved = pipeline->resolve(request);
  wan22::Callbacks callbacks;
  callbacks.cancelled = [] { return cancel_requested(); };
  callbacks.progress = [&bar, &where](const wan22::ProgressEvent& e) {
    where.at(e.stage, e.step, e.total);
    bar.update(e.stage, e.step, e.total);
  };
  VideoWriteOptions write;
  write.fps = pipeline->spec().sampling.fps;
  write.cancelled = callbacks.cancelled;
  std::optional<VideoWriter> writer;
  if (!leader) {
    pipeline->generate(request, callbacks);  // the leader decodes and writes
    return 0;
  }
  if (!o.no_stream) {
    writer.emplace(o.out, resolved.width, resolved.height, write);
    callbacks.on_frames = [&writer](const at::Tensor& frames) { writer->append(frames); };
  }
  const wan22::GenerateResult result = pipeline->generate(request, callbacks);
  if (writer) {
    writer->finish();
  } else {
    write.progress = [&bar, &where](int frame, int total) {
      where.at("write", frame, total);
      bar.update("write", frame, total);
    };
    where.at("write", 0, static_cast<int>(result.frames.size(0)));
    write_video(o.out, result.frames, write);
  }
  bar.finish();

  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bindings::RunContext context;
  context.output = o.out;
  context.bundle = bundle;
  context.image = o.image;
  context.auto_optimize = o.auto_optimize;
  context.vram_budget = vram_budget;
  context.streamed = !o.no_stream;
  context.loras = bindings::loras_json(*pipeline->model());
  context.load_seconds = pipeline->load_seconds();
  context.total_seconds = total;
  const nlohmann::json report =
      bindings::run_report_json(context, pipeline->spec(), pipeline->residency().plan(), result);
  std::string sidecar = o.out;
  while (!sidecar.empty() && sidecar.back() == '/') sidecar.pop_back();
  write_file_atomic(sidecar + ".json", report.dump(2) + "\n");
  if (o.json) {
    fmt::print("{}\n", report.dump(2));
  } else {
    for (const FallbackStep& f : result.fallbacks) {
      fmt::print(stderr, "fallback: {} ran out of memory; {} -> {}\n", f.component, f.from, f.to);
    }
    fmt::print("wrote {} ({} frames, {}x{}, {} fps, seed {}) in {:.1f} s\n", o.out,
               result.frame_count, result.request.width, result.request.height, result.fps,
               result.request.seed, total);
  }
  return 0;
}

// A run ended by SIGINT/SIGTERM: the writer has removed its temporary (no partial video); says
// where it stopped (on stdout as JSON with --json) and exits with 128 + the signal.
int report_cancelled(const GenerateOptions& o, const Error& e, const StopPoint& where) {
  const int signo = interrupt_signal();
  const std::string signal_name = signo == SIGTERM ? "SIGTERM" : signo == SIGINT ? "SIGINT" : "";
  const std::string at =
      where.total > 0 ? fmt::format("{} ({} of {})", where.stage, where.step, where.total)
                      : where.stage;
  if (o.json) {
    const nlohmann::json doc = {
        {"status", "cancelled"},
        {"signal", signal_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(signal_name)},
        {"stopped_at", {{"stage", where.stage}, {"step", where.step}, {"total", where.total}}},
        {"output", nullptr},
        {"message", e.what()}};
    fmt::print("{}\n", doc.dump(2));
  }
  fmt::print(stderr, "{}\nstopped during {}; no output written\n", format_error(e), at);
  return signo != 0 ? 128 + signo : exit_code(ErrorCategory::kCancelled);
}

// `--ranks N` outside a launcher: runs this command line as N ranks and waits for them.
int launch_ranks(const GenerateOptions& o) {
  output_format_for(o.out);  // reject a bad output path and layout before starting anything
  dist::choose_layout(o.ranks, /*guidance=*/true, o.cfg_parallel);
  install_interrupt_handler();
  dist::LaunchOptions launch;
  launch.ranks = o.ranks;
  launch.argv = command_line();
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (!ec) launch.argv[0] = self;
  launch.cancelled = [] { return cancel_requested(); };
  const dist::LaunchOutcome outcome = dist::launch_local_ranks(launch);
  if (outcome.exit_code == 0) return 0;
  fmt::print(stderr, "wanrun: rank {} of {} ended with exit code {}; the other ranks were "
                     "stopped and no output was written\n",
             outcome.failed_rank, o.ranks, outcome.exit_code);
  return outcome.exit_code;
}

int run_generate(const GenerateOptions& o) {
  if (o.ranks < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("--ranks {}: at least 1", o.ranks));
  }
  const dist::DistEnv env = dist::dist_env_from_environment();
  if (o.ranks > 1 && !env.distributed()) return launch_ranks(o);
  if (o.ranks > 1 && o.ranks != env.world_size) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("--ranks {} but WORLD_SIZE={}", o.ranks, env.world_size),
                "under a launcher (torchrun, srun) leave --ranks out: WORLD_SIZE says it");
  }
  StopPoint where;
  try {
    return generate_once(o, where, env);
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kCancelled) throw;
    return report_cancelled(o, e, where);
  }
}

}  // namespace

CommandAction add_generate_command(CLI::App& app) {
  auto opts = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a video from a prompt (and an image for TI2V/I2V)");
  cmd->add_option("-m,--model", opts->model, "Bundle directory (default: the demo bundle installed with wanrun)");
  cmd->add_option("-p,--prompt", opts->prompt, "What the video shows")->required();
  cmd->add_option("-n,--negative-prompt", opts->negative_prompt, "What to avoid (default: the model's)");
  cmd->add_option("-i,--image", opts->image, "First frame (PNG/JPEG): required for I2V, optional for TI2V");
  cmd->add_option("-s,--size", opts->size, "WIDTHxHEIGHT (default: the model's; multiples of stride x patch)");
  cmd->add_option("-f,--frames", opts->frames, "Number of frames, 4n+1 (default: the model's)");
  cmd->add_option("--steps", opts->steps, "Denoising steps (default: the model's)");
  cmd->add_option("--seed", opts->seed, "Random seed; negative picks one at random")->default_val(0);
  cmd->add_option("-g,--guidance", opts->guidance, "Classifier-free guidance scale (both experts)");
  cmd->add_option("--shift", opts->shift, "Flow-matching sigma shift (default: the model's)");
  cmd->add_option("--sampler", opts->sampler,
                  "unipc (Wan's default), euler, or lightning (Euler on the 4-step distilled "
                  "schedule)")
      ->check(CLI::IsMember(wan22::sampler_names()));
  cmd->add_option("--preset", opts->preset,
                  "Sampling preset: lightning = --sampler lightning --steps 4 --shift 5 "
                  "--guidance 1, for the 4-step distilled LoRAs (options given explicitly win)")
      ->check(CLI::IsMember({"lightning"}));
  cmd->add_option("--chunk-frames", opts->chunk_frames,
                  "Sliding-window denoising: windows of N video frames (4n+1, at most --frames)");
  cmd->add_option("--chunk-overlap", opts->chunk_overlap,
                  "Overlap of the windows in frames, a multiple of 4 (default: a quarter window, "
                  "rounded up to a multiple of 4)");
  cmd->add_option("--blend", opts->blend, "How windows and VAE tiles are mixed: flat, linear "
                  "(default), cosine or pyramid")
      ->check(CLI::IsMember({"flat", "linear", "cosine", "pyramid"}));
  cmd->add_option("--vae-tile", opts->vae_tile,
                  "Decode in spatial tiles of N pixels (a multiple of the VAE stride), "
                  "overlapping by a quarter tile");
  cmd->add_option("-o,--out", opts->out, "Output: FILE.mp4 (H.264), FILE.pt (uint8 tensor) or DIR/ (PNG frames)")
      ->default_val("output.mp4");
  cmd->add_option("-t,--threads", opts->threads,
                  "CPU threads (default: one per core, shared among the ranks on this machine)")
      ->default_val(0);
  cmd->add_option("--ranks", opts->ranks,
                  "Run as N processes on this machine, splitting the denoising (CFG and sequence "
                  "parallel; docs/distributed.md). Under torchrun or srun WORLD_SIZE says it")
      ->default_val(1);
  cmd->add_option("--cfg-parallel", opts->cfg_parallel,
                  "Ranks that split the two guidance passes: 1 or 2 (default: 2 when the ranks "
                  "are even and guidance is above 1; the rest split the tokens)")
      ->default_val(0);
  cmd->add_flag("--auto-optimize", opts->auto_optimize,
                "Plan device, precision, offload and chunking for this machine (as `wanrun "
                "plan`); refuse with guidance when nothing fits");
  opts->flags.add_to(cmd);
  opts->loras.add_to(cmd);
  cmd->add_option("--vram-budget", opts->vram_budget,
                  "Device memory the weights may hold (e.g. 6GiB); exceeding it is handled like "
                  "an out-of-memory error: the plan steps down and the stage is retried");
  cmd->add_option("--optim-config", opts->optim_config,
                  "Optimization config YAML (docs/optimization.md); implies planning");
  cmd->add_flag("--no-fallback", opts->no_fallback,
                "Fail on out-of-memory instead of stepping the plan down and retrying");
  cmd->add_flag("--json", opts->json, "Print the run report as JSON on stdout");
  cmd->add_flag("--no-verify", opts->no_verify, "Skip the sha256 check of the bundle files");
  cmd->add_flag("--no-stream", opts->no_stream,
                "Keep the whole decoded video in memory and write it at the end (the behaviour "
                "before streaming; for memory comparisons)");
  cmd->add_option("--progress", opts->progress,
                  "auto (a bar on a terminal, nothing when piped), bar, plain (one line per step) or none")
      ->check(CLI::IsMember({"auto", "bar", "plain", "none"}))
      ->default_val("auto");
  return [opts] { return run_generate(*opts); };
}

}  // namespace wanrt::cli
