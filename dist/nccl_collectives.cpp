// NCCL between GPUs, where LibTorch was built with CUDA and c10d's NCCL backend (PyPI's
// LibTorch is; Debian's is not, and there nccl_built() is false).
#include <fmt/format.h>

#include "dist/collectives.h"
#include "runtime/error.h"

#if WANRT_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace wanrt::dist {

#if WANRT_WITH_NCCL
namespace {

// wait() orders the current CUDA stream after a collective; the host does not block.
class NcclCollectives final : public C10dCollectives<c10d::ProcessGroupNCCL> {
 public:
  NcclCollectives(c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl, at::Device device)
      : C10dCollectives(std::move(nccl)), device_(device) {}
  ~NcclCollectives() override {
    try {
      group_->shutdown();  // releases the communicators before the CUDA context goes
    } catch (...) {        // a peer that is gone already: nothing left to release in order
    }
  }
  NcclCollectives(const NcclCollectives&) = delete;
  NcclCollectives& operator=(const NcclCollectives&) = delete;

  std::string name() const override { return "nccl"; }
  at::Device device() const override { return device_; }
  bool bf16_as_half() const override { return false; }

 private:
  at::Device device_;
};

}  // namespace

bool nccl_built() { return true; }

std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>& store,
                                                   int rank, int size,
                                                   std::chrono::milliseconds timeout,
                                                   int device_index) {
  const at::Device device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
  c10::cuda::set_device(device.index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
  // Bound to this rank's GPU and connected now, so that a rank that never comes fails the join
  // rather than the first step, and the barrier needs no guess of the device.
  nccl->setBoundDeviceId(device);
  nccl->eagerConnectSingleDevice(device);
  return std::make_unique<NcclCollectives>(std::move(nccl), device);
}

#else

bool nccl_built() { return false; }

std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>&, int,
                                                   int, std::chrono::milliseconds, int) {
  throw Error(ErrorCategory::kUsage, "this build has no NCCL (LibTorch without CUDA)",
              "use WANRT_DIST_BACKEND=gloo, or build against a LibTorch with CUDA");
}

#endif

}  // namespace wanrt::dist
