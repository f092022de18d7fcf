// Helpers for tests tagged [gpu]: they report "WANRT_SKIP" (ctest marks them skipped) when
// this build or this machine has no CUDA device.
#pragma once

#include "support/catch.h"

#include "runtime/device_backend.h"

#define WANRT_REQUIRE_CUDA()                                             \
  do {                                                                   \
    if (wanrt::cuda_device_count() == 0) {                               \
      WARN("WANRT_SKIP: no CUDA device (or no CUDA backend in this build)"); \
      return;                                                            \
    }                                                                    \
  } while (0)
