// JSON documents the interfaces share (wanrun's --json, the C API, the Python module): the
// machine, a plan and its estimate, a bundle's contents, and the report of a run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "models/wan22/session.h"
#include "optim/optimization_manager.h"
#include "runtime/bundle.h"
#include "runtime/system_resources.h"

namespace wanrt::bindings {

/// The per-component plan (name, placement, storage, compute, residency, k, prefetch).
nlohmann::json components_json(const OptimizationPlan& plan);
/// A planning result as one document (plan, reasons, ladder, estimate per stage, guidance).
nlohmann::json result_json(const OptimizationResult& result);
/// The machine.
nlohmann::json resources_json(const SystemResources& resources);

/// The process's host allocator as runtime/host_allocator.h set it up.
nlohmann::json host_allocator_json();

/// A bundle's manifest: model, task, components (sizes, contract), sampling defaults.
nlohmann::json inspect_json(const BundleManifest& manifest, const wan22::WanSpec& spec,
                            bool verified);

/// What a run report says besides the result itself.
struct RunContext {
  std::string output;          ///< the output file ("" when the caller kept the frames)
  std::string bundle;          ///< the bundle directory
  std::string image;           ///< where the image came from ("" without one)
  bool auto_optimize = false;  ///< the plan came from the planner
  std::int64_t vram_budget = 0;
  bool streamed = true;        ///< frames streamed as decoded (else the video was kept)
  double load_seconds = 0;
  double total_seconds = 0;
  nlohmann::json loras;        ///< loras_json() of the model (null: none given)
};

/// The LoRAs a model was loaded with and the last merge into each DiT; null when none.
nlohmann::json loras_json(const wan22::Model& model);

/// The report of one run: request as resolved, plan as applied (with fallbacks and
/// chunking), expert trace, stage times and peaks.
nlohmann::json run_report_json(const RunContext& context, const wan22::WanSpec& spec,
                               const OptimizationPlan& plan, const wan22::GenerateResult& result);

}  // namespace wanrt::bindings
