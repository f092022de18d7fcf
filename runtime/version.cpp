#include "runtime/version.h"

#include <fmt/format.h>
#include <torch/version.h>

namespace wanrt {

const char* version() noexcept { return WANRT_VERSION_STRING; }

bool built_with_cuda() noexcept {
#ifdef WANRT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::string build_info() {
  return fmt::format("wanrt {} (LibTorch {}, CUDA backend: {})", version(), TORCH_VERSION,
                     built_with_cuda() ? "yes" : "no");
}

}  // namespace wanrt
