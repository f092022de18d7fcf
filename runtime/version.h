// Version information of the library and of the LibTorch it was built with.
#pragma once

#include <string>

namespace wanrt {

/// wanrt's own version, "MAJOR.MINOR.PATCH".
const char* version() noexcept;

/// One line: wanrt version, LibTorch version, whether the CUDA backend is compiled in.
std::string build_info();

/// The LibTorch version this build was compiled against, e.g. "2.11.0".
const char* libtorch_version() noexcept;

/// True when this LibTorch has scaled_dot_product_attention with a `scale` argument (2.1 and
/// later), which bundles exported with `attention: sdpa` call.
bool libtorch_has_sdpa() noexcept;

/// True when this build contains the CUDA backend (LibTorch had CUDA at configure time).
bool built_with_cuda() noexcept;

}  // namespace wanrt
