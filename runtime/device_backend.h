// A small interface over a compute device: memory figures, synchronisation, allocator peaks.
// The CPU implementation is always built; the CUDA one only when LibTorch has CUDA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace wanrt {

/// Which kind of device a backend drives.
enum class DeviceKind { kCpu, kCuda };

/// Memory of a device in bytes.
struct DeviceMemory {
  std::int64_t total = 0;      ///< physical size
  std::int64_t available = 0;  ///< what a new allocation can still get
};

/// Allocator statistics in bytes (the CPU backend reports zeros: host memory is tracked by RSS).
struct AllocatorStats {
  std::int64_t allocated = 0;       ///< bytes held by live tensors now
  std::int64_t peak_allocated = 0;  ///< highest `allocated` since the last reset
  std::int64_t reserved = 0;        ///< bytes the caching allocator holds from the driver
};

/// The operations the runtime needs from a device.
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  /// Device kind.
  virtual DeviceKind kind() const = 0;
  /// Human-readable name ("cpu", or the GPU's product name).
  virtual std::string name() const = 0;
  /// Current memory figures.
  virtual DeviceMemory memory() const = 0;
  /// Waits until all queued work on the device has finished.
  virtual void synchronize() const = 0;
  /// Allocator statistics.
  virtual AllocatorStats allocator_stats() const = 0;
  /// Resets the allocator's peak counters.
  virtual void reset_peak_stats() = 0;
  /// Releases cached, unused device memory back to the driver (the CUDA caching allocator's
  /// free blocks); live tensors are untouched. No-op where there is no such cache (CPU).
  virtual void empty_cache() {}
};

/// The host CPU backend; memory comes from /proc/meminfo.
std::unique_ptr<DeviceBackend> make_cpu_backend();

/// The CUDA backend for device `index`; throws Error(kResources) when this build or this
/// machine has no CUDA, or the index is out of range.
std::unique_ptr<DeviceBackend> make_cuda_backend(int index);

/// Number of usable CUDA devices (0 when the build has no CUDA backend).
int cuda_device_count();

}  // namespace wanrt
