#include "runtime/tracking_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "runtime/error.h"

namespace wanrt {
namespace {

// Above the default CPU allocator's (0); the lowest value that replaces it.
constexpr std::uint8_t kTrackingPriority = 1;

struct RawEntry {
  std::size_t size;
  c10::DeleterFnPtr deleter;  ///< the wrapped allocator's deleter for this allocation
};

struct TrackingState {
  std::atomic<std::int64_t> current{0};
  std::atomic<std::int64_t> peak{0};
  std::atomic<bool> installed{false};
  c10::Allocator* wrapped = nullptr;
  std::mutex raw_mutex;
  std::unordered_map<void*, RawEntry> raw;
};

// Never destroyed: LibTorch frees tensors during static destruction, after any static object
// of ours would be gone.
TrackingState& state() {
  static TrackingState* s = new TrackingState;
  return *s;
}

void add_bytes(std::int64_t n) {
  TrackingState& s = state();
  const std::int64_t now = s.current.fetch_add(n) + n;
  std::int64_t peak = s.peak.load();
  while (now > peak && !s.peak.compare_exchange_weak(peak, now)) {
  }
}

void sub_bytes(std::int64_t n) { state().current.fetch_sub(n); }

// Deleter of allocations whose context is their data pointer. Such pointers also reach it
// through raw_deallocate() (ideep hands oneDNN memory out that way), including pointers the
// wrapped allocator handed out before installation: those are not in the table and go
// straight back to it.
void delete_raw(void* data) {
  TrackingState& s = state();
  RawEntry entry{0, nullptr};
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(s.raw_mutex);
    auto it = s.raw.find(data);
    if (it != s.raw.end()) {
      entry = it->second;
      found = true;
      s.raw.erase(it);
    }
  }
  if (found) {
    sub_bytes(static_cast<std::int64_t>(entry.size));
    entry.deleter(data);
  } else {
    s.wrapped->raw_deleter()(data);
  }
}

// Allocations with a context of their own keep the original DataPtr, freed with the box.
struct Boxed {
  c10::DataPtr original;
  std::size_t size;
};

void delete_boxed(void* context) {
  auto* boxed = static_cast<Boxed*>(context);
  sub_bytes(static_cast<std::int64_t>(boxed->size));
  delete boxed;
}

// No `override` here on purpose: c10 made allocate() non-const and added the pure virtual
// copy_data() in PyTorch 2.x. Declaring both allocate() overloads and copy_data() overrides
// whichever the LibTorch at hand declares (1.13 here, 2.x on GPU machines).
class TrackingCpuAllocator final : public c10::Allocator {
 public:
  explicit TrackingCpuAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) {}

  c10::DataPtr allocate(std::size_t n) const { return track(n); }
  c10::DataPtr allocate(std::size_t n) { return track(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const {
    std::memcpy(dest, src, count);
  }
  // Keeps raw_allocate()/raw_deallocate() working exactly when they worked before.
  c10::DeleterFnPtr raw_deleter() const {
    return wrapped_->raw_deleter() != nullptr ? &delete_raw : nullptr;
  }

 private:
  c10::DataPtr track(std::size_t n) const {
    c10::DataPtr original = wrapped_->allocate(n);
    void* data = original.get();
    if (data == nullptr) return original;  // zero bytes: nothing to count
    const c10::Device device = original.device();
    if (original.get_context() == data && original.get_deleter() != nullptr) {
      // Keep context == data, as raw_allocate() requires.
      {
        TrackingState& s = state();
        std::lock_guard<std::mutex> lock(s.raw_mutex);
        s.raw.emplace(data, RawEntry{n, original.get_deleter()});
      }
      original.release_context();
      add_bytes(static_cast<std::int64_t>(n));
      return c10::DataPtr(data, data, &delete_raw, device);
    }
    auto* boxed = new Boxed{std::move(original), n};
    add_bytes(static_cast<std::int64_t>(n));
    return c10::DataPtr(data, boxed, &delete_boxed, device);
  }

  c10::Allocator* wrapped_;
};

}  // namespace

void install_cpu_tracking() {
  static std::mutex install_mutex;
  std::lock_guard<std::mutex> lock(install_mutex);
  TrackingState& s = state();
  if (s.installed.load()) return;
  c10::Allocator* current = c10::GetCPUAllocator();
  // Never deleted: c10 keeps a raw pointer to it for the rest of the process.
  auto* tracking = new TrackingCpuAllocator(current);
  s.wrapped = current;
  c10::SetCPUAllocator(tracking, kTrackingPriority);
  if (c10::GetCPUAllocator() != tracking) {
    throw Error(ErrorCategory::kInternal,
                "could not install the tracking CPU allocator: LibTorch keeps another CPU "
                "allocator of higher priority",
                "run without host memory tracking");
  }
  s.installed.store(true);
}

bool cpu_tracking_installed() { return state().installed.load(); }

std::int64_t cpu_tracked_bytes() { return state().current.load(); }

std::int64_t cpu_tracked_peak() { return state().peak.load(); }

void reset_cpu_tracked_peak() {
  TrackingState& s = state();
  s.peak.store(s.current.load());
}

}  // namespace wanrt
