// libFuzzer target: the optimization config reader (optim/optim_config.h) on arbitrary text; it
// must return a config or throw wanrt::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "optim/optim_config.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)wanrt::parse_optimization_config(std::string(reinterpret_cast<const char*>(data), size),
                                           "fuzz.yaml");
  } catch (const wanrt::Error&) {
  }
  return 0;
}
