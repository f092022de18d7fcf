#include "chunking/blend_weights.h"

#include <fmt/format.h>

#include <algorithm>
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
      case BlendKind::kLinear:
      case BlendKind::kPyramid: w[i] = x; break;
      case BlendKind::kCosine: w[i] = 0.5 - 0.5 * std::cos(pi * x); break;
    }
  }
  return w;
}

std::vector<std::vector<double>> chunk_weights(const ChunkPlan& plan, BlendKind kind) {
  const std::size_t n = plan.chunks.size();
  // Each chunk gets a positive profile; dividing by the sum of the profiles covering an index
  // makes a partition of unity for any plan. For flat/linear/cosine the profile is 1 in the
  // interior and the blend ramp over the actual overlap with each neighbour (rising from the
  // previous one, falling towards the next one, multiplied where both apply); where at most
  // two chunks meet, ramp + mirrored ramp is already 1 and the division changes nothing.
  // kFlat uses a constant profile, i.e. the plain average of every covering chunk.
  std::vector<std::vector<double>> profile(n);
  for (std::size_t c = 0; c < n; ++c) {
    const Chunk& chunk = plan.chunks[c];
    if (chunk.size() < 1 || chunk.start < 0 || chunk.end > plan.total) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("chunk {} of the plan is [{}, {}), not a non-empty range of "
                              "[0, {})",
                              c, chunk.start, chunk.end, plan.total),
                  "build the plan with plan_chunks()");
    }
    std::vector<double>& p = profile[c];
    p.assign(static_cast<std::size_t>(chunk.size()), 1.0);
    if (kind == BlendKind::kFlat) continue;
    if (kind == BlendKind::kPyramid) {
      // Triangle min(i + 1, size - i): positive at both ends, symmetric, peak in the middle.
      const std::int64_t size = chunk.size();
      for (std::int64_t i = 0; i < size; ++i) {
        p[i] = static_cast<double>(std::min(i + 1, size - i));
      }
      continue;
    }
    if (c > 0) {
      const std::int64_t ov = std::max<std::int64_t>(0, plan.chunks[c - 1].end - chunk.start);
      const std::int64_t len = std::min(ov, chunk.size());
      const auto ramp = blend_ramp(kind, static_cast<int>(len));
      for (std::int64_t i = 0; i < len; ++i) p[i] *= ramp[i];
    }
    if (c + 1 < n) {
      const std::int64_t ov = std::max<std::int64_t>(0, chunk.end - plan.chunks[c + 1].start);
      const std::int64_t len = std::min(ov, chunk.size());
      const auto ramp = blend_ramp(kind, static_cast<int>(len));
      const std::int64_t first = chunk.size() - len;
      for (std::int64_t i = 0; i < len; ++i) p[first + i] *= 1.0 - ramp[i];
    }
  }
  std::vector<double> sum(static_cast<std::size_t>(std::max<std::int64_t>(plan.total, 0)), 0.0);
  for (std::size_t c = 0; c < n; ++c) {
    double* s = sum.data() + plan.chunks[c].start;
    for (std::size_t i = 0; i < profile[c].size(); ++i) s[i] += profile[c][i];
  }
  for (std::int64_t i = 0; i < plan.total; ++i) {
    if (!(sum[i] > 0.0)) {
      throw Error(
          ErrorCategory::kUsage,
          fmt::format("index {} of the plan ({}) is covered by no chunk", i, plan.describe()),
          "build the plan with plan_chunks()");
    }
  }
  for (std::size_t c = 0; c < n; ++c) {
    const double* s = sum.data() + plan.chunks[c].start;
    for (std::size_t i = 0; i < profile[c].size(); ++i) profile[c][i] /= s[i];
  }
  return profile;
}

BlendKind parse_blend_kind(const std::string& name) {
  if (name == "flat") return BlendKind::kFlat;
  if (name == "linear") return BlendKind::kLinear;
  if (name == "cosine") return BlendKind::kCosine;
  if (name == "pyramid") return BlendKind::kPyramid;
  throw Error(ErrorCategory::kUsage, fmt::format("unknown blend '{}'", name),
              "use one of: flat, linear, cosine, pyramid");
}

const char* blend_kind_name(BlendKind kind) noexcept {
  switch (kind) {
    case BlendKind::kFlat: return "flat";
    case BlendKind::kLinear: return "linear";
    case BlendKind::kCosine: return "cosine";
    case BlendKind::kPyramid: return "pyramid";
  }
  return "flat";
}

}  // namespace wanrt
