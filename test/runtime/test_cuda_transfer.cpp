// The CUDA weight transfer (runtime/cuda/cuda_transfer.cpp) and the CUDA backend's allocator
// figures against the residency ledger. Everything tagged [gpu] skips without a CUDA device;
// the file uses only runtime/ interfaces, so it also compiles against a CPU-only LibTorch.
#include "support/catch.h"

#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "runtime/device_backend.h"
#include "runtime/device_transfer.h"
#include "runtime/error.h"
#include "runtime/module_weights.h"
#include "runtime/residency_ledger.h"
#include "runtime/staged_executor.h"
#include "support/gpu.h"
#include "support/test_data.h"

namespace {

constexpr std::int64_t kMiB = std::int64_t{1} << 20;
// The CUDA caching allocator rounds every block up to a multiple of 512 bytes.
constexpr std::int64_t kCudaRounding = 512;

// Bitwise equality, NaN payloads and signed zeros included.
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto as_int = [](const at::Tensor& t) {
    const at::Tensor c = t.to(at::kCPU).contiguous();
    return c.element_size() == 2 ? c.view(at::kShort) : c.view(at::kInt);
  };
  return at::equal(as_int(a), as_int(b));
}

// Bitwise equality except for NaN payloads: a cast to bf16 on CUDA (__float2bfloat16) and on
// the CPU (round-to-nearest-even in c10) produce different canonical NaNs.
bool same_bits_any_nan(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.to(at::kCPU), cb = b.to(at::kCPU);
  const at::Tensor nan_a = at::isnan(ca), nan_b = at::isnan(cb);
  if (!at::equal(nan_a, nan_b)) return false;
  return same_bits(at::where(nan_a, at::zeros_like(ca), ca),
                   at::where(nan_b, at::zeros_like(cb), cb));
}

// A float tensor with the values that catch a lossy or reinterpreting copy.
at::Tensor tricky_floats(std::int64_t n) {
  at::Tensor t = at::randn({n}, at::kFloat) * 1e3;
  auto acc = t.accessor<float, 1>();
  acc[0] = std::nanf("");
  acc[1] = -0.0f;
  acc[2] = std::numeric_limits<float>::infinity();
  acc[3] = std::numeric_limits<float>::denorm_min();
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string tiny_bundle_file(const std::string& bundle, const std::string& file) {
  const std::string dir = wanrt_test::test_data_dir("WANRT_TINY_BUNDLES", "tiny-bundles");
  return dir + "/" + bundle + "/" + file;
}

}  // namespace

TEST_CASE("without CUDA, asking for a CUDA transfer is a resources error", "[runtime]") {
  if (wanrt::cuda_device_count() > 0) {
    CHECK_NOTHROW(wanrt::make_cuda_transfer(0));
    return;
  }
  try {
    wanrt::make_cuda_transfer(0);
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kResources);
    CHECK_FALSE(e.hint().empty());
  }
}

TEST_CASE("CUDA transfers round-trip bit-identically, cast on the way, from pinned copies",
          "[runtime][gpu]") {
  WANRT_REQUIRE_CUDA();
  auto transfer = wanrt::make_cuda_transfer(0);
  CHECK(transfer->device() == at::Device(at::kCUDA, 0));
  CHECK_THROWS_AS(wanrt::make_cuda_transfer(wanrt::cuda_device_count()), wanrt::Error);
  CHECK_THROWS_AS(wanrt::make_cuda_transfer(-1), wanrt::Error);

  const at::Tensor source = tricky_floats(1 << 20).view({1024, 1024});
  const at::Tensor host = transfer->host_copy(source);
  CHECK(host.device().is_cpu());
  CHECK(host.is_pinned());
  CHECK_FALSE(source.is_pinned());
  CHECK(same_bits(host, source));
  // A non-contiguous source and a CUDA source also give pinned copies with the same values.
  const at::Tensor strided_host = transfer->host_copy(source.t());
  CHECK(strided_host.is_pinned());
  CHECK(same_bits(strided_host, source.t()));
  const at::Tensor from_device = transfer->host_copy(source.to(at::Device(at::kCUDA, 0)));
  CHECK(from_device.device().is_cpu());
  CHECK(from_device.is_pinned());
  CHECK(same_bits(from_device, source));

  const at::Tensor half_host = transfer->host_copy(source.to(at::kBFloat16));
  for (bool async : {false, true}) {
    INFO("async " << async);
    wanrt::PendingCopy copy = transfer->start({host, host, half_host},
                                              {std::nullopt, at::kBFloat16, at::kFloat}, async);
    CHECK(static_cast<bool>(copy.event) == async);
    const std::vector<at::Tensor> on_device = transfer->finish(copy);
    REQUIRE(on_device.size() == 3);
    for (const at::Tensor& t : on_device) CHECK(t.device() == at::Device(at::kCUDA, 0));
    // As stored: bit-identical.
    CHECK(on_device[0].scalar_type() == at::kFloat);
    CHECK(same_bits(on_device[0], source));
    // Narrowed on the way: the same bits as LibTorch's CPU rounding to bf16 (NaN stays NaN).
    CHECK(on_device[1].scalar_type() == at::kBFloat16);
    CHECK(same_bits_any_nan(on_device[1], source.to(at::kBFloat16)));
    // Widened on the way (bf16 storage computed in fp32): exact.
    CHECK(on_device[2].scalar_type() == at::kFloat);
    CHECK(same_bits(on_device[2], source.to(at::kBFloat16).to(at::kFloat)));
  }
}

TEST_CASE("a prefetch on the side stream overlaps compute on the current stream",
          "[runtime][gpu]") {
  WANRT_REQUIRE_CUDA();
  auto gpu = wanrt::make_cuda_backend(0);
  auto transfer = wanrt::make_cuda_transfer(0);
  const at::Device dev = transfer->device();
  // 1 GiB: 20-80 ms over PCIe, long enough for wall-clock timing with synchronisation.
  const at::Tensor host = transfer->host_copy(at::arange(256 * kMiB, at::kFloat));
  REQUIRE(host.is_pinned());
  const at::Tensor a = at::randn({4096, 4096}, at::TensorOptions().device(dev));
  const at::Tensor b = at::randn({4096, 4096}, at::TensorOptions().device(dev));
  at::Tensor c = at::empty({4096, 4096}, at::TensorOptions().device(dev));

  const auto copy_once = [&](bool async) {
    wanrt::PendingCopy copy = transfer->start({host}, {std::nullopt}, async);
    return transfer->finish(copy);
  };
  const auto matmuls = [&](int n) {
    for (int i = 0; i < n; ++i) at::mm_out(c, a, b);
  };
  // Best of three, each bracketed by device synchronisation.
  const auto time = [&](const auto& work) {
    double best = 1e30;
    for (int run = 0; run < 3; ++run) {
      gpu->synchronize();
      const auto start = std::chrono::steady_clock::now();
      work();
      gpu->synchronize();
      best = std::min(best, seconds_since(start));
    }
    return best;
  };

  copy_once(true);  // warm-up: streams, pinned staging, cuBLAS handle and workspace
  matmuls(3);
  const double copy_s = time([&] { copy_once(true); });
  const double one_mm_s = time([&] { matmuls(5); }) / 5;
  const int n = std::max(4, static_cast<int>(std::ceil(copy_s / one_mm_s)));
  const double compute_s = time([&] { matmuls(n); });
  std::vector<at::Tensor> result;
  const double overlapped_s = time([&] {
    wanrt::PendingCopy copy = transfer->start({host}, {std::nullopt}, /*async=*/true);
    matmuls(n);
    result = transfer->finish(copy);
  });
  INFO("copy " << copy_s * 1e3 << " ms, " << n << " matmuls " << compute_s * 1e3
               << " ms, together " << overlapped_s * 1e3 << " ms");
  // Serial would be copy + compute; overlapped tends to max(copy, compute) (n is chosen so
  // that both are about equal, i.e. half the sum). Generous margin: 85 % of the sum.
  CHECK(overlapped_s < 0.85 * (copy_s + compute_s));
  REQUIRE(result.size() == 1);
  CHECK(same_bits(result[0], host));
}

TEST_CASE("CUDA allocator figures match the ledger as module weights move", "[runtime][gpu]") {
  WANRT_REQUIRE_CUDA();
  auto gpu = wanrt::make_cuda_backend(0);
  auto transfer = wanrt::make_cuda_transfer(0);
  torch::jit::Module module = torch::jit::load(tiny_bundle_file("tiny-ti2v", "dit.pt"));
  // Stored in bf16 and computed in fp32 is the harder case: device bytes are twice the host
  // bytes of every cast tensor, and each cast goes through a transient bf16 copy.
  const bool upcast = GENERATE(false, true);
  INFO("bf16 storage upcast to fp32: " << upcast);
  if (upcast) module.to(at::kBFloat16);
  wanrt::StagedExecutor executor(module, "dit");
  std::vector<torch::jit::Module> blocks;
  for (int i = 0; i < executor.num_blocks(); ++i) blocks.push_back(executor.block(i));
  wanrt::ModuleWeights weights(module, blocks, *transfer,
                               upcast ? std::optional<at::ScalarType>(at::kFloat) : std::nullopt);
  REQUIRE(weights.num_units() == executor.num_blocks() + 1);

  std::int64_t total_bytes = 0, total_host_bytes = 0, total_tensors = 0;
  for (int u = 0; u < weights.num_units(); ++u) {
    total_bytes += weights.device_bytes(u);
    total_tensors += weights.num_tensors(u);
    total_host_bytes += weights.host_bytes(u);
    // Without a cast the device holds what the host holds; the upcast only widens.
    if (upcast) {
      CHECK(weights.device_bytes(u) >= weights.host_bytes(u));
    } else {
      CHECK(weights.device_bytes(u) == weights.host_bytes(u));
    }
  }
  REQUIRE(total_bytes > 0);
  // module.to(bf16) converted the parameters and buffers, most of the bytes.
  if (upcast) CHECK(total_bytes > total_host_bytes * 3 / 2);

  gpu->synchronize();
  gpu->reset_peak_stats();
  const std::int64_t base = gpu->allocator_stats().allocated;
  wanrt::ResidencyLedger ledger;
  // Units stream through a window of two, as a block-streaming policy moves them; the last
  // one comes in through a prefetch.
  const int last = weights.num_units() - 1;
  for (int u = 0; u <= last; ++u) {
    if (u >= 2) {
      weights.release(u - 2);
      ledger.release("dit", weights.unit_name(u - 2));
    }
    if (u == last) {
      weights.prefetch(u);
      CHECK(weights.in_flight(u));
    }
    weights.acquire(u);
    CHECK(weights.resident(u));
    ledger.acquire("dit", weights.unit_name(u), weights.device_bytes(u));
  }
  gpu->synchronize();
  std::int64_t held_tensors = 0;
  for (int u = std::max(0, last - 1); u <= last; ++u) held_tensors += weights.num_tensors(u);
  const wanrt::AllocatorStats held = gpu->allocator_stats();
  INFO("ledger current " << ledger.current() << ", peak " << ledger.peak() << "; allocator "
                         << held.allocated - base << ", peak " << held.peak_allocated - base);
  CHECK(held.allocated - base >= ledger.current());
  CHECK(held.allocated - base <= ledger.current() + kCudaRounding * held_tensors);
  // The allocator's peak also saw the transient bf16 copies of the upcast; without them it
  // would equal the ledger's peak up to rounding.
  CHECK(held.peak_allocated - base >= ledger.peak());
  if (!upcast) CHECK(held.peak_allocated - base <= ledger.peak() + kCudaRounding * total_tensors);

  for (int u = std::max(0, last - 1); u <= last; ++u) weights.release(u);
  gpu->synchronize();
  CHECK(gpu->allocator_stats().allocated == base);

  // All units at once: the whole module.
  for (int u = 0; u <= last; ++u) weights.acquire(u);
  gpu->synchronize();
  const std::int64_t all = gpu->allocator_stats().allocated - base;
  CHECK(all >= total_bytes);
  CHECK(all <= total_bytes + kCudaRounding * total_tensors);
  for (int u = 0; u <= last; ++u) weights.release(u);
  gpu->synchronize();
  CHECK(gpu->allocator_stats().allocated == base);
}

TEST_CASE("empty_cache gives cached CUDA memory back to the driver", "[runtime][gpu]") {
  WANRT_REQUIRE_CUDA();
  auto gpu = wanrt::make_cuda_backend(0);
  gpu->empty_cache();
  const wanrt::AllocatorStats before = gpu->allocator_stats();
  {
    at::Tensor big = at::empty({256 * kMiB / 4}, at::TensorOptions().device(at::kCUDA, 0));
    big.fill_(1.0f);
    gpu->synchronize();
  }
  // Freed but cached: still reserved.
  const wanrt::AllocatorStats cached = gpu->allocator_stats();
  CHECK(cached.allocated == before.allocated);
  CHECK(cached.reserved - before.reserved >= 256 * kMiB);
  gpu->empty_cache();
  const wanrt::AllocatorStats emptied = gpu->allocator_stats();
  CHECK(emptied.reserved <= before.reserved);
  CHECK(emptied.allocated == before.allocated);
  // The CPU backend has no cache; the call does nothing.
  auto cpu = wanrt::make_cpu_backend();
  CHECK_NOTHROW(cpu->empty_cache());
}
