#include <sched.h>
#include <unistd.h>

#include "support/catch.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "runtime/device_backend.h"
#include "runtime/system_resources.h"

TEST_CASE("probe_system reports this process's cores and the host RAM", "[runtime]") {
  const auto r = wanrt::probe_system();
  // Independent: the affinity mask counted here.
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  CHECK(r.cpu_cores == CPU_COUNT(&set));
  CHECK(wanrt::cpu_core_count() == CPU_COUNT(&set));

  // Independent: the kernel's physical page count.
  const double physical =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  CHECK(static_cast<double>(r.ram_total) == Approx(physical).epsilon(0.01));
  CHECK(r.ram_available > 0);
  CHECK(r.ram_available <= r.ram_total);

#if defined(__x86_64__)
  // Independent: CPUID leaf 7 sub-leaf 1, EAX bit 5 is AVX512_BF16.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool leaf7 = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0;
  CHECK(r.cpu_avx512_bf16 == (leaf7 && (eax & (1u << 5)) != 0));
  CHECK_FALSE(r.cpu_model.empty());
#endif

  if (wanrt::cuda_device_count() == 0) {
    CHECK(r.gpus.empty());
    CHECK(wanrt::probe_gpus().empty());
  } else {
    REQUIRE(static_cast<int>(r.gpus.size()) == wanrt::cuda_device_count());
    for (const auto& gpu : r.gpus) {
      CHECK(gpu.total_bytes > 0);
      CHECK(gpu.free_bytes <= gpu.total_bytes);
      CHECK(gpu.bf16 == (gpu.cc_major >= 8));
      CHECK(gpu.fp16 == (gpu.cc_major >= 7));
    }
  }
}
