#include <catch2/catch.hpp>

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
