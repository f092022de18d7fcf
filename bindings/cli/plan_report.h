// Rendering of optimization results for `wanrun plan` and `wanrun doctor`: text and JSON, and
// the option group that describes a (simulated) machine and the user's plan settings.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bindings/common/json_reports.h"
#include "optim/machine.h"
#include "optim/optimization_manager.h"

namespace wanrt::cli {

using bindings::components_json;
using bindings::resources_json;
using bindings::result_json;

/// Options shared by plan and doctor: the simulated machine and the optimization config.
struct MachineOptions {
  std::string vram, ram, gpu_cc, cpu_bf16;
  std::optional<int> gpu_count;
  std::string optim_config;

  /// Registers --vram, --ram, --gpu-cc, --gpu-count, --cpu-bf16, --optim-config.
  void add_to(CLI::App* cmd);
  /// The overrides these options describe; Error(kUsage) for a malformed value.
  MachineOverrides overrides() const;
  /// The machine: probed, with the overrides applied.
  SystemResources resources() const;
  /// The config file's settings, or the defaults.
  OptimizationConfig config() const;
};

/// The profile directories searched for `--profile NAME`, in order: <bindir>/../share/wanrt/
/// profiles, then the source tree's models/profiles.
std::vector<std::string> profile_dirs();
/// `name_or_file` as a file when it exists, else NAME.yaml in profile_dirs(); Error(kUsage)
/// listing the known names otherwise.
std::string find_profile(const std::string& name_or_file);
/// The planning profiles found (file paths), one per model id, sorted.
std::vector<std::string> list_profiles();

/// Prints the plan (settings, reasons, per-stage estimate, ladder, guidance) as text.
/// `details`: every memory item with its formula.
void print_result(const OptimizationResult& result, bool details);

/// One line: "fits: rung, device peak X of Y, host peak Z of W" or "does not fit: ...".
std::string summary_line(const OptimizationResult& result);

}  // namespace wanrt::cli
