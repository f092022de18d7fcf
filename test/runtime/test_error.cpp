#include "support/catch.h"

#include <torch/jit.h>
#include <torch/script.h>

#include <cstdint>
#include <new>
#include <stdexcept>

#include "runtime/error.h"

using wanrt::Error;
using wanrt::ErrorCategory;

TEST_CASE("error categories map to distinct documented exit codes", "[runtime]") {
  // The table is the CLI's documented contract (README, docs/cli.md).
  CHECK(wanrt::exit_code(ErrorCategory::kUsage) == 2);
  CHECK(wanrt::exit_code(ErrorCategory::kBundle) == 3);
  CHECK(wanrt::exit_code(ErrorCategory::kResources) == 4);
  CHECK(wanrt::exit_code(ErrorCategory::kOutOfMemory) == 5);
  CHECK(wanrt::exit_code(ErrorCategory::kCancelled) == 130);
  CHECK(wanrt::exit_code(ErrorCategory::kInternal) == 70);
}

TEST_CASE("format_error shows the category, message and hint", "[runtime]") {
  const Error with_hint(ErrorCategory::kBundle, "wanrt.yaml missing", "pass --model DIR");
  CHECK(wanrt::format_error(with_hint) ==
        "error [bundle]: wanrt.yaml missing\nhint: pass --model DIR");
  const Error no_hint(ErrorCategory::kOutOfMemory, "budget exceeded");
  CHECK(wanrt::format_error(no_hint) == "error [out-of-memory]: budget exceeded");
  CHECK(no_hint.category() == ErrorCategory::kOutOfMemory);
  CHECK(std::string(no_hint.what()) == "budget exceeded");
}

// One recogniser of allocation failures (runtime/error.h), one case per form an allocation
// failure reaches us in.
TEST_CASE("is_out_of_memory recognises every allocator's failure and nothing else",
          "[runtime][oom]") {
  SECTION("the CPU allocator, for real: 1 PiB is beyond any address space") {
    bool thrown = false;
    try {
      (void)at::empty({std::int64_t{1} << 48}, at::kFloat);
    } catch (const std::exception& e) {
      thrown = true;
      CHECK(wanrt::is_out_of_memory(e));
      INFO(e.what());
    }
    CHECK(thrown);
  }
  SECTION("the CPU allocator's failure as the TorchScript interpreter rethrows it") {
    auto unit = torch::jit::compile(
        "def alloc(n: int):\n"
        "    return torch.empty([n])\n");
    bool thrown = false;
    try {
      (void)unit->get_function("alloc")({c10::IValue(std::int64_t{1} << 48)});
    } catch (const std::exception& e) {
      thrown = true;
      CHECK(wanrt::is_out_of_memory(e));
    }
    CHECK(thrown);
  }
  SECTION("LibTorch's typed CUDA allocator error and its untyped message forms") {
    const c10::OutOfMemoryError typed({"malloc", "CUDACachingAllocator.cpp", 1},
                                      "CUDA out of memory. Tried to allocate 2.00 GiB");
    CHECK(wanrt::is_out_of_memory(typed));
    CHECK(wanrt::is_out_of_memory(std::runtime_error(
        "The following operation failed in the TorchScript interpreter.\n"
        "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB")));
    CHECK(wanrt::is_out_of_memory(std::runtime_error("CUDA error: out of memory")));
    CHECK(wanrt::is_out_of_memory(std::runtime_error(
        "DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes.")));
    CHECK(wanrt::is_out_of_memory(std::bad_alloc()));
  }
  SECTION("our own budget errors by category, not by wording") {
    CHECK(wanrt::is_out_of_memory(Error(ErrorCategory::kOutOfMemory, "budget of 6 GiB exceeded")));
    CHECK_FALSE(wanrt::is_out_of_memory(Error(ErrorCategory::kInternal, "out of memory")));
  }
  SECTION("other failures are not allocation failures") {
    CHECK_FALSE(wanrt::is_out_of_memory(std::runtime_error("shape mismatch: [2, 3] vs [3, 2]")));
    CHECK_FALSE(wanrt::is_out_of_memory(std::runtime_error("memory format not supported")));
  }
}

TEST_CASE("first_line drops LibTorch's appended traces", "[runtime]") {
  CHECK(wanrt::first_line("CUDA out of memory.\nException raised from malloc") ==
        "CUDA out of memory.");
  CHECK(wanrt::first_line("one line") == "one line");
}
