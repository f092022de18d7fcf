// Memory accounting: host RSS and its peak (from /proc/self/status), and the compute
// device's allocator figures when a device backend is given.
#pragma once

#include <cstdint>

namespace wanrt {

class DeviceBackend;

/// One measurement, in bytes.
struct MemorySample {
  std::int64_t rss = 0;               ///< resident set size now (VmRSS)
  std::int64_t peak_rss = 0;          ///< highest RSS since the last reset_peak (see below)
  std::int64_t device_allocated = 0;  ///< device allocator: bytes held by tensors now
  std::int64_t device_peak = 0;       ///< device allocator: peak since the last reset_peak
};

/// Samples the process's memory. The peak RSS comes from the kernel's high-water mark
/// (VmHWM), which reset_peak() resets by writing "5" to /proc/self/clear_refs (Linux >= 4.0).
/// Where that write is refused, the monitor remembers VmHWM at the reset and reports as peak
/// the larger of the RSS at the reset and the RSS now, or VmHWM once it exceeds its value at
/// the reset (then it is exact); in between it can miss a transient peak.
class MemoryMonitor {
 public:
  /// `device` (optional, not owned) supplies the allocator figures; without it they are 0.
  explicit MemoryMonitor(DeviceBackend* device = nullptr);

  /// Current figures. Error(kResources) when /proc/self/status cannot be read.
  MemorySample sample() const;
  /// Starts a new peak window for the host and the device.
  void reset_peak();
  /// Whether the last reset_peak() reset the kernel's high-water mark (exact peaks).
  bool kernel_peak_reset() const { return kernel_reset_; }

 private:
  DeviceBackend* device_;
  bool kernel_reset_ = false;
  std::int64_t hwm_at_reset_ = 0;  // VmHWM when the kernel refused the reset
  std::int64_t rss_at_reset_ = 0;
};

/// Resident set size of this process now (VmRSS), bytes; -1 when unreadable.
std::int64_t current_rss();
/// Peak resident set size of this process (VmHWM, since start or the last clear_refs), bytes;
/// -1 when unreadable.
std::int64_t peak_rss();

}  // namespace wanrt
