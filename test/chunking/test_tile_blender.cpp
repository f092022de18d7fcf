#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "chunking/tile_blender.h"
#include "chunking/blend_test_util.h"
#include "runtime/error.h"

using wanrt::BlendKind;
using wanrt::ChunkPlan;
using wanrt::TileBlender;

using wanrt_test::coverage;
namespace {

const auto& kAllKinds = wanrt_test::kAllBlendKinds;

// Cuts `x` into the tiles of rows x cols over (dh, dw), adds them in a shuffled order into a
// NaN-filled output; contiguous: copies (CPU kernel) or the strided views (ATen path).
at::Tensor blend_tiles(const at::Tensor& x, std::int64_t dh, std::int64_t dw, const ChunkPlan& rows,
                       const ChunkPlan& cols, BlendKind kind, bool contiguous) {
  at::Tensor out = at::full_like(x, std::nan(""));
  TileBlender blender(out, dh, dw, rows, cols, kind);
  std::vector<std::pair<std::size_t, std::size_t>> cells;
  for (std::size_t r = 0; r < rows.chunks.size(); ++r) {
    for (std::size_t c = 0; c < cols.chunks.size(); ++c) cells.emplace_back(r, c);
  }
  std::mt19937 rng(static_cast<unsigned>(cells.size()));
  std::shuffle(cells.begin(), cells.end(), rng);
  for (auto [r, c] : cells) {
    const auto& cr = rows.chunks[r];
    const auto& cc = cols.chunks[c];
    const at::Tensor tile = x.narrow(dh, cr.start, cr.size()).narrow(dw, cc.start, cc.size());
    blender.add(r, c, contiguous ? tile.contiguous() : tile);
  }
  CHECK(blender.added() == cells.size());
  return out;
}

}  // namespace

TEST_CASE("blending the tiles of a tensor reproduces it", "[chunking]") {
  at::manual_seed(21);
  const at::Tensor base = at::randn({5, 23, 3, 19}, at::kDouble);
  // (dim_h, dim_w) pairs: separated by a middle dim, swapped, adjacent at the front, last two.
  const std::pair<std::int64_t, std::int64_t> dims[] = {{1, 3}, {3, 1}, {0, 1}, {2, 3}};
  for (at::ScalarType dtype : {at::kDouble, at::kFloat, at::kBFloat16}) {
    const at::Tensor x = base.to(dtype);
    const at::Tensor xd = x.to(at::kDouble);
    for (auto [dh, dw] : dims) {
      // At least two tiles per dimension: sizes 23 and 19 -> 8, 5 -> 3, 3 -> 2.
      const auto tile = [&](std::int64_t d) {
        return std::min<std::int64_t>(8, std::max<std::int64_t>(2, x.size(d) * 2 / 3));
      };
      const ChunkPlan rows =
          wanrt::plan_chunks(x.size(dh), tile(dh), std::min<std::int64_t>(3, tile(dh) - 1));
      const ChunkPlan cols =
          wanrt::plan_chunks(x.size(dw), tile(dw), std::min<std::int64_t>(2, tile(dw) - 1));
      REQUIRE(rows.chunks.size() >= 2);
      REQUIRE(cols.chunks.size() >= 2);
      for (BlendKind kind : kAllKinds) {
        for (bool contiguous : {true, false}) {
          INFO(c10::toString(dtype)
               << " dims " << dh << "," << dw << " rows " << rows.describe() << " cols "
               << cols.describe() << " " << wanrt::blend_kind_name(kind) << " contiguous "
               << contiguous);
          const at::Tensor out = blend_tiles(x, dh, dw, rows, cols, kind, contiguous);
          const at::Tensor err = (out.to(at::kDouble) - xd).abs();
          if (dtype == at::kDouble) {
            CHECK(err.max().item<double>() <= 1e-12 * (1 + xd.abs().max().item<double>()));
          } else if (dtype == at::kFloat) {
            CHECK(at::allclose(out, x, 1e-6, 1e-6));
          } else {
            // bf16: one rounding (u = 2^-8) per add, k = k_rows * k_cols adds; the ATen path
            // also rounds the weights and the product: (k + 2) u |x| (OverlapBlender docs).
            const at::Tensor k = coverage(rows, x.dim(), dh) * coverage(cols, x.dim(), dw);
            const double u = std::ldexp(1.0, -8);
            const at::Tensor allowed = (contiguous ? k : k + 2) * u * 1.001 * xd.abs();
            CHECK((err <= allowed.where(k > 1, at::zeros_like(allowed))).all().item<bool>());
          }
        }
      }
    }
  }
}

TEST_CASE("the tile blender's parallel pass splits rows correctly", "[chunking]") {
  // Tiles of 39 x 61 x 21 = 49959 elements (> the grain size 32768) over 2 tasks that start
  // inside a 21-element segment, with 3 threads.
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  at::manual_seed(22);
  const at::Tensor x = at::randn({97, 61, 53}, at::kDouble);
  const ChunkPlan rows = wanrt::plan_chunks(97, 39, 7);
  const ChunkPlan cols = wanrt::plan_chunks(53, 21, 4);
  for (BlendKind kind : {BlendKind::kLinear, BlendKind::kPyramid}) {
    const at::Tensor out = blend_tiles(x, 0, 2, rows, cols, kind, true);
    CHECK(at::allclose(out, x, 1e-12, 1e-12));
  }
  at::set_num_threads(threads);
}

TEST_CASE("tile blender misuse is a usage error naming the tile", "[chunking]") {
  const ChunkPlan rows = wanrt::plan_chunks(10, 6, 2);  // [0, 6), [4, 10)
  const ChunkPlan cols = wanrt::plan_chunks(12, 8, 4);  // [0, 8), [4, 12)
  TileBlender blender(at::zeros({2, 10, 12}), 1, 2, rows, cols, BlendKind::kCosine);
  try {
    blender.add(1, 0, at::zeros({2, 6, 7}));
    FAIL("no error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    CHECK_THAT(e.what(), Catch::Contains("tile (1, 0) (rows 4-10, columns 0-8) has shape "
                                         "[2, 6, 7], expected [2, 6, 8]"));
  }
  CHECK_THROWS_AS(blender.add(2, 0, at::zeros({2, 6, 8})), wanrt::Error);
  blender.add(1, 1, at::zeros({2, 6, 8}));
  CHECK_THROWS_AS(blender.add(1, 1, at::zeros({2, 6, 8})), wanrt::Error);
  CHECK_THROWS_AS(TileBlender(at::zeros({2, 10, 12}), 1, 1, rows, rows, BlendKind::kLinear),
                  wanrt::Error);
  CHECK_THROWS_AS(TileBlender(at::zeros({2, 10, 12}), 2, 1, rows, cols, BlendKind::kLinear),
                  wanrt::Error);  // plans swapped: rows do not fit dimension 2
}
