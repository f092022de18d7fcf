#include "chunking/blend_weights.h"

#include <fmt/format.h>

#include <cmath>

#include "runtime/error.h"

namespace wanrt {

std::vector<double> blend_ramp(BlendKind kind, int overlap) {
  if (overlap < 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("overlap must be >= 0, got {}", overlap));
  }
  std::vector<double> w(static_cast<size_t>(overlap));
  // Positions are sampled at (i + 1) / (overlap + 1): strictly inside (0, 1) and mirrored
  // around 1/2, which is what makes w[i] + w[n-1-i] = 1 hold for each shape.
  const double pi = std::acos(-1.0);
  for (int i = 0; i < overlap; ++i) {
    const double x = static_cast<double>(i + 1) / (overlap + 1);
    switch (kind) {
      case BlendKind::kFlat: w[i] = 0.5; break;
      case BlendKind::kLinear: w[i] = x; break;
      case BlendKind::kCosine: w[i] = 0.5 - 0.5 * std::cos(pi * x); break;
    }
  }
  return w;
}

BlendKind parse_blend_kind(const std::string& name) {
  if (name == "flat") return BlendKind::kFlat;
  if (name == "linear") return BlendKind::kLinear;
  if (name == "cosine") return BlendKind::kCosine;
  throw Error(ErrorCategory::kUsage, fmt::format("unknown blend '{}'", name),
              "use one of: flat, linear, cosine");
}

const char* blend_kind_name(BlendKind kind) noexcept {
  switch (kind) {
    case BlendKind::kFlat: return "flat";
    case BlendKind::kLinear: return "linear";
    case BlendKind::kCosine: return "cosine";
  }
  return "flat";
}

}  // namespace wanrt
