// What the machine offers: CPU cores and features, host RAM, GPUs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wanrt {

/// One CUDA device.
struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  ///< compute capability
  std::int64_t total_bytes = 0, free_bytes = 0;
  bool bf16 = false;  ///< compute capability >= 8.0
  bool fp16 = false;  ///< compute capability >= 7.0
};

/// A snapshot of the machine's resources.
struct SystemResources {
  int cpu_cores = 0;               ///< cores this process may run on (its affinity mask)
  std::string cpu_model;           ///< "model name" of /proc/cpuinfo
  bool cpu_avx512_bf16 = false;    ///< /proc/cpuinfo flag avx512_bf16
  bool cpu_amx = false;            ///< /proc/cpuinfo flag amx_bf16 (AMX tiles with bf16)
  std::int64_t ram_total = 0;      ///< MemTotal of /proc/meminfo, bytes
  std::int64_t ram_available = 0;  ///< MemAvailable of /proc/meminfo, bytes
  std::vector<GpuInfo> gpus;       ///< empty without CUDA (build or machine)
};

/// Probes the machine (cheap: reads /proc and, with CUDA, the device properties).
/// Error(kResources) when /proc/meminfo cannot be read.
SystemResources probe_system();

/// Number of CPUs in this process's affinity mask (sched_getaffinity), falling back to
/// std::thread::hardware_concurrency(); at least 1.
int cpu_core_count();

/// The CUDA devices with their properties and memory; empty when the build has no CUDA
/// backend or no device is visible.
std::vector<GpuInfo> probe_gpus();

}  // namespace wanrt
