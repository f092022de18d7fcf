#include <ATen/ATen.h>
#include "support/catch.h"

#include "runtime/device_backend.h"
#include "runtime/memory_monitor.h"

namespace {
constexpr std::int64_t kMiB = std::int64_t{1} << 20;
}

TEST_CASE("peak RSS rises by the size of a touched 256 MiB tensor", "[runtime]") {
  auto cpu = wanrt::make_cpu_backend();
  wanrt::MemoryMonitor monitor(cpu.get());
  monitor.reset_peak();
  const auto before = monitor.sample();
  CHECK(before.rss > 0);
  CHECK(before.peak_rss >= before.rss);
  CHECK(before.peak_rss < before.rss + 64 * kMiB);  // the reset brought the peak down to RSS
  {
    // Independent reference: the bytes allocated here, every page written.
    at::Tensor big = at::empty({256 * kMiB / 4}, at::kFloat);
    big.fill_(1.0f);
    const auto during = monitor.sample();
    CHECK(during.rss - before.rss >= 250 * kMiB);
  }
  const auto after = monitor.sample();
  CHECK(after.peak_rss - before.rss >= 250 * kMiB);
  // The allocation went back to the system: RSS fell well below the peak.
  CHECK(after.rss < after.peak_rss - 200 * kMiB);
  // The CPU backend has no allocator counters: host memory is tracked by RSS.
  CHECK(after.device_allocated == 0);
  CHECK(after.device_peak == 0);

  // A new window forgets the old peak.
  monitor.reset_peak();
  const auto reset = monitor.sample();
  if (monitor.kernel_peak_reset()) {
    CHECK(reset.peak_rss < after.peak_rss - 200 * kMiB);
  } else {
    WARN("/proc/self/clear_refs refused: peak RSS falls back to sampled values");
    CHECK(reset.peak_rss >= reset.rss);
  }
  CHECK(wanrt::current_rss() > 0);
  CHECK(wanrt::peak_rss() >= wanrt::current_rss());
}
