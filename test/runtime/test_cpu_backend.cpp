#include <unistd.h>

#include "support/catch.h"

#include "runtime/device_backend.h"

TEST_CASE("the CPU backend reports host memory consistent with sysconf", "[runtime]") {
  auto cpu = wanrt::make_cpu_backend();
  CHECK(cpu->kind() == wanrt::DeviceKind::kCpu);
  CHECK(cpu->name() == "cpu");
  const auto mem = cpu->memory();
  // An independent source: the kernel's physical page count.
  const auto pages = static_cast<std::int64_t>(sysconf(_SC_PHYS_PAGES));
  const auto page_size = static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
  const double physical = static_cast<double>(pages * page_size);
  CHECK(static_cast<double>(mem.total) == Approx(physical).epsilon(0.01));
  CHECK(mem.available > 0);
  CHECK(mem.available <= mem.total);
  const auto stats = cpu->allocator_stats();
  CHECK(stats.peak_allocated == 0);
}
