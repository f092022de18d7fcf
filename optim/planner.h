// The planner: walks the ladder (docs/optimization.md), cheapest first, until the memory estimate
// fits the budgets; never changes a setting the user gave; logs every decision with its
// numbers; when nothing fits, says what would (size, frames, RAM, VRAM, flags).
#pragma once

#include <string>

#include "optim/ladder.h"
#include "optim/memory_estimate.h"
#include "optim/model_requirements.h"
#include "optim/optim_config.h"
#include "optim/optim_types.h"
#include "runtime/system_resources.h"

namespace wanrt {

/// A plan and its estimate.
struct PlanOutcome {
  OptimizationPlan plan;
  MemoryEstimate estimate;
};


/// Plans `workload` for the model on the machine. The device is settings.device, else the GPU
/// with the most free memory, else the CPU. Ladder on a GPU: resident -> text encoder off-device
/// after use -> model offload -> block streaming (largest k that fits) -> VAE tiling -> full
/// streaming -> frame chunking -> infeasible; on the CPU: all weights in RAM -> loaded on
/// first use -> bf16 weights -> VAE tiling -> frame chunking -> infeasible. Rungs that would
/// change a user setting are skipped. config: performance_priority memory (or a device budget
/// below cpu_offload_threshold_mb) starts at model offload; speed prefetches 2 blocks instead
/// of 1; enable_aggressive_optimization tries frame chunking before full streaming and a
/// half-precision VAE before tiling. `guidance`: compute what would fit when infeasible.
/// Error(kUsage) for an invalid workload (frames, size); Error(kResources) for a dtype the
/// device cannot compute in.
PlanOutcome plan_optimizations(const ModelRequirements& requirements,
                               const SystemResources& resources, const Workload& workload,
                               const PlanSettings& settings, const OptimizationConfig& config,
                               bool guidance = true);

/// Checks a workload against the model's geometry (1 + stride*n frames, size multiples,
/// image presence); Error(kUsage) naming the nearest valid values.
void check_workload(const ModelRequirements& requirements, const Workload& workload);

/// Appends to plan.guidance what would make an infeasible plan fit: the VRAM and RAM it needs,
/// the largest size and frame count that fit this machine, and the flags or settings that
/// would (CPU device, aggressive optimization, removing a user setting that blocks a rung).
void add_guidance(const ModelRequirements& requirements, const SystemResources& resources,
                  const Workload& workload, const PlanSettings& settings,
                  const OptimizationConfig& config, PlanOutcome& outcome);

}  // namespace wanrt
