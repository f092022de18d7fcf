// Typed errors of wanrt: every failure carries a category and a hint the user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace wanrt {

/// What kind of failure an Error is; decides the CLI exit code and the C API's status code.
enum class ErrorCategory {
  kUsage,        ///< bad arguments or request values
  kBundle,       ///< missing, malformed or inconsistent model bundle
  kResources,    ///< the machine lacks something (device, RAM, capability)
  kOutOfMemory,  ///< an allocation failed or a memory budget was exceeded
  kCancelled,    ///< the caller cancelled the run
  kInternal,     ///< a bug in wanrt
};

/// An exception with a category and an actionable hint.
class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, const std::string& message, std::string hint = {});

  /// The failure category.
  ErrorCategory category() const noexcept { return category_; }
  /// What the user can do about it (may be empty).
  const std::string& hint() const noexcept { return hint_; }

 private:
  ErrorCategory category_;
  std::string hint_;
};

/// Lower-case name of a category ("usage", "bundle", ...).
const char* category_name(ErrorCategory category) noexcept;

/// Process exit code the CLI uses for a category: usage 2, bundle 3, resources 4,
/// out-of-memory 5, cancelled 130, internal 70.
int exit_code(ErrorCategory category) noexcept;

/// "error [category]: message" plus "hint: ..." on a second line when there is a hint.
std::string format_error(const Error& error);

/// Whether `e` reports a failed allocation. The one place that decides it: an
/// Error(kOutOfMemory) (our budgets), a c10::OutOfMemoryError (LibTorch's CUDA caching
/// allocator, and its CPU allocator in newer versions), std::bad_alloc, or a message of an allocator that
/// throws untyped errors or whose error the TorchScript interpreter rewrapped: the CPU
/// allocator's "can't allocate memory" / "not enough memory", CUDA's "out of memory".
bool is_out_of_memory(const std::exception& e) noexcept;

/// The first line of an exception message (LibTorch appends C++ and TorchScript traces).
std::string first_line(const std::string& message);

}  // namespace wanrt
