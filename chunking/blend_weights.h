// Blend weights: how overlapping chunks are mixed back into one result.
#pragma once

#include <string>
#include <vector>

#include "chunking/chunk_plan.h"

namespace wanrt {

/// Shape of the weights over a chunk / an overlap.
enum class BlendKind {
  kFlat,     ///< equal weights (plain average over the overlap)
  kLinear,   ///< linear ramps over the overlap (diffusers tile blending)
  kCosine,   ///< raised-cosine ramps over the overlap
  kPyramid,  ///< triangle over the whole chunk, peaking at its centre (FreeNoise/AnimateDiff)
};

/// Weights of the incoming (later) chunk at each of `overlap` positions for a two-chunk
/// overlap; the outgoing chunk gets 1 - w. Every weight is in (0, 1), the ramp is
/// non-decreasing and symmetric: w[i] + w[overlap - 1 - i] == 1. kPyramid is treated as
/// kLinear here (a triangle's two flanks over an overlap give a linear cross-fade).
/// Throws Error(kUsage) when overlap < 0.
std::vector<double> blend_ramp(BlendKind kind, int overlap);

/// Per-position weights of every chunk of `plan`, normalised so that at each index of the
/// axis the weights of the chunks covering it sum to 1 (a partition of unity); weights[c][i]
/// is chunk c's weight at index plan.chunks[c].start + i. All weights are >= 0, and the set is
/// mirror-symmetric when the plan is. flat: every covering chunk counts equally; linear /
/// cosine: 1 inside a chunk and blend_ramp() over the actual overlap with each neighbour
/// (ramps multiplied where a chunk's two overlaps meet, then normalised); pyramid: the
/// triangle min(i + 1, size - i), normalised. Throws Error(kUsage) for a chunk that is empty or
/// outside [0, total) or an index that no chunk covers.
std::vector<std::vector<double>> chunk_weights(const ChunkPlan& plan, BlendKind kind);

/// Parses "flat" | "linear" | "cosine" | "pyramid"; Error(kUsage) listing the names otherwise.
BlendKind parse_blend_kind(const std::string& name);

/// The name parse_blend_kind accepts for `kind`.
const char* blend_kind_name(BlendKind kind) noexcept;

}  // namespace wanrt
