#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"
#include "runtime/error.h"

using wanrt::BlendKind;

TEST_CASE("blend ramps form a partition of unity for every shape and overlap", "[chunking]") {
  for (BlendKind kind :
       {BlendKind::kFlat, BlendKind::kLinear, BlendKind::kCosine, BlendKind::kPyramid}) {
    for (int n = 0; n <= 64; ++n) {
      INFO(wanrt::blend_kind_name(kind) << " overlap " << n);
      const auto w = wanrt::blend_ramp(kind, n);
      REQUIRE(w.size() == static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        CHECK(w[i] > 0.0);
        CHECK(w[i] < 1.0);
        // incoming w[i] + outgoing (1 - w[i]) == 1 holds by construction; the property that
        // can fail is the mirror symmetry, which makes the fade the same from both sides.
        CHECK(w[i] + w[n - 1 - i] == Approx(1.0).margin(1e-12));
        if (i > 0) CHECK(w[i] >= w[i - 1]);
      }
    }
  }
}

TEST_CASE("blend ramps take the textbook values", "[chunking]") {
  const auto linear = wanrt::blend_ramp(BlendKind::kLinear, 3);
  CHECK(linear[0] == Approx(0.25));
  CHECK(linear[1] == Approx(0.5));
  CHECK(linear[2] == Approx(0.75));
  const auto cosine = wanrt::blend_ramp(BlendKind::kCosine, 1);
  CHECK(cosine[0] == Approx(0.5));
  const auto cos3 = wanrt::blend_ramp(BlendKind::kCosine, 3);
  CHECK(cos3[0] == Approx((1.0 - std::sqrt(0.5)) / 2.0));  // 0.5 - 0.5 cos(pi/4)
  CHECK(wanrt::blend_ramp(BlendKind::kFlat, 4) == std::vector<double>(4, 0.5));
}

TEST_CASE("blend names parse and bad input is a usage error", "[chunking]") {
  CHECK(wanrt::parse_blend_kind("cosine") == BlendKind::kCosine);
  CHECK(wanrt::parse_blend_kind("pyramid") == BlendKind::kPyramid);
  CHECK(std::string(wanrt::blend_kind_name(BlendKind::kPyramid)) == "pyramid");
  try {
    wanrt::parse_blend_kind("gauss");
    FAIL("no error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    CHECK_THAT(e.hint(), Catch::Contains("flat, linear, cosine, pyramid"));
  }
  CHECK_THROWS_AS(wanrt::parse_blend_kind("gauss"), wanrt::Error);
  CHECK_THROWS_AS(wanrt::blend_ramp(BlendKind::kLinear, -1), wanrt::Error);
}

namespace {

const BlendKind kAllKinds[] = {BlendKind::kFlat, BlendKind::kLinear, BlendKind::kCosine,
                               BlendKind::kPyramid};

// True when mirroring every chunk around the axis centre gives the same set of chunks.
bool plan_is_symmetric(const wanrt::ChunkPlan& plan) {
  std::set<std::pair<std::int64_t, std::int64_t>> set, mirrored;
  for (const auto& c : plan.chunks) {
    set.emplace(c.start, c.end);
    mirrored.emplace(plan.total - c.end, plan.total - c.start);
  }
  return set == mirrored;
}

}  // namespace

TEST_CASE("chunk weights are a non-negative partition of unity, mirrored for mirrored plans",
          "[chunking]") {
  int symmetric_plans = 0;
  int plans = 0;
  for (BlendKind kind : kAllKinds) {
    for (std::int64_t total = 1; total <= 60; ++total) {
      for (std::int64_t chunk = 1; chunk <= total + 2; ++chunk) {
        for (std::int64_t overlap = 0; overlap < chunk; ++overlap) {
          const auto plan = wanrt::plan_chunks(total, chunk, overlap);
          const auto w = wanrt::chunk_weights(plan, kind);
          ++plans;
          // One CHECK per plan (not per index) keeps the 160k plans fast.
          bool shapes_ok = w.size() == plan.chunks.size();
          double min_weight = 1.0;
          std::vector<double> sum(static_cast<std::size_t>(total), 0.0);
          for (std::size_t c = 0; shapes_ok && c < w.size(); ++c) {
            shapes_ok = static_cast<std::int64_t>(w[c].size()) == plan.chunks[c].size();
            for (std::size_t i = 0; shapes_ok && i < w[c].size(); ++i) {
              sum[plan.chunks[c].start + i] += w[c][i];
              min_weight = std::min(min_weight, w[c][i]);
            }
          }
          double worst_sum = 0.0;
          for (double v : sum) worst_sum = std::max(worst_sum, std::abs(v - 1.0));
          double worst_mirror = 0.0;
          const bool symmetric = plan_is_symmetric(plan);
          if (symmetric && shapes_ok) {
            ++symmetric_plans;
            const std::size_t n = w.size();
            for (std::size_t c = 0; c < n; ++c) {
              const std::size_t size = w[c].size();
              for (std::size_t i = 0; i < size; ++i) {
                worst_mirror =
                    std::max(worst_mirror, std::abs(w[c][i] - w[n - 1 - c][size - 1 - i]));
              }
            }
          }
          if (!shapes_ok || worst_sum > 1e-12 || min_weight < 0.0 || worst_mirror > 1e-12) {
            INFO(wanrt::blend_kind_name(kind) << " " << plan.describe());
            CHECK(shapes_ok);
            CHECK(worst_sum <= 1e-12);
            CHECK(min_weight >= 0.0);
            CHECK(worst_mirror <= 1e-12);
          }
        }
      }
    }
  }
  CHECK(plans > 100000);
  // The mirror check must not be vacuous: many plans are symmetric (all one-chunk plans, and
  // those whose end-aligned last step happens to be regular).
  CHECK(symmetric_plans > plans / 10);
}

TEST_CASE("chunk weights take the hand-computed values", "[chunking]") {
  // Two chunks [0, 8) and [4, 12): linear ramp over the 4 shared indices: 1/5 .. 4/5 for the
  // incoming chunk, the rest for the outgoing one, 1 elsewhere.
  const auto two = wanrt::plan_chunks(12, 8, 4);
  const auto lin = wanrt::chunk_weights(two, BlendKind::kLinear);
  const std::vector<double> lin0 = {1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2};
  const std::vector<double> lin1 = {0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) {
    CHECK(lin[0][i] == Approx(lin0[i]).margin(1e-15));
    CHECK(lin[1][i] == Approx(lin1[i]).margin(1e-15));
  }
  // Cosine over an overlap of 1: the shared index is split in halves.
  const auto cos = wanrt::chunk_weights(wanrt::plan_chunks(5, 3, 1), BlendKind::kCosine);
  CHECK(cos[0][2] == Approx(0.5));
  CHECK(cos[1][0] == Approx(0.5));
  CHECK(cos[0][0] == 1.0);
  // The end-aligned last chunk blends over its actual overlap: [0, 4), [3, 7), [5, 9) share
  // 1 index then 2, so the last ramp is linear over 2 (1/3, 2/3).
  const auto last = wanrt::chunk_weights(wanrt::plan_chunks(9, 4, 1), BlendKind::kLinear);
  REQUIRE(last.size() == 3);
  CHECK(last[2][0] == Approx(1.0 / 3));
  CHECK(last[2][1] == Approx(2.0 / 3));
  CHECK(last[1][2] == Approx(2.0 / 3));
  CHECK(last[1][3] == Approx(1.0 / 3));
  CHECK(last[1][0] == Approx(0.5));  // the 1-index overlap with chunk 0
  // Flat over three chunks [0, 3), [1, 4), [2, 5): index 2 is shared by all three.
  const auto flat = wanrt::chunk_weights(wanrt::plan_chunks(5, 3, 2), BlendKind::kFlat);
  CHECK(flat[0][2] == Approx(1.0 / 3));
  CHECK(flat[1][1] == Approx(1.0 / 3));
  CHECK(flat[2][0] == Approx(1.0 / 3));
  CHECK(flat[0][1] == Approx(0.5));
  CHECK(flat[0][0] == 1.0);
  // Pyramid: both chunks of [0, 4), [2, 6) have the triangle 1 2 2 1; index 2 gets 2 from
  // chunk 0 and 1 from chunk 1, index 3 the other way round.
  const auto pyr = wanrt::chunk_weights(wanrt::plan_chunks(6, 4, 2), BlendKind::kPyramid);
  CHECK(pyr[0][2] == Approx(2.0 / 3));
  CHECK(pyr[1][0] == Approx(1.0 / 3));
  CHECK(pyr[0][3] == Approx(1.0 / 3));
  CHECK(pyr[1][1] == Approx(2.0 / 3));
  CHECK(pyr[0][0] == 1.0);
  CHECK(pyr[1][3] == 1.0);
}
