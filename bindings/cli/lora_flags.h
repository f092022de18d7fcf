// The LoRA flags of `wanrun generate`, `wanrun plan` and `wanrun bench`: --lora, --lora-high,
// --lora-low (each FILE[:STRENGTH], repeatable) and --lora-allow-partial.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "models/wan22/lora.h"

namespace wanrt::cli {

/// The flags as given.
struct LoraFlags {
  std::vector<std::string> all, high, low;
  bool partial = false;

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// The LoRAs in the order: every --lora, then --lora-high, then --lora-low. Error(kUsage)
  /// for a strength that is not a number.
  std::vector<wan22::LoraSpec> specs() const;
};

}  // namespace wanrt::cli
