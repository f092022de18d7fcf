// Test helpers: the wanrt::Error a callable throws, or its category (fail the test when it
// throws nothing or something else).
#pragma once

#include "support/catch.h"
#include <functional>

#include "runtime/error.h"

namespace wanrt_test {

inline wanrt::ErrorCategory category_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const wanrt::Error& e) {
    INFO(e.what() << " / hint: " << e.hint());
    return e.category();
  }
  FAIL("expected a wanrt::Error");
  return wanrt::ErrorCategory::kInternal;
}

inline wanrt::Error error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const wanrt::Error& e) {
    return e;
  }
  FAIL("expected a wanrt::Error");
  return wanrt::Error(wanrt::ErrorCategory::kInternal, "unreachable");
}

}  // namespace wanrt_test
