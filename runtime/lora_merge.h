// Merging LoRA deltas into a module's weights at load: W' = W + sum_i s_i (alpha_i / rank_i)
// up_i @ down_i (+ s_i diff_i), computed in float32 and stored in W's dtype as a private copy
// (a mapped tensor is never written). Inference then costs nothing extra, and offloading and
// streaming move the merged weights.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/lora_file.h"

namespace wanrt {

/// One LoRA applied with a strength.
struct LoraApplication {
  std::shared_ptr<const LoraFile> lora;
  double strength = 1.0;
};

/// How module names of LoRA files map onto the module's.
struct LoraMergeOptions {
  /// The module's name for a LoRA module name (e.g. another naming scheme's); identity when
  /// empty. Return "" for a name that can match nothing.
  std::function<std::string(const std::string&)> map_name;
  /// Accept LoRA keys that match no parameter (they are listed in the plan); otherwise they are
  /// an error.
  bool allow_partial = false;
};

/// One parameter and the deltas that change it.
struct LoraMergeItem {
  struct Term {
    std::size_t lora = 0;             ///< index into the applications
    const LoraDelta* delta = nullptr;
    bool bias = false;                ///< diff_b onto the bias; else up @ down and/or diff
  };
  std::string parameter;  ///< "blocks.0.self_attn.q.weight"
  std::vector<std::int64_t> shape;
  std::vector<Term> terms;
};

/// What merging a list of LoRAs into one module changes.
struct LoraMergePlan {
  std::vector<LoraMergeItem> items;  ///< in the order the LoRAs reach them
  /// Per application: modules matched, keys that matched nothing.
  std::vector<int> matched_modules;
  std::vector<std::vector<std::string>> unmatched_keys;
  /// Elements of the parameters the merge rewrites.
  std::int64_t merged_elements = 0;
  /// The largest rewritten parameter's elements (its float32 work space).
  std::int64_t largest_elements = 0;
};

/// Matches every delta of `loras` against `parameters` (qualified name -> shape; items come
/// in the order their parameters are first reached) and checks
/// the shapes. Error(kBundle) naming `what`, the LoRA file, the tensor and both shapes when a
/// delta does not fit its parameter; when keys match nothing and !options.allow_partial, an
/// error listing them; when a LoRA matches nothing at all, always an error.
LoraMergePlan plan_lora_merge(const std::map<std::string, std::vector<std::int64_t>>& parameters,
                              const std::vector<LoraApplication>& loras,
                              const LoraMergeOptions& options, const std::string& what);

/// What merge_loras did.
struct LoraMergeReport {
  LoraMergePlan plan;
  int tensors = 0;                 ///< parameters rewritten
  std::int64_t merged_bytes = 0;   ///< bytes of the private copies made
  double seconds = 0;
};

/// Plans (plan_lora_merge over the module's parameters) and merges: each rewritten parameter
/// gets a new tensor in its dtype in every slot that held it. `mapped`: the weights file the
/// module's tensors are mapped from, if any; the pages of the tensors replaced are dropped from
/// the process's resident set. Applications with strength 0 are checked but change nothing.
/// Needs an InferenceScope or no-grad context only for speed; safe either way.
LoraMergeReport merge_loras(torch::jit::Module& module, const std::vector<LoraApplication>& loras,
                            const LoraMergeOptions& options, const std::string& what,
                            const MappedSafetensors* mapped = nullptr);

}  // namespace wanrt
