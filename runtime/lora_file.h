// A LoRA file: weight deltas for a model's parameters, as low-rank factors (delta = alpha /
// rank · up @ down) or as full tensors, in a safetensors file (docs/lora.md). The layouts in
// common use are read:
//   - lora_down / lora_up (+ alpha): the official Wan and Lightning layout, also kohya's;
//   - lora_A / lora_B (+ alpha): PEFT's (down = A, up = B), with or without the adapter name
//     "default";
//   - diff / diff_b: full deltas of a module's weight and bias (norms, biases, modulation).
// Keys may carry a prefix naming the model ("diffusion_model.", "transformer.",
// "base_model.model.", "model.diffusion_model."), stripped here. Module names are returned as
// the file spells them; mapping them onto a model's names is the caller's (lora_merge.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/safetensors_file.h"

namespace wanrt {

/// The deltas a file holds for one module.
struct LoraDelta {
  std::string module;  ///< module path, prefix stripped ("blocks.0.self_attn.q")
  const SafetensorsEntry* down = nullptr;    ///< [rank, in...]
  const SafetensorsEntry* up = nullptr;      ///< [out, rank, 1...]
  std::optional<double> alpha;               ///< scale numerator; none: alpha = rank
  const SafetensorsEntry* diff = nullptr;    ///< full delta of <module>.weight (or <module>)
  const SafetensorsEntry* diff_b = nullptr;  ///< full delta of <module>.bias
  std::vector<std::string> keys;             ///< the file's keys for this module

  /// The low-rank factors' rank (0 without them).
  std::int64_t rank() const;
  /// alpha / rank (1 without alpha; 0 without low-rank factors).
  double scale() const;
};

/// A parsed LoRA file, mapped read-only.
struct LoraFile {
  std::string path;
  std::shared_ptr<MappedSafetensors> file;
  /// The layouts found: "lora_down/lora_up", "lora_A/lora_B", "diff" (some of them).
  std::vector<std::string> layouts;
  std::string prefix;  ///< the prefix stripped from the keys ("" when none)
  std::vector<LoraDelta> deltas;  ///< one per module, in the file's key order
  std::int64_t min_rank = 0, max_rank = 0;  ///< over the low-rank deltas (0 when none)
  bool has_alpha = false;  ///< some delta carries alpha

  /// Whether the file holds any low-rank delta.
  bool low_rank() const { return max_rank > 0; }
  /// Bytes of its tensor data.
  std::int64_t tensor_bytes() const;
  /// The tensor of `entry` in float32 (a copy when the file holds another dtype).
  at::Tensor tensor(const SafetensorsEntry& entry) const;
};

/// Reads `path`. Error(kUsage) when it cannot be opened; Error(kBundle) naming the file when it
/// is no safetensors file, holds a key of no known layout (listed), a module with only one of
/// the two factors, factors whose ranks differ, an alpha that is not one finite number, or no
/// delta at all.
std::shared_ptr<const LoraFile> read_lora_file(const std::string& path);

}  // namespace wanrt
