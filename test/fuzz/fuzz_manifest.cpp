// libFuzzer target: the manifest reader and validator (runtime/bundle.h, read_profile: the
// schema shared by bundles and profiles, with YAML parsing by yaml-cpp). Each input is written to
// a file in /dev/shm and read as a manifest; it must be accepted or rejected with wanrt::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "runtime/bundle.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/dev/shm/wanrt-fuzz-manifest-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const wanrt::BundleManifest m = wanrt::read_profile(path);
    for (const auto& c : m.components) {
      if (c.staged() && static_cast<std::size_t>(c.contract.num_blocks) != c.block_bytes.size()) {
        __builtin_trap();  // the validator promises this
      }
    }
  } catch (const wanrt::Error&) {
  }
  return 0;
}
