#include "optim/optim_config.h"

#include <fmt/format.h>

#include <set>

#include "runtime/yaml_file.h"

namespace wanrt {
namespace {

const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys = {
      "vram_safety_margin_mb",    "max_chunk_size",       "mixed_precision_threshold_mb",
      "cpu_offload_threshold_mb", "performance_priority", "enable_aggressive_optimization"};
  return keys;
}

std::int64_t non_negative_mb(const YamlFile& file, const YAML::Node& root, const std::string& key,
                             std::int64_t fallback) {
  if (!root[key]) return fallback;
  const auto value = file.get<long long>(root, key);
  if (value < 0) file.fail(root[key], key, fmt::format("must be >= 0, got {}", value));
  return value;
}

OptimizationConfig from_yaml(const YamlFile& file) {
  OptimizationConfig config;
  const YAML::Node& root = file.root;
  if (!root || root.IsNull()) return config;  // an empty file means all defaults
  if (!root.IsMap()) {
    file.fail(root, "<root>", "expected a mapping of key: value",
              "see docs/optimization.md for the keys and their defaults");
  }
  file.check_keys(root, "", {known_keys().begin(), known_keys().end()});
  config.vram_safety_margin_mb =
      non_negative_mb(file, root, "vram_safety_margin_mb", config.vram_safety_margin_mb);
  config.mixed_precision_threshold_mb = non_negative_mb(
      file, root, "mixed_precision_threshold_mb", config.mixed_precision_threshold_mb);
  config.cpu_offload_threshold_mb =
      non_negative_mb(file, root, "cpu_offload_threshold_mb", config.cpu_offload_threshold_mb);
  if (root["max_chunk_size"]) {
    config.max_chunk_size = file.get<int>(root, "max_chunk_size");
    if (config.max_chunk_size < 1) {
      file.fail(root["max_chunk_size"], "max_chunk_size",
                fmt::format("must be >= 1, got {}", config.max_chunk_size));
    }
  }
  if (root["performance_priority"]) {
    const auto value = file.get<std::string>(root, "performance_priority");
    if (value == "speed") {
      config.performance_priority = PerformancePriority::kSpeed;
    } else if (value == "balanced") {
      config.performance_priority = PerformancePriority::kBalanced;
    } else if (value == "memory") {
      config.performance_priority = PerformancePriority::kMemory;
    } else {
      file.fail(root["performance_priority"], "performance_priority",
                fmt::format("unknown value '{}'", value), "use one of: speed, balanced, memory");
    }
  }
  if (root["enable_aggressive_optimization"]) {
    config.enable_aggressive_optimization =
        file.get<bool>(root, "enable_aggressive_optimization");
  }
  return config;
}

}  // namespace

OptimizationConfig load_optimization_config(const std::string& path) {
  return from_yaml(YamlFile::load(path, ErrorCategory::kUsage));
}

OptimizationConfig parse_optimization_config(const std::string& text, const std::string& name) {
  return from_yaml(YamlFile::parse(text, name, ErrorCategory::kUsage));
}

const char* priority_name(PerformancePriority priority) noexcept {
  switch (priority) {
    case PerformancePriority::kSpeed: return "speed";
    case PerformancePriority::kBalanced: return "balanced";
    case PerformancePriority::kMemory: return "memory";
  }
  return "balanced";
}

}  // namespace wanrt
