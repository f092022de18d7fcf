// Typed errors of wanrt: every failure carries a category and a hint the user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace wanrt {

/// What kind of failure an Error is; decides the CLI exit code and the C status code.
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

}  // namespace wanrt
