#include "dist/process_group.h"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "dist/collectives.h"
#include "runtime/error.h"

namespace wanrt::dist {
namespace {

using Clock = std::chrono::steady_clock;

// The tensor as `backend` takes it: contiguous on its device. Gloo dispatches on the dtype and
// LibTorch 1.13's Gloo lacks bfloat16; the collectives only move bytes, so there bfloat16
// travels as float16 of the same bits. Called outside inference mode (NormalTensors below):
// LibTorch 1.13's Gloo writes the buffers from its own thread, where an inference tensor may
// not be updated in place.
at::Tensor as_wire(const at::Tensor& t, const Collectives& backend) {
  at::Tensor moved = t.device() == backend.device() ? t.contiguous()
                                                    : t.to(backend.device()).contiguous();
  if (moved.is_inference()) moved = moved.clone();
  if (moved.scalar_type() == at::kBFloat16 && backend.bf16_as_half()) return moved.view(at::kHalf);
  return moved;
}

// The buffers of a collective are made while this lives: normal tensors, also when the run is
// in inference mode (every generate() is).
struct NormalTensors {
  c10::InferenceMode off{false};
};

at::Tensor from_wire(const at::Tensor& wire, const at::Tensor& like) {
  const at::Tensor t = wire.scalar_type() == like.scalar_type() ? wire : wire.view(like.scalar_type());
  return t.device() == like.device() ? t : t.to(like.device());
}

}  // namespace

std::string choose_backend(const std::string& requested, const std::string& device,
                           bool nccl_built) {
  const bool cuda = device.rfind("cuda", 0) == 0;
  if (requested == "gloo") return "gloo";
  if (requested == "auto") return cuda && nccl_built ? "nccl" : "gloo";
  if (requested != "nccl") {
    throw Error(ErrorCategory::kUsage,
                fmt::format("process group backend '{}' is not auto, gloo or nccl", requested),
                "set WANRT_DIST_BACKEND to auto, gloo or nccl");
  }
  if (!nccl_built) {
    throw Error(ErrorCategory::kUsage, "WANRT_DIST_BACKEND=nccl, but this build has no NCCL",
                "build against a LibTorch with CUDA (PyPI's), or use WANRT_DIST_BACKEND=gloo");
  }
  if (!cuda) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("WANRT_DIST_BACKEND=nccl, but the ranks compute on '{}'", device),
                "NCCL moves GPU tensors; on the CPU use gloo (or auto)");
  }
  return "nccl";
}

struct ProcessGroup::Impl {
  int rank = 0;
  int size = 1;
  DistEnv env;
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Collectives> backend;  // null for a single-process group
  int device_index = -1;                 // the GPU of an NCCL group
  double seconds = 0;
  std::int64_t count = 0;

  // Runs one collective; any failure becomes Error(kResources) naming it.
  template <class F>
  void collective(const char* name, F&& fn) {
    const auto start = Clock::now();
    try {
      fn();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("rank {} of {}: {} failed: {}", rank, size, name,
                              first_line(e.what())),
                  fmt::format("another rank failed, was killed or did not answer within {} s "
                              "(WANRT_DIST_TIMEOUT); see its error",
                              std::chrono::duration_cast<std::chrono::seconds>(env.timeout).count()));
    }
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++count;
  }

  // Joins `size` ranks at `store` on Gloo (device_index < 0) or on NCCL with that GPU.
  static std::unique_ptr<Impl> join(const DistEnv& env, c10::intrusive_ptr<c10d::Store> store,
                                    int rank, int size, int device_index) {
    auto impl = std::make_unique<Impl>();
    impl->rank = rank;
    impl->size = size;
    impl->env = env;
    impl->store = std::move(store);
    impl->device_index = device_index;
    if (size == 1) return impl;
    impl->collective("joining the process group", [&] {
      impl->backend =
          device_index < 0
              ? make_gloo_collectives(impl->store, rank, size, env.timeout,
                                      env.local_world_size == env.world_size)
              : make_nccl_collectives(impl->store, rank, size, env.timeout, device_index);
    });
    impl->seconds = 0;  // the counters are of the work's collectives, not of joining
    impl->count = 0;
    return impl;
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

bool ProcessGroup::nccl_available() { return nccl_built(); }

std::shared_ptr<ProcessGroup> ProcessGroup::single() {
  auto impl = std::make_unique<Impl>();
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env) {
  if (!env.distributed()) return single();
  c10::intrusive_ptr<c10d::Store> store;
  try {
    if (!env.store_file.empty()) {
      store = c10::make_intrusive<c10d::FileStore>(env.store_file, env.world_size);
    } else {
      c10d::TCPStoreOptions options;
      options.port = static_cast<std::uint16_t>(env.master_port);
      options.isServer = env.rank == 0;
      options.numWorkers = static_cast<std::size_t>(env.world_size);
      options.waitWorkers = true;
      options.timeout = env.timeout;
      store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    }
    store->setTimeout(env.timeout);
  } catch (const std::exception& e) {
    const std::string where = env.store_file.empty()
                                  ? fmt::format("{}:{}", env.master_addr, env.master_port)
                                  : env.store_file;
    throw Error(ErrorCategory::kResources,
                fmt::format("rank {} of {}: the rendezvous at {} failed: {}", env.rank,
                            env.world_size, where, first_line(e.what())),
                "check that every rank starts within WANRT_DIST_TIMEOUT and can reach rank 0");
  }
  return std::shared_ptr<ProcessGroup>(
      new ProcessGroup(Impl::join(env, store, env.rank, env.world_size, -1)));
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::size() const { return impl_->size; }
std::string ProcessGroup::backend() const {
  return impl_->backend ? impl_->backend->name() : "none";
}
double ProcessGroup::comm_seconds() const { return impl_->seconds; }
std::int64_t ProcessGroup::collectives() const { return impl_->count; }

std::shared_ptr<ProcessGroup> ProcessGroup::for_device(const std::string& device) {
  if (size() == 1) return shared_from_this();
  const std::string wanted = choose_backend(impl_->env.backend, device, nccl_built());
  if (wanted == backend()) return shared_from_this();
  const at::Device d(device);
  const int index = wanted == "nccl" ? (d.has_index() ? d.index() : 0) : -1;
  auto store = c10::make_intrusive<c10d::PrefixStore>(wanted, impl_->store);
  return std::shared_ptr<ProcessGroup>(
      new ProcessGroup(Impl::join(impl_->env, store, rank(), size(), index)));
}

std::shared_ptr<ProcessGroup> ProcessGroup::split(const std::vector<std::vector<int>>& groups,
                                                  const std::string& tag) {
  std::vector<int> seen(static_cast<std::size_t>(size()), 0);
  int mine = -1;
  int my_rank = -1;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i = 0; i < groups[g].size(); ++i) {
      const int r = groups[g][i];
      if (r < 0 || r >= size() || seen[static_cast<std::size_t>(r)]++ != 0) {
        throw Error(ErrorCategory::kUsage,
                    fmt::format("split '{}': rank {} is out of range or listed twice", tag, r));
      }
      if (r == rank()) {
        mine = static_cast<int>(g);
        my_rank = static_cast<int>(i);
      }
    }
  }
  if (std::count(seen.begin(), seen.end(), 1) != size()) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("split '{}': the groups do not cover all {} ranks", tag, size()));
  }
  const int group_size = static_cast<int>(groups[static_cast<std::size_t>(mine)].size());
  if (group_size == 1 || !impl_->store) return single();
  auto store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("{}/{}", tag, mine), impl_->store);
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(
      Impl::join(impl_->env, store, my_rank, group_size, impl_->device_index)));
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  if (size() == 1) return {tensor};
  const NormalTensors normal;
  at::Tensor input = as_wire(tensor, *impl_->backend);
  std::vector<at::Tensor> outputs;
  for (int r = 0; r < size(); ++r) outputs.push_back(at::empty_like(input));
  impl_->collective("all_gather", [&] { impl_->backend->all_gather(outputs, input); });
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : outputs) out.push_back(from_wire(t, tensor));
  return out;
}

at::Tensor ProcessGroup::all_to_all(const at::Tensor& tensor, int64_t scatter_dim,
                                    int64_t gather_dim) {
  const int64_t n = size();
  if (tensor.size(scatter_dim) % n != 0) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("all_to_all: dimension {} of size {} does not split over {} ranks",
                            scatter_dim, tensor.size(scatter_dim), n));
  }
  if (n == 1) return tensor;
  const NormalTensors normal;
  // Part j (of the scattered dimension) goes to rank j: stacked along a new leading dimension,
  // contiguous, so that equal splits of the flat buffer are the parts.
  at::Tensor input = as_wire(at::stack(tensor.chunk(n, scatter_dim), 0), *impl_->backend);
  at::Tensor output = at::empty_like(input);
  impl_->collective("all_to_all", [&] { impl_->backend->all_to_all(output, input); });
  return from_wire(at::cat(output.unbind(0), gather_dim), tensor);
}

void ProcessGroup::barrier() {
  if (size() == 1) return;
  impl_->collective("barrier", [&] { impl_->backend->barrier(); });
}

std::vector<std::int64_t> ProcessGroup::all_min(const std::vector<std::int64_t>& values) {
  if (size() == 1 || values.empty()) return values;
  const NormalTensors normal;
  const at::Tensor mine = at::tensor(values, at::TensorOptions().dtype(at::kLong));
  const std::vector<at::Tensor> all = all_gather(mine);
  const at::Tensor smallest = std::get<0>(at::stack(all, 0).min(0)).contiguous();
  const std::int64_t* p = smallest.data_ptr<std::int64_t>();
  return std::vector<std::int64_t>(p, p + smallest.numel());
}

}  // namespace wanrt::dist
