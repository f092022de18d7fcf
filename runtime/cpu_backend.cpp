#include <string>

#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/proc_fields.h"

namespace wanrt {
namespace {

using internal::meminfo_bytes;

class CpuBackend final : public DeviceBackend {
 public:
  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string name() const override { return "cpu"; }
  DeviceMemory memory() const override {
    DeviceMemory m;
    m.total = meminfo_bytes("MemTotal");
    m.available = meminfo_bytes("MemAvailable");
    if (m.total < 0 || m.available < 0) {
      throw Error(ErrorCategory::kResources, "cannot read host memory from /proc/meminfo",
                  "wanrt needs a Linux /proc filesystem to measure RAM");
    }
    return m;
  }
  void synchronize() const override {}
  AllocatorStats allocator_stats() const override { return {}; }
  void reset_peak_stats() override {}
};

}  // namespace

std::unique_ptr<DeviceBackend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

#ifndef WANRT_WITH_CUDA
std::unique_ptr<DeviceBackend> make_cuda_backend(int /*index*/) {
  throw Error(ErrorCategory::kResources, "this build of wanrt has no CUDA backend",
              "build against a LibTorch with CUDA (see docs/gpu.md), or run on the CPU");
}

int cuda_device_count() { return 0; }
#endif

}  // namespace wanrt
