#include "runtime/system_resources.h"

#include <sched.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "runtime/error.h"
#include "runtime/proc_fields.h"

namespace wanrt {
namespace {

// The value after "key\t: " of the first /proc/cpuinfo line starting with key.
std::string cpuinfo_value(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    if (name != key) continue;
    const std::size_t start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}

bool has_flag(const std::string& flags, const std::string& flag) {
  std::istringstream words(flags);
  std::string word;
  while (words >> word) {
    if (word == flag) return true;
  }
  return false;
}

}  // namespace

int cpu_core_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

SystemResources probe_system() {
  SystemResources r;
  r.cpu_cores = cpu_core_count();
  r.cpu_model = cpuinfo_value("model name");
  const std::string flags = cpuinfo_value("flags");
  r.cpu_avx512_bf16 = has_flag(flags, "avx512_bf16");
  r.cpu_amx = has_flag(flags, "amx_bf16");
  r.ram_total = internal::meminfo_bytes("MemTotal");
  r.ram_available = internal::meminfo_bytes("MemAvailable");
  if (r.ram_total < 0 || r.ram_available < 0) {
    throw Error(ErrorCategory::kResources, "cannot read host memory from /proc/meminfo",
                "wanrt needs a Linux /proc filesystem to measure RAM");
  }
  r.gpus = probe_gpus();
  return r;
}

#ifndef WANRT_WITH_CUDA
std::vector<GpuInfo> probe_gpus() { return {}; }
#endif

}  // namespace wanrt
