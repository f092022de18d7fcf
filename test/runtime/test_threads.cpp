#include <ATen/Parallel.h>
#include <sched.h>

#include "support/catch.h"

#include "runtime/threads.h"

TEST_CASE("configure_threads sets LibTorch's intra-op thread count", "[runtime]") {
  CHECK(wanrt::configure_threads(2) == 2);
  CHECK(at::get_num_threads() == 2);
  CHECK(wanrt::configure_threads(1) == 1);
  CHECK(at::get_num_threads() == 1);
  // <= 0: the cores of this process's affinity mask.
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  CHECK(wanrt::configure_threads(0) == CPU_COUNT(&set));
  CHECK(at::get_num_threads() == CPU_COUNT(&set));
  // A second call does not trip over the once-only inter-op setting.
  CHECK(wanrt::configure_threads(3) == 3);
}
