// The embedding engine behind the C API and the Python module: a loaded model with the
// caller's plan settings; each generate() plans the request when asked to, opens its own
// session on the shared model and runs it, optionally writing the video to a file.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/wan22/model.h"
#include "models/wan22/session.h"
#include "optim/optim_types.h"
#include "runtime/system_resources.h"

namespace wanrt::bindings {

/// How an Engine opens its bundle and plans its runs.
struct EngineOptions {
  bool verify = true;  ///< check the bundle's sha256 digests at open
  int threads = 0;     ///< LibTorch intra-op threads (process-wide); <= 0: one per core
  /// Settings the caller fixes. When any is set, or auto_optimize, every request is planned
  /// for this machine (wanrt::wan22::plan_request) with them fixed; otherwise runs use the
  /// plain plan (everything resident on the CPU in the stored dtype).
  PlanSettings settings;
  bool auto_optimize = false;
  std::int64_t vram_budget = 0;  ///< device bytes the weights may hold (0: none)
  bool fallback = true;          ///< step the plan down and retry after out-of-memory
  /// LoRAs merged into the DiTs at open (wan22::ModelOptions::loras); the planner counts them.
  std::vector<wan22::LoraSpec> loras;
  bool lora_allow_partial = false;
};

/// This machine as the planner sees it, with a device budget (bytes, 0: none) capping what
/// each GPU reports (--vram-budget, vram_budget).
SystemResources machine_within_budget(std::int64_t vram_budget);

/// What a run produced: the result and the run report (bindings/common/json_reports.h).
struct EngineRun {
  wan22::GenerateResult result;
  nlohmann::json report;
};

/// A bundle opened for embedding. Thread safety: every member may be called from several
/// threads at once; concurrent generate() calls run in separate sessions on the one model.
class Engine {
 public:
  /// Opens and verifies the bundle. With planning on, the model's host weights take the
  /// storage dtypes of the plan for the model's default request (so runs need no second
  /// copy) and are loaded on first use when that plan says so.
  Engine(const std::string& bundle_dir, EngineOptions options);

  /// The loaded model.
  const wan22::Model& model() const { return *model_; }
  /// Whether runs are planned (auto_optimize or a setting given).
  bool planning() const;
  /// The bundle as inspect_json describes it.
  nlohmann::json inspect() const;
  /// What the planner recommends for `request` on this machine with the fixed settings: the
  /// plan generate() applies when planning() (result_json).
  nlohmann::json plan(const wan22::GenerateRequest& request) const;
  /// Plans (when planning()), opens a session and generates. `out_path`: also write the video
  /// there (MP4, PNG directory or tensor file, as wanrun; atomic, streamed as decoded); empty:
  /// no file. Error(kResources) when the planned request does not fit, with the guidance.
  EngineRun generate(wan22::GenerateRequest request, const wan22::Callbacks& callbacks,
                     const std::string& out_path = {}) const;

 private:
  std::string bundle_;
  EngineOptions options_;
  std::shared_ptr<const wan22::Model> model_;
};

}  // namespace wanrt::bindings
