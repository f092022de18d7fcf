// Request <-> plan conversions (video frames / pixels vs latent frames / latent pixels), with
// the Wan 2.2 TI2V-5B strides (4 in time, 16 in space; docs/wan22.md section 2).
#include "support/catch.h"

#include "models/wan22/request_plan.h"
#include "runtime/error.h"
#include "runtime/version.h"
#include "support/tiny_bundles.h"

using wanrt::wan22::GenerateRequest;
using wanrt::wan22::WanSpec;

namespace {

WanSpec ti2v_like() {
  WanSpec spec;
  spec.task = "ti2v";
  spec.z_dim = 48;
  spec.vae_stride = {4, 16, 16};
  spec.patch = {1, 2, 2};
  spec.experts = {"dit"};
  auto& s = spec.sampling;
  s.steps = 4;
  s.shift = 5;
  s.guide_low = s.guide_high = 5;
  s.frames = 17;
  s.width = 256;
  s.height = 160;
  s.sampler = "unipc";
  return spec;
}

// A 2-core machine with 16 GiB of RAM, no GPU.
wanrt::SystemResources small_machine() {
  wanrt::SystemResources machine;
  machine.cpu_cores = 2;
  machine.ram_total = machine.ram_available = std::int64_t{16} << 30;
  return machine;
}

}  // namespace

TEST_CASE("plan_inputs: the workload and the request's own chunking as fixed settings",
          "[models][request_plan]") {
  const WanSpec spec = ti2v_like();
  GenerateRequest request;
  request.prompt = "x";
  auto in = wanrt::wan22::plan_inputs(spec, request);
  // Defaults filled in; nothing fixed that the request left open.
  CHECK(in.workload.width == 256);
  CHECK(in.workload.height == 160);
  CHECK(in.workload.frames == 17);
  CHECK_FALSE(in.workload.image);
  CHECK_FALSE(in.settings.frame_chunk.has_value());
  CHECK_FALSE(in.settings.vae_tile.has_value());

  request.frames = 33;
  request.chunk_frames = 13;  // 1 + 4 x 3 video frames = 4 latent frames
  request.vae_tile = 96;      // 96 / 16 = 6 latent pixels
  wanrt::PlanSettings mine;
  mine.offload = wanrt::OffloadPolicy::kModel;
  in = wanrt::wan22::plan_inputs(spec, request, mine);
  CHECK(in.workload.frames == 33);
  CHECK(in.settings.frame_chunk == 4);
  CHECK(in.settings.vae_tile == 6);
  CHECK(in.settings.offload == wanrt::OffloadPolicy::kModel);  // the caller's settings stay
  // Bad values are the request's errors, before any planning.
  request.frames = 32;
  CHECK_THROWS_AS(wanrt::wan22::plan_inputs(spec, request), wanrt::Error);
}

TEST_CASE("apply_plan_chunking: latent windows and tiles become video frames and pixels",
          "[models][request_plan]") {
  const WanSpec spec = ti2v_like();
  wanrt::OptimizationPlan plan;
  plan.frame_chunking = {true, 3, 1};  // 3 latent frames, overlap 1
  plan.vae_tiling = {true, 5, 4, 1};   // tile_h 5, tile_w 4 (clipped), overlap 1
  GenerateRequest open;
  wanrt::wan22::apply_plan_chunking(plan, spec, open);
  CHECK(open.chunk_frames == 9);  // (3 - 1) x 4 + 1
  CHECK(open.chunk_overlap == 4);
  CHECK(open.vae_tile == 80);  // the larger side, 5 x 16
  // What the request set is never replaced.
  GenerateRequest set;
  set.chunk_frames = 5;
  set.vae_tile = 32;
  wanrt::wan22::apply_plan_chunking(plan, spec, set);
  CHECK(set.chunk_frames == 5);
  CHECK_FALSE(set.chunk_overlap.has_value());
  CHECK(set.vae_tile == 32);
  CHECK(wanrt::wan22::window_latent_frames(0, 4) == 0);
  CHECK(wanrt::wan22::tile_latent_pixels(0, 16) == 0);
}

TEST_CASE("plan_request keeps the request's chunking in the plan", "[models][request_plan]") {
  GenerateRequest request;
  request.prompt = "x";
  request.frames = 9;
  request.chunk_frames = 5;
  const wanrt::SystemResources machine = small_machine();
  const auto result = wanrt::wan22::plan_request(wanrt_test::tiny_bundle("tiny-ti2v"), request,
                                                 {}, {}, machine);
  CHECK(result.workload.frames == 9);
  CHECK(result.plan.frame_chunking.enabled);
  CHECK(result.plan.frame_chunking.window == 2);  // (5 - 1) / 4 + 1 latent frames
}

TEST_CASE("the plan's attention is the one the bundle bakes in, unless the user fixes it",
          "[models][request_plan]") {
  wanrt_test::BundleCopy copy("tiny-ti2v");
  GenerateRequest request;
  request.prompt = "x";
  const wanrt::SystemResources machine = small_machine();
  const auto planned = [&](const wanrt::PlanSettings& settings) {
    return wanrt::wan22::plan_request(copy.dir(), request, settings, {}, machine).plan;
  };
  const auto set_attention = [&](const std::string& kind) {
    std::string yaml = copy.yaml();
    const auto at = yaml.find("\nattention: ");
    REQUIRE(at != std::string::npos);
    yaml.replace(at, yaml.find('\n', at + 1) - at, "\nattention: " + kind);
    copy.set_yaml(yaml);
  };
  set_attention("math");
  CHECK(planned({}).attention == wanrt::AttentionKind::kMath);
  if (!wanrt::libtorch_has_sdpa()) return;  // such a bundle is refused (test_bundle.cpp)
  set_attention("sdpa");
  const auto sdpa = planned({});
  CHECK(sdpa.attention == wanrt::AttentionKind::kSdpa);
  bool explained = false;
  for (const auto& d : sdpa.reasons) {
    if (d.setting == "attention") explained = d.reason.find("wanrt.yaml") != std::string::npos;
  }
  CHECK(explained);
  wanrt::PlanSettings fixed;
  fixed.attention = wanrt::AttentionKind::kMath;
  CHECK(planned(fixed).attention == wanrt::AttentionKind::kMath);
}

TEST_CASE("a misspelt architecture or sampling key is a bundle error naming the nearest key",
          "[models][request_plan]") {
  wanrt_test::BundleCopy copy("tiny-ti2v");
  GenerateRequest request;
  request.prompt = "x";
  const wanrt::SystemResources machine = small_machine();
  const std::string original = copy.yaml();
  // (the line as exported, its misspelling, the key the error names, the suggestion)
  const char* const cases[][4] = {
      {"  shift:", "  shfit:", "sampling.shfit", "shift"},
      {"    ffn_dim:", "    ffn_dims:", "architecture.dit.ffn_dims", "ffn_dim"},
      {"    dec_dim:", "    dec_dims:", "architecture.vae.dec_dims", "dec_dim"},
      {"    num_buckets:", "    num_bucket:", "architecture.text_encoder.num_bucket", "num_buckets"},
  };
  for (const auto& c : cases) {
    INFO(c[2]);
    std::string yaml = original;
    const auto at = yaml.find(std::string("\n") + c[0]);
    REQUIRE(at != std::string::npos);
    yaml.replace(at + 1, std::string(c[0]).size(), c[1]);
    copy.set_yaml(yaml);
    try {
      wanrt::wan22::plan_request(copy.dir(), request, {}, {}, machine);
      FAIL("no error for " << c[2]);
    } catch (const wanrt::Error& e) {
      CHECK(e.category() == wanrt::ErrorCategory::kBundle);
      CHECK_THAT(e.what(), Catch::Contains(std::string("key '") + c[2] + "': unknown key"));
      CHECK_THAT(e.hint(), Catch::StartsWith(std::string("did you mean '") + c[3] + "'?"));
    }
  }
  // Equally near keys are all named.
  std::string yaml = original;
  yaml.replace(yaml.find("\n    ffn_dim:") + 1, std::string("    ffn_dim:").size(), "    fn_dim:");
  copy.set_yaml(yaml);
  try {
    wanrt::wan22::plan_request(copy.dir(), request, {}, {}, machine);
    FAIL("no error for fn_dim");
  } catch (const wanrt::Error& e) {
    CHECK_THAT(e.hint(), Catch::StartsWith("did you mean 'in_dim' or 'ffn_dim'?"));
  }
  copy.set_yaml(original);
  CHECK_NOTHROW(wanrt::wan22::plan_request(copy.dir(), request, {}, {}, machine));
}
