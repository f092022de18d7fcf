#include "runtime/memory_monitor.h"

#include <algorithm>
#include <fstream>

#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/proc_fields.h"

namespace wanrt {

std::int64_t current_rss() { return internal::read_proc_kib_field("/proc/self/status", "VmRSS"); }

std::int64_t peak_rss() { return internal::read_proc_kib_field("/proc/self/status", "VmHWM"); }

MemoryMonitor::MemoryMonitor(DeviceBackend* device) : device_(device) { reset_peak(); }

MemorySample MemoryMonitor::sample() const {
  MemorySample s;
  s.rss = current_rss();
  const std::int64_t hwm = peak_rss();
  if (s.rss < 0 || hwm < 0) {
    throw Error(ErrorCategory::kResources, "cannot read VmRSS/VmHWM from /proc/self/status",
                "wanrt needs a Linux /proc filesystem to measure memory");
  }
  if (kernel_reset_ || hwm > hwm_at_reset_) {
    s.peak_rss = std::max(hwm, s.rss);
  } else {
    s.peak_rss = std::max(rss_at_reset_, s.rss);
  }
  if (device_) {
    const AllocatorStats stats = device_->allocator_stats();
    s.device_allocated = stats.allocated;
    s.device_peak = stats.peak_allocated;
  }
  return s;
}

void MemoryMonitor::reset_peak() {
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    kernel_reset_ = static_cast<bool>(clear);
  }
  rss_at_reset_ = current_rss();
  hwm_at_reset_ = peak_rss();
  if (device_) device_->reset_peak_stats();
}

}  // namespace wanrt
