#include "support/catch.h"

#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/version.h"
#include "support/gpu.h"

TEST_CASE("without CUDA, asking for a CUDA backend is a resources error", "[runtime]") {
  if (wanrt::cuda_device_count() > 0) {
    CHECK_NOTHROW(wanrt::make_cuda_backend(0));
    return;
  }
  try {
    wanrt::make_cuda_backend(0);
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kResources);
    CHECK_FALSE(e.hint().empty());
  }
}

TEST_CASE("the CUDA backend reports device memory and allocator peaks", "[runtime][gpu]") {
  WANRT_REQUIRE_CUDA();
  REQUIRE(wanrt::built_with_cuda());
  auto gpu = wanrt::make_cuda_backend(0);
  const auto mem = gpu->memory();
  CHECK(mem.total > 0);
  CHECK(mem.available <= mem.total);
  gpu->reset_peak_stats();
  CHECK(gpu->allocator_stats().peak_allocated >= 0);
  CHECK_THROWS_AS(wanrt::make_cuda_backend(wanrt::cuda_device_count()), wanrt::Error);
}
