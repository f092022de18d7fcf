#include "optim/machine.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace wanrt {
namespace {

constexpr std::int64_t kGiB = 1LL << 30;

int gpu_index(const std::string& device) {
  if (device == "cuda") return -2;  // "the default GPU"
  const auto colon = device.find(':');
  if (device.rfind("cuda", 0) != 0 || colon == std::string::npos) return -1;
  try {
    return std::stoi(device.substr(colon + 1));
  } catch (const std::exception&) {
    return -1;
  }
}

const GpuInfo* find_gpu(const SystemResources& resources, const std::string& device) {
  int index = gpu_index(device);
  if (index == -2) index = preferred_gpu(resources);
  for (const auto& g : resources.gpus) {
    if (g.index == index) return &g;
  }
  return nullptr;
}

}  // namespace

SystemResources simulate_resources(const SystemResources& real, const MachineOverrides& o) {
  SystemResources out = real;
  if (o.ram) {
    if (*o.ram <= 0) throw Error(ErrorCategory::kUsage, "--ram must be > 0");
    out.ram_total = out.ram_available = *o.ram;
  }
  if (o.cpu_bf16) out.cpu_avx512_bf16 = out.cpu_amx = *o.cpu_bf16;
  if (o.gpu_count && *o.gpu_count < 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("--gpu-count must be >= 0, got {}", *o.gpu_count));
  }
  if (o.gpu_cc && (*o.gpu_cc < 3.0 || *o.gpu_cc > 12.0)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("--gpu-cc {} is not a CUDA compute capability", *o.gpu_cc),
                "for example 8.9 (RTX 4090), 8.0 (A100), 9.0 (H100), 7.5 (T4)");
  }
  if (o.vram && *o.vram <= 0) throw Error(ErrorCategory::kUsage, "--vram must be > 0");
  if (o.gpu_count && *o.gpu_count == 0) {
    out.gpus.clear();
    return out;
  }
  if (!o.vram && !o.gpu_cc && !o.gpu_count) return out;
  if (!o.vram && real.gpus.empty()) {
    throw Error(ErrorCategory::kUsage,
                "--gpu-cc / --gpu-count simulate a GPU but its memory is unknown",
                "add --vram, e.g. --vram 24GiB");
  }
  const GpuInfo base = real.gpus.empty() ? GpuInfo{} : real.gpus.front();
  const int count = o.gpu_count ? *o.gpu_count : std::max<int>(1, int(real.gpus.size()));
  // Capability: the given one, else the real GPU's, else 8.0 (Ampere, the bf16 baseline).
  const double cc = o.gpu_cc            ? *o.gpu_cc
                    : real.gpus.empty() ? 8.0
                                        : base.cc_major + base.cc_minor / 10.0;
  out.gpus.clear();
  for (int i = 0; i < count; ++i) {
    GpuInfo g;
    g.index = i;
    g.name = "simulated GPU";
    g.cc_major = static_cast<int>(std::floor(cc + 1e-9));
    g.cc_minor = static_cast<int>(std::lround((cc - g.cc_major) * 10.0));
    g.total_bytes = g.free_bytes = o.vram ? *o.vram : base.total_bytes;
    g.bf16 = g.cc_major >= 8;
    g.fp16 = g.cc_major >= 7;
    out.gpus.push_back(g);
  }
  return out;
}

SystemResources per_rank_resources(SystemResources machine, int local_ranks) {
  if (local_ranks <= 1) return machine;
  machine.ram_total /= local_ranks;
  machine.ram_available /= local_ranks;
  machine.cpu_cores = std::max(1, machine.cpu_cores / local_ranks);
  return machine;
}

std::int64_t host_reserve_bytes(std::int64_t ram_total) {
  return std::clamp<std::int64_t>(ram_total / 10, kGiB, 4 * kGiB);
}

int preferred_gpu(const SystemResources& resources) {
  int best = -1;
  std::int64_t best_free = -1;
  for (const auto& g : resources.gpus) {
    if (g.free_bytes > best_free) {
      best = g.index;
      best_free = g.free_bytes;
    }
  }
  return best;
}

Budget compute_budget(const SystemResources& resources, const std::string& device,
                      const OptimizationConfig& config) {
  Budget b;
  b.host_capacity = resources.ram_available;
  b.host_reserve = host_reserve_bytes(resources.ram_total);
  b.host_source = resources.ram_available == resources.ram_total
                      ? fmt::format("RAM {}", format_gib(resources.ram_total))
                      : fmt::format("available RAM {} of {}", format_gib(resources.ram_available),
                                    format_gib(resources.ram_total));
  if (device == "cpu") {
    b.device_source = "CPU only: weights and activations live in host RAM";
    return b;
  }
  const GpuInfo* gpu = find_gpu(resources, device);
  if (gpu == nullptr) {
    throw Error(ErrorCategory::kResources,
                fmt::format("device '{}' does not exist on this machine ({} GPU(s))", device,
                            resources.gpus.size()),
                resources.gpus.empty() ? "use --device cpu, or simulate a GPU with --vram"
                                       : "use --device cuda:0 .. cuda:N-1");
  }
  b.device_capacity = gpu->free_bytes;
  b.device_reserve = config.vram_safety_margin_mb * (1LL << 20);
  b.device_source =
      gpu->free_bytes == gpu->total_bytes
          ? fmt::format("cuda:{} ({}) {}", gpu->index, gpu->name, format_gib(gpu->total_bytes))
          : fmt::format("cuda:{} ({}) {} free of {}", gpu->index, gpu->name,
                        format_gib(gpu->free_bytes), format_gib(gpu->total_bytes));
  return b;
}

PrecisionChoice choose_precision(const SystemResources& resources, const std::string& device) {
  PrecisionChoice p;
  if (device == "cpu") {
    if (resources.cpu_avx512_bf16 || resources.cpu_amx) {
      p.compute = Dtype::kBf16;
      p.reason = fmt::format("CPU has {}: bf16 matmuls run natively (~2x fp32)",
                             resources.cpu_amx ? "AMX" : "avx512_bf16");
    } else {
      p.compute = Dtype::kFp32;
      p.half_saves_memory_only = true;
      p.reason =
          "CPU lacks avx512_bf16/AMX: fp32 is the fastest; bf16 runs (emulated, slower) "
          "and halves the weights; fp16 matmuls are not supported by LibTorch on the CPU";
    }
    return p;
  }
  const GpuInfo* gpu = find_gpu(resources, device);
  const int major = gpu ? gpu->cc_major : 0, minor = gpu ? gpu->cc_minor : 0;
  if (major >= 8) {
    p.compute = Dtype::kBf16;
    p.reason = fmt::format("compute capability {}.{} >= 8.0: bf16", major, minor);
  } else if (major >= 7) {
    p.compute = Dtype::kFp16;
    p.reason = fmt::format("compute capability {}.{}: fp16 (bf16 needs >= 8.0)", major, minor);
  } else {
    p.compute = Dtype::kFp32;
    p.half_saves_memory_only = true;
    p.reason = fmt::format("compute capability {}.{} < 7.0: no fast half precision; fp32 compute",
                           major, minor);
  }
  return p;
}

void check_dtype_supported(const SystemResources& resources, const std::string& device, Dtype dtype,
                           const std::string& what) {
  if (device == "cpu") {
    if (dtype == Dtype::kFp16) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("{} fp16 cannot compute on the CPU: LibTorch has no fp16 matmul "
                              "kernels for the CPU",
                              what),
                  "use bf16 (runs on any CPU; native with avx512_bf16/AMX) or fp32");
    }
    return;
  }
  const GpuInfo* gpu = find_gpu(resources, device);
  if (gpu != nullptr && dtype == Dtype::kBf16 && gpu->cc_major < 8) {
    throw Error(ErrorCategory::kResources,
                fmt::format("{} bf16 needs compute capability >= 8.0; {} has {}.{}", what, device,
                            gpu->cc_major, gpu->cc_minor),
                gpu->cc_major >= 7 ? "use fp16" : "use fp32 (or fp16 storage)");
  }
}

}  // namespace wanrt
