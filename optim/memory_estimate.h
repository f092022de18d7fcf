// The memory estimate of a plan: for every stage of the run, what the compute device and host
// RAM hold (weights per dtype, activations, workspace, reserve), and the peaks. Model-agnostic:
// the activations come from the requirements' ActivationModel. Formulas: docs/optimization.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "optim/model_requirements.h"
#include "optim/optim_types.h"

namespace wanrt {

/// The memory a plan may use. Device figures are 0 for a CPU-only plan.
struct Budget {
  std::int64_t device_capacity = 0;  ///< device bytes available (simulated total, or free now)
  std::int64_t device_reserve = 0;   ///< kept free: vram_safety_margin_mb
  std::int64_t host_capacity = 0;    ///< host RAM available (simulated total, or MemAvailable)
  std::int64_t host_reserve = 0;     ///< kept for the OS and other processes
  std::string device_source;         ///< where device_capacity comes from, for the reasons
  std::string host_source;
};

/// Host bytes of the process itself (LibTorch, code; a CUDA context adds to it), counted in
/// every stage.
constexpr std::int64_t kHostCodeBaseline = 512LL << 20;
/// Host bytes the allocator may hold beyond the live tensors within a stage (freed temporaries
/// kept on the heap, fragmentation), counted in every stage. Every stage ends with a trim
/// (runtime/host_allocator.h), so no stage carries another's. Measured on the mid bundle at
/// 512x512x17 (docs/optimization.md): at most 268 MiB given back at a stage's end.
constexpr std::int64_t kHostAllocatorRetention = 512LL << 20;
/// The same while a VAE runs (image encode, decode): blocks of 32 MiB and more then bypass the
/// heap and go back to the system when freed (runtime/host_allocator.h, kTunedVaeMmapThreshold),
/// so only freed blocks below that stay. Measured: 112 and 222 MiB given back at the decode's
/// end on the mid bundle at 256x256 and 512x512, nothing on TI2V-5B's decoder at 256x256, whose
/// tensors are larger (bench/README.md, "End to end"; the 512 MiB above made that estimate
/// 20 % high).
constexpr std::int64_t kHostVaeAllocatorRetention = 256LL << 20;
/// Both of the above.
constexpr std::int64_t kHostProcessBaseline = kHostCodeBaseline + kHostAllocatorRetention;

/// What one stage holds at its peak.
struct StageEstimate {
  std::string name;
  std::string component;           ///< the component it runs
  bool on_cpu = false;             ///< runs on the CPU (its activations are host memory)
  std::vector<MemoryItem> device;  ///< weights, activations, workspace, reserve
  std::vector<MemoryItem> host;
  std::int64_t device_total = 0, host_total = 0;

  /// Sum of the device (or host) items of one kind.
  std::int64_t device_bytes(MemoryItem::Kind kind) const;
  std::int64_t host_bytes(MemoryItem::Kind kind) const;
  /// Device weight bytes held in half precision / in fp32.
  std::int64_t device_half_weights = 0, device_fp32_weights = 0;
};

/// A plan's estimate: per stage, and the peaks.
struct MemoryEstimate {
  std::vector<StageEstimate> stages;
  std::int64_t device_peak = 0, host_peak = 0;
  std::string device_peak_stage, host_peak_stage;
  Budget budget;

  /// The device peak (reserve included) is within the device capacity (always true for a
  /// CPU-only plan).
  bool device_fits() const { return device_peak <= budget.device_capacity; }
  /// The host peak (reserve included) is within the host capacity.
  bool host_fits() const { return host_peak <= budget.host_capacity; }
  bool fits() const { return device_fits() && host_fits(); }
  /// The stage called `name`; Error(kInternal) when absent.
  const StageEstimate& stage(const std::string& name) const;
};

/// Estimates `plan` for `workload`: per stage, the device holds the weights of the components
/// its residency puts there (streamed ones: non-block part + resident and in-flight blocks),
/// the stage's activations and workspace (ActivationModel) and the reserve; the host holds the
/// process baseline, the reserve, the weights the residency keeps there (pinned copies of
/// streamed or offloaded components, CPU-placed ones, the component being loaded), CPU stages'
/// activations and the output. Error(kInternal) when the plan does not cover every component.
MemoryEstimate estimate_memory(const ModelRequirements& requirements, const Workload& workload,
                               const OptimizationPlan& plan, const Budget& budget);

}  // namespace wanrt
