// LoRAs for the Wan 2.2 DiTs: which file applies to which expert with what strength, and the
// module names of the diffusers layout mapped onto the official ones the bundles use
// (docs/lora.md). Reading and merging are runtime/lora_file.h and runtime/lora_merge.h.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/wan22/model_spec.h"
#include "optim/model_requirements.h"
#include "runtime/bundle.h"
#include "runtime/lora_file.h"
#include "runtime/lora_merge.h"

namespace wanrt::wan22 {

/// Which DiTs a LoRA applies to. The A14B models have two experts; Lightning ships one LoRA
/// per expert.
enum class LoraExperts { kAll, kHigh, kLow };

/// "all", "high", "low".
const char* lora_experts_name(LoraExperts experts);

/// A LoRA to apply: a file, a strength, the experts.
struct LoraSpec {
  std::string path;
  double strength = 1.0;
  LoraExperts experts = LoraExperts::kAll;
};

/// Parses "FILE[:STRENGTH]" (the CLI's --lora, --lora-high, --lora-low). The strength is the
/// text after the last ':' when that is a number; a path containing ':' can be given with an
/// explicit strength ("a:b.safetensors:1"). Error(kUsage) when the strength is empty or not a
/// finite number.
LoraSpec parse_lora_spec(const std::string& text, LoraExperts experts = LoraExperts::kAll);

/// The official Wan module name of a LoRA module name: diffusers names ("blocks.0.attn1.to_q",
/// "condition_embedder.time_proj", "proj_out", ...) are mapped; other names are returned as
/// they are.
std::string wan_module_name(const std::string& lora_module);

/// LoRA files read for a model, applied to its DiTs at load.
class WanLoras {
 public:
  /// Reads every file (read_lora_file) and checks the experts against `spec`: --lora-high and
  /// --lora-low need a two-expert model (Error(kUsage) otherwise).
  WanLoras(const WanSpec& spec, const std::vector<LoraSpec>& loras, bool allow_partial);

  /// Whether no LoRA is given.
  bool empty() const { return applied_.empty(); }
  /// The applications for component `name` (empty for components no LoRA targets).
  std::vector<LoraApplication> for_component(const std::string& name) const;
  /// The names the merge uses (wan_module_name) and the partial-match policy.
  LoraMergeOptions merge_options() const;
  /// Checks every LoRA against the parameter shapes of the components it targets without
  /// loading them: read from format 2 weights files' headers (format 1 bundles are checked at
  /// load). Returns the plan per component checked. Errors as plan_lora_merge.
  std::map<std::string, LoraMergePlan> check(const BundleManifest& manifest) const;
  /// Adds to `requirements` what the merges cost each DiT (ComponentRequirement::
  /// lora_merged_parameters, lora_load_bytes), from the LoRA files alone (so it works for
  /// planning profiles too): the distinct parameters they rewrite and the bytes read.
  void account(ModelRequirements& requirements) const;
  /// The files, in the order given, with their specs.
  const std::vector<std::pair<LoraSpec, std::shared_ptr<const LoraFile>>>& files() const {
    return applied_;
  }

 private:
  std::vector<std::string> experts_;  // the spec's DiTs, high-noise first
  std::vector<std::pair<LoraSpec, std::shared_ptr<const LoraFile>>> applied_;
  bool allow_partial_ = false;
};

/// The parameter shapes in a format 2 component's weights file (by qualified name).
std::map<std::string, std::vector<std::int64_t>> weights_file_shapes(const BundleManifest& manifest,
                                                                     const ComponentEntry& entry);

}  // namespace wanrt::wan22
