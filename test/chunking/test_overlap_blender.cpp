#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "support/catch.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "chunking/overlap_blender.h"
#include "chunking/blend_test_util.h"
#include "runtime/error.h"

using wanrt::BlendKind;
using wanrt::ChunkPlan;
using wanrt::OverlapBlender;

using wanrt_test::coverage;
namespace {

const auto& kAllKinds = wanrt_test::kAllBlendKinds;

// Unit roundoff of a dtype (2^-p for p significant bits).
double unit_roundoff(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16:
      return std::ldexp(1.0, -8);
    case at::kHalf:
      return std::ldexp(1.0, -11);
    case at::kFloat:
      return std::ldexp(1.0, -24);
    default:
      return std::ldexp(1.0, -53);
  }
}

std::vector<std::size_t> shuffled_order(std::size_t n, unsigned seed) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

// Blends the slices of `x` along `dim` (in a shuffled order) into a NaN-filled output of the
// same shape and returns the result. contiguous: hand the blender contiguous copies of the
// slices (the CPU kernel) or the strided views themselves (the ATen path unless dim == 0).
at::Tensor blend_slices(const at::Tensor& x, std::int64_t dim, const ChunkPlan& plan,
                        BlendKind kind, bool contiguous, unsigned seed) {
  at::Tensor out = at::full_like(x, std::nan(""));
  OverlapBlender blender(out, dim, plan, kind);
  for (std::size_t c : shuffled_order(plan.chunks.size(), seed)) {
    const auto& ch = plan.chunks[c];
    const at::Tensor slice = x.narrow(dim, ch.start, ch.size());
    blender.add(c, contiguous ? slice.contiguous() : slice);
  }
  CHECK(blender.added() == plan.chunks.size());
  CHECK(blender.output().data_ptr() == out.data_ptr());  // blended in place
  return out;
}

}  // namespace

TEST_CASE("blending the slices of a tensor reproduces it (fp64, fp32)", "[chunking]") {
  at::manual_seed(1);
  const at::Tensor base = at::randn({13, 11, 3, 17}, at::kDouble);
  for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    // fp64: weights sum to 1 within 1e-15 and each add rounds once, so 1e-12 is generous.
    // fp32: k adds of rounding 2^-24 plus fp32 weights: < 1e-6 relative for k <= 4.
    const double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
    const at::Tensor x = base.to(dtype);
    for (std::int64_t dim : {0, 1, 3, -1}) {
      const std::int64_t total = x.size(dim);
      for (auto [chunk, overlap] : {std::pair<int, int>{5, 2},
                                    {4, 3},
                                    {6, 0},
                                    {3, 1},
                                    {static_cast<int>(total), 0},
                                    {1, 0}}) {
        const ChunkPlan plan = wanrt::plan_chunks(total, chunk, overlap);
        for (BlendKind kind : kAllKinds) {
          for (bool contiguous : {true, false}) {
            INFO(c10::toString(dtype)
                 << " dim " << dim << " " << plan.describe() << " " << wanrt::blend_kind_name(kind)
                 << " contiguous " << contiguous);
            const at::Tensor out = blend_slices(x, dim, plan, kind, contiguous, 7u + chunk);
            CHECK(at::allclose(out, x, tol, tol));
          }
        }
      }
    }
  }
}

TEST_CASE("blending bf16 and fp16 slices stays within the documented rounding bound",
          "[chunking]") {
  // Bound (OverlapBlender docs): on the CPU kernel each add rounds once into the half type, so
  // an index covered by k chunks is within k * u * |x| of x (u = 2^-8 bf16, 2^-11 fp16); on
  // the ATen path the weights are rounded too and addcmul_ may round its product, so
  // (k + 2) * u * |x|. Indices covered once (weight 1) must come back exactly.
  at::manual_seed(2);
  const at::Tensor base = at::randn({13, 11, 3, 17}, at::kDouble);
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    const at::Tensor x = base.to(dtype);
    const at::Tensor xd = x.to(at::kDouble);
    const double u = unit_roundoff(dtype);
    for (std::int64_t dim : {0, 1, 3}) {
      for (auto [chunk, overlap] : {std::pair<int, int>{5, 2}, {4, 3}, {6, 1}}) {
        const ChunkPlan plan = wanrt::plan_chunks(x.size(dim), chunk, overlap);
        const at::Tensor k = coverage(plan, x.dim(), dim);
        for (BlendKind kind : kAllKinds) {
          for (bool contiguous : {true, false}) {
            INFO(c10::toString(dtype)
                 << " dim " << dim << " " << plan.describe() << " " << wanrt::blend_kind_name(kind)
                 << " contiguous " << contiguous);
            const at::Tensor out = blend_slices(x, dim, plan, kind, contiguous, 3u);
            const bool kernel = contiguous;  // a CPU kernel pass needs contiguous chunks
            const at::Tensor allowed =
                ((kernel ? k : k + 2) * u * 1.001 * xd.abs()).where(k > 1, at::zeros_like(k));
            const at::Tensor err = (out.to(at::kDouble) - xd).abs();
            CHECK((err <= allowed).all().item<bool>());
          }
        }
      }
    }
  }
}

TEST_CASE("the blender's parallel pass splits rows correctly", "[chunking]") {
  // Chunks above LibTorch's grain size (32768 elements) with 3 threads, so that the pass is
  // split into tasks that start inside a segment and cover several segments (sizes chosen
  // so that no split falls on a segment boundary); compared with the exact tensor.
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  REQUIRE(at::get_num_threads() == 3);
  at::manual_seed(3);
  const at::Tensor x = at::randn({97, 61, 53}, at::kDouble);
  for (std::int64_t dim : {0, 1, 2}) {
    INFO("dim " << dim);
    const ChunkPlan plan = wanrt::plan_chunks(x.size(dim), 16, 5);
    const at::Tensor out = blend_slices(x, dim, plan, BlendKind::kCosine, true, 11u);
    CHECK(at::allclose(out, x, 1e-12, 1e-12));
  }
  at::set_num_threads(threads);
}

TEST_CASE("chunks of another dtype are converted to the output's", "[chunking]") {
  at::manual_seed(4);
  const at::Tensor x = at::randn({20, 6}, at::kDouble);
  const ChunkPlan plan = wanrt::plan_chunks(20, 8, 3);
  at::Tensor out = at::empty({20, 6}, at::kFloat);
  OverlapBlender blender(out, 0, plan, BlendKind::kLinear);
  for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
    blender.add(c, x.narrow(0, plan.chunks[c].start, plan.chunks[c].size()));  // fp64 chunks
  }
  CHECK(out.scalar_type() == at::kFloat);
  CHECK(at::allclose(out, x.to(at::kFloat), 1e-6, 1e-6));
}

TEST_CASE("a strided output is blended in place through ATen", "[chunking]") {
  at::manual_seed(7);
  const at::Tensor x = at::randn({20, 6}, at::kDouble);
  const ChunkPlan plan = wanrt::plan_chunks(20, 8, 3);
  at::Tensor storage = at::full({6, 20}, std::nan(""), at::kDouble);
  at::Tensor out = storage.t();  // [20, 6], not contiguous
  for (BlendKind kind : kAllKinds) {
    OverlapBlender blender(out, 0, plan, kind);
    for (std::size_t c : shuffled_order(plan.chunks.size(), 5u)) {
      blender.add(c, x.narrow(0, plan.chunks[c].start, plan.chunks[c].size()));
    }
    CHECK(blender.output().data_ptr() == storage.data_ptr());
    CHECK(at::allclose(storage.t(), x, 1e-12, 1e-12));
  }
}

TEST_CASE("blender misuse is a usage error naming the chunk", "[chunking]") {
  const ChunkPlan plan = wanrt::plan_chunks(20, 8, 2);  // [0, 8), [6, 14), [12, 20)
  at::Tensor out = at::zeros({4, 20, 3});
  OverlapBlender blender(out, 1, plan, BlendKind::kLinear);
  try {
    blender.add(1, at::zeros({4, 7, 3}));
    FAIL("no error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    CHECK_THAT(e.what(), Catch::Contains("chunk 1 (range 6-14) has shape [4, 7, 3], expected "
                                         "[4, 8, 3]"));
  }
  CHECK_THROWS_AS(blender.add(3, at::zeros({4, 8, 3})), wanrt::Error);
  blender.add(0, at::ones({4, 8, 3}));
  try {
    blender.add(0, at::ones({4, 8, 3}));
    FAIL("no error");
  } catch (const wanrt::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("chunk 0 (range 0-8) was already added"));
  }
  CHECK(blender.added() == 1);
  // The plan must fit the output along the dimension, which must exist; ints do not blend.
  CHECK_THROWS_AS(OverlapBlender(at::zeros({4, 21, 3}), 1, plan, BlendKind::kLinear), wanrt::Error);
  CHECK_THROWS_AS(OverlapBlender(at::zeros({4, 20, 3}), 3, plan, BlendKind::kLinear), wanrt::Error);
  CHECK_THROWS_AS(OverlapBlender(at::zeros({4, 20, 3}, at::kInt), 1, plan, BlendKind::kLinear),
                  wanrt::Error);
  // A negative dimension counts from the end.
  OverlapBlender last(at::zeros({3, 20}), -1, plan, BlendKind::kFlat);
  CHECK_NOTHROW(last.add(2, at::zeros({3, 8})));
}

// What the two tests below show. Blending per-chunk results with a partition of unity gives
// back the whole-axis result exactly when every chunk's result is exact on its own range,
// whatever the overlap and weights. (1) A pointwise operation (radius 0) is exact on any
// slice. (2) A radius-r operation (here a 1-D convolution with kernel 2r + 1 and zero padding
// at the ends of the whole axis) is exact on a chunk's range when the chunk reads its input
// with a halo of r true neighbouring values on each side (clipped at the axis ends, where
// the zero padding applies); without the halo its r values next to each inner chunk edge are
// wrong, and a third check shows that the blend then differs from the whole-axis result:
// the overlap alone does not repair them, since those values still get non-zero weight.
TEST_CASE("a pointwise operation applied per chunk and blended equals it on the whole",
          "[chunking]") {
  at::manual_seed(5);
  const at::Tensor x = at::randn({3, 29, 4}, at::kDouble);
  const auto op = [](const at::Tensor& t) { return at::tanh(t) * 2.0 + t * t; };
  const at::Tensor whole = op(x);
  for (auto [chunk, overlap] : {std::pair<int, int>{7, 0}, {7, 3}, {10, 9}}) {
    const ChunkPlan plan = wanrt::plan_chunks(29, chunk, overlap);
    for (BlendKind kind : kAllKinds) {
      at::Tensor out = at::empty_like(x);
      OverlapBlender blender(out, 1, plan, kind);
      for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
        blender.add(c, op(x.narrow(1, plan.chunks[c].start, plan.chunks[c].size())));
      }
      CHECK(at::allclose(out, whole, 1e-12, 1e-12));
    }
  }
}

TEST_CASE(
    "a radius-r convolution applied per chunk with a halo and blended equals it on the "
    "whole",
    "[chunking]") {
  const std::int64_t T = 37;
  at::manual_seed(6);
  const at::Tensor x = at::randn({2, T}, at::kDouble);  // [batch, time]
  for (std::int64_t r : {1, 2, 3}) {
    const at::Tensor kernel = at::randn({2 * r + 1}, at::kDouble);
    const auto* kv = kernel.data_ptr<double>();
    // Reference by direct summation over the whole axis, zero outside [0, T).
    at::Tensor whole = at::zeros_like(x);
    for (std::int64_t b = 0; b < 2; ++b) {
      for (std::int64_t t = 0; t < T; ++t) {
        double acc = 0.0;
        for (std::int64_t j = -r; j <= r; ++j) {
          if (t + j >= 0 && t + j < T) acc += kv[j + r] * x[b][t + j].item<double>();
        }
        whole[b][t] = acc;
      }
    }
    // Per chunk with at::conv1d: read [start - r, end + r) clipped to the axis, zero-pad only
    // where it was clipped, keep the chunk's own outputs. halo = false: the chunk alone.
    const auto per_chunk = [&](const wanrt::Chunk& ch, bool halo) {
      const std::int64_t lo = halo ? std::max<std::int64_t>(0, ch.start - r) : ch.start;
      const std::int64_t hi = halo ? std::min<std::int64_t>(T, ch.end + r) : ch.end;
      const at::Tensor in = x.narrow(1, lo, hi - lo);
      const at::Tensor padded = at::constant_pad_nd(in, {r - (ch.start - lo), r - (hi - ch.end)});
      // conv1d is a cross-correlation: out[t] = sum_j w[j] in[t + j], as in the reference.
      return at::conv1d(padded.unsqueeze(1), kernel.view({1, 1, -1})).squeeze(1);
    };
    for (auto [chunk, overlap] : {std::pair<int, int>{8, 2 * r}, {8, 1}, {12, 0}, {5, 4}}) {
      const ChunkPlan plan = wanrt::plan_chunks(T, chunk, overlap);
      for (BlendKind kind : kAllKinds) {
        INFO("r " << r << " " << plan.describe() << " " << wanrt::blend_kind_name(kind));
        for (bool halo : {true, false}) {
          at::Tensor out = at::empty_like(x);
          OverlapBlender blender(out, 1, plan, kind);
          for (std::size_t c = 0; c < plan.chunks.size(); ++c) {
            blender.add(c, per_chunk(plan.chunks[c], halo));
          }
          const double err = (out - whole).abs().max().item<double>();
          if (halo) {
            CHECK(err < 1e-12);
          } else {
            CHECK(err > 1e-3);  // the control: the missing halo shows
          }
        }
      }
    }
  }
}
