#include "optim/optimization_manager.h"

#include <utility>

#include "optim/machine.h"
#include "runtime/error.h"

namespace wanrt {

OptimizationManager::OptimizationManager(OptimizationConfig config, RequirementsReader reader)
    : config_(std::move(config)), reader_(std::move(reader)) {}

SystemResources OptimizationManager::analyze_system_resources() const { return probe_system(); }

Workload with_defaults(const ModelRequirements& requirements, const Workload& workload) {
  Workload w = workload;
  if (w.width <= 0) w.width = requirements.default_width;
  if (w.height <= 0) w.height = requirements.default_height;
  if (w.frames <= 0) w.frames = requirements.default_frames;
  if (requirements.image_required) w.image = true;
  return w;
}

OptimizationResult OptimizationManager::recommend_optimizations(
    const ModelRequirements& requirements, const SystemResources& resources,
    const Workload& workload, const PlanSettings& settings) const {
  OptimizationResult r;
  r.model_id = requirements.model_id;
  r.source = requirements.source;
  r.workload = with_defaults(requirements, workload);
  r.resources = resources;
  PlanOutcome outcome = plan_optimizations(requirements, resources, r.workload, settings, config_);
  r.plan = std::move(outcome.plan);
  r.estimate = std::move(outcome.estimate);
  r.independence = analyze_independence(requirements, &r.estimate.budget);
  return r;
}

MemoryEstimate OptimizationManager::estimate_memory_usage(const ModelRequirements& requirements,
                                                          const Workload& workload,
                                                          const OptimizationPlan& plan,
                                                          const SystemResources& resources) const {
  const Budget budget = compute_budget(resources, plan.device, config_);
  const Workload w = with_defaults(requirements, workload);
  check_workload(requirements, w);
  return estimate_memory(requirements, w, plan, budget);
}

MemorySample OptimizationManager::monitor_memory_usage(DeviceBackend* device) const {
  return MemoryMonitor(device).sample();
}

OptimizationResult OptimizationManager::get_optimization_recommendations(
    const std::string& model_dir_or_profile, const Workload& workload, const PlanSettings& settings,
    const std::optional<SystemResources>& resources) const {
  if (!reader_) {
    throw Error(ErrorCategory::kInternal, "OptimizationManager has no requirements reader",
                "construct it with one (wan22::make_optimization_manager)");
  }
  const ModelRequirements requirements = reader_(model_dir_or_profile);
  return recommend_optimizations(requirements, resources ? *resources : probe_system(), workload,
                                 settings);
}

}  // namespace wanrt

namespace wanrt {

std::unique_ptr<ResidencyManager> OptimizationManager::apply_memory_optimizations(
    std::vector<ManagedComponent> components, const OptimizationPlan& plan,
    std::int64_t budget) const {
  std::unique_ptr<DeviceTransfer> transfer = plan.on_gpu()
                                                 ? make_cuda_transfer(cuda_device_index(plan.device))
                                                 : make_cpu_transfer();
  return std::make_unique<ResidencyManager>(std::move(components), plan, std::move(transfer),
                                            budget);
}

}  // namespace wanrt
