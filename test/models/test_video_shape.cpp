#include "support/catch.h"

#include "models/wan22/video_shape.h"
#include "runtime/error.h"

namespace w = wanrt::wan22;

TEST_CASE("frame counts follow the 4n+1 rule", "[models]") {
  for (int f : {1, 5, 9, 81, 121}) CHECK(w::valid_frame_count(f));
  for (int f : {0, 2, 4, 80, 82, 120}) CHECK_FALSE(w::valid_frame_count(f));
  CHECK(w::nearest_frame_count(80) == 81);
  CHECK(w::nearest_frame_count(82) == 81);
  CHECK(w::nearest_frame_count(83) == 85);  // tie between 81 and 85 goes up
  CHECK(w::latent_frame_count(81) == 21);   // docs/wan22.md section 2: 81 frames -> 21 latent
  CHECK(w::latent_frame_count(121) == 31);
  CHECK_THROWS_WITH(w::check_frame_count(80), Catch::Contains("4n+1"));
  try {
    w::check_frame_count(80);
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    CHECK(e.hint() == "use 77 or 81");
  }
}

TEST_CASE("sizes must be multiples of stride x patch", "[models]") {
  CHECK_NOTHROW(w::check_frame_size(1280, 704, 32));
  CHECK_NOTHROW(w::check_frame_size(1280, 720, 16));
  try {
    w::check_frame_size(1280, 720, 32);  // TI2V-5B needs multiples of 32
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    CHECK(e.hint() == "nearest valid size: 1280x704");
  }
  CHECK_THROWS_AS(w::check_frame_size(0, 720, 16), wanrt::Error);
}
