// The matrix `wanrun bench` runs: offload plans x dtypes x chunk settings, each cell turned into
// a real optimization plan by the planner, with the planner's memory estimate.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "optim/memory_estimate.h"
#include "optim/model_requirements.h"
#include "optim/optim_types.h"
#include "runtime/system_resources.h"

namespace wanrt::cli {

/// One offload setting: "resident", "model", "sequential-kN", "full".
struct BenchPlanSpec {
  std::string name;
  OffloadPolicy offload = OffloadPolicy::kNone;
  std::optional<int> blocks_resident;  ///< k, for sequential only
};

/// One chunk setting: "none", "fN" (sliding-window denoising of N video frames), "tN" (VAE
/// tiles of N pixels) or "fN+tM".
struct BenchChunkSpec {
  std::string name = "none";
  int chunk_frames = 0;  ///< video frames per window; 0: off
  int vae_tile = 0;      ///< pixels per VAE tile side; 0: off
};

/// The offload plans the matrix may contain for a model whose denoisers have `num_blocks`
/// blocks: resident, model, sequential-kN for each N in `ks` (default: 0 and half the blocks),
/// full.
std::vector<BenchPlanSpec> bench_plan_specs(int num_blocks, const std::vector<int>& ks = {});

/// Selects the specs named in `list` (comma-separated; "sequential" selects every
/// sequential-kN; "all" or empty selects everything). Error(kUsage) naming the unknown name and
/// listing the valid ones; sequential-kN with N in [0, num_blocks] is always valid.
std::vector<BenchPlanSpec> select_plans(const std::vector<BenchPlanSpec>& specs,
                                        const std::string& list, int num_blocks);

/// Parses "fp32,bf16,fp16" (Error(kUsage) on an unknown dtype or an empty list).
std::vector<Dtype> parse_dtype_list(const std::string& list);
/// Parses "none,f9,t64,f9+t64" (Error(kUsage) on a malformed entry).
std::vector<BenchChunkSpec> parse_chunk_list(const std::string& list);
/// Parses "0,2" as non-negative integers (Error(kUsage) naming `what`).
std::vector<int> parse_int_list(const std::string& list, const std::string& what);

/// One cell of the matrix, planned.
struct BenchCell {
  std::string id;  ///< "<plan>/<dtype>/<chunk>", e.g. "sequential-k1/bf16/none"
  BenchPlanSpec plan;
  Dtype dtype = Dtype::kFp32;
  BenchChunkSpec chunk;
  bool baseline = false;      ///< the fp32 resident unchunked cell every output is compared with
  std::string skip_reason;    ///< not run (unsupported dtype, plan that does not fit)
  OptimizationPlan run_plan;  ///< what the pipeline loads (device set to the run device)
  MemoryEstimate estimate;    ///< the planner's estimate on the planning machine
  /// CPU runs: the planner's estimate of host tensor bytes for the same dtype and chunking
  /// on the CPU (host peak minus the process baseline and the reserve); -1 when not computed.
  std::int64_t cpu_tensor_estimate = -1;
  /// CPU runs: that estimate itself (per stage; empty otherwise).
  MemoryEstimate cpu_estimate;
};

/// How the cells are planned and run.
struct BenchPlanning {
  std::string run_device;       ///< "cpu" or "cuda:N": where the pipeline computes
  std::string planning_device;  ///< the device the planner plans for
  SystemResources planning;     ///< the machine the planner sees (a simulated GPU on a CPU)
  SystemResources real;         ///< this machine
  std::string planned_for;      ///< description for the report
  PlanSettings base;            ///< settings common to every cell (prefetch)
};

/// The planning set-up for `device` ("cpu", "cuda", "cuda:N"; empty: cuda:0 when a GPU is
/// visible, else cpu). On the CPU the planner plans for a simulated 80 GiB GPU of compute
/// capability 8.0 (so each cell's estimate is a device estimate of the same plan, with the
/// GPU ladder's precision and streaming choices); the plan then runs with the CPU as its
/// "device", so the residency ledger records what that GPU would hold.
BenchPlanning bench_planning(const std::string& device, std::optional<int> prefetch);

/// Plans every cell: the planner with offload, k, dtype and chunking fixed. A dtype the run
/// device cannot compute in, or a plan the planner finds infeasible, gives a skipped cell. The
/// baseline (resident/fp32/none) comes first, whether selected or not.
std::vector<BenchCell> plan_cells(const ModelRequirements& requirements, const Workload& workload,
                                  const BenchPlanning& planning,
                                  const std::vector<BenchPlanSpec>& plans,
                                  const std::vector<Dtype>& dtypes,
                                  const std::vector<BenchChunkSpec>& chunks, int temporal_stride,
                                  int spatial_stride);

/// Largest device weight bytes of any stage of `estimate` (weights + streaming buffers): the
/// figure the residency ledger's peak corresponds to.
std::int64_t estimate_weights_peak(const MemoryEstimate& estimate);
/// Largest device total of any stage of `estimate` without the reserve (vram_safety_margin_mb):
/// the figure a CUDA allocator's peak corresponds to.
std::int64_t estimate_device_peak_excl_reserve(const MemoryEstimate& estimate);

}  // namespace wanrt::cli
