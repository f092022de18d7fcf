#include "runtime/error.h"

#include <utility>

namespace wanrt {

Error::Error(ErrorCategory category, const std::string& message, std::string hint)
    : std::runtime_error(message), category_(category), hint_(std::move(hint)) {}

const char* category_name(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::kUsage: return "usage";
    case ErrorCategory::kBundle: return "bundle";
    case ErrorCategory::kResources: return "resources";
    case ErrorCategory::kOutOfMemory: return "out-of-memory";
    case ErrorCategory::kCancelled: return "cancelled";
    case ErrorCategory::kInternal: return "internal";
  }
  return "internal";
}

int exit_code(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::kUsage: return 2;
    case ErrorCategory::kBundle: return 3;
    case ErrorCategory::kResources: return 4;
    case ErrorCategory::kOutOfMemory: return 5;
    case ErrorCategory::kCancelled: return 130;  // as a shell reports SIGINT
    case ErrorCategory::kInternal: return 70;    // EX_SOFTWARE
  }
  return 70;
}

std::string format_error(const Error& error) {
  std::string out = std::string("error [") + category_name(error.category()) + "]: " + error.what();
  if (!error.hint().empty()) out += "\nhint: " + error.hint();
  return out;
}

}  // namespace wanrt
