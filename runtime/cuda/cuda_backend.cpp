// CUDA backend. Compiled for real only when LibTorch has CUDA; otherwise the build
// syntax-checks it against the CUDA and c10/cuda headers so it cannot rot unseen.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <fmt/format.h>

#include <cstdlib>

#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/system_resources.h"

namespace wanrt {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw Error(ErrorCategory::kResources,
                fmt::format("{} failed: {}", what, cudaGetErrorString(status)),
                "check the NVIDIA driver with nvidia-smi");
  }
}

class CudaBackend final : public DeviceBackend {
 public:
  explicit CudaBackend(int index) : index_(index) {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, index_), "cudaGetDeviceProperties");
    name_ = prop.name;
  }
  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return name_; }
  DeviceMemory memory() const override {
    int previous = 0;
    check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");
    size_t free_bytes = 0, total_bytes = 0;
    const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
    cudaSetDevice(previous);
    check_cuda(status, "cudaMemGetInfo");
    return {static_cast<std::int64_t>(total_bytes), static_cast<std::int64_t>(free_bytes)};
  }
  void synchronize() const override {
    int previous = 0;
    check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");
    const cudaError_t status = cudaDeviceSynchronize();
    cudaSetDevice(previous);
    check_cuda(status, "cudaDeviceSynchronize");
  }
  AllocatorStats allocator_stats() const override {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    const auto stats = alloc::getDeviceStats(index_);
    // StatType::AGGREGATE is entry 0 of every stat array in each LibTorch we support; the enum
    // itself moved (1.13: c10::cuda::CUDACachingAllocator, 2.x: c10::CachingAllocator).
    constexpr std::size_t all = 0;
    AllocatorStats out;
    out.allocated = stats.allocated_bytes[all].current;
    out.peak_allocated = stats.allocated_bytes[all].peak;
    out.reserved = stats.reserved_bytes[all].current;
    return out;
  }
  void reset_peak_stats() override { c10::cuda::CUDACachingAllocator::resetPeakStats(index_); }
  // Frees the cached blocks of every device: LibTorch offers no per-device variant.
  void empty_cache() override { c10::cuda::CUDACachingAllocator::emptyCache(); }

 private:
  int index_;
  std::string name_;
};

}  // namespace

int cuda_device_count() { return static_cast<int>(c10::cuda::device_count()); }

std::unique_ptr<DeviceBackend> make_cuda_backend(int index) {
  const int count = cuda_device_count();
  if (index < 0 || index >= count) {
    throw Error(ErrorCategory::kResources,
                fmt::format("CUDA device {} requested, {} available", index, count),
                count == 0 ? "no CUDA device is visible; run on the CPU"
                           : fmt::format("use a device index from 0 to {}", count - 1));
  }
  // Expandable segments let the caching allocator grow a segment instead of keeping many
  // fixed-size ones, which cuts the fragmentation of the varying activation sizes of offloaded
  // runs (what Wan users set by hand). Only when the user has not configured the allocator,
  // and only before its first allocation reads the setting.
  ::setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", 0);
  return std::make_unique<CudaBackend>(index);
}

std::vector<GpuInfo> probe_gpus() {
  std::vector<GpuInfo> gpus;
  const int count = cuda_device_count();
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, i), "cudaGetDeviceProperties");
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = prop.name;
    gpu.cc_major = prop.major;
    gpu.cc_minor = prop.minor;
    const DeviceMemory memory = CudaBackend(i).memory();
    gpu.total_bytes = memory.total;
    gpu.free_bytes = memory.available;
    gpu.bf16 = prop.major >= 8;
    gpu.fp16 = prop.major >= 7;
    gpus.push_back(gpu);
  }
  return gpus;
}

}  // namespace wanrt
