// Moving weights between host and compute device. The CPU implementation keeps tensors where
// they are (a dtype change is the only copy it makes); the CUDA one (runtime/cuda/, compiled
// only when LibTorch has CUDA) keeps pinned host copies and copies on a side stream so a
// prefetch overlaps the compute of the previous block.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <vector>

namespace wanrt {

/// Copies started by DeviceTransfer::start; finish() makes them usable.
struct PendingCopy {
  std::vector<at::Tensor> tensors;  ///< device tensors (contents valid after finish())
  std::shared_ptr<void> event;      ///< CUDA: the side-stream event; CPU: null
};

/// Host <-> device weight moves for one compute device.
class DeviceTransfer {
 public:
  virtual ~DeviceTransfer() = default;
  /// The compute device.
  virtual at::Device device() const = 0;
  /// The host copy to keep for `tensor` while it is off the device: on CUDA a pinned CPU copy
  /// (page-locked memory makes host->device copies asynchronous and ~2x faster); on the CPU the
  /// tensor itself (no copy).
  virtual at::Tensor host_copy(const at::Tensor& tensor) = 0;
  /// Starts copying `host` tensors to the device, each cast to `dtypes[i]` when given (e.g.
  /// fp16 storage computed in fp32). `async`: on a side stream (CUDA), so that it overlaps the
  /// compute stream's work; otherwise on the current stream. On the CPU the result is the
  /// tensor itself when neither device nor dtype changes.
  virtual PendingCopy start(const std::vector<at::Tensor>& host,
                            const std::vector<std::optional<at::ScalarType>>& dtypes,
                            bool async) = 0;
  /// Makes the current (compute) stream wait for `copy` and marks its tensors as used by that
  /// stream (so the caching allocator does not reuse them early); returns the tensors.
  virtual std::vector<at::Tensor> finish(PendingCopy& copy) = 0;
};

/// The CPU transfer (device "cpu").
std::unique_ptr<DeviceTransfer> make_cpu_transfer();

/// The CUDA transfer for device `index` with its own side stream; Error(kResources) when this
/// build has no CUDA or the index is out of range.
std::unique_ptr<DeviceTransfer> make_cuda_transfer(int index);

}  // namespace wanrt
