// A group of ranks that exchange tensors, on LibTorch's distributed engine: c10d's Gloo or NCCL
// backend over a FileStore or TCPStore. The c10d headers stay in the .cpp files.
//
// A group made by connect() runs on Gloo: tensors travel through host memory (a CUDA tensor is
// copied to the CPU and back). for_device() gives a group of the same ranks on NCCL when they
// compute on GPUs and LibTorch has it; tensors then stay on the GPU. Collectives are bounded by
// the group's timeout; any failure (a peer that exited, was killed or timed out) is
// Error(kResources) naming the collective and rank.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/dist_env.h"

namespace wanrt::dist {

/// The backend for ranks computing on `device` ("cpu", "cuda:N"): `requested` "auto" gives
/// "nccl" for a CUDA device where `nccl_built`, else "gloo". Error(kUsage) for "nccl" on the CPU
/// or without NCCL, and for a value other than auto, gloo or nccl.
std::string choose_backend(const std::string& requested, const std::string& device,
                           bool nccl_built);

class ProcessGroup : public std::enable_shared_from_this<ProcessGroup> {
 public:
  /// Joins the run `env` describes (every rank calls this; it returns once all have joined, or
  /// throws Error(kResources) after env.timeout). A single-process env gives single().
  static std::shared_ptr<ProcessGroup> connect(const DistEnv& env);
  /// A group of this process alone: collectives return their input.
  static std::shared_ptr<ProcessGroup> single();
  /// Whether this build can run NCCL (LibTorch with CUDA and c10d's NCCL backend).
  static bool nccl_available();
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// This process's index in the group, in [0, size()).
  int rank() const;
  /// Number of ranks in the group.
  int size() const;
  /// "gloo", "nccl", or "none" for a group of one process.
  std::string backend() const;

  /// The same ranks with the backend choose_backend(env's WANRT_DIST_BACKEND, device) gives:
  /// this group when that is its own, else a new group (every rank calls it with the same kind
  /// of device; an NCCL group uses GPU N of "cuda:N").
  std::shared_ptr<ProcessGroup> for_device(const std::string& device);

  /// Splits the group: `groups` partitions the ranks 0..size()-1 (every rank passes the same
  /// partition); returns the subgroup holding this rank, its ranks numbered in the order listed.
  /// `tag` keeps the subgroups' rendezvous apart. Error(kUsage) when `groups` is no partition.
  std::shared_ptr<ProcessGroup> split(const std::vector<std::vector<int>>& groups,
                                      const std::string& tag);

  /// Every rank's `tensor` (same shape and dtype on every rank), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor);
  /// All-to-all: splits `tensor` into size() equal parts along `scatter_dim`, sends part j to
  /// rank j, and concatenates the parts received along `gather_dim` in rank order. With
  /// scatter_dim = heads and gather_dim = tokens this is the Ulysses exchange. Error(kUsage)
  /// when the scattered dimension does not divide by size().
  at::Tensor all_to_all(const at::Tensor& tensor, int64_t scatter_dim, int64_t gather_dim);
  /// Returns once every rank has reached it.
  void barrier();
  /// The elementwise minimum of every rank's `values` (the same length on every rank).
  std::vector<std::int64_t> all_min(const std::vector<std::int64_t>& values);

  /// Seconds spent in collectives (waiting included) since the group was made.
  double comm_seconds() const;
  /// Number of collectives run.
  std::int64_t collectives() const;

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt::dist
