// The residency ledger: which units of which components hold how many bytes on the compute
// device, the running total, its peak, and every acquire and release in order. A second
// column counts host bytes a unit pages in from a memory-mapped weights file while it is held
// (host residency "disk": dropped again at release); units whose host weights stay in memory
// record 0 there. Offload
// policies write it; tests, the planner's checks and `--vram-budget` read it. On a machine
// without CUDA the weights do not move, but the ledger is kept the same way.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace wanrt {

/// One acquire or release, as recorded.
struct LedgerEvent {
  enum Kind { kAcquire, kRelease };
  Kind kind = kAcquire;
  std::string component;
  std::string unit;            ///< "all", "shell", "block 3", ...
  std::int64_t bytes = 0;      ///< the unit's bytes
  std::int64_t total = 0;      ///< device bytes held after the event
  std::int64_t host_bytes = 0;  ///< the unit's paged host bytes (host column)
  std::int64_t host_total = 0;  ///< paged host bytes held after the event
};

/// Device bytes held per (component, unit). Thread-safe.
class ResidencyLedger {
 public:
  /// `budget` in bytes; 0 means no limit.
  explicit ResidencyLedger(std::int64_t budget = 0);

  /// Records that `unit` of `component` now holds `bytes` on the device. Error(kOutOfMemory)
  /// naming the component, the unit, the total it would reach and the budget when that total
  /// exceeds the budget (nothing is recorded then); Error(kInternal) when the unit is already
  /// held.
  /// `host_bytes`: what the unit pages into host memory while held (the host column; not
  /// subject to the budget).
  void acquire(const std::string& component, const std::string& unit, std::int64_t bytes,
               std::int64_t host_bytes = 0);
  /// Records that the unit left the device. Error(kInternal) when it is not held.
  void release(const std::string& component, const std::string& unit);
  /// Whether the unit is held.
  bool holds(const std::string& component, const std::string& unit) const;

  /// Bytes held now, in total and by one component.
  std::int64_t current() const;
  std::int64_t held_by(const std::string& component) const;
  /// Highest current() since construction or the last reset_peak().
  std::int64_t peak() const;
  /// The host column: paged host bytes held now, and their highest value since construction
  /// or the last reset_peak().
  std::int64_t host_current() const;
  std::int64_t host_peak() const;
  /// Restarts both peaks at their current values.
  void reset_peak();

  /// The budget (0: none) and whether `bytes` more would still fit in it.
  std::int64_t budget() const;
  void set_budget(std::int64_t budget);
  bool fits(std::int64_t bytes) const;

  /// Every event since construction or the last clear_events(), in order.
  std::vector<LedgerEvent> events() const;
  void clear_events();

 private:
  struct Held {
    std::string component, unit;
    std::int64_t bytes, host_bytes;
  };
  mutable std::mutex mutex_;
  std::int64_t budget_ = 0;
  std::int64_t current_ = 0;
  std::int64_t peak_ = 0;
  std::int64_t host_current_ = 0, host_peak_ = 0;
  std::vector<Held> held_;
  std::vector<LedgerEvent> events_;
};

}  // namespace wanrt
