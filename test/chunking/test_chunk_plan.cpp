#include "support/catch.h"

#include <algorithm>
#include <string>
#include <vector>

#include "chunking/chunk_plan.h"
#include "runtime/error.h"

using wanrt::Chunk;
using wanrt::ChunkPlan;
using wanrt::Error;
using wanrt::ErrorCategory;

namespace {

// Runs `fn`, expecting Error(kUsage); returns "message | hint" for the checks.
template <typename Fn>
std::string usage_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kUsage);
    return std::string(e.what()) + " | " + e.hint();
  }
  FAIL("no wanrt::Error was thrown");
  return {};
}

std::vector<std::pair<std::int64_t, std::int64_t>> ranges(const ChunkPlan& plan) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (const Chunk& c : plan.chunks) out.emplace_back(c.start, c.end);
  return out;
}

}  // namespace

TEST_CASE("chunk plans cover the axis with equal, end-aligned, overlapping chunks", "[chunking]") {
  for (std::int64_t total = 1; total <= 60; ++total) {
    for (std::int64_t chunk = 1; chunk <= total + 2; ++chunk) {
      for (std::int64_t overlap = 0; overlap < chunk; ++overlap) {
        const ChunkPlan plan = wanrt::plan_chunks(total, chunk, overlap);
        INFO("total " << total << " chunk " << chunk << " overlap " << overlap << ": "
                      << plan.describe());
        REQUIRE(!plan.chunks.empty());
        CHECK(plan.total == total);
        CHECK(plan.chunk_size == std::min(chunk, total));
        std::vector<int> covered(static_cast<std::size_t>(total), 0);
        for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
          const Chunk& ch = plan.chunks[c];
          CHECK(ch.size() == std::min(chunk, total));  // never empty: min(chunk, total) >= 1
          CHECK(ch.start >= 0);
          CHECK(ch.end <= total);
          for (std::int64_t i = std::max<std::int64_t>(ch.start, 0); i < std::min(ch.end, total);
               ++i) {
            ++covered[static_cast<std::size_t>(i)];
          }
          if (c > 0) {
            const Chunk& prev = plan.chunks[c - 1];
            CHECK(ch.start > prev.start);
            CHECK(prev.end - ch.start >= overlap);
          }
        }
        CHECK(plan.chunks.front().start == 0);
        CHECK(plan.chunks.back().end == total);
        CHECK(std::count(covered.begin(), covered.end(), 0) == 0);
        // No more chunks than needed: n chunks whose starts advance by at most
        // step = chunk - overlap cover at most chunk + (n - 1) * step indices.
        if (chunk < total) {
          const std::int64_t step = chunk - overlap;
          std::int64_t fewest = 1;
          while (chunk + (fewest - 1) * step < total) ++fewest;
          CHECK(static_cast<std::int64_t>(plan.chunks.size()) == fewest);
        } else {
          CHECK(plan.chunks.size() == 1);
        }
      }
    }
  }
}

TEST_CASE("chunk plans take the hand-computed ranges", "[chunking]") {
  using R = std::vector<std::pair<std::int64_t, std::int64_t>>;
  CHECK(ranges(wanrt::plan_chunks(20, 8, 2)) == R{{0, 8}, {6, 14}, {12, 20}});
  CHECK(ranges(wanrt::plan_chunks(21, 9, 2)) == R{{0, 9}, {7, 16}, {12, 21}});
  CHECK(ranges(wanrt::plan_chunks(10, 4, 0)) == R{{0, 4}, {4, 8}, {6, 10}});
  CHECK(ranges(wanrt::plan_chunks(5, 8, 3)) == R{{0, 5}});
  CHECK(ranges(wanrt::plan_chunks(7, 7, 6)) == R{{0, 7}});
  CHECK(wanrt::plan_chunks(20, 8, 2).describe() == "3 chunks of 8 over 20 (overlap >= 2)");
  CHECK(wanrt::plan_chunks(5, 8, 3).describe() == "1 chunk of 5 over 5 (overlap >= 3)");
}

TEST_CASE("impossible chunk plans are usage errors that say what would work", "[chunking]") {
  const std::string overlap_too_big = usage_error_of([] { wanrt::plan_chunks(20, 8, 8); });
  CHECK_THAT(overlap_too_big, Catch::Contains("overlap 8 must be smaller than the chunk size 8"));
  CHECK_THAT(overlap_too_big, Catch::Contains("use an overlap between 0 and 7"));
  CHECK_THAT(overlap_too_big, Catch::Contains("chunk size of at least 9"));

  const std::string zero_chunk = usage_error_of([] { wanrt::plan_chunks(20, 0, 0); });
  CHECK_THAT(zero_chunk, Catch::Contains("chunk size must be >= 1, got 0"));
  CHECK_THAT(zero_chunk, Catch::Contains("between 1 and 20"));

  const std::string negative = usage_error_of([] { wanrt::plan_chunks(20, 8, -1); });
  CHECK_THAT(negative, Catch::Contains("overlap must be >= 0, got -1"));
  CHECK_THAT(negative, Catch::Contains("between 0 and 7"));

  const std::string empty_axis = usage_error_of([] { wanrt::plan_chunks(0, 8, 2); });
  CHECK_THAT(empty_axis, Catch::Contains("0 indices"));
}

TEST_CASE("latent frame chunks follow Wan's 4n+1 rule and the VAE stride", "[chunking]") {
  using R = std::vector<std::pair<std::int64_t, std::int64_t>>;
  // 81 frames -> (81 - 1) / 4 + 1 = 21 latent frames; chunk 33 -> 9; overlap 8 -> 2.
  // Steps of 7: [0, 9), [7, 16), then the end-aligned [12, 21).
  const ChunkPlan plan = wanrt::plan_latent_frame_chunks(81, 33, 8, 4);
  CHECK(plan.total == 21);
  CHECK(plan.chunk_size == 9);
  CHECK(plan.overlap == 2);
  CHECK(ranges(plan) == R{{0, 9}, {7, 16}, {12, 21}});
  // 121 frames -> 31 latent; chunk 41 -> 11, overlap 12 -> 3, steps of 8: 0, 8, 16, then 20.
  CHECK(ranges(wanrt::plan_latent_frame_chunks(121, 41, 12, 4)) ==
        R{{0, 11}, {8, 19}, {16, 27}, {20, 31}});
  // The whole video as one chunk, and the smallest video.
  CHECK(ranges(wanrt::plan_latent_frame_chunks(81, 81, 0, 4)) == R{{0, 21}});
  CHECK(ranges(wanrt::plan_latent_frame_chunks(1, 1, 0, 4)) == R{{0, 1}});
  // Overlap 0 asked: 5 latent frames in chunks of 3; the end-aligned last one overlaps by 1.
  CHECK(ranges(wanrt::plan_latent_frame_chunks(17, 9, 0, 4)) == R{{0, 3}, {2, 5}});
}

TEST_CASE("impossible latent frame chunks are usage errors with the nearest valid values",
          "[chunking]") {
  const std::string frames = usage_error_of([] { wanrt::plan_latent_frame_chunks(80, 33, 8, 4); });
  CHECK_THAT(frames, Catch::Contains("80 frames is not of the form 4n+1"));
  CHECK_THAT(frames, Catch::Contains("use 77 or 81 frames"));

  const std::string chunk = usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 10, 4, 4); });
  CHECK_THAT(chunk, Catch::Contains("chunk of 10 frames is not of the form 4n+1"));
  CHECK_THAT(chunk, Catch::Contains("use 9 or 13 frames per chunk"));

  const std::string overlap = usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 33, 3, 4); });
  CHECK_THAT(overlap, Catch::Contains("overlap of 3 frames"));
  CHECK_THAT(overlap, Catch::Contains("multiple of the VAE temporal stride 4"));
  CHECK_THAT(overlap, Catch::Contains("use 0 or 4 overlap frames"));

  const std::string overlap_10 =
      usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 33, 10, 4); });
  CHECK_THAT(overlap_10, Catch::Contains("use 8 or 12 overlap frames"));

  const std::string too_long =
      usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 85, 8, 4); });
  CHECK_THAT(too_long, Catch::Contains("chunk of 85 frames is larger than the video (81 frames)"));
  CHECK_THAT(too_long, Catch::Contains("use at most 81 frames per chunk"));

  const std::string overlap_chunk =
      usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 33, 36, 4); });
  CHECK_THAT(overlap_chunk, Catch::Contains("must be smaller than the chunk (33 frames)"));
  CHECK_THAT(overlap_chunk, Catch::Contains("at most 32 frames"));

  const std::string stride = usage_error_of([] { wanrt::plan_latent_frame_chunks(81, 33, 8, 0); });
  CHECK_THAT(stride, Catch::Contains("stride must be >= 1"));
}
