// Version information of the library and of the LibTorch it was built with.
#pragma once

#include <string>

namespace wanrt {

/// wanrt's own version, "MAJOR.MINOR.PATCH".
const char* version() noexcept;

/// One line: wanrt version, LibTorch version, whether the CUDA backend is compiled in.
std::string build_info();

/// True when this build contains the CUDA backend (LibTorch had CUDA at configure time).
bool built_with_cuda() noexcept;

}  // namespace wanrt
