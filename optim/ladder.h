// The fallback ladder: one table of rungs, cheapest-to-lose first, that the planner walks
// before a run (optim/planner_ladder.cpp, against the memory estimate) and the residency
// manager walks during one (optim/residency_manager.cpp, after an out-of-memory error), and
// the settings a user can fix, which no rung may change.
#pragma once

#include <cstdint>
#include <vector>

#include "optim/optim_types.h"

namespace wanrt {

/// Rung names (OptimizationPlan::rung, reports), in the default order.
namespace rung {
constexpr const char* kResident = "resident";
constexpr const char* kTextEncoderOffload = "text encoder off-device after use";
constexpr const char* kModelOffload = "model offload";
constexpr const char* kBlockStreaming = "block streaming";
constexpr const char* kVaeTiling = "VAE tiling";
constexpr const char* kFullStreaming = "full streaming";
constexpr const char* kFrameChunking = "frame chunking";
constexpr const char* kCpuResident = "CPU: all weights in RAM";
constexpr const char* kCpuOnDemand = "CPU: weights loaded on first use";
constexpr const char* kCpuDisk = "CPU: weights paged from disk, block by block";
constexpr const char* kCpuHalf = "CPU: bf16 weights";
constexpr const char* kInfeasible = "infeasible";
}  // namespace rung

/// The rungs of the ladder.
enum class RungId : std::uint8_t {
  kResident,
  kTextEncoderOffload,
  kModelOffload,
  kBlockStreaming,
  kCpuResident,
  kCpuOnDemand,
  kCpuDisk,
  kCpuHalf,
  kVaeTiling,
  kFullStreaming,
  kFrameChunking,
};

/// One rung: what it is called (plan.rung, reports), which settings it decides (a rung is
/// ruled out, or a run-time step skipped, by the user fixing them; see each walker), which
/// ladders it is on, and whether the runtime can take it during a run (it changes only where
/// weights live, not what is computed).
struct Rung {
  RungId id;
  const char* name;
  SettingSet decides;
  bool gpu;
  bool cpu;
  bool at_run_time;
};

/// Every rung, in ladder order. Filtered by `gpu` it is the GPU ladder: resident -> text
/// encoder off-device after use -> model offload -> block streaming -> VAE tiling -> full
/// streaming -> frame chunking; by `cpu` the CPU ladder: all weights in RAM -> weights loaded
/// on first use -> weights paged from disk (format 2 bundles) -> bf16 weights -> VAE tiling ->
/// frame chunking. The run-time rungs are text
/// encoder off-device, model offload, block streaming (start, halve k, drop prefetch) and full
/// streaming, in this order.
const std::vector<Rung>& ladder();

/// The rungs the planner tries on a GPU (gpu = true) or the CPU, in order;
/// enable_aggressive_optimization (`aggressive`) tries frame chunking before full streaming.
std::vector<const Rung*> ladder_walk(bool gpu, bool aggressive = false);

/// The rung `id` of ladder().
const Rung& rung_of(RungId id);

}  // namespace wanrt
