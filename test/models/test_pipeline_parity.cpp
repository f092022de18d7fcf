// Parity of the C++ pipeline with the eager Python reference (test/models/
// make_pipeline_reference.py, run as the ctest fixture `fixture.pipeline_reference`).
#include <torch/csrc/jit/serialization/pickle.h>

#include "support/catch.h"
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "models/wan22/pipeline.h"
#include "support/test_data.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;

namespace {

c10::Dict<c10::IValue, c10::IValue> load_reference(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  const std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(data).toGenericDict();
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

void check_case(const std::string& name) {
  const std::string bundles = wanrt_test::tiny_bundles_dir();
  const std::string refs =
      wanrt_test::test_data_dir("WANRT_PIPELINE_REFERENCE", "pipeline-reference");
  const auto ref = load_reference((fs::path(refs) / (name + ".pt")).string());
  const std::string bundle = ref.at("bundle").toStringRef();
  wanrt::wan22::LoadOptions load;
  wanrt::wan22::GenerateRequest request;
  if (ref.contains("loras")) {
    // The LoRA / few-step cases state the sampling they ran with and their LoRAs as
    // "file:strength:experts;..." (make_pipeline_reference.py).
    std::stringstream list(ref.at("loras").toStringRef());
    std::string item;
    while (std::getline(list, item, ';')) {
      const auto a = item.find(':'), b = item.rfind(':');
      wanrt::wan22::LoraSpec spec;
      spec.path = (fs::path(bundles) / "loras" / item.substr(0, a)).string();
      spec.strength = std::stod(item.substr(a + 1, b - a - 1));
      const std::string experts = item.substr(b + 1);
      spec.experts = experts == "high"  ? wanrt::wan22::LoraExperts::kHigh
                     : experts == "low" ? wanrt::wan22::LoraExperts::kLow
                                        : wanrt::wan22::LoraExperts::kAll;
      load.loras.push_back(spec);
    }
    request.sampler = ref.at("sampler").toStringRef();
    request.steps = static_cast<int>(ref.at("steps").toInt());
    request.shift = ref.at("shift").toDouble();
    const auto guidance = ref.at("guidance").toList();
    REQUIRE(guidance.get(0).toDouble() == guidance.get(1).toDouble());
    request.guidance = guidance.get(0).toDouble();
  }
  auto pipeline = wanrt::wan22::Pipeline::load((fs::path(bundles) / bundle).string(), load);

  request.prompt = ref.at("prompt").toStringRef();
  request.seed = ref.at("seed").toInt();
  const at::Tensor image = ref.at("image").toTensor();
  if (image.numel() > 0) request.image = image;
  const auto result = pipeline->generate(request);
  const auto resolved = pipeline->resolve(request);
  // Guidance 1 runs the conditional pass alone.
  const int passes = resolved.guide_low == 1.0 && resolved.guide_high == 1.0 ? 1 : 2;
  CHECK(result.dit_calls == passes * resolved.steps);

  std::string experts;
  for (const auto& e : result.expert_trace) experts += (experts.empty() ? "" : ",") + e;
  CHECK(experts == ref.at("experts").toStringRef());
  const double latent_err = max_abs_diff(result.latent, ref.at("latent").toTensor());
  const double video_err = max_abs_diff(result.video, ref.at("video").toTensor());
  INFO(name << ": max |latent - ref| = " << latent_err << ", max |video - ref| = " << video_err);
  CHECK(latent_err <= 1e-4);
  CHECK(video_err <= 1e-4);
  // uint8 frames truncate, so a value within 1e-4 of a level boundary may land one level off.
  const double frame_err = max_abs_diff(result.frames, ref.at("frames").toTensor());
  CHECK(frame_err <= 1.0);
}

}  // namespace

TEST_CASE("parity: T2V with the two-expert MoE (tiny-t2v-moe)", "[models][parity]") {
  check_case("t2v_moe");
}

TEST_CASE("parity: TI2V text only (tiny-ti2v)", "[models][parity]") { check_case("ti2v_text"); }

TEST_CASE("parity: TI2V with a first-frame image (tiny-ti2v)", "[models][parity]") {
  check_case("ti2v_image");
}

TEST_CASE("parity: I2V with mask and image latent (tiny-i2v-moe)", "[models][parity]") {
  check_case("i2v_moe");
}

TEST_CASE("parity: a LoRA in the official layout with alpha, diff and diff_b (tiny-ti2v)",
          "[models][parity][lora]") {
  check_case("ti2v_lora_official");
}

TEST_CASE("parity: three stacked LoRAs in the PEFT, bare PEFT and diffusers layouts",
          "[models][parity][lora]") {
  check_case("ti2v_lora_stack");
}

TEST_CASE("parity: per-expert LoRAs with 4-step lightning sampling at guidance 1 (A14B MoE)",
          "[models][parity][lora]") {
  check_case("t2v_moe_lightning");
}

TEST_CASE("parity: a bundle with a LoRA and the lightning preset baked in runs its defaults",
          "[models][parity][lora]") {
  check_case("ti2v_lightning_baked");
}
