#include "support/catch.h"

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include <thread>
#include <vector>

#include "runtime/tracking_allocator.h"

// The references are the byte counts of the tensors each test allocates (numel * element size);
// nothing else allocates CPU tensors while a test runs (one thread, no background work).
namespace {
constexpr std::int64_t kMiB = std::int64_t{1} << 20;
}

TEST_CASE("the tracking allocator counts a 64 MiB tensor exactly, once", "[runtime]") {
  wanrt::install_cpu_tracking();
  wanrt::install_cpu_tracking();  // a second call must not wrap the allocator twice
  REQUIRE(wanrt::cpu_tracking_installed());
  wanrt::reset_cpu_tracked_peak();
  const std::int64_t base = wanrt::cpu_tracked_bytes();
  CHECK(wanrt::cpu_tracked_peak() == base);
  {
    at::Tensor big = at::empty({16 * kMiB}, at::kFloat);
    CHECK(big.numel() * 4 == 64 * kMiB);
    CHECK(wanrt::cpu_tracked_bytes() - base == 64 * kMiB);
    CHECK(wanrt::cpu_tracked_peak() - base == 64 * kMiB);
    // A view shares the storage: nothing new.
    at::Tensor half = big.narrow(0, 0, 8 * kMiB);
    CHECK(wanrt::cpu_tracked_bytes() - base == 64 * kMiB);
  }
  CHECK(wanrt::cpu_tracked_bytes() == base);
  CHECK(wanrt::cpu_tracked_peak() - base == 64 * kMiB);
  wanrt::reset_cpu_tracked_peak();
  CHECK(wanrt::cpu_tracked_peak() == base);
}

TEST_CASE("a matmul's tracked peak includes its output", "[runtime]") {
  wanrt::install_cpu_tracking();
  const at::Tensor a = at::rand({512, 1024}, at::kFloat);
  const at::Tensor b = at::rand({1024, 768}, at::kFloat);
  wanrt::reset_cpu_tracked_peak();
  const std::int64_t base = wanrt::cpu_tracked_bytes();
  at::Tensor c = at::matmul(a, b);
  const std::int64_t out_bytes = 512 * 768 * 4;
  CHECK(wanrt::cpu_tracked_peak() - base >= out_bytes);
  CHECK(wanrt::cpu_tracked_bytes() - base == out_bytes);  // only the output is still alive
  c.reset();
  CHECK(wanrt::cpu_tracked_bytes() == base);
}

TEST_CASE("raw allocations through LibTorch's CPU allocator are tracked", "[runtime]") {
  wanrt::install_cpu_tracking();
  c10::Allocator* cpu = c10::GetCPUAllocator();
  const std::int64_t base = wanrt::cpu_tracked_bytes();
  REQUIRE(cpu->raw_deleter() != nullptr);  // LibTorch's default CPU allocator supports it
  void* p = cpu->raw_allocate(1000);
  REQUIRE(p != nullptr);
  static_cast<char*>(p)[999] = 1;
  CHECK(wanrt::cpu_tracked_bytes() - base == 1000);
  cpu->raw_deallocate(p);
  CHECK(wanrt::cpu_tracked_bytes() == base);

  // Memory from the allocator that was wrapped (as if allocated before installation) is freed
  // through it and not subtracted.
  void* foreign = c10::GetDefaultCPUAllocator()->raw_allocate(4096);
  cpu->raw_deallocate(foreign);
  CHECK(wanrt::cpu_tracked_bytes() == base);

  // oneDNN tensors get their memory through raw_allocate (ideep's engine allocator).
  if (at::hasMKLDNN()) {
    const at::Tensor x = at::rand({256, 256}, at::kFloat);
    const std::int64_t before = wanrt::cpu_tracked_bytes();
    at::Tensor m = x.to_mkldnn();
    CHECK(wanrt::cpu_tracked_bytes() - before >= 256 * 256 * 4);
    CHECK(at::equal(m.to_dense(), x));
    m.reset();
    CHECK(wanrt::cpu_tracked_bytes() == before);
  }
}

TEST_CASE("tracking is consistent under concurrent allocation", "[runtime]") {
  wanrt::install_cpu_tracking();
  wanrt::reset_cpu_tracked_peak();
  const std::int64_t base = wanrt::cpu_tracked_bytes();
  constexpr int kThreads = 4, kRounds = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < kRounds; ++i) {
        at::Tensor x = at::empty({1024 + i}, at::kFloat);
        x.fill_(1.0f);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wanrt::cpu_tracked_bytes() == base);
  // At most every thread's largest tensor alive at once.
  CHECK(wanrt::cpu_tracked_peak() - base <= kThreads * (1024 + kRounds) * 4);
  CHECK(wanrt::cpu_tracked_peak() - base >= 1024 * 4);
}
