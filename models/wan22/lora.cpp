#include "models/wan22/lora.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "runtime/error.h"
#include "runtime/safetensors_file.h"

namespace wanrt::wan22 {
namespace {

// diffusers' WanTransformer3DModel names -> the official ones, inside a block ("blocks.N.")
// and at the top level. diffusers' norm2 is the cross-attention norm, the official norm3.
constexpr std::array<std::pair<const char*, const char*>, 16> kBlockNames{{
    {"attn1.to_q", "self_attn.q"},   {"attn1.to_k", "self_attn.k"},
    {"attn1.to_v", "self_attn.v"},   {"attn1.to_out.0", "self_attn.o"},
    {"attn1.norm_q", "self_attn.norm_q"}, {"attn1.norm_k", "self_attn.norm_k"},
    {"attn2.to_q", "cross_attn.q"},  {"attn2.to_k", "cross_attn.k"},
    {"attn2.to_v", "cross_attn.v"},  {"attn2.to_out.0", "cross_attn.o"},
    {"attn2.norm_q", "cross_attn.norm_q"}, {"attn2.norm_k", "cross_attn.norm_k"},
    {"ffn.net.0.proj", "ffn.0"},     {"ffn.net.2", "ffn.2"},
    {"norm2", "norm3"},              {"scale_shift_table", "modulation"},
}};
constexpr std::array<std::pair<const char*, const char*>, 7> kTopNames{{
    {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
    {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
    {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
    {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
    {"condition_embedder.time_proj", "time_projection.1"},
    {"proj_out", "head.head"},
    {"scale_shift_table", "head.modulation"},
}};

}  // namespace

const char* lora_experts_name(LoraExperts experts) {
  switch (experts) {
    case LoraExperts::kHigh: return "high";
    case LoraExperts::kLow: return "low";
    case LoraExperts::kAll: break;
  }
  return "all";
}

LoraSpec parse_lora_spec(const std::string& text, LoraExperts experts) {
  LoraSpec spec;
  spec.experts = experts;
  spec.path = text;
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) return spec;
  const std::string tail = text.substr(colon + 1);
  std::error_code ec;
  if (tail.empty()) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("LoRA '{}': the strength after ':' is empty", text),
                "write FILE or FILE:STRENGTH, e.g. style.safetensors:0.8");
  }
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(tail.c_str(), &end);
  if (end == tail.c_str() + tail.size() && errno == 0 && std::isfinite(value)) {
    spec.path = text.substr(0, colon);
    spec.strength = value;
    return spec;
  }
  if (std::filesystem::exists(text, ec)) return spec;  // a path with ':' and no strength
  throw Error(ErrorCategory::kUsage,
              fmt::format("LoRA '{}': the strength '{}' is not a number", text, tail),
              "write FILE or FILE:STRENGTH, e.g. style.safetensors:0.8");
}

std::string wan_module_name(const std::string& m) {
  for (const auto& [from, to] : kTopNames) {
    if (m == from) return to;
  }
  const std::string blocks = "blocks.";
  if (m.compare(0, blocks.size(), blocks) == 0) {
    const std::size_t dot = m.find('.', blocks.size());
    if (dot != std::string::npos) {
      const std::string rest = m.substr(dot + 1);
      for (const auto& [from, to] : kBlockNames) {
        if (rest == from) return m.substr(0, dot + 1) + to;
      }
    }
  }
  return m;
}

WanLoras::WanLoras(const WanSpec& spec, const std::vector<LoraSpec>& loras, bool allow_partial)
    : experts_(spec.experts), allow_partial_(allow_partial) {
  for (const LoraSpec& l : loras) {
    if (l.experts != LoraExperts::kAll && !spec.is_moe()) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("--lora-{} {}: {} has a single DiT, not a high- and a low-noise "
                              "expert",
                              lora_experts_name(l.experts), l.path, spec.model_id),
                  "use --lora FILE[:STRENGTH] for it");
    }
    applied_.emplace_back(l, read_lora_file(l.path));
  }
}

std::vector<LoraApplication> WanLoras::for_component(const std::string& name) const {
  std::vector<LoraApplication> out;
  const auto it = std::find(experts_.begin(), experts_.end(), name);
  if (it == experts_.end()) return out;
  const bool high = experts_.size() == 2 && it == experts_.begin();
  for (const auto& [spec, file] : applied_) {
    const bool applies = spec.experts == LoraExperts::kAll ||
                         (spec.experts == LoraExperts::kHigh && high) ||
                         (spec.experts == LoraExperts::kLow && experts_.size() == 2 && !high);
    if (applies) out.push_back({file, spec.strength});
  }
  return out;
}

LoraMergeOptions WanLoras::merge_options() const {
  LoraMergeOptions options;
  options.map_name = wan_module_name;
  options.allow_partial = allow_partial_;
  return options;
}

std::map<std::string, LoraMergePlan> WanLoras::check(const BundleManifest& manifest) const {
  std::map<std::string, LoraMergePlan> plans;
  if (manifest.profile || manifest.format_version < 2) return plans;
  for (const std::string& name : experts_) {
    const std::vector<LoraApplication> loras = for_component(name);
    if (loras.empty()) continue;
    const ComponentEntry& entry = manifest.component(name);
    plans.emplace(name, plan_lora_merge(weights_file_shapes(manifest, entry), loras,
                                        merge_options(),
                                        fmt::format("{} of {}", name, manifest.model_id)));
  }
  return plans;
}

void WanLoras::account(ModelRequirements& requirements) const {
  const LoraMergeOptions options = merge_options();
  for (ComponentRequirement& c : requirements.components) {
    const std::vector<LoraApplication> loras = for_component(c.name);
    if (loras.empty()) continue;
    std::map<std::string, std::int64_t> rewritten;  // parameter -> elements
    std::int64_t read = 0;
    auto elements = [](const std::vector<std::int64_t>& shape) {
      std::int64_t n = 1;
      for (std::int64_t v : shape) n *= v;
      return n;
    };
    for (const LoraApplication& a : loras) {
      read += a.lora->tensor_bytes();
      for (const LoraDelta& d : a.lora->deltas) {
        const std::string target = options.map_name(d.module);
        if (d.down) {
          std::int64_t n = d.up->shape[0];
          for (std::size_t k = 1; k < d.down->shape.size(); ++k) n *= d.down->shape[k];
          rewritten[target + ".weight"] = n;
        } else if (d.diff) {
          rewritten[target + ".weight"] = elements(d.diff->shape);
        }
        if (d.diff_b) rewritten[target + ".bias"] = elements(d.diff_b->shape);
      }
    }
    std::int64_t total = 0, largest = 0;
    for (const auto& [name, n] : rewritten) {
      total += n;
      largest = std::max(largest, n);
    }
    c.lora_merged_parameters = total;
    c.lora_load_bytes = read + 2 * 4 * largest;  // the float32 sum and one product
  }
}

std::map<std::string, std::vector<std::int64_t>> weights_file_shapes(const BundleManifest& manifest,
                                                                     const ComponentEntry& entry) {
  const auto file = MappedSafetensors::open(manifest.weights_path_of(entry));
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const SafetensorsEntry& e : file->header().entries) shapes.emplace(e.name, e.shape);
  return shapes;
}

}  // namespace wanrt::wan22
