// Internal: reading "Key:   123 kB" fields of Linux /proc files (/proc/meminfo, /proc/self/status).
#pragma once

#include <cstdint>
#include <string>

namespace wanrt {
namespace internal {

/// The value of the line "key: N kB" of `path`, in bytes; -1 when the file or the key is absent.
std::int64_t read_proc_kib_field(const std::string& path, const std::string& key);

/// read_proc_kib_field("/proc/meminfo", key).
inline std::int64_t meminfo_bytes(const std::string& key) {
  return read_proc_kib_field("/proc/meminfo", key);
}

}  // namespace internal
}  // namespace wanrt
