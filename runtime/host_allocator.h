// The process's host (CPU) memory allocator: how wanrt sets it up, gives memory back, and
// reports what it holds. docs/optimization.md ("Host memory allocator") has the measurements
// behind the choice.
//
// glibc's defaults hand every block above its mmap threshold (at most 32 MiB once it adapts)
// fresh mmap'd pages, so each large tensor temporary is page-faulted in and unmapped again. The
// tuned policy serves large blocks from the heap instead and returns memory at the points where
// wanrt knows it is free (stage boundaries, each decoded latent frame) with trim_host_memory().
//
// Thread safety: every function may be called from any thread; configure_host_allocator()
// should run before the process allocates heavily (a library does it when a Model is created).
#pragma once

#include <cstdint>
#include <string>

namespace wanrt {

/// How wanrt treats the process's allocator.
enum class HostAllocatorPolicy {
  kTuned,   ///< glibc: large blocks from the heap (the thresholds below); trims at stage ends
  kSystem,  ///< leave the allocator as the process has it (embedding applications that manage it)
};

/// glibc mmap threshold under the tuned policy: blocks up to this size come from the heap.
inline constexpr std::int64_t kTunedMmapThreshold = std::int64_t{1} << 30;
/// glibc trim threshold under the tuned policy: free memory at the top of the heap kept.
inline constexpr std::int64_t kTunedTrimThreshold = std::int64_t{1} << 30;
/// glibc mmap threshold of the tuned policy while a VAE runs (HostStage::kVae).
inline constexpr std::int64_t kTunedVaeMmapThreshold = std::int64_t{32} << 20;

/// What kind of work the process is doing, for set_host_allocator_stage().
enum class HostStage {
  kTransformer,  ///< text encoder, DiT: the same temporaries block after block
  kVae,          ///< VAE encode/decode: activations that grow with the image and fragment a heap
};

/// What configure_host_allocator() did.
struct HostAllocatorState {
  std::string allocator = "glibc";  ///< the malloc the process runs: glibc, jemalloc, tcmalloc
  HostAllocatorPolicy policy = HostAllocatorPolicy::kSystem;
  bool tuned = false;                ///< the tuned glibc thresholds are in effect
  std::string source;                ///< who decided: "default", "WANRT_HOST_ALLOCATOR", "caller"
};

/// "tuned" or "system"; Error(kUsage) naming both otherwise.
HostAllocatorPolicy parse_host_allocator_policy(const std::string& text);

/// "tuned" or "system".
const char* host_allocator_policy_name(HostAllocatorPolicy policy);

/// Sets the process allocator up once: the first call decides, later calls only return the
/// state. A library default (`explicit_choice` false) gives way to WANRT_HOST_ALLOCATOR=tuned|
/// system in the environment; a caller's own choice (a command-line flag, an embedding
/// application) does not. Only glibc is tuned; jemalloc and tcmalloc are left as they are.
HostAllocatorState configure_host_allocator(HostAllocatorPolicy policy = HostAllocatorPolicy::kTuned,
                                            bool explicit_choice = false);

/// Under the tuned glibc policy, sets the mmap threshold for `stage`: kTunedMmapThreshold for
/// transformer stages, kTunedVaeMmapThreshold for VAE stages (measured in docs/optimization.md:
/// heap-served VAE activations cost hundreds of MiB of fragmentation). No-op otherwise.
void set_host_allocator_stage(HostStage stage);

/// The state now (before any configure_host_allocator(): policy kSystem, not tuned).
HostAllocatorState host_allocator_state();

/// Gives the allocator's free memory back to the system: glibc malloc_trim(0), jemalloc's
/// purge of every arena, tcmalloc's ReleaseFreeMemory. Costs a walk over the heap's free
/// blocks; wanrt calls it where a stage's temporaries have just been freed.
void trim_host_memory();

}  // namespace wanrt
