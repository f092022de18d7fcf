#include "optim/model_requirements.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/error.h"

namespace wanrt {

const char* role_name(ComponentRole role) noexcept {
  switch (role) {
    case ComponentRole::kTextEncoder:
      return "text_encoder";
    case ComponentRole::kDenoiser:
      return "denoiser";
    case ComponentRole::kVae:
      return "vae";
    case ComponentRole::kOther:
      return "other";
  }
  return "other";
}

std::int64_t ComponentRequirement::bytes_at(Dtype dtype) const {
  if (dtype == stored) return stored_bytes;
  const auto [half, fp32] = split_at(dtype);
  return half + fp32;
}

std::pair<std::int64_t, std::int64_t> ComponentRequirement::split_at(Dtype dtype) const {
  if (dtype == Dtype::kFp32) return {0, 4 * parameters};
  const std::int64_t keep = std::min(keep_fp32_parameters, parameters);
  if (dtype == stored) {
    // Exact total from the manifest; the fp32 part is the keep-fp32 parameters.
    return {stored_bytes - 4 * keep, 4 * keep};
  }
  return {2 * (parameters - keep), 4 * keep};
}

namespace {

std::int64_t scale(std::int64_t stored_part, std::int64_t stored_total, std::int64_t target) {
  if (stored_total <= 0) return stored_part;
  return static_cast<std::int64_t>(static_cast<long double>(stored_part) * target / stored_total);
}

}  // namespace

namespace {

// Bytes in `dtype` of a block stored in `stored` as `bytes`, `keep` of its parameters fp32.
std::int64_t block_at(std::int64_t bytes, Dtype stored, Dtype dtype, std::int64_t keep) {
  if (dtype == stored) return bytes;
  // Parameters of the block: fp32 storage 4 B each; half storage 2 B, 4 B for the kept ones.
  const std::int64_t params = is_half(stored) ? (bytes - 2 * keep) / 2 : bytes / 4;
  if (dtype == Dtype::kFp32) return 4 * params;
  return 2 * (params - keep) + 4 * keep;
}

}  // namespace

std::int64_t ComponentRequirement::non_block_at(Dtype dtype) const {
  if (!staged()) return bytes_at(dtype);
  if (block_keep_fp32_parameters <= 0 && keep_fp32_parameters > 0) {
    return scale(non_block_bytes, stored_bytes, bytes_at(dtype));
  }
  std::int64_t blocks = 0;
  for (const std::int64_t b : block_bytes) {
    blocks += block_at(b, stored, dtype, block_keep_fp32_parameters);
  }
  return bytes_at(dtype) - blocks;
}

std::int64_t ComponentRequirement::max_block_at(Dtype dtype) const {
  if (!staged()) return 0;
  const std::int64_t largest = *std::max_element(block_bytes.begin(), block_bytes.end());
  if (block_keep_fp32_parameters <= 0 && keep_fp32_parameters > 0) {
    return scale(largest, stored_bytes, bytes_at(dtype));
  }
  return block_at(largest, stored, dtype, block_keep_fp32_parameters);
}

const ComponentRequirement& ModelRequirements::component(const std::string& name) const {
  for (const auto& c : components) {
    if (c.name == name) return c;
  }
  throw Error(ErrorCategory::kInternal,
              fmt::format("model '{}' has no component '{}'", model_id, name));
}

std::vector<StageRequirement> ModelRequirements::stages_for(const Workload& workload) const {
  std::vector<StageRequirement> out;
  for (const auto& s : stages) {
    if (s.kind == RunStage::kImageEncode && !workload.image) continue;
    out.push_back(s);
  }
  return out;
}

Workload ModelRequirements::default_workload() const {
  Workload w;
  w.width = default_width;
  w.height = default_height;
  w.frames = default_frames;
  w.image = image_required;
  return w;
}

}  // namespace wanrt
