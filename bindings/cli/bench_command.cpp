// `wanrun bench`: runs one request under a matrix of memory plans (offload x dtype x chunking)
// and records, per plan, the time per stage, the memory peaks (CUDA allocator or tracked CPU
// tensor bytes, RSS, the residency ledger), the planner's estimate and the output's deviation
// from the fp32 resident baseline. Writes bench.json and bench.md (bench/plot.py draws the
// JSON); docs/cli.md describes the fields.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "bindings/cli/bench_matrix.h"
#include "bindings/cli/bench_report.h"
#include "bindings/cli/cli_common.h"
#include "bindings/cli/commands.h"
#include "bindings/cli/progress_bar.h"
#include "models/wan22/memory_model.h"
#include "models/wan22/pipeline.h"
#include "models/wan22/vae_decoder.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"
#include "io/image_reader.h"
#include "io/video_writer.h"
#include "runtime/tracking_allocator.h"
#include "runtime/version.h"

namespace wanrt::cli {
namespace {

struct BenchOptions {
  std::string model, prompt = "a red fox running through fresh snow", image, size;
  std::optional<int> frames, steps, prefetch;
  long long seed = 0;
  int threads = 0, repeat = 3, warmup = 1;
  std::string plans, dtypes = "fp32,bf16,fp16", chunks = "none", blocks_resident, device;
  std::string out = "bench-results", progress = "auto";
  bool json = false, no_verify = false, list = false;
};

// The reference outputs every cell is compared with (the baseline's first measured run).
struct Reference {
  at::Tensor video, frames, latent;
  bool set() const { return video.defined(); }
};

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined()) return 0.0;
  if (a.sizes() != b.sizes()) {
    throw Error(ErrorCategory::kInternal, "bench: an output's shape differs from the baseline's",
                "every cell runs the same request; please report this");
  }
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// One timed generation; `own` are the CPU tensor bytes the bench itself holds (subtracted
// from the tracked peak): what it held before the pipeline was loaded, plus the reference
// outputs once this call keeps them.
BenchRun timed_run(wan22::Pipeline& pipeline, const wan22::GenerateRequest& request,
                   DeviceBackend* backend, std::int64_t& own, Reference& ref, bool set_reference) {
  wan22::Callbacks callbacks;
  callbacks.cancelled = [] { return cancel_requested(); };
  BenchRun run;
  if (backend) {
    backend->synchronize();
    backend->reset_peak_stats();
  }
  const auto t0 = std::chrono::steady_clock::now();
  wan22::GenerateResult result = pipeline.generate(request, callbacks);
  if (backend) backend->synchronize();
  run.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (cpu_tracking_installed()) {
    // The pipeline measures each stage's tracked peak in its own window (StageTime).
    run.tracked_peak = 0;
    for (const auto& t : result.times) {
      const std::int64_t bytes = t.peak_tracked_bytes - own;
      run.stage_tracked_peak[t.stage] = bytes;
      run.tracked_peak = std::max(run.tracked_peak, bytes);
    }
  }
  if (backend) run.device_peak = backend->allocator_stats().peak_allocated;
  for (const auto& t : result.times) {
    run.stage_seconds.emplace_back(t.stage, t.seconds);
    run.stage_peak_rss[t.stage] = t.peak_rss_bytes;
  }
  run.peak_rss = result.peak_rss_bytes;
  run.ledger_peak = result.ledger_peak_bytes;
  run.fallbacks = static_cast<int>(result.fallbacks.size());
  run.plan_summary = result.plan_summary;
  const at::Tensor video = result.video.cpu(), frames = result.frames.cpu();
  const at::Tensor latent = result.latent.cpu();
  if (set_reference) {
    ref = {video.clone(), frames.clone(), latent.clone()};
    own +=
        static_cast<std::int64_t>(ref.video.nbytes() + ref.frames.nbytes() + ref.latent.nbytes());
  }
  if (ref.set()) {  // else the baseline did not run: nothing to compare with (-1)
    run.video_dev = max_abs(video, ref.video);
    run.frames_dev = static_cast<int>(max_abs(frames, ref.frames));
    run.latent_dev = max_abs(latent, ref.latent);
  }
  run.fingerprint = {video.to(at::kDouble).sum().item<double>(),
                     frames.to(at::kLong).sum().item<double>(),
                     latent.to(at::kDouble).sum().item<double>()};
  return run;
}

// Replays the ledger's events: the most bytes each component held on the device at once.
std::map<std::string, std::int64_t> component_peaks(const std::vector<LedgerEvent>& events) {
  std::map<std::string, std::int64_t> held, peak;
  for (const LedgerEvent& e : events) {
    held[e.component] += e.kind == LedgerEvent::kAcquire ? e.bytes : -e.bytes;
    peak[e.component] = std::max(peak[e.component], held[e.component]);
  }
  return peak;
}

BenchCellResult run_cell(const BenchCell& cell, const std::string& bundle, const BenchOptions& o,
                         const wan22::GenerateRequest& base_request, DeviceBackend* backend,
                         Reference& ref, ProgressBar& bar, const std::string& label) {
  BenchCellResult out;
  out.cell = cell;
  if (!cell.skip_reason.empty()) {
    out.status = "skipped";
    out.error = cell.skip_reason;
    return out;
  }
  wan22::GenerateRequest request = base_request;
  if (cell.chunk.chunk_frames > 0) request.chunk_frames = cell.chunk.chunk_frames;
  if (cell.chunk.vae_tile > 0) request.vae_tile = cell.chunk.vae_tile;
  std::int64_t own = cpu_tracking_installed() ? cpu_tracked_bytes() : 0;
  wan22::LoadOptions load;
  load.verify = false;  // verified once before the matrix
  load.threads = o.threads;
  load.plan = cell.run_plan;
  load.fallback = false;  // a plan that does not fit is a failed cell, not another plan
  const int total = o.warmup + o.repeat;
  bar.update(label, 0, total);
  try {
    auto pipeline = wan22::Pipeline::load(bundle, load);
    out.load_seconds = pipeline->load_seconds();
    if (cpu_tracking_installed()) out.tracked_weights = cpu_tracked_bytes() - own;
    for (int i = 0; i < total; ++i) {
      const bool measured = i >= o.warmup;
      BenchRun run =
          timed_run(*pipeline, request, backend, own, ref, cell.baseline && measured && !ref.set());
      if (measured) {
        out.plan_summary = run.plan_summary;
        out.runs.push_back(std::move(run));
      }
      bar.update(label, i + 1, total);
    }
    out.ledger_component_peak = component_peaks(pipeline->residency().ledger().events());
  } catch (const Error& e) {
    if (e.category() == ErrorCategory::kCancelled) throw;
    out.status = "failed";
    out.error = fmt::format("[{}] {}", category_name(e.category()), e.what());
    out.category = e.category();
    out.runs.clear();
  }
  trim_host_memory();  // the pipeline is gone; give its heap back before the next
  if (backend) backend->empty_cache();
  return out;
}

int run_bench(const BenchOptions& o) {
  const std::string bundle = o.model.empty() ? default_bundle_dir() : o.model;
  if (bundle.empty()) {
    throw Error(ErrorCategory::kUsage, "no --model given and no demo bundle next to wanrun",
                "pass --model BUNDLE_DIR (export one with models/export, see docs/exporter.md)");
  }
  if (o.repeat < 1 || o.warmup < 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("--repeat {} / --warmup {}: need at least one run and no negative "
                            "warm-up",
                            o.repeat, o.warmup));
  }
  const auto start = std::chrono::steady_clock::now();
  BundleOptions bundle_options;
  bundle_options.verify = false;
  const BundleManifest manifest = read_bundle(bundle, bundle_options);
  const wan22::WanSpec spec = wan22::read_wan_spec(manifest);
  const ModelRequirements requirements = wan22::wan_requirements_from_path(bundle);

  wan22::GenerateRequest request;
  request.prompt = o.prompt;
  if (!o.size.empty()) std::tie(request.width, request.height) = parse_size(o.size);
  request.frames = o.frames;
  request.steps = o.steps;
  request.seed = o.seed;
  if (!o.image.empty()) request.image = read_image(o.image);
  const wan22::ResolvedRequest resolved = wan22::resolve_request(spec, request);
  request.seed = resolved.seed;  // a negative seed is drawn once for every cell

  // Validate every setting before running anything.
  int num_blocks = 0;
  for (const auto& c : requirements.components) {
    if (c.role == ComponentRole::kDenoiser) num_blocks = std::max(num_blocks, c.num_blocks());
  }
  const std::vector<int> ks = o.blocks_resident.empty()
                                  ? std::vector<int>{}
                                  : parse_int_list(o.blocks_resident, "--blocks-resident");
  const auto plans = select_plans(bench_plan_specs(num_blocks, ks), o.plans, num_blocks);
  const auto dtypes = parse_dtype_list(o.dtypes);
  const auto chunks = parse_chunk_list(o.chunks);
  for (const BenchChunkSpec& c : chunks) {
    wan22::GenerateRequest chunked = request;
    if (c.chunk_frames > 0) chunked.chunk_frames = c.chunk_frames;
    if (c.vae_tile > 0) chunked.vae_tile = c.vae_tile;
    try {
      wan22::resolve_request(spec, chunked);
    } catch (const Error& e) {
      throw Error(ErrorCategory::kUsage, fmt::format("--chunks {}: {}", c.name, e.what()),
                  e.hint());
    }
  }
  const BenchPlanning planning = bench_planning(o.device, o.prefetch);
  Workload workload;
  workload.width = resolved.width;
  workload.height = resolved.height;
  workload.frames = resolved.frames;
  workload.image = resolved.has_image;
  const std::vector<BenchCell> cells = plan_cells(requirements, workload, planning, plans, dtypes,
                                                  chunks, spec.vae_stride[0], spec.vae_stride[1]);
  if (o.list) {
    for (const BenchCell& c : cells) {
      fmt::print("{}{}\n", c.id, c.skip_reason.empty() ? "" : "  (skipped: " + c.skip_reason + ")");
    }
    return 0;
  }
  const std::filesystem::path out_dir(o.out);
  std::filesystem::create_directories(out_dir);
  if (!o.no_verify) read_bundle(bundle);  // sha256 of every file, once

  install_interrupt_handler();
  install_cpu_tracking();
  std::unique_ptr<DeviceBackend> backend;
  if (planning.run_device != "cpu") {
    backend = make_cuda_backend(cuda_device_index(planning.run_device));
  }

  BenchReport report;
  report.version = version();
  report.bundle = bundle;
  report.model_id = spec.model_id;
  report.task = spec.task;
  report.device = planning.run_device;
  report.device_name = backend ? backend->name() : planning.real.cpu_model;
  report.planned_for = planning.planned_for;
  report.memory_note =
      backend ? "Device peak: the CUDA caching allocator's peak of allocated bytes during "
                "generate() (weights and activations). Ledger peak: weight bytes the residency "
                "manager held on the device. Tracked peak: LibTorch CPU tensor bytes."
              : "CPU run, no device memory: 'ledger peak' is what the plan would hold on a GPU "
                "(weight bytes counted by the residency ledger; on the CPU offload moves "
                "nothing, so it saves no real memory here); 'tracked peak' is the pipeline's "
                "peak of LibTorch CPU tensor bytes (weights, activations, outputs); RSS is the "
                "whole process's.";
  report.repeat = o.repeat;
  report.warmup = o.warmup;
  report.prompt = resolved.prompt;
  report.width = resolved.width;
  report.height = resolved.height;
  report.frames = resolved.frames;
  report.steps = resolved.steps;
  report.seed = resolved.seed;

  ProgressBar bar(ProgressBar::parse_mode(o.progress));
  Reference ref;
  std::optional<ErrorCategory> failure;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const std::string label = fmt::format("[{}/{}] {}", i + 1, cells.size(), cells[i].id);
    BenchCellResult r = run_cell(cells[i], bundle, o, request, backend.get(), ref, bar, label);
    if (r.status == "failed" && !failure) failure = r.category;
    report.cells.push_back(std::move(r));
  }
  bar.finish();
  report.threads = at::get_num_threads();
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const nlohmann::json doc = bench_json(report);
  const std::string table = bench_markdown(report);
  write_file_atomic((out_dir / "bench.json").string(), doc.dump(2) + "\n");
  write_file_atomic((out_dir / "bench.md").string(), table);
  if (o.json) {
    fmt::print("{}\n", doc.dump(2));
  } else {
    fmt::print("{}", table);
  }
  fmt::print(stderr, "wrote {} and {} ({} cells, {:.1f} s); plot: python3 bench/plot.py {}\n",
             (out_dir / "bench.json").string(), (out_dir / "bench.md").string(), cells.size(),
             report.wall_seconds, (out_dir / "bench.json").string());
  for (const auto& c : report.cells) {
    if (c.status == "failed") fmt::print(stderr, "failed: {}: {}\n", c.cell.id, c.error);
  }
  return failure ? exit_code(*failure) : 0;
}

}  // namespace

CommandAction add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure VRAM/speed trade-offs over a matrix of plans on one request");
  cmd->add_option("-m,--model", o->model, "Bundle directory (default: the demo bundle)");
  cmd->add_option("--plans", o->plans,
                  "Offload plans, comma-separated: resident, model, sequential (every k), "
                  "sequential-kN, full (default: all)");
  cmd->add_option("--dtypes", o->dtypes,
                  "Dtypes, comma-separated; those the device cannot "
                  "compute in are listed as skipped")
      ->default_val("fp32,bf16,fp16");
  cmd->add_option("--chunks", o->chunks,
                  "Chunk settings, comma-separated: none, fN (denoising windows of N frames), "
                  "tN (VAE tiles of N pixels), fN+tM")
      ->default_val("none");
  cmd->add_option("--blocks-resident", o->blocks_resident,
                  "k values of the sequential plans, comma-separated (default: 0 and half the "
                  "denoiser's blocks)");
  cmd->add_option("--prefetch", o->prefetch,
                  "Blocks prefetched ahead when streaming "
                  "(default: the planner's)");
  cmd->add_option("--device", o->device,
                  "cpu, cuda or cuda:N (default: cuda:0 when a GPU is "
                  "visible, else cpu)");
  cmd->add_option("-p,--prompt", o->prompt, "Prompt of the request");
  cmd->add_option("-i,--image", o->image, "First frame (I2V, optional for TI2V)");
  cmd->add_option("-s,--size", o->size, "WIDTHxHEIGHT (default: the model's)");
  cmd->add_option("-f,--frames", o->frames, "Frames, 4n+1 (default: the model's)");
  cmd->add_option("--steps", o->steps, "Denoising steps (default: the model's)");
  cmd->add_option("--seed", o->seed, "Random seed")->default_val(0);
  cmd->add_option("-t,--threads", o->threads, "CPU threads (default: one per core)")
      ->default_val(0);
  cmd->add_option("--repeat", o->repeat, "Measured runs per plan")->default_val(3);
  cmd->add_option("--warmup", o->warmup, "Unmeasured runs per plan before those")->default_val(1);
  cmd->add_option("-o,--out", o->out, "Directory for bench.json and bench.md")
      ->default_val("bench-results");
  cmd->add_flag("--json", o->json, "Print the JSON document instead of the Markdown table");
  cmd->add_flag("--list", o->list, "Print the cells the options select and exit");
  cmd->add_flag("--no-verify", o->no_verify, "Skip the sha256 check of the bundle files");
  cmd->add_option("--progress", o->progress, "auto, bar, plain or none")
      ->check(CLI::IsMember({"auto", "bar", "plain", "none"}))
      ->default_val("auto");
  return [o] { return run_bench(*o); };
}

}  // namespace wanrt::cli
