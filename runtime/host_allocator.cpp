#include "runtime/host_allocator.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <malloc.h>

#include <cstdlib>
#include <mutex>

#include "runtime/error.h"

namespace wanrt {
namespace {

// jemalloc and tcmalloc are found by their own entry points, looked up at run time so that
// wanrt links neither: the process may have either linked in (or preloaded).
using MallctlFn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
using ReleaseFn = void (*)();

std::string detect_allocator() {
  if (::dlsym(RTLD_DEFAULT, "mallctl") != nullptr) return "jemalloc";
  if (::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory") != nullptr) return "tcmalloc";
  return "glibc";
}

std::mutex& state_mutex() {
  static std::mutex m;
  return m;
}

HostAllocatorState& state_storage() {
  static HostAllocatorState s;
  return s;
}

bool& configured() {
  static bool done = false;
  return done;
}

}  // namespace

HostAllocatorPolicy parse_host_allocator_policy(const std::string& text) {
  if (text == "tuned") return HostAllocatorPolicy::kTuned;
  if (text == "system") return HostAllocatorPolicy::kSystem;
  throw Error(ErrorCategory::kUsage, fmt::format("unknown host allocator policy '{}'", text),
              "use tuned (wanrt tunes glibc's malloc; the default) or system (leave the process "
              "allocator alone)");
}

const char* host_allocator_policy_name(HostAllocatorPolicy policy) {
  return policy == HostAllocatorPolicy::kTuned ? "tuned" : "system";
}

HostAllocatorState configure_host_allocator(HostAllocatorPolicy policy, bool explicit_choice) {
  std::lock_guard<std::mutex> lock(state_mutex());
  HostAllocatorState& s = state_storage();
  if (configured()) return s;
  s.allocator = detect_allocator();
  s.source = explicit_choice ? "caller" : "default";
  const char* env = std::getenv("WANRT_HOST_ALLOCATOR");
  if (!explicit_choice && env != nullptr && *env != '\0') {
    policy = parse_host_allocator_policy(env);
    s.source = "WANRT_HOST_ALLOCATOR";
  }
  s.policy = policy;
  if (policy == HostAllocatorPolicy::kTuned && s.allocator == "glibc") {
    // mallopt takes an int: both values stay below 2^31. Setting either also turns off glibc's
    // dynamic threshold, which would otherwise move it on the first large free.
    const bool mmap_ok = ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kTunedMmapThreshold)) == 1;
    const bool trim_ok = ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTunedTrimThreshold)) == 1;
    s.tuned = mmap_ok && trim_ok;
  }
  configured() = true;
  return s;
}

void set_host_allocator_stage(HostStage stage) {
  std::lock_guard<std::mutex> lock(state_mutex());
  if (!configured() || !state_storage().tuned) return;
  const std::int64_t threshold =
      stage == HostStage::kVae ? kTunedVaeMmapThreshold : kTunedMmapThreshold;
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold));
}

HostAllocatorState host_allocator_state() {
  std::lock_guard<std::mutex> lock(state_mutex());
  HostAllocatorState s = state_storage();
  if (!configured()) s.allocator = detect_allocator();
  return s;
}

void trim_host_memory() {
  if (auto mallctl = reinterpret_cast<MallctlFn>(::dlsym(RTLD_DEFAULT, "mallctl"))) {
    // "arena.<MALLCTL_ARENAS_ALL>.purge"; MALLCTL_ARENAS_ALL is 4096 in jemalloc 5.
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  if (auto release = reinterpret_cast<ReleaseFn>(
          ::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
    release();
    return;
  }
  ::malloc_trim(0);
}

}  // namespace wanrt
