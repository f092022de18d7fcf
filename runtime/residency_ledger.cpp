#include "runtime/residency_ledger.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"

namespace wanrt {
namespace {

std::string gib(std::int64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

ResidencyLedger::ResidencyLedger(std::int64_t budget) : budget_(budget) {}

void ResidencyLedger::acquire(const std::string& component, const std::string& unit,
                              std::int64_t bytes, std::int64_t host_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Held& h : held_) {
    if (h.component == component && h.unit == unit) {
      throw Error(ErrorCategory::kInternal,
                  fmt::format("residency ledger: {} '{}' acquired twice", component, unit));
    }
  }
  const std::int64_t total = current_ + bytes;
  if (budget_ > 0 && total > budget_) {
    throw Error(ErrorCategory::kOutOfMemory,
                fmt::format("device memory budget exceeded: {} '{}' needs {} more, {} would be "
                            "held, the budget is {}",
                            component, unit, gib(bytes), gib(total), gib(budget_)),
                "offload more (--offload model|sequential|full, fewer --blocks-resident), use "
                "--dtype bf16, or raise --vram-budget");
  }
  held_.push_back({component, unit, bytes, host_bytes});
  current_ = total;
  peak_ = std::max(peak_, current_);
  host_current_ += host_bytes;
  host_peak_ = std::max(host_peak_, host_current_);
  events_.push_back(
      {LedgerEvent::kAcquire, component, unit, bytes, current_, host_bytes, host_current_});
}

void ResidencyLedger::release(const std::string& component, const std::string& unit) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = std::find_if(held_.begin(), held_.end(), [&](const Held& h) {
    return h.component == component && h.unit == unit;
  });
  if (it == held_.end()) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("residency ledger: {} '{}' released but not held", component, unit));
  }
  const std::int64_t bytes = it->bytes, host_bytes = it->host_bytes;
  held_.erase(it);
  current_ -= bytes;
  host_current_ -= host_bytes;
  events_.push_back(
      {LedgerEvent::kRelease, component, unit, bytes, current_, host_bytes, host_current_});
}

bool ResidencyLedger::holds(const std::string& component, const std::string& unit) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(held_.begin(), held_.end(), [&](const Held& h) {
    return h.component == component && h.unit == unit;
  });
}

std::int64_t ResidencyLedger::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_;
}

std::int64_t ResidencyLedger::held_by(const std::string& component) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::int64_t total = 0;
  for (const Held& h : held_) {
    if (h.component == component) total += h.bytes;
  }
  return total;
}

std::int64_t ResidencyLedger::peak() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

std::int64_t ResidencyLedger::host_current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return host_current_;
}

std::int64_t ResidencyLedger::host_peak() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return host_peak_;
}

void ResidencyLedger::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = current_;
  host_peak_ = host_current_;
}

std::int64_t ResidencyLedger::budget() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return budget_;
}

void ResidencyLedger::set_budget(std::int64_t budget) {
  std::lock_guard<std::mutex> lock(mutex_);
  budget_ = budget;
}

bool ResidencyLedger::fits(std::int64_t bytes) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return budget_ <= 0 || current_ + bytes <= budget_;
}

std::vector<LedgerEvent> ResidencyLedger::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

void ResidencyLedger::clear_events() {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.clear();
}

}  // namespace wanrt
