// The pipeline's chunking on the tiny bundles: streamed frames, sliding-window denoising, and
// tiled decoding, each against the plain pipeline's own result.
#include <fmt/format.h>

#include "support/catch.h"
#include <memory>
#include <string>
#include <vector>

#include "models/wan22/pipeline.h"
#include "runtime/error.h"
#include "support/tiny_bundles.h"

using wanrt::wan22::Callbacks;
using wanrt::wan22::GenerateRequest;
using wanrt::wan22::GenerateResult;
using wanrt::wan22::Pipeline;

namespace {

// A smooth uint8 RGB image [h, w, 3].
at::Tensor test_image(int h, int w) {
  const at::Tensor y = at::arange(h, at::kFloat).div(h).view({h, 1, 1});
  const at::Tensor x = at::arange(w, at::kFloat).div(w).view({1, w, 1});
  const at::Tensor c = at::tensor({0.2f, 0.5f, 0.8f}).view({1, 1, 3});
  return ((y * 0.6 + x * 0.3 + c * 0.4).clamp(0, 1) * 255).to(at::kByte);
}

GenerateRequest request_for(const Pipeline& pipeline, int frames, int steps) {
  GenerateRequest request;
  request.prompt = "a red fox running through fresh snow";
  request.seed = 3;
  request.frames = frames;
  request.steps = steps;
  if (pipeline.spec().task != "t2v") request.image = test_image(72, 56);
  return request;
}

// One intra-op thread: these runs are tiny, and ctest runs test processes side by side.
std::unique_ptr<Pipeline> load(const std::string& bundle) {
  wanrt::wan22::LoadOptions options;
  options.threads = 1;
  return Pipeline::load(wanrt_test::tiny_bundle(bundle), options);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("streaming: on_frames gets every frame in order, equal to the in-memory frames",
          "[models]") {
  const auto [bundle, tile] =
      GENERATE(table<std::string, int>({{"tiny-ti2v", 0}, {"tiny-t2v-moe", 32}}));
  INFO(bundle << ", vae_tile " << tile);
  auto pipeline = load(bundle);
  GenerateRequest request = request_for(*pipeline, 9, 2);
  if (tile > 0) request.vae_tile = tile;
  const GenerateResult whole = pipeline->generate(request);
  REQUIRE(whole.frames.defined());
  CHECK(whole.frame_count == 9);
  CHECK(whole.frames.size(0) == 9);
  // 64x64 frames: tiles of 32 px = 2 latent px (stride 16) over 4, or 4 latent px (stride 8)
  // over 8, with a one-pixel overlap: [0,2) [1,3) [2,4) or [0,4) [3,7) [4,8), 3x3 tiles.
  CHECK(whole.vae_tiles == (tile == 0 ? 1 : 9));

  std::vector<at::Tensor> pieces;
  Callbacks callbacks;
  callbacks.on_frames = [&](const at::Tensor& frames) {
    CHECK(frames.scalar_type() == at::kByte);
    pieces.push_back(frames.clone());
  };
  const GenerateResult streamed = pipeline->generate(request, callbacks);
  CHECK_FALSE(streamed.frames.defined());
  CHECK_FALSE(streamed.video.defined());
  CHECK(streamed.frame_count == 9);
  REQUIRE(pieces.size() == 3);  // one call per latent frame: 1 + 4 + 4 frames
  CHECK(pieces[0].size(0) == 1);
  CHECK(pieces[1].size(0) == 4);
  CHECK(pieces[2].size(0) == 4);
  CHECK(at::equal(at::cat(pieces, 0), whole.frames));
  CHECK(at::equal(streamed.latent, whole.latent));

  if (tile > 0) {  // tiles change the pixels at their borders, not the latent
    GenerateRequest plain = request;
    plain.vae_tile.reset();
    const GenerateResult untiled = pipeline->generate(plain);
    CHECK(at::equal(untiled.latent, whole.latent));
    CHECK_FALSE(at::equal(untiled.frames, whole.frames));
    CHECK(untiled.frames.sizes() == whole.frames.sizes());
  }
}

TEST_CASE("streaming: an exception from on_frames stops the run", "[models]") {
  auto pipeline = load("tiny-t2v-moe");
  int calls = 0;
  Callbacks callbacks;
  callbacks.on_frames = [&](const at::Tensor&) {
    if (++calls == 2) throw wanrt::Error(wanrt::ErrorCategory::kResources, "disk full");
  };
  try {
    pipeline->generate(request_for(*pipeline, 9, 1), callbacks);
    FAIL("expected the sink's error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kResources);
  }
  CHECK(calls == 2);
}

TEST_CASE("sliding windows: one window over the whole video is the plain result exactly",
          "[models]") {
  const std::string bundle =
      GENERATE(as<std::string>{}, "tiny-t2v-moe", "tiny-ti2v", "tiny-i2v-moe");
  INFO(bundle);
  auto pipeline = load(bundle);
  const GenerateRequest plain = request_for(*pipeline, 9, 3);
  GenerateRequest windowed = plain;
  windowed.chunk_frames = 9;
  windowed.blend = "cosine";
  const GenerateResult a = pipeline->generate(plain);
  const GenerateResult b = pipeline->generate(windowed);
  CHECK(b.denoise_windows == 1);
  CHECK(a.dit_calls == 2 * 3);
  CHECK(b.dit_calls == 2 * 3);
  CHECK(at::equal(a.latent, b.latent));
  CHECK(at::equal(a.frames, b.frames));
}

TEST_CASE("sliding windows: smaller windows run per window and change the result", "[models]") {
  const std::string bundle =
      GENERATE(as<std::string>{}, "tiny-t2v-moe", "tiny-ti2v", "tiny-i2v-moe");
  INFO(bundle);
  auto pipeline = load(bundle);
  const int steps = 2;
  const GenerateRequest plain = request_for(*pipeline, 13, steps);  // 4 latent frames
  const GenerateResult a = pipeline->generate(plain);
  struct Case {
    int chunk, overlap, windows;
  };
  // Latent windows of 2 with overlap 1: [0,2) [1,3) [2,4); of 3 with the default overlap for
  // 9 frames (1 latent frame): [0,3) [1,4).
  for (const Case c : {Case{5, 4, 3}, Case{9, -1, 2}}) {
    GenerateRequest windowed = plain;
    windowed.chunk_frames = c.chunk;
    if (c.overlap >= 0) windowed.chunk_overlap = c.overlap;
    const GenerateResult b = pipeline->generate(windowed);
    INFO("chunk " << c.chunk << " overlap " << c.overlap);
    CHECK(b.request.chunk_overlap == (c.overlap >= 0 ? c.overlap : 4));
    CHECK(b.denoise_windows == c.windows);
    CHECK(b.dit_calls == steps * 2 * c.windows);
    REQUIRE(b.latent.sizes() == a.latent.sizes());
    CHECK(b.frames.sizes() == a.frames.sizes());
    CHECK(at::isfinite(b.latent).all().item<bool>());
    const double latent_dev = max_abs(a.latent, b.latent);
    const double frame_dev = max_abs(a.frames, b.frames);
    WARN(
        fmt::format("{}: windows of {} frames (overlap {}): max |latent - full window| {:.4f}, "
                    "max frame difference {} levels",
                    bundle, c.chunk, b.request.chunk_overlap, latent_dev, frame_dev));
    CHECK(latent_dev > 0);
    if (bundle == "tiny-ti2v") {
      // TI2V pins latent frame 0 to the image latent in every window layout.
      CHECK(at::equal(a.latent.select(1, 0), b.latent.select(1, 0)));
    }
  }
}

TEST_CASE("sliding windows: cancellation inside a window stops the run", "[models]") {
  auto pipeline = load("tiny-t2v-moe");
  GenerateRequest request = request_for(*pipeline, 17, 2);
  request.chunk_frames = 5;
  int polls = 0;
  Callbacks callbacks;
  callbacks.cancelled = [&] { return ++polls > 40; };
  try {
    pipeline->generate(request, callbacks);
    FAIL("expected cancellation");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kCancelled);
  }
  CHECK(polls == 41);
}
