// CUDA implementation of DeviceTransfer (runtime/device_transfer.h). Compiled for real only
// when LibTorch has CUDA; otherwise syntax-checked like cuda_backend.cpp.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>

#include "runtime/device_transfer.h"
#include "runtime/error.h"

namespace wanrt {
namespace {

class CudaTransfer final : public DeviceTransfer {
 public:
  explicit CudaTransfer(int index)
      : index_(static_cast<c10::DeviceIndex>(index)),
        side_stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_)) {}

  at::Device device() const override { return at::Device(at::kCUDA, index_); }

  at::Tensor host_copy(const at::Tensor& tensor) override {
    if (tensor.device().is_cpu() && tensor.is_pinned()) return tensor;
    // One copy into page-locked memory (pin_memory() on a CUDA tensor would need two).
    // detach(): the copy must not join an autograd graph when the source is a parameter.
    at::Tensor pinned =
        at::empty(tensor.sizes(), tensor.options().device(at::kCPU).pinned_memory(true));
    pinned.copy_(tensor.detach());
    return pinned;
  }

  PendingCopy start(const std::vector<at::Tensor>& host,
                    const std::vector<std::optional<at::ScalarType>>& dtypes, bool async) override {
    PendingCopy copy;
    copy.tensors.reserve(host.size());
    c10::cuda::CUDAGuard device_guard(index_);
    const c10::cuda::CUDAStream stream =
        async ? side_stream_ : c10::cuda::getCurrentCUDAStream(index_);
    c10::cuda::CUDAStreamGuard stream_guard(stream);
    for (std::size_t i = 0; i < host.size(); ++i) {
      // Copy in the stored dtype, then cast on the device: with a dtype change, LibTorch
      // would cast on the CPU into pageable memory and the copy would no longer be async.
      at::Tensor on_device = host[i].detach().to(device(), /*non_blocking=*/true);
      const bool cast = i < dtypes.size() && dtypes[i] && *dtypes[i] != on_device.scalar_type();
      if (cast) on_device = on_device.to(*dtypes[i]);
      copy.tensors.push_back(std::move(on_device));
    }
    if (async) {
      auto event = std::make_shared<at::cuda::CUDAEvent>();
      event->record(stream);
      copy.event = std::move(event);
    }
    return copy;
  }

  std::vector<at::Tensor> finish(PendingCopy& copy) override {
    if (copy.event) {
      const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(index_);
      static_cast<at::cuda::CUDAEvent*>(copy.event.get())->block(compute);
      // The tensors were allocated on the side stream: without this, freeing them while the
      // compute stream still reads them would let the next side-stream copy reuse the memory.
      for (const at::Tensor& tensor : copy.tensors) {
        if (tensor.is_cuda()) {
          c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), compute);
        }
      }
      copy.event.reset();
    }
    return std::move(copy.tensors);
  }

 private:
  c10::DeviceIndex index_;
  c10::cuda::CUDAStream side_stream_;
};

}  // namespace

std::unique_ptr<DeviceTransfer> make_cuda_transfer(int index) {
  const int count = static_cast<int>(c10::cuda::device_count());
  if (index < 0 || index >= count) {
    throw Error(ErrorCategory::kResources,
                fmt::format("cuda:{} requested for weight transfers, {} CUDA device(s) available",
                            index, count),
                count == 0 ? "no CUDA device is visible; run with --device cpu"
                           : fmt::format("use a device index from 0 to {}", count - 1));
  }
  return std::make_unique<CudaTransfer>(index);
}

}  // namespace wanrt
