// Internal: how LoRA errors write shapes and lists of names (lora_file.cpp, lora_merge.cpp).
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace wanrt::lora_text {

/// "[3072, 3072]".
inline std::string shape(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

/// The first `shown` names, then ", ... (N in all)" when there are more.
inline std::string some(const std::vector<std::string>& names, std::size_t shown) {
  shown = std::min(names.size(), shown);
  return fmt::format("{}{}", fmt::join(names.begin(), names.begin() + shown, ", "),
                     shown < names.size() ? fmt::format(", ... ({} in all)", names.size()) : "");
}

}  // namespace wanrt::lora_text
