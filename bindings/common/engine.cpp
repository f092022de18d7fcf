#include "bindings/common/engine.h"

#include <fmt/format.h>

#include <chrono>
#include <optional>

#include "bindings/common/json_reports.h"
#include "io/video_writer.h"
#include "models/wan22/memory_model.h"
#include "models/wan22/request_plan.h"
#include "runtime/error.h"

namespace wanrt::bindings {
SystemResources machine_within_budget(std::int64_t vram_budget) {
  SystemResources resources = wan22::make_optimization_manager().analyze_system_resources();
  if (vram_budget > 0) {
    for (GpuInfo& gpu : resources.gpus) {
      gpu.free_bytes = std::min(gpu.free_bytes, vram_budget);
      gpu.total_bytes = std::min(gpu.total_bytes, vram_budget);
    }
  }
  return resources;
}

Engine::Engine(const std::string& bundle_dir, EngineOptions options)
    : bundle_(bundle_dir), options_(std::move(options)) {
  wan22::ModelOptions model_options;
  model_options.verify = options_.verify;
  model_options.threads = options_.threads;
  model_options.loras = options_.loras;
  model_options.lora_allow_partial = options_.lora_allow_partial;
  if (planning()) {
    // The plan of the default request decides the host dtypes and residency.
    wan22::GenerateRequest defaults;
    const OptimizationResult planned = wan22::plan_request(
        bundle_, defaults, options_.settings, {}, machine_within_budget(options_.vram_budget),
        options_.loras);
    for (const ComponentPlan& c : planned.plan.components) model_options.storage[c.name] = c.storage;
    model_options.preload = planned.plan.host_residency == HostResidency::kAll;
  }
  model_ = wan22::Model::load(bundle_, model_options);
}

bool Engine::planning() const {
  return options_.auto_optimize || !SettingSet::of(options_.settings).empty();
}

nlohmann::json Engine::inspect() const {
  return inspect_json(model_->manifest(), model_->spec(), options_.verify);
}

nlohmann::json Engine::plan(const wan22::GenerateRequest& request) const {
  return result_json(
      wan22::plan_request(bundle_, request, options_.settings, {},
                          machine_within_budget(options_.vram_budget), options_.loras));
}

EngineRun Engine::generate(wan22::GenerateRequest request, const wan22::Callbacks& callbacks,
                           const std::string& out_path) const {
  const auto start = std::chrono::steady_clock::now();
  if (!out_path.empty()) check_output_path(out_path);  // before any heavy work
  wan22::SessionOptions session;
  session.vram_budget = options_.vram_budget;
  session.fallback = options_.fallback;
  if (planning()) {
    const OptimizationResult planned =
        wan22::plan_request(bundle_, request, options_.settings, {},
                            machine_within_budget(options_.vram_budget), options_.loras);
    if (!planned.feasible()) {
      std::string guidance;
      for (const auto& g : planned.plan.guidance) guidance += (guidance.empty() ? "" : "; ") + g;
      throw Error(ErrorCategory::kResources,
                  fmt::format("{} at {}x{}, {} frames does not fit this machine", planned.model_id,
                              planned.workload.width, planned.workload.height,
                              planned.workload.frames),
                  guidance.empty() ? "lower the size or the frame count" : guidance);
    }
    session.plan = planned.plan;
    wan22::apply_plan_chunking(planned.plan, model_->spec(), request);
  }
  wan22::Session run(model_, session);
  const wan22::ResolvedRequest resolved = run.resolve(request);

  wan22::Callbacks with_writer = callbacks;
  std::optional<VideoWriter> writer;
  if (!out_path.empty()) {
    VideoWriteOptions write;
    write.fps = model_->spec().sampling.fps;
    write.cancelled = callbacks.cancelled;
    writer.emplace(out_path, resolved.width, resolved.height, write);
    with_writer.on_frames = [&writer, &callbacks](const at::Tensor& frames) {
      writer->append(frames);
      if (callbacks.on_frames) callbacks.on_frames(frames);
    };
  }
  EngineRun out;
  out.result = run.generate(request, with_writer);
  if (writer) writer->finish();

  RunContext context;
  context.output = out_path;
  context.bundle = model_->manifest().root;
  context.image = request.image ? "<caller's pixels>" : "";
  context.auto_optimize = options_.auto_optimize;
  context.vram_budget = options_.vram_budget;
  context.streamed = with_writer.on_frames != nullptr;
  context.loras = loras_json(*model_);
  context.load_seconds = model_->load_seconds();
  context.total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.report = run_report_json(context, model_->spec(), run.residency().plan(), out.result);
  return out;
}

}  // namespace wanrt::bindings
