// OptimizationManager: the optimization layer's facade (docs/architecture.md, optimization layer).
// Model-agnostic: a RequirementsReader supplied by the models layer turns a bundle or profile
// into ModelRequirements (wan22::make_optimization_manager wires the Wan 2.2 one).
// apply_memory_optimizations hands a loaded model's components to a ResidencyManager that
// casts them and moves their weights as the plan says (models/wan22's Pipeline calls it).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "optim/independence.h"
#include "optim/memory_estimate.h"
#include "optim/model_requirements.h"
#include "optim/optim_config.h"
#include "optim/optim_types.h"
#include "optim/planner.h"
#include "optim/residency_manager.h"
#include "runtime/memory_monitor.h"
#include "runtime/system_resources.h"

namespace wanrt {

class DeviceBackend;

/// Reads a bundle directory or a profile / manifest file into requirements.
using RequirementsReader = std::function<ModelRequirements(const std::string& path)>;

/// Everything a planning request produces.
struct OptimizationResult {
  std::string model_id;
  std::string source;  ///< bundle directory or profile file
  Workload workload;   ///< as planned (defaults filled in)
  SystemResources resources;
  OptimizationPlan plan;
  MemoryEstimate estimate;
  IndependenceReport independence;

  bool feasible() const { return plan.feasible; }
};

/// Plans memory optimizations for a model on a machine.
class OptimizationManager {
 public:
  /// `reader` is needed only by get_optimization_recommendations.
  explicit OptimizationManager(OptimizationConfig config = {}, RequirementsReader reader = {});

  const OptimizationConfig& config() const { return config_; }

  /// Probes this machine (probe_system()).
  SystemResources analyze_system_resources() const;

  /// Plans `workload` (zero fields: the model's defaults) under the user's `settings`.
  OptimizationResult recommend_optimizations(const ModelRequirements& requirements,
                                             const SystemResources& resources,
                                             const Workload& workload = {},
                                             const PlanSettings& settings = {}) const;

  /// The estimate of a given plan on `resources` (budgets from the plan's device).
  MemoryEstimate estimate_memory_usage(const ModelRequirements& requirements,
                                       const Workload& workload, const OptimizationPlan& plan,
                                       const SystemResources& resources) const;

  /// Applies `plan` to loaded components: casts each to its planned storage dtype and returns
  /// the manager that moves their weights (offload policy) and records them in its ledger,
  /// with `budget` bytes of device memory (0: no limit). The transfer is the plan device's:
  /// CUDA for "cuda:N" (Error(kResources) in a build without CUDA), else the CPU.
  std::unique_ptr<ResidencyManager> apply_memory_optimizations(
      std::vector<ManagedComponent> components, const OptimizationPlan& plan,
      std::int64_t budget = 0) const;

  /// Host RSS (and its peak) and, with `device`, the device allocator's figures now.
  MemorySample monitor_memory_usage(DeviceBackend* device = nullptr) const;

  /// Reads the model at `model_dir_or_profile` with the reader and plans on `resources` (this
  /// machine when absent). Error(kInternal) without a reader.
  OptimizationResult get_optimization_recommendations(
      const std::string& model_dir_or_profile, const Workload& workload = {},
      const PlanSettings& settings = {},
      const std::optional<SystemResources>& resources = std::nullopt) const;

 private:
  OptimizationConfig config_;
  RequirementsReader reader_;
};

/// `workload` with zero width/height/frames replaced by the model's defaults.
Workload with_defaults(const ModelRequirements& requirements, const Workload& workload);

}  // namespace wanrt
