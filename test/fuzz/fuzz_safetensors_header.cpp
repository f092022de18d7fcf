// libFuzzer target: the safetensors header parser (runtime/safetensors_header.h) on arbitrary
// bytes. It must either return a header whose entries lie inside the data section, sorted and
// without overlaps, or throw wanrt::Error; anything else (a crash, a sanitizer report, another
// exception type) is a finding. Built with -DWANRT_FUZZ=ON under clang (scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>

#include "runtime/error.h"
#include "runtime/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto h = wanrt::parse_safetensors_header(reinterpret_cast<const char*>(data), size,
                                                   static_cast<std::int64_t>(size), "fuzz");
    const std::int64_t data_bytes = static_cast<std::int64_t>(size) - h.data_start;
    std::int64_t previous_end = 0;
    for (const auto& e : h.entries) {
      if (e.begin < 0 || e.end < e.begin || e.end > data_bytes) __builtin_trap();
      if (e.end > e.begin) {
        if (e.begin < previous_end) __builtin_trap();
        previous_end = e.end;
      }
    }
  } catch (const wanrt::Error&) {
    // Rejected input: the expected outcome for almost everything.
  }
  return 0;
}
