// The transport under ProcessGroup: one c10d backend and where its tensors live. Internal to
// dist/ (process_group.cpp picks one; the backends' headers stay in their own .cpp files).
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wanrt::dist {

/// Blocking collectives on tensors that already live on device() and are contiguous.
class Collectives {
 public:
  virtual ~Collectives() = default;
  /// "gloo" or "nccl".
  virtual std::string name() const = 0;
  /// Where the tensors handed to this backend must be: the CPU (Gloo) or this rank's GPU (NCCL).
  virtual at::Device device() const = 0;
  /// Whether bfloat16 must travel as float16 of the same bits (LibTorch 1.13's Gloo lacks it).
  virtual bool bf16_as_half() const = 0;
  /// outputs[r] receives rank r's `input`.
  virtual void all_gather(std::vector<at::Tensor>& outputs, at::Tensor& input) = 0;
  /// Equal splits of `input`'s first dimension go to the ranks in order; `output` receives
  /// theirs the same way.
  virtual void all_to_all(at::Tensor& output, at::Tensor& input) = 0;
  virtual void barrier() = 0;
};

/// The collectives of a c10d process group type (ProcessGroupGloo, ProcessGroupNCCL), whose
/// methods share names and signatures; instantiated where the group's header is included.
template <class Group>
class C10dCollectives : public Collectives {
 public:
  explicit C10dCollectives(c10::intrusive_ptr<Group> group) : group_(std::move(group)) {}
  void all_gather(std::vector<at::Tensor>& outputs, at::Tensor& input) override {
    std::vector<std::vector<at::Tensor>> out{outputs};
    std::vector<at::Tensor> in{input};
    group_->allgather(out, in)->wait();
    outputs = out[0];
  }
  void all_to_all(at::Tensor& output, at::Tensor& input) override {
    std::vector<int64_t> equal_out, equal_in;  // empty: equal splits
    group_->alltoall_base(output, input, equal_out, equal_in)->wait();
  }
  void barrier() override { group_->barrier()->wait(); }

 protected:
  c10::intrusive_ptr<Group> group_;
};

/// Gloo over `store` (joins the group: blocks until every rank has, or the timeout).
/// `loopback`: every rank on this machine (no hostname resolution needed).
std::unique_ptr<Collectives> make_gloo_collectives(const c10::intrusive_ptr<c10d::Store>& store,
                                                   int rank, int size,
                                                   std::chrono::milliseconds timeout,
                                                   bool loopback);

/// Whether this build has NCCL (LibTorch with CUDA and c10d's NCCL backend).
bool nccl_built();

/// NCCL over `store` on GPU `device_index`. Only where nccl_built(); Error(kUsage) elsewhere.
std::unique_ptr<Collectives> make_nccl_collectives(const c10::intrusive_ptr<c10d::Store>& store,
                                                   int rank, int size,
                                                   std::chrono::milliseconds timeout,
                                                   int device_index);

}  // namespace wanrt::dist
