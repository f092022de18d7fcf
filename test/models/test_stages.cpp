// The generation stages alone, on a fake ComponentRunner: expert switching and guidance
// against the schedule computed here from its formula (docs/wan22.md section 4), TI2V and I2V
// conditioning, the text contexts' padding, and decode's collection and streaming.
#include "support/catch.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "models/wan22/model.h"
#include "models/wan22/stages.h"
#include "support/tiny_bundles.h"

using wanrt::wan22::ComponentRunner;
using wanrt::wan22::GenerateRequest;
using wanrt::wan22::ResolvedRequest;
using wanrt::wan22::WanSpec;

namespace {

// A runner whose DiT returns its context's first value everywhere (so the guided velocity is
// known), whose VAE encoder returns 7s, and which records what it was asked.
struct FakeRunner : ComponentRunner {
  std::int64_t z_dim = 4;
  std::vector<std::string> dit_calls;       // expert of each call
  std::vector<at::Tensor> timesteps_seen;   // t of each call
  std::vector<std::string> finished_order;  // finished() calls
  std::vector<at::Tensor> encoded;          // vae_encode inputs
  int token_calls = 0;

  at::Tensor encode_tokens(const at::Tensor& ids, const at::Tensor&) override {
    ++token_calls;
    CHECK(finished_order.empty());
    return at::ones({1, ids.size(1), 8});
  }
  at::Tensor run_dit(const std::string& expert, const at::Tensor& x, const at::Tensor& t,
                     const at::Tensor& context) override {
    dit_calls.push_back(expert);
    timesteps_seen.push_back(t.clone());
    const float value = context.flatten()[0].item<float>();
    return at::full({1, z_dim, x.size(2), x.size(3), x.size(4)}, value);
  }
  at::Tensor vae_encode(const at::Tensor& video) override {
    encoded.push_back(video);
    return at::full({1, z_dim, (video.size(2) - 1) / 4 + 1, video.size(3) / 8, video.size(4) / 8},
                    7.0);
  }
  std::int64_t vae_decode(const at::Tensor& latent, const wanrt::wan22::VaeDecodeOptions&,
                          const std::function<void(const at::Tensor&)>& sink) override {
    // Frame 0, then 4 frames per further latent frame, each filled with its index / 10.
    std::int64_t frames = 0;
    for (std::int64_t f = 0; f < latent.size(1); ++f) {
      const std::int64_t n = f == 0 ? 1 : 4;
      sink(at::full({3, n, latent.size(2) * 8, latent.size(3) * 8}, 0.1 * static_cast<double>(f)));
      frames += n;
    }
    return frames;
  }
  void finished(const std::string& name) override { finished_order.push_back(name); }
};

WanSpec spec_for(const std::string& task, bool moe) {
  WanSpec spec;
  spec.model_id = "fake";
  spec.task = task;
  spec.z_dim = 4;
  spec.vae_stride = {4, 8, 8};
  spec.patch = {1, 2, 2};
  spec.text_len = 16;
  spec.experts = moe ? std::vector<std::string>{"dit_high_noise", "dit_low_noise"}
                     : std::vector<std::string>{"dit"};
  auto& s = spec.sampling;
  s.steps = 10;
  s.shift = 5.0;
  s.guide_low = 3.0;
  s.guide_high = 4.0;
  if (moe) s.boundary = 0.9;
  s.frames = 5;
  s.width = 32;
  s.height = 32;
  s.sampler = "euler";
  return spec;
}

wanrt::wan22::PromptContexts contexts(float cond, float uncond) {
  return {at::full({1, 16, 8}, cond), at::full({1, 16, 8}, uncond)};
}

// The flow schedule from its formula: sigma_max = 1 - 1/1000 in float32, linspace to 0 with
// the endpoint dropped, shifted by s' = shift s / (1 + (shift - 1) s).
std::vector<double> shifted_sigmas(int steps, double shift) {
  const double sigma_max = static_cast<double>(static_cast<float>(1.0 - 1.0 / 1000));
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) {
    const double s = sigma_max - i * sigma_max / steps;
    out.push_back(shift * s / (1 + (shift - 1) * s));
  }
  out.push_back(0.0);
  return out;
}

}  // namespace

TEST_CASE("denoise: the expert follows the boundary and guidance is uncond + g (cond - uncond)",
          "[models][stages]") {
  const WanSpec spec = spec_for("t2v", /*moe=*/true);
  GenerateRequest request;
  request.prompt = "x";
  const ResolvedRequest r = wanrt::wan22::resolve_request(spec, request);
  FakeRunner runner;
  const at::Tensor noise = at::randn({4, 2, 4, 4});
  const auto out = wanrt::wan22::denoise(runner, spec, r, contexts(2.0f, 1.0f), {}, noise, {});

  const std::vector<double> sigma = shifted_sigmas(10, 5.0);
  double expected_shift = 0;
  std::vector<std::string> expected_trace;
  for (int i = 0; i < 10; ++i) {
    const auto t = static_cast<std::int64_t>(sigma[i] * 1000);
    const bool high = static_cast<double>(t) >= 0.9 * 1000;
    expected_trace.push_back(high ? "dit_high_noise" : "dit_low_noise");
    const double g = high ? 4.0 : 3.0;
    expected_shift += (sigma[i + 1] - sigma[i]) * (1.0 + g * (2.0 - 1.0));  // Euler, v constant
  }
  CHECK(out.expert_trace == expected_trace);
  CHECK(out.dit_calls == 20);
  CHECK(out.windows == 1);
  // Both experts took part, and each was finished once, right after its last step.
  REQUIRE(runner.finished_order ==
          std::vector<std::string>{"dit_high_noise", "dit_low_noise"});
  CHECK(at::allclose(out.latent, noise + expected_shift, 1e-5, 1e-5));
}

TEST_CASE("TI2V: latent frame 0 is the image latent and its tokens see timestep 0",
          "[models][stages]") {
  const WanSpec spec = spec_for("ti2v", /*moe=*/false);
  GenerateRequest request;
  request.prompt = "x";
  request.image = at::full({40, 40, 3}, 200, at::kByte);
  const ResolvedRequest r = wanrt::wan22::resolve_request(spec, request);
  FakeRunner runner;
  const auto image = wanrt::wan22::condition_on_image(runner, spec, r, *request.image);
  REQUIRE(runner.encoded.size() == 1);
  CHECK(runner.encoded[0].sizes() == at::IntArrayRef({1, 3, 1, 32, 32}));  // the image alone
  CHECK_FALSE(image.y.defined());
  // Frames of 5 -> 2 latent frames of 4x4 -> 2x2 tokens each with patch 2.
  REQUIRE(image.t_mask.numel() == 8);
  const at::Tensor noise = at::randn({4, 2, 4, 4});
  // Zero velocity: the latent changes only where the image pins it.
  const auto out = wanrt::wan22::denoise(runner, spec, r, contexts(0.0f, 0.0f), image, noise, {});
  CHECK(at::equal(out.latent.select(1, 0), at::full({4, 4, 4}, 7.0)));
  CHECK(at::equal(out.latent.select(1, 1), noise.select(1, 1)));
  REQUIRE(runner.timesteps_seen.size() == 20);
  for (const at::Tensor& t : runner.timesteps_seen) {
    REQUIRE(t.sizes() == at::IntArrayRef({1, 8}));
    CHECK(at::equal(t[0].slice(0, 0, 4), at::zeros({4})));
    CHECK(t[0][4].item<float>() > 0);
    CHECK(at::equal(t[0].slice(0, 4), at::full({4}, t[0][4].item<float>())));
  }
}

TEST_CASE("I2V: y is the first-frame mask followed by the encoded image video",
          "[models][stages]") {
  const WanSpec spec = spec_for("i2v", /*moe=*/true);
  GenerateRequest request;
  request.prompt = "x";
  request.image = at::full({32, 32, 3}, 50, at::kByte);
  const ResolvedRequest r = wanrt::wan22::resolve_request(spec, request);
  FakeRunner runner;
  const auto image = wanrt::wan22::condition_on_image(runner, spec, r, *request.image);
  REQUIRE(runner.encoded.size() == 1);
  // The whole video is encoded: the image, then black (0 in [-1, 1]) frames.
  const at::Tensor video = runner.encoded[0];
  REQUIRE(video.sizes() == at::IntArrayRef({1, 3, 5, 32, 32}));
  CHECK(at::equal(video.slice(2, 1), at::zeros({1, 3, 4, 32, 32})));
  REQUIRE(image.y.sizes() == at::IntArrayRef({4 + 4, 2, 4, 4}));
  // The mask: the 4 mask channels of latent frame 0 stand for the known first frame.
  CHECK(at::equal(image.y.slice(0, 0, 4).select(1, 0), at::ones({4, 4, 4})));
  CHECK(at::equal(image.y.slice(0, 0, 4).select(1, 1), at::zeros({4, 4, 4})));
  CHECK(at::equal(image.y.slice(0, 4), at::full({4, 2, 4, 4}, 7.0)));
  CHECK_FALSE(image.keep.defined());
}

TEST_CASE("encode_prompts: contexts are zero beyond the prompt's tokens", "[models][stages]") {
  wanrt::wan22::ModelOptions options;
  options.threads = 1;
  options.preload = false;  // the tokenizer is all this test needs
  const auto model = wanrt::wan22::Model::load(wanrt_test::tiny_bundle("tiny-ti2v"), options);
  GenerateRequest request;
  request.prompt = "a red fox";
  request.negative_prompt = "blurry, low quality, static";
  const ResolvedRequest r = wanrt::wan22::resolve_request(model->spec(), request);
  FakeRunner runner;
  std::vector<int> progress;
  wanrt::wan22::Callbacks callbacks;
  callbacks.progress = [&](const wanrt::wan22::ProgressEvent& e) { progress.push_back(e.step); };
  const auto ctx = wanrt::wan22::encode_prompts(runner, model->tokenizer(), r, callbacks);
  CHECK(runner.token_calls == 2);
  CHECK(runner.finished_order == std::vector<std::string>{"text_encoder"});
  CHECK(progress == std::vector<int>{0, 1, 2});
  const auto check = [&](const at::Tensor& context, const std::string& text) {
    const int length = model->tokenizer().encode(text).length;
    const int text_len = model->tokenizer().text_len();
    REQUIRE(length > 1);
    REQUIRE(length < text_len);
    REQUIRE(context.sizes() == at::IntArrayRef({1, text_len, 8}));
    CHECK(at::equal(context.slice(1, 0, length), at::ones({1, length, 8})));
    CHECK(at::equal(context.slice(1, length), at::zeros({1, text_len - length, 8})));
  };
  check(ctx.cond, "a red fox");
  check(ctx.uncond, "blurry, low quality, static");
}

TEST_CASE("decode: frames are collected, or streamed as uint8 and not kept",
          "[models][stages]") {
  const WanSpec spec = spec_for("t2v", /*moe=*/false);
  GenerateRequest request;
  request.prompt = "x";
  request.frames = 9;
  const ResolvedRequest r = wanrt::wan22::resolve_request(spec, request);
  const at::Tensor latent = at::zeros({4, 3, 4, 4});
  FakeRunner runner;
  const auto kept = wanrt::wan22::decode(runner, spec, r, latent, {});
  CHECK(kept.frame_count == 9);
  CHECK(kept.tiles == 1);
  REQUIRE(kept.video.sizes() == at::IntArrayRef({3, 9, 32, 32}));
  CHECK(kept.video[0][0][0][0].item<float>() == 0.0f);
  CHECK(kept.video[0][8][0][0].item<float>() == Approx(0.2));
  CHECK(runner.finished_order == std::vector<std::string>{"vae"});

  wanrt::wan22::Callbacks callbacks;
  std::vector<std::int64_t> pieces;
  callbacks.on_frames = [&](const at::Tensor& u8) {
    CHECK(u8.scalar_type() == at::kByte);
    CHECK(u8.size(3) == 3);  // [n, H, W, 3]
    pieces.push_back(u8.size(0));
  };
  const auto streamed = wanrt::wan22::decode(runner, spec, r, latent, callbacks);
  CHECK_FALSE(streamed.video.defined());
  CHECK(streamed.frame_count == 9);
  CHECK(pieces == std::vector<std::int64_t>{1, 4, 4});
}
