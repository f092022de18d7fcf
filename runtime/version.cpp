#include "runtime/version.h"

#include <fmt/format.h>
#include <torch/version.h>

namespace wanrt {

const char* version() noexcept { return WANRT_VERSION_STRING; }

const char* libtorch_version() noexcept { return TORCH_VERSION; }

bool libtorch_has_sdpa() noexcept {
  return TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1);
}

bool built_with_cuda() noexcept {
#ifdef WANRT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::string build_info() {
  return fmt::format("wanrt {} (LibTorch {}, CUDA backend: {})", version(), libtorch_version(),
                     built_with_cuda() ? "yes" : "no");
}

}  // namespace wanrt
