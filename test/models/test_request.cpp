#include "support/catch.h"

#include <algorithm>

#include "models/wan22/request.h"
#include "runtime/error.h"

using wanrt::wan22::GenerateRequest;
using wanrt::wan22::resolve_request;
using wanrt::wan22::WanSpec;

namespace {

// TI2V-5B's facts (docs/wan22.md section 1): z 48, VAE stride 4x16x16, patch 1x2x2.
WanSpec ti2v_spec() {
  WanSpec spec;
  spec.model_id = "wan2.2-ti2v-5b";
  spec.task = "ti2v";
  spec.z_dim = 48;
  spec.vae_stride = {4, 16, 16};
  spec.patch = {1, 2, 2};
  spec.text_len = 512;
  spec.experts = {"dit"};
  spec.sampling.steps = 50;
  spec.sampling.shift = 5.0;
  spec.sampling.guide_low = spec.sampling.guide_high = 5.0;
  spec.sampling.frames = 121;
  spec.sampling.width = 1280;
  spec.sampling.height = 704;
  spec.sampling.fps = 24;
  spec.sampling.negative_prompt = "default negative";
  return spec;
}

std::string usage_hint(const WanSpec& spec, const GenerateRequest& request) {
  try {
    resolve_request(spec, request);
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kUsage);
    return e.hint();
  }
  FAIL("expected a usage error");
  return {};
}

bool was_set(const wanrt::wan22::ResolvedRequest& r, const std::string& name) {
  return std::find(r.user_set.begin(), r.user_set.end(), name) != r.user_set.end();
}

}  // namespace

TEST_CASE("defaults fill what the caller left out, and only that is recorded", "[models]") {
  GenerateRequest request;
  request.prompt = "a cat";
  request.steps = 10;
  const auto r = resolve_request(ti2v_spec(), request);
  CHECK(r.steps == 10);
  CHECK(r.frames == 121);
  CHECK(r.width == 1280);
  CHECK(r.height == 704);
  CHECK(r.shift == 5.0);
  CHECK(r.negative_prompt == "default negative");
  CHECK(r.sampler == "unipc");
  CHECK(was_set(r, "steps"));
  CHECK(was_set(r, "seed"));
  CHECK_FALSE(was_set(r, "frames"));
  // TI2V 1280x704x121 -> latent 48x31x44x80 (docs/wan22.md section 2: 27,280 tokens, 2x2 patch).
  const auto shape = r.latent_shape(ti2v_spec());
  CHECK(shape == std::vector<std::int64_t>{48, 31, 44, 80});
  CHECK(shape[1] * (shape[2] / 2) * (shape[3] / 2) == 27280);
}

TEST_CASE("a negative seed picks a random one", "[models]") {
  GenerateRequest request;
  request.seed = -1;
  const auto a = resolve_request(ti2v_spec(), request);
  const auto b = resolve_request(ti2v_spec(), request);
  CHECK(a.seed >= 0);
  CHECK_FALSE(was_set(a, "seed"));
  CHECK(a.seed != b.seed);  // 2^-47 chance of a false failure
}

TEST_CASE("bad requests are usage errors naming what would work", "[models]") {
  const WanSpec spec = ti2v_spec();
  GenerateRequest frames;
  frames.frames = 80;
  CHECK(usage_hint(spec, frames) == "use 77 or 81");
  GenerateRequest size;
  size.width = 1280;
  size.height = 720;  // fine for the A14B models (x16), not for TI2V-5B (x32)
  CHECK(usage_hint(spec, size) == "nearest valid size: 1280x704");
  GenerateRequest steps;
  steps.steps = 0;
  CHECK(usage_hint(spec, steps) == "the model's default is 50");
  GenerateRequest sampler;
  sampler.sampler = "ddim";
  CHECK(usage_hint(spec, sampler) == "use one of unipc, euler, lightning");
  GenerateRequest shift;
  shift.shift = 0.0;
  CHECK_FALSE(usage_hint(spec, shift).empty());
}

TEST_CASE("the image must match the task", "[models]") {
  WanSpec i2v = ti2v_spec();
  i2v.task = "i2v";
  GenerateRequest no_image;
  CHECK(usage_hint(i2v, no_image) == "pass the first frame with --image FILE");
  WanSpec t2v = ti2v_spec();
  t2v.task = "t2v";
  GenerateRequest with_image;
  with_image.image = at::zeros({8, 8, 3}, at::kByte);
  CHECK(usage_hint(t2v, with_image) == "drop --image, or use an i2v or ti2v bundle");
  GenerateRequest float_image;
  float_image.image = at::zeros({8, 8, 3}, at::kFloat);
  CHECK_THROWS_AS(resolve_request(ti2v_spec(), float_image), wanrt::Error);
}

TEST_CASE("chunking settings: defaults, what was set, and the resulting plans", "[models]") {
  const WanSpec spec = ti2v_spec();
  GenerateRequest none;
  const auto plain = resolve_request(spec, none);
  CHECK(plain.chunk_frames == 0);
  CHECK(plain.chunk_overlap == 0);
  CHECK(plain.vae_tile == 0);
  CHECK(plain.blend == "linear");
  // No window: one chunk over the 31 latent frames of 121 video frames.
  CHECK(plain.window_plan(spec).chunks.size() == 1);
  CHECK(plain.window_plan(spec).total == 31);

  GenerateRequest request;
  request.frames = 33;  // 9 latent frames
  request.chunk_frames = 17;  // 5 latent frames; default overlap ceil(5 / 4) = 2 -> 8 frames
  request.vae_tile = 256;
  request.blend = "cosine";
  const auto r = resolve_request(spec, request);
  CHECK(r.chunk_frames == 17);
  CHECK(r.chunk_overlap == 8);
  CHECK(r.vae_tile == 256);
  CHECK(r.blend == "cosine");
  CHECK(was_set(r, "chunk_frames"));
  CHECK_FALSE(was_set(r, "chunk_overlap"));
  CHECK(was_set(r, "vae_tile"));
  CHECK(was_set(r, "blend"));
  // Latent windows of 5 overlapping by >= 2 over 9: [0,5) [3,8) [4,9).
  const auto plan = r.window_plan(spec);
  REQUIRE(plan.chunks.size() == 3);
  CHECK(plan.chunks[0].start == 0);
  CHECK(plan.chunks[1].start == 3);
  CHECK(plan.chunks[2].start == 4);
  CHECK(plan.chunks[2].end == 9);

  request.chunk_overlap = 4;
  const auto o = resolve_request(spec, request);
  CHECK(o.chunk_overlap == 4);
  CHECK(was_set(o, "chunk_overlap"));
  // Default overlaps: 5 frames (2 latent) -> 4; 1 frame (1 latent) -> 0; 9 (3 latent) -> 4.
  for (const auto& [chunk, overlap] : std::vector<std::pair<int, int>>{{5, 4}, {1, 0}, {9, 4}}) {
    GenerateRequest d;
    d.frames = 33;
    d.chunk_frames = chunk;
    INFO(chunk);
    CHECK(resolve_request(spec, d).chunk_overlap == overlap);
  }
}

TEST_CASE("bad chunking settings are usage errors naming what would work", "[models]") {
  const WanSpec spec = ti2v_spec();
  auto message_and_hint = [&](const GenerateRequest& request) {
    try {
      resolve_request(spec, request);
    } catch (const wanrt::Error& e) {
      CHECK(e.category() == wanrt::ErrorCategory::kUsage);
      return std::string(e.what()) + " | " + e.hint();
    }
    FAIL("expected a usage error");
    return std::string();
  };
  GenerateRequest r;
  r.frames = 33;
  r.chunk_frames = 6;  // not 4n+1
  CHECK_THAT(message_and_hint(r),
             Catch::Contains("--chunk-frames 6") && Catch::Contains("5 or 9"));
  r.chunk_frames = 37;  // longer than the video
  CHECK_THAT(message_and_hint(r), Catch::Contains("at most 33"));
  r.chunk_frames = 9;
  r.chunk_overlap = 6;  // not a multiple of 4
  CHECK_THAT(message_and_hint(r),
             Catch::Contains("--chunk-overlap 6") && Catch::Contains("4 or 8"));
  r.chunk_overlap = 12;  // not smaller than the window
  CHECK_THAT(message_and_hint(r), Catch::Contains("at most 8"));
  GenerateRequest overlap_only;
  overlap_only.chunk_overlap = 4;
  CHECK_THAT(message_and_hint(overlap_only), Catch::Contains("--chunk-frames"));
  GenerateRequest tile;
  tile.vae_tile = 40;  // stride 16
  CHECK_THAT(message_and_hint(tile),
             Catch::Contains("--vae-tile 40") && Catch::Contains("32 or 48"));
  tile.vae_tile = 0;
  CHECK_THAT(message_and_hint(tile), Catch::Contains("use --vae-tile 16"));
  GenerateRequest blend;
  blend.blend = "gaussian";
  CHECK_THAT(message_and_hint(blend),
             Catch::Contains("gaussian") && Catch::Contains("pyramid"));
}
