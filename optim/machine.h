// The machine as the planner sees it: probed or simulated resources, the memory budgets they
// give, and the precision the device supports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "optim/memory_estimate.h"
#include "optim/optim_config.h"
#include "optim/optim_types.h"
#include "runtime/system_resources.h"

namespace wanrt {

/// A simulated machine (`wanrun plan --vram 24GiB --ram 64GiB --gpu-cc 8.9 --gpu-count 1`):
/// each set field replaces the probed value.
struct MachineOverrides {
  std::optional<std::int64_t> vram;  ///< total memory of each simulated GPU, bytes
  std::optional<std::int64_t> ram;   ///< host RAM, bytes
  std::optional<double> gpu_cc;      ///< compute capability, e.g. 8.9 (default 8.0 with --vram)
  std::optional<int> gpu_count;      ///< simulated GPUs (0: a machine without GPU)
  std::optional<bool> cpu_bf16;      ///< the CPU has avx512_bf16 / AMX

  /// Whether any field is set.
  bool any() const { return vram || ram || gpu_cc || gpu_count || cpu_bf16; }
};

/// `real` with the overrides applied. A simulated GPU is named "simulated GPU", has its whole
/// memory free and bf16/fp16 support from the compute capability; simulated RAM is all
/// available. Error(kUsage) for --gpu-cc or --gpu-count > 0 without --vram when the machine has
/// no GPU to take the memory from, a count < 0, a capability outside [3.0, 12.0] or sizes <= 0.
SystemResources simulate_resources(const SystemResources& real, const MachineOverrides& overrides);

/// What one of `local_ranks` processes on this machine may plan with: the host RAM (total and
/// available) and the cores divided among them (each holds its own weights); GPUs unchanged
/// (each rank takes its own, by LOCAL_RANK).
SystemResources per_rank_resources(SystemResources machine, int local_ranks);

/// Host RAM kept for the OS and other processes: 10% of the RAM, within [1 GiB, 4 GiB].
std::int64_t host_reserve_bytes(std::int64_t ram_total);

/// The budgets of a plan on `device` ("cpu" or "cuda:N"): device = free memory of GPU N minus
/// nothing (the reserve is listed separately: vram_safety_margin_mb); host = available RAM.
/// Error(kResources) when GPU N does not exist.
Budget compute_budget(const SystemResources& resources, const std::string& device,
                      const OptimizationConfig& config);

/// The GPU the planner uses by default: the one with the most free memory (-1: none).
int preferred_gpu(const SystemResources& resources);

/// The precision a device runs best, and why. `half_only_when_short`: whether fp32 is the
/// choice unless memory is short (CPU without native bf16, GPU below compute capability 7.0).
struct PrecisionChoice {
  Dtype compute = Dtype::kFp32;
  std::string reason;
  bool half_saves_memory_only = false;  ///< half precision would be slower here, not faster
};

/// GPU: compute capability >= 8.0 -> bf16, >= 7.0 -> fp16, else fp32 (half storage only to
/// save memory). CPU: bf16 with avx512_bf16 or AMX, else fp32 (LibTorch runs bf16 on any
/// CPU, slower than fp32 without those; fp16 matmuls are not supported on the CPU).
PrecisionChoice choose_precision(const SystemResources& resources, const std::string& device);

/// Error(kResources) naming the device and the reason when `dtype` cannot compute there: fp16
/// on the CPU (LibTorch has no fp16 matmul on the CPU), bf16 on a GPU below compute capability
/// 8.0, fp16 below 7.0 is allowed (storage) but noted by the planner.
void check_dtype_supported(const SystemResources& resources, const std::string& device, Dtype dtype,
                           const std::string& what);

}  // namespace wanrt
