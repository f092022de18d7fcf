#include "dist/process_group.h"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "runtime/error.h"

// c10d declares the Gloo process group only under this macro (LibTorch's own build sets it).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace wanrt::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Gloo dispatches on the dtype and LibTorch 1.13's Gloo lacks bfloat16; the collectives here
// only move bytes, so bfloat16 travels as float16 of the same bits. Called outside inference
// mode (NormalTensors below): LibTorch 1.13's Gloo writes the buffers from its own thread,
// where an inference tensor may not be updated in place.
at::Tensor as_wire(const at::Tensor& t) {
  at::Tensor host = t.device().is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  if (host.is_inference()) host = host.clone();
  if (host.scalar_type() == at::kBFloat16) return host.view(at::kHalf);
  return host;
}

// The buffers of a collective are made while this lives: normal tensors, also when the run is
// in inference mode (every generate() is).
struct NormalTensors {
  c10::InferenceMode off{false};
};

at::Tensor from_wire(const at::Tensor& wire, const at::Tensor& like) {
  const at::Tensor t = wire.scalar_type() == like.scalar_type() ? wire : wire.view(like.scalar_type());
  return like.device().is_cpu() ? t : t.to(like.device());
}

std::shared_ptr<::gloo::transport::Device> make_device(const DistEnv& env) {
  // One machine (the local launcher, or every rank local): loopback, which needs no hostname
  // resolution. Several machines: the address the hostname resolves to (GLOO_SOCKET_IFNAME
  // overrides it where LibTorch supports that).
  if (env.local_world_size == env.world_size) {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

struct ProcessGroup::Impl {
  int rank = 0;
  int size = 1;
  DistEnv env;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;  // null for a single-process group
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

  static std::unique_ptr<Impl> gloo_group(const DistEnv& env, c10::intrusive_ptr<c10d::Store> store,
                                          int rank, int size) {
    auto impl = std::make_unique<Impl>();
    impl->rank = rank;
    impl->size = size;
    impl->env = env;
    impl->store = std::move(store);
    if (size == 1) return impl;
    impl->collective("joining the process group", [&] {
      auto options = c10d::ProcessGroupGloo::Options::create(env.timeout);
      options->devices.push_back(make_device(env));
      options->threads = 1;  // collectives here are few and large; the cores compute
      impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, rank, size, options);
    });
    impl->seconds = 0;  // the counters are of the work's collectives, not of joining
    impl->count = 0;
    return impl;
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

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
      new ProcessGroup(Impl::gloo_group(env, store, env.rank, env.world_size)));
}

int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::size() const { return impl_->size; }
double ProcessGroup::comm_seconds() const { return impl_->seconds; }
std::int64_t ProcessGroup::collectives() const { return impl_->count; }

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
  return std::shared_ptr<ProcessGroup>(
      new ProcessGroup(Impl::gloo_group(impl_->env, store, my_rank, group_size)));
}

std::vector<at::Tensor> ProcessGroup::all_gather(const at::Tensor& tensor) {
  if (size() == 1) return {tensor};
  const NormalTensors normal;
  std::vector<at::Tensor> inputs{as_wire(tensor)};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < size(); ++r) outputs[0].push_back(at::empty_like(inputs[0]));
  impl_->collective("all_gather", [&] { impl_->gloo->allgather(outputs, inputs)->wait(); });
  std::vector<at::Tensor> out;
  for (const at::Tensor& t : outputs[0]) out.push_back(from_wire(t, tensor));
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
  at::Tensor input = as_wire(at::stack(tensor.chunk(n, scatter_dim), 0));
  at::Tensor output = at::empty_like(input);
  std::vector<int64_t> equal;  // empty: equal splits
  std::vector<int64_t> equal_in;
  impl_->collective("all_to_all", [&] {
    impl_->gloo->alltoall_base(output, input, equal, equal_in)->wait();
  });
  return from_wire(at::cat(output.unbind(0), gather_dim), tensor);
}

void ProcessGroup::barrier() {
  if (size() == 1) return;
  impl_->collective("barrier", [&] { impl_->gloo->barrier()->wait(); });
}

}  // namespace wanrt::dist
