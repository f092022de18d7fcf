#include <catch2/catch.hpp>

#include <cmath>

#include "chunking/blend_weights.h"
#include "runtime/error.h"

using wanrt::BlendKind;

TEST_CASE("blend ramps form a partition of unity for every shape and overlap", "[chunking]") {
  for (BlendKind kind : {BlendKind::kFlat, BlendKind::kLinear, BlendKind::kCosine}) {
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
  CHECK_THROWS_AS(wanrt::parse_blend_kind("gauss"), wanrt::Error);
  CHECK_THROWS_AS(wanrt::blend_ramp(BlendKind::kLinear, -1), wanrt::Error);
}
