// LoRA files (runtime/lora_file.h) and merging (runtime/lora_merge.h): files written by hand
// in each layout; merged weights checked against W + s · alpha / rank · up @ down computed
// here in float64.
#include <ATen/ATen.h>
#include <torch/script.h>

#include <fmt/format.h>

#include "support/catch.h"
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/lora_file.h"
#include "runtime/lora_merge.h"
#include "runtime/parameter_slots.h"
#include "support/error_category.h"
#include "support/safetensors_writer.h"
#include "support/tiny_bundles.h"

using wanrt::ErrorCategory;
using wanrt_test::error_of;
using wanrt_test::TempDir;
using wanrt_test::write_safetensors;

namespace {

at::Tensor param(const torch::jit::Module& module, const std::string& name) {
  for (const auto& p : module.named_parameters()) {
    if (p.name == name) return p.value;
  }
  FAIL("no parameter " << name);
  return {};
}

wanrt::Component tiny_dit() {
  wanrt::BundleOptions options;
  options.verify = false;
  return wanrt::Component::load(wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"), options),
                                "dit");
}

}  // namespace

TEST_CASE("LoRA files are read in the lora_down/lora_up, lora_A/lora_B and diff layouts",
          "[runtime]") {
  TempDir dir;
  const std::string official = (dir.path() / "official.safetensors").string();
  write_safetensors(official, {{"diffusion_model.blocks.0.self_attn.q.lora_down.weight", at::ones({4, 8})},
                               {"diffusion_model.blocks.0.self_attn.q.lora_up.weight", at::ones({8, 4})},
                               {"diffusion_model.blocks.0.self_attn.q.alpha", at::full({}, 2.0)},
                               {"diffusion_model.blocks.0.norm3.diff", at::ones({8})},
                               {"diffusion_model.blocks.0.norm3.diff_b", at::ones({8})}});
  const auto a = wanrt::read_lora_file(official);
  CHECK(a->prefix == "diffusion_model.");
  CHECK(a->layouts == std::vector<std::string>{"lora_down/lora_up", "diff"});
  REQUIRE(a->deltas.size() == 2);
  CHECK(a->deltas[0].module == "blocks.0.self_attn.q");
  CHECK(a->deltas[0].rank() == 4);
  CHECK(a->deltas[0].scale() == 0.5);  // alpha 2 / rank 4
  CHECK(a->deltas[1].module == "blocks.0.norm3");
  CHECK(a->deltas[1].diff != nullptr);
  CHECK(a->deltas[1].diff_b != nullptr);
  CHECK(a->max_rank == 4);
  CHECK(a->has_alpha);

  const std::string peft = (dir.path() / "peft.safetensors").string();
  write_safetensors(peft, {{"transformer.blocks.1.attn1.to_q.lora_A.weight", at::ones({3, 8})},
                           {"transformer.blocks.1.attn1.to_q.lora_B.weight", at::ones({8, 3})},
                           {"transformer.blocks.1.attn2.to_k.lora_A.default.weight", at::ones({2, 8})},
                           {"transformer.blocks.1.attn2.to_k.lora_B.default.weight", at::ones({8, 2})}});
  const auto b = wanrt::read_lora_file(peft);
  CHECK(b->prefix == "transformer.");
  CHECK(b->layouts == std::vector<std::string>{"lora_A/lora_B"});
  CHECK(b->deltas[0].module == "blocks.1.attn1.to_q");
  CHECK(b->deltas[0].scale() == 1.0);  // no alpha: alpha = rank
  CHECK(b->min_rank == 2);
  CHECK(b->max_rank == 3);
  CHECK_FALSE(b->has_alpha);
}

TEST_CASE("bad LoRA files are clear errors naming the file and the key", "[runtime]") {
  TempDir dir;
  auto write = [&](const std::string& name,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    const std::string path = (dir.path() / name).string();
    write_safetensors(path, tensors);
    return path;
  };
  auto e = error_of([&] { wanrt::read_lora_file((dir.path() / "absent.safetensors").string()); });
  CHECK(e.category() == ErrorCategory::kUsage);
  CHECK_THAT(e.what(), Catch::Contains("not found"));

  const std::string text = (dir.path() / "notes.safetensors").string();
  std::ofstream(text) << "this is not a safetensors file at all";
  e = error_of([&] { wanrt::read_lora_file(text); });
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::Contains("not a readable safetensors file") && Catch::Contains(text));

  const std::string unknown = write("unknown.safetensors", {{"blocks.0.q.lora_down.weight", at::ones({2, 4})},
                                                            {"blocks.0.q.lora_up.weight", at::ones({4, 2})},
                                                            {"blocks.0.q.hada_w1_a", at::ones({2, 2})}});
  e = error_of([&] { wanrt::read_lora_file(unknown); });
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::Contains("blocks.0.q.hada_w1_a") && Catch::Contains("no known LoRA layout"));

  const std::string half = write("half.safetensors", {{"blocks.0.q.lora_up.weight", at::ones({4, 2})}});
  e = error_of([&] { wanrt::read_lora_file(half); });
  CHECK_THAT(e.what(), Catch::Contains("blocks.0.q.lora_up.weight") && Catch::Contains("no down factor"));

  const std::string ranks = write("ranks.safetensors", {{"blocks.0.q.lora_down.weight", at::ones({2, 4})},
                                                        {"blocks.0.q.lora_up.weight", at::ones({4, 3})}});
  e = error_of([&] { wanrt::read_lora_file(ranks); });
  CHECK_THAT(e.what(), Catch::Contains("[4, 3]") && Catch::Contains("[2, 4]"));

  const std::string alpha = write("alpha.safetensors", {{"blocks.0.q.lora_down.weight", at::ones({2, 4})},
                                                        {"blocks.0.q.lora_up.weight", at::ones({4, 2})},
                                                        {"blocks.0.q.alpha", at::ones({2})}});
  e = error_of([&] { wanrt::read_lora_file(alpha); });
  CHECK_THAT(e.what(), Catch::Contains("blocks.0.q.alpha") && Catch::Contains("one finite number"));
}

TEST_CASE("merging LoRAs gives W + s alpha/rank up@down (+ s diff) in the weight's dtype",
          "[runtime]") {
  wanrt::InferenceScope scope;
  TempDir dir;
  wanrt::Component base = tiny_dit();
  const at::Tensor q = param(base.module(), "blocks.0.self_attn.q.weight");
  const at::Tensor mod = param(base.module(), "blocks.1.modulation");
  const at::Tensor bias = param(base.module(), "blocks.0.ffn.2.bias");
  const at::Tensor patch = param(base.module(), "patch_embedding.weight");
  const std::int64_t dim = q.size(0);
  at::manual_seed(3);
  const at::Tensor down = at::randn({4, dim}), up = at::randn({dim, 4});
  const at::Tensor down2 = at::randn({2, dim}), up2 = at::randn({dim, 2});
  const at::Tensor mod_diff = at::randn(mod.sizes()), bias_diff = at::randn(bias.sizes());
  // The 3-D patch embedding: down over [in, kt, kh, kw], up [out, rank, 1, 1, 1].
  std::vector<std::int64_t> pdown_shape = patch.sizes().vec();
  pdown_shape[0] = 3;
  const at::Tensor pdown = at::randn(pdown_shape), pup = at::randn({patch.size(0), 3, 1, 1, 1});

  const std::string a_path = (dir.path() / "a.safetensors").string();
  write_safetensors(a_path, {{"diffusion_model.blocks.0.self_attn.q.lora_down.weight", down},
                             {"diffusion_model.blocks.0.self_attn.q.lora_up.weight", up},
                             {"diffusion_model.blocks.0.self_attn.q.alpha", at::full({}, 8.0)},
                             {"diffusion_model.blocks.1.modulation.diff", mod_diff},
                             {"diffusion_model.blocks.0.ffn.2.diff_b", bias_diff},
                             {"diffusion_model.patch_embedding.lora_down.weight", pdown},
                             {"diffusion_model.patch_embedding.lora_up.weight", pup}});
  const std::string b_path = (dir.path() / "b.safetensors").string();
  write_safetensors(b_path, {{"blocks.0.self_attn.q.lora_A.weight", down2.to(at::kBFloat16)},
                             {"blocks.0.self_attn.q.lora_B.weight", up2.to(at::kBFloat16)}});
  const auto a = wanrt::read_lora_file(a_path);
  const auto b = wanrt::read_lora_file(b_path);

  wanrt::Component merged = base.share();
  const auto report = wanrt::merge_loras(merged.module(), {{a, 0.5}, {b, -1.25}}, {}, "dit",
                                         base.weights() ? base.weights()->file.get() : nullptr);
  CHECK(report.tensors == 4);
  CHECK(report.plan.matched_modules == std::vector<int>{4, 1});

  auto d64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  auto close = [](const at::Tensor& got, const at::Tensor& want) {
    const double err = (got.to(at::kDouble) - want).abs().max().item<double>();
    const double scale = want.abs().max().item<double>();
    INFO("max error " << err << " of " << scale);
    CHECK(err <= 2e-6 * scale);
  };
  const at::Tensor want_q = d64(q) + 0.5 * (8.0 / 4) * at::mm(d64(up), d64(down)) +
                            -1.25 * at::mm(d64(up2.to(at::kBFloat16)), d64(down2.to(at::kBFloat16)));
  close(param(merged.module(), "blocks.0.self_attn.q.weight"), want_q);
  close(param(merged.module(), "blocks.1.modulation"), d64(mod) + 0.5 * d64(mod_diff));
  close(param(merged.module(), "blocks.0.ffn.2.bias"), d64(bias) + 0.5 * d64(bias_diff));
  close(param(merged.module(), "patch_embedding.weight"),
        d64(patch) + 0.5 * at::mm(d64(pup).flatten(1), d64(pdown).flatten(1)).view(patch.sizes()));
  CHECK(param(merged.module(), "blocks.0.self_attn.q.weight").scalar_type() == q.scalar_type());
  // The base component is unchanged: the merge wrote private copies into the clone's slots.
  CHECK(param(base.module(), "blocks.0.self_attn.q.weight").data_ptr() == q.data_ptr());
  CHECK(param(merged.module(), "blocks.0.self_attn.k.weight").data_ptr() ==
        param(base.module(), "blocks.0.self_attn.k.weight").data_ptr());

  // Strength 0: checked, but every tensor stays the very same one (bit for bit).
  wanrt::Component zero = base.share();
  const auto none = wanrt::merge_loras(zero.module(), {{a, 0.0}}, {}, "dit");
  CHECK(none.tensors == 0);
  for (const auto& p : base.module().named_parameters()) {
    CHECK(param(zero.module(), p.name).data_ptr() == p.value.data_ptr());
  }
}

TEST_CASE("a LoRA that does not fit or matches nothing is an error; partial matches listed",
          "[runtime]") {
  wanrt::InferenceScope scope;
  TempDir dir;
  wanrt::Component base = tiny_dit();
  const std::int64_t dim = param(base.module(), "blocks.0.self_attn.q.weight").size(0);
  const std::string wide = (dir.path() / "wide.safetensors").string();
  write_safetensors(wide, {{"blocks.0.self_attn.q.lora_down.weight", at::ones({4, dim + 8})},
                           {"blocks.0.self_attn.q.lora_up.weight", at::ones({dim + 8, 4})}});
  wanrt::Component c = base.share();
  auto e = error_of([&] { wanrt::merge_loras(c.module(), {{wanrt::read_lora_file(wide), 1.0}}, {}, "dit"); });
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::Contains("blocks.0.self_attn.q.weight") &&
                           Catch::Contains(fmt::format("[{}, {}]", dim, dim)) &&
                           Catch::Contains(fmt::format("[{}, 4]", dim + 8)));
  CHECK_THAT(e.hint(), Catch::Contains("another size"));

  const std::string partial = (dir.path() / "partial.safetensors").string();
  write_safetensors(partial, {{"blocks.0.self_attn.q.lora_down.weight", at::ones({2, dim})},
                              {"blocks.0.self_attn.q.lora_up.weight", at::zeros({dim, 2})},
                              {"blocks.0.no_such.lora_down.weight", at::ones({2, dim})},
                              {"blocks.0.no_such.lora_up.weight", at::ones({dim, 2})}});
  const auto p = wanrt::read_lora_file(partial);
  e = error_of([&] { wanrt::merge_loras(c.module(), {{p, 1.0}}, {}, "dit"); });
  CHECK_THAT(e.what(), Catch::Contains("2 key(s) match no parameter") &&
                           Catch::Contains("blocks.0.no_such.lora_down.weight"));
  wanrt::LoraMergeOptions allow;
  allow.allow_partial = true;
  const auto report = wanrt::merge_loras(c.module(), {{p, 1.0}}, allow, "dit");
  CHECK(report.tensors == 1);
  CHECK(report.plan.unmatched_keys[0] == std::vector<std::string>{"blocks.0.no_such.lora_down.weight",
                                                                  "blocks.0.no_such.lora_up.weight"});

  const std::string other = (dir.path() / "other.safetensors").string();
  write_safetensors(other, {{"text_model.layers.0.lora_down.weight", at::ones({2, 4})},
                            {"text_model.layers.0.lora_up.weight", at::ones({4, 2})}});
  e = error_of([&] { wanrt::merge_loras(c.module(), {{wanrt::read_lora_file(other), 1.0}}, allow, "dit"); });
  CHECK_THAT(e.what(), Catch::Contains("matches no parameter of dit"));
}
