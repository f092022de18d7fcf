#include "runtime/error.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>
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

bool is_out_of_memory(const std::exception& e) noexcept {
  if (const auto* ours = dynamic_cast<const Error*>(&e)) {
    return ours->category() == ErrorCategory::kOutOfMemory;
  }
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) return true;
  // Untyped forms, matched on the message (c10::Error::what() includes the backtrace, so only
  // allocator phrases are matched, not arbitrary mentions of memory):
  //   CPU (c10/core/impl/alloc_cpu.cpp): "DefaultCPUAllocator: can't allocate memory: ..." and
  //     "DefaultCPUAllocator: not enough memory: ...";
  //   CUDA: "CUDA out of memory. Tried to allocate ...", cudaErrorMemoryAllocation's
  //     "CUDA error: out of memory".
  const char* message = e.what();
  if (message == nullptr) return false;
  const std::string text = message;
  return text.find("out of memory") != std::string::npos ||
         text.find("not enough memory") != std::string::npos ||
         text.find("can't allocate memory") != std::string::npos;
}

std::string first_line(const std::string& message) {
  // TorchScript's compile errors start with a newline; their first line is the next one.
  const std::size_t begin = message.find_first_not_of("\n \t");
  if (begin == std::string::npos) return {};
  const std::size_t end = message.find('\n', begin);
  return message.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace wanrt
