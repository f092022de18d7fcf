// Counting LibTorch's host memory: a CPU allocator that wraps the one LibTorch had and keeps
// the live bytes of every CPU tensor (and of every raw allocation made through LibTorch's CPU
// allocator, e.g. oneDNN tensors created through ideep) and their peak. The counts are exact
// for what passes through c10's CPU allocator; NOT seen: oneDNN's internal scratchpads and
// caches, OpenBLAS buffers, pinned host memory (CUDA's host allocator), and any memory allocated
// with malloc/new outside c10 (RSS covers those: runtime/memory_monitor.h).
#pragma once

#include <cstdint>

namespace wanrt {

/// Installs the tracking allocator as LibTorch's CPU allocator (c10::SetCPUAllocator with a
/// priority above the default). Idempotent and thread-safe; tensors allocated before the first
/// call are not counted (and are freed correctly). Error(kInternal) when another allocator of
/// higher priority keeps it from being installed.
void install_cpu_tracking();
/// Whether install_cpu_tracking() has run.
bool cpu_tracking_installed();
/// Bytes of CPU tensor storage allocated through the tracking allocator and not yet freed.
std::int64_t cpu_tracked_bytes();
/// Highest cpu_tracked_bytes() since installation or the last reset_cpu_tracked_peak().
std::int64_t cpu_tracked_peak();
/// Restarts the peak at the current tracked bytes.
void reset_cpu_tracked_peak();

}  // namespace wanrt
