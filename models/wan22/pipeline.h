// The Wan 2.2 generation pipeline in one object: a Model (model.h) with one Session
// (session.h) on it. The simplest entry point for applications (docs/embedding.md); an
// application serving several requests, or requests with different plans, loads one Model and
// opens a Session per worker instead.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/wan22/callbacks.h"
#include "models/wan22/model.h"
#include "models/wan22/request.h"
#include "models/wan22/session.h"
#include "optim/optim_types.h"

namespace wanrt::wan22 {

/// How to open a bundle: ModelOptions and SessionOptions together.
struct LoadOptions {
  bool verify = true;  ///< check sha256 of every file (false: --no-verify)
  int threads = 0;     ///< LibTorch intra-op threads; <= 0 means one per core
  /// TorchScript graph optimisation (process-wide; ModelOptions::jit_optimize).
  bool jit_optimize = false;
  /// Called while hashing large files: (file, bytes done, bytes total).
  std::function<void(const std::string&, std::int64_t, std::int64_t)> hash_progress;
  /// The memory plan to apply (SessionOptions::plan). The model holds the host weights in the
  /// plan's storage dtypes (ModelOptions::storage), so a cast costs no second copy. With host
  /// residency on_demand the model is loaded without preload: components are loaded at their
  /// first use in a run and freed after their last.
  std::optional<OptimizationPlan> plan;
  /// Device memory budget in bytes for the residency ledger (SessionOptions::vram_budget).
  std::int64_t vram_budget = 0;
  /// Step the plan down and retry after out-of-memory (SessionOptions::fallback).
  bool fallback = true;
  /// LoRAs merged into the DiTs at load (ModelOptions::loras) and the partial-match policy
  /// (ModelOptions::lora_allow_partial).
  std::vector<LoraSpec> loras;
  bool lora_allow_partial = false;
  /// The ranks of a multi-process run (SessionOptions::parallel); none: one process.
  std::shared_ptr<dist::Parallelism> parallel;
};

/// A Model with one Session. Thread safety: as Session (one thread at a time).
class Pipeline {
 public:
  /// Loads the model (Model::load) and opens a session on it. Throws Error(kBundle) on a bad
  /// bundle, naming the file and key.
  static std::unique_ptr<Pipeline> load(const std::string& bundle_dir,
                                        const LoadOptions& options = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// The model's facts and defaults.
  const WanSpec& spec() const;
  /// The manifest the bundle was read from.
  const BundleManifest& manifest() const;
  /// Seconds spent loading components (with host residency on_demand, summed over the loads
  /// made during generate() calls so far).
  double load_seconds() const;
  /// Weights, plan and residency ledger (the plan may change during generate() by fallback).
  const ResidencyManager& residency() const;
  /// The loaded model, to open more sessions on it.
  std::shared_ptr<const Model> model() const;
  /// The session generate() runs in.
  Session& session();

  /// Validates and fills a request without running it (Error(kUsage) on bad values).
  ResolvedRequest resolve(const GenerateRequest& request) const;
  /// Session::generate.
  GenerateResult generate(const GenerateRequest& request, const Callbacks& callbacks = {});

 private:
  Pipeline(std::shared_ptr<const Model> model, std::unique_ptr<Session> session);
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Session> session_;
};

}  // namespace wanrt::wan22
