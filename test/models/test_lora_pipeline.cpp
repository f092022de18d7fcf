// LoRAs and few-step sampling through the pipeline on the tiny bundles and the LoRA files the
// fixture `tiny_bundles` writes (models/export/wanrt_export/lora_synth.py). Numerical parity
// with the Python reference is in test_pipeline_parity.cpp.
#include <ATen/ATen.h>

#include "support/catch.h"
#include <filesystem>
#include <functional>
#include <string>

#include "models/wan22/lora.h"
#include "models/wan22/pipeline.h"
#include "models/wan22/request_plan.h"
#include "optim/memory_estimate.h"
#include "runtime/system_resources.h"
#include "runtime/error.h"
#include "support/error_category.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;
namespace w = wanrt::wan22;
using wanrt::ErrorCategory;
using wanrt_test::error_of;

namespace {

std::string lora_file(const std::string& name) {
  return (fs::path(wanrt_test::tiny_bundles_dir()) / "loras" / name).string();
}

w::GenerateResult run(const std::string& bundle, std::vector<w::LoraSpec> loras,
                      std::optional<std::string> preset = {}) {
  w::LoadOptions load;
  load.loras = std::move(loras);
  auto pipeline = w::Pipeline::load(wanrt_test::tiny_bundle(bundle), load);
  w::GenerateRequest request;
  request.prompt = "a lantern glowing in the fog";
  request.seed = 21;
  request.preset = preset;
  return pipeline->generate(request);
}

}  // namespace

TEST_CASE("a LoRA at strength 0 gives the base model's frames bit for bit", "[models][lora]") {
  const auto base = run("tiny-ti2v", {});
  const auto zero = run("tiny-ti2v", {{lora_file("ti2v-official.safetensors"), 0.0}});
  CHECK(at::equal(zero.latent, base.latent));
  CHECK(at::equal(zero.frames, base.frames));
  // And at strength 1 the video changes (the fixture's deltas are a quarter of the weights).
  const auto full = run("tiny-ti2v", {{lora_file("ti2v-official.safetensors"), 1.0}});
  CHECK((full.frames.to(at::kFloat) - base.frames.to(at::kFloat)).abs().mean().item<double>() > 2.0);
}

TEST_CASE("a baked LoRA bundle equals the same LoRA loaded at run time", "[models][lora]") {
  const auto baked = run("tiny-ti2v-lightning", {});
  const auto loaded =
      run("tiny-ti2v", {{lora_file("ti2v-official.safetensors"), 1.0}}, std::string("lightning"));
  CHECK(baked.dit_calls == 4);  // the bundle's defaults: 4 steps at guidance 1
  CHECK(loaded.dit_calls == 4);
  // The exporter merges with separate multiply and add, LibTorch's add_ may fuse them: the
  // merged weights agree to float32 rounding, not necessarily bit for bit.
  CHECK((baked.latent - loaded.latent).abs().max().item<double>() <= 1e-5);
  CHECK((baked.frames.to(at::kInt) - loaded.frames.to(at::kInt)).abs().max().item<int>() <= 1);
}

TEST_CASE("the lightning preset: 4 steps, shift 5, guidance 1, one DiT pass per step",
          "[models][lora]") {
  w::LoadOptions load;
  auto pipeline = w::Pipeline::load(wanrt_test::tiny_bundle("tiny-t2v-moe"), load);
  w::GenerateRequest request;
  request.prompt = "a red fox";
  request.preset = "lightning";
  w::ResolvedRequest r = pipeline->resolve(request);
  CHECK(r.preset == "lightning");
  CHECK(r.sampler == "lightning");
  CHECK(r.steps == 4);
  CHECK(r.shift == 5.0);
  CHECK(r.guide_low == 1.0);
  CHECK(r.guide_high == 1.0);
  // Options given explicitly win over the preset.
  request.steps = 6;
  request.guidance = 2.5;
  r = pipeline->resolve(request);
  CHECK(r.steps == 6);
  CHECK(r.guide_low == 2.5);
  CHECK(r.sampler == "lightning");
  request.preset = "turbo";
  const auto e = error_of([&] { pipeline->resolve(request); });
  CHECK(e.category() == ErrorCategory::kUsage);
  CHECK_THAT(e.hint(), Catch::Contains("lightning"));

  // The MoE switch stays the bundle's: at shift 5 the 4 timesteps 1000, 937.5, 833.3, 625 put
  // every step at or above a boundary of 0.6 x 1000 on the high-noise expert.
  w::GenerateRequest run;
  run.prompt = "a red fox";
  run.preset = "lightning";
  const auto result = pipeline->generate(run);
  CHECK(result.dit_calls == 4);
  REQUIRE(result.expert_trace.size() == 4);
}

TEST_CASE("LoRA errors: another model's LoRA, unmatched keys, per-expert LoRA on one DiT",
          "[models][lora]") {
  w::LoadOptions load;
  load.loras = {{lora_file("other-family.safetensors"), 1.0}};
  auto e = error_of([&] { w::Pipeline::load(wanrt_test::tiny_bundle("tiny-ti2v"), load); });
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::Contains("other-family.safetensors") &&
                           Catch::Contains("does not fit") && Catch::Contains("dit of"));
  CHECK_THAT(e.hint(), Catch::Contains("another size or family"));

  load.loras = {{lora_file("partial.safetensors"), 1.0}};
  e = error_of([&] { w::Pipeline::load(wanrt_test::tiny_bundle("tiny-ti2v"), load); });
  CHECK_THAT(e.what(), Catch::Contains("not_a_module"));
  CHECK_THAT(e.hint(), Catch::Contains("--lora-allow-partial"));
  load.lora_allow_partial = true;
  auto pipeline = w::Pipeline::load(wanrt_test::tiny_bundle("tiny-ti2v"), load);
  const auto merges = pipeline->model()->lora_merges();
  REQUIRE(merges.size() == 1);
  CHECK(merges[0].component == "dit");
  CHECK(merges[0].report.tensors > 0);
  CHECK(merges[0].report.plan.unmatched_keys[0].size() == 2);

  load = {};
  load.loras = {{lora_file("ti2v-official.safetensors"), 1.0, w::LoraExperts::kHigh}};
  e = error_of([&] { w::Pipeline::load(wanrt_test::tiny_bundle("tiny-ti2v"), load); });
  CHECK(e.category() == ErrorCategory::kUsage);
  CHECK_THAT(e.what(), Catch::Contains("single DiT"));

  e = error_of([] { w::parse_lora_spec("style.safetensors:strong"); });
  CHECK(e.category() == ErrorCategory::kUsage);
  CHECK_THAT(e.what(), Catch::Contains("'strong' is not a number"));
  const w::LoraSpec spec = w::parse_lora_spec("style.safetensors:0.75", w::LoraExperts::kLow);
  CHECK(spec.path == "style.safetensors");
  CHECK(spec.strength == 0.75);
  CHECK(w::parse_lora_spec("style.safetensors").strength == 1.0);
}

TEST_CASE("per-expert LoRAs reach only their expert", "[models][lora]") {
  w::LoadOptions load;
  load.loras = {{lora_file("t2v-moe-high.safetensors"), 1.0, w::LoraExperts::kHigh},
                {lora_file("t2v-moe-low.safetensors"), 0.5, w::LoraExperts::kLow}};
  auto pipeline = w::Pipeline::load(wanrt_test::tiny_bundle("tiny-t2v-moe"), load);
  const auto& loras = pipeline->model()->loras();
  REQUIRE(loras.for_component("dit_high_noise").size() == 1);
  CHECK(loras.for_component("dit_high_noise")[0].lora->path == lora_file("t2v-moe-high.safetensors"));
  REQUIRE(loras.for_component("dit_low_noise").size() == 1);
  CHECK(loras.for_component("dit_low_noise")[0].strength == 0.5);
  CHECK(loras.for_component("text_encoder").empty());
  CHECK(pipeline->model()->lora_merges().size() == 2);
}

TEST_CASE("diffusers module names map onto the official ones", "[models][lora]") {
  // The pairs of diffusers' Wan transformer against the official checkpoint's names
  // (docs/lora.md); official names pass through.
  CHECK(w::wan_module_name("blocks.7.attn1.to_q") == "blocks.7.self_attn.q");
  CHECK(w::wan_module_name("blocks.7.attn1.to_out.0") == "blocks.7.self_attn.o");
  CHECK(w::wan_module_name("blocks.12.attn2.to_v") == "blocks.12.cross_attn.v");
  CHECK(w::wan_module_name("blocks.0.attn2.norm_k") == "blocks.0.cross_attn.norm_k");
  CHECK(w::wan_module_name("blocks.3.ffn.net.0.proj") == "blocks.3.ffn.0");
  CHECK(w::wan_module_name("blocks.3.ffn.net.2") == "blocks.3.ffn.2");
  CHECK(w::wan_module_name("blocks.3.norm2") == "blocks.3.norm3");
  CHECK(w::wan_module_name("blocks.3.scale_shift_table") == "blocks.3.modulation");
  CHECK(w::wan_module_name("scale_shift_table") == "head.modulation");
  CHECK(w::wan_module_name("proj_out") == "head.head");
  CHECK(w::wan_module_name("condition_embedder.time_proj") == "time_projection.1");
  CHECK(w::wan_module_name("condition_embedder.text_embedder.linear_2") == "text_embedding.2");
  CHECK(w::wan_module_name("condition_embedder.time_embedder.linear_1") == "time_embedding.0");
  CHECK(w::wan_module_name("blocks.3.self_attn.q") == "blocks.3.self_attn.q");
  CHECK(w::wan_module_name("patch_embedding") == "patch_embedding");
}

TEST_CASE("the planner counts the LoRA merge and, paged from disk, the merged copies",
          "[models][lora]") {
  const std::string bundle = wanrt_test::tiny_bundle("tiny-ti2v");
  const std::vector<w::LoraSpec> loras{{lora_file("ti2v-official.safetensors"), 1.0}};
  wanrt::SystemResources machine;
  machine.cpu_cores = 2;
  machine.ram_total = machine.ram_available = std::int64_t{16} << 30;
  // Host residency disk with the DiT streamed block by block (nothing resident): most of its
  // weights are paged, but the merged tensors are heap copies held for the whole stage.
  wanrt::PlanSettings disk;
  disk.host_residency = wanrt::HostResidency::kDisk;
  disk.device = "cpu";
  disk.offload = wanrt::OffloadPolicy::kSequential;
  disk.blocks_resident = 0;
  w::GenerateRequest request;
  request.prompt = "x";
  const auto plain = w::plan_request(bundle, request, disk, {}, machine);
  const auto with = w::plan_request(bundle, request, disk, {}, machine, loras);
  // The largest host item called `name` and the host total of its stage.
  auto item = [](const wanrt::OptimizationResult& r, const std::string& name) {
    std::pair<std::int64_t, std::string> found{-1, ""};
    for (const auto& s : r.estimate.stages) {
      for (const auto& m : s.host) {
        if (m.name == name && m.bytes > found.first) found = {m.bytes, s.name};
      }
    }
    return found;
  };
  auto host_total = [](const wanrt::OptimizationResult& r, const std::string& stage) {
    for (const auto& s : r.estimate.stages) {
      if (s.name == stage) return s.host_total;
    }
    return std::int64_t{-1};
  };
  CHECK(item(plain, "dit LoRA merge").first == -1);
  const auto file_bytes =
      static_cast<std::int64_t>(fs::file_size(lora_file("ti2v-official.safetensors")));
  const auto [merge_bytes, stage] = item(with, "dit LoRA merge");
  // At least the LoRA's tensors (the file less its small header), plus the float32 work space.
  CHECK(merge_bytes > file_bytes / 2);
  CHECK(item(with, "dit LoRA-merged weights").first > 0);
  CHECK(host_total(with, stage) > host_total(plain, stage) + merge_bytes);
}
