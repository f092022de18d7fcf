// Configuration of the optimization layer, read from YAML (`--optim-config FILE`).
#pragma once

#include <cstdint>
#include <string>

namespace wanrt {

/// How the planner trades speed against memory.
enum class PerformancePriority { kSpeed, kBalanced, kMemory };

/// Planner settings; the defaults are the project specification's.
struct OptimizationConfig {
  std::int64_t vram_safety_margin_mb = 1024;         ///< device memory kept free
  int max_chunk_size = 8;                            ///< largest frame chunk the planner picks
  std::int64_t mixed_precision_threshold_mb = 8192;  ///< below this free VRAM, prefer fp16/bf16
  std::int64_t cpu_offload_threshold_mb = 6144;      ///< below this free VRAM, prefer offload
  PerformancePriority performance_priority = PerformancePriority::kBalanced;
  bool enable_aggressive_optimization = false;       ///< allow lossy/slow rungs earlier
};

/// Reads a config file. Keys absent from the file keep their defaults; unknown keys, values of
/// the wrong type and out-of-range values throw Error(kUsage) naming the file, line and key.
OptimizationConfig load_optimization_config(const std::string& path);

/// Same as load_optimization_config, for YAML text held in memory (`name` labels messages).
OptimizationConfig parse_optimization_config(const std::string& text, const std::string& name);

/// "speed" | "balanced" | "memory".
const char* priority_name(PerformancePriority priority) noexcept;

}  // namespace wanrt
