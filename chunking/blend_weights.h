// Blend weights over the overlap of two neighbouring chunks.
#pragma once

#include <string>
#include <vector>

namespace wanrt {

/// Shape of the cross-fade over an overlap.
enum class BlendKind {
  kFlat,    ///< equal weights (plain average)
  kLinear,  ///< linear ramp (diffusers tile blending)
  kCosine,  ///< raised-cosine ramp
};

/// Weights of the incoming (later) chunk at each of `overlap` positions; the outgoing chunk
/// gets 1 - w. Every weight is in (0, 1), the ramp is non-decreasing and symmetric:
/// w[i] + w[overlap - 1 - i] == 1, so the two chunks form a partition of unity.
/// Throws Error(kUsage) when overlap < 0.
std::vector<double> blend_ramp(BlendKind kind, int overlap);

/// Parses "flat" | "linear" | "cosine"; throws Error(kUsage) listing the names otherwise.
BlendKind parse_blend_kind(const std::string& name);

/// The name parse_blend_kind accepts for `kind`.
const char* blend_kind_name(BlendKind kind) noexcept;

}  // namespace wanrt
