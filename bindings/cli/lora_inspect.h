// `wanrun inspect --lora FILE [BUNDLE]`: what a LoRA file holds (layout, prefix, names, rank,
// alpha, the effective scale, targets) and, with a bundle, how it matches each DiT.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/bundle.h"

namespace wanrt::cli {

/// The report as JSON; `bundle`: also match the file against its DiTs (format 2: from the
/// weights files' headers; format 1: by loading each DiT). Errors as read_lora_file and
/// plan_lora_merge (a file that does not fit a DiT is reported as an error).
nlohmann::json lora_report(const std::string& path, const BundleManifest* bundle);

/// Prints lora_report() as text.
void print_lora_report(const nlohmann::json& report);

}  // namespace wanrt::cli
