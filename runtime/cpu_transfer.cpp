#include <fmt/format.h>

#include "runtime/device_transfer.h"
#include "runtime/error.h"

namespace wanrt {
namespace {

// The host is the compute device: weights stay where they are; only a dtype change copies.
class CpuTransfer final : public DeviceTransfer {
 public:
  at::Device device() const override { return at::Device(at::kCPU); }
  at::Tensor host_copy(const at::Tensor& tensor) override { return tensor; }
  PendingCopy start(const std::vector<at::Tensor>& host,
                    const std::vector<std::optional<at::ScalarType>>& dtypes,
                    bool /*async*/) override {
    PendingCopy copy;
    copy.tensors.reserve(host.size());
    for (std::size_t i = 0; i < host.size(); ++i) {
      const bool cast = i < dtypes.size() && dtypes[i] && *dtypes[i] != host[i].scalar_type();
      copy.tensors.push_back(cast ? host[i].to(*dtypes[i]) : host[i]);
    }
    return copy;
  }
  std::vector<at::Tensor> finish(PendingCopy& copy) override { return std::move(copy.tensors); }
};

}  // namespace

std::unique_ptr<DeviceTransfer> make_cpu_transfer() { return std::make_unique<CpuTransfer>(); }

#ifndef WANRT_WITH_CUDA
std::unique_ptr<DeviceTransfer> make_cuda_transfer(int index) {
  throw Error(ErrorCategory::kResources,
              fmt::format("cuda:{} requested, but this build of wanrt has no CUDA", index),
              "use --device cpu, or build against a CUDA-enabled LibTorch (docs/gpu.md)");
}
#endif

}  // namespace wanrt
