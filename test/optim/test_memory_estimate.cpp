// The generic estimate on a synthetic three-component model whose numbers are chosen for hand
// arithmetic (decimal GB): every expected value below is computed in the test from the sizes.
#include "support/catch.h"

#include "optim/independence.h"
#include "optim/memory_estimate.h"

using namespace wanrt;

namespace {

constexpr std::int64_t GB = 1'000'000'000LL;

// Fixed activations per stage kind: text 1 GB, denoise 5 GB + 2 GB workspace, decode 3 GB.
class FakeActivations : public ActivationModel {
 public:
  std::vector<MemoryItem> stage_memory(const StageRequirement& stage,
                                       const ActivationQuery& q) const override {
    last_compute = q.compute;
    MemoryItem a;
    a.kind = MemoryItem::kActivation;
    switch (stage.kind) {
      case RunStage::kTextEncode:
        a.bytes = 1 * GB;
        return {a};
      case RunStage::kDenoise: {
        a.bytes = 5 * GB;
        MemoryItem w;
        w.kind = MemoryItem::kWorkspace;
        w.bytes = 2 * GB;
        return {a, w};
      }
      default:
        a.bytes = 3 * GB;
        return {a};
    }
  }
  std::int64_t output_bytes(const Workload&) const override { return GB / 2; }
  int latent_frames(int frames) const override { return (frames - 1) / 4 + 1; }
  std::pair<int, int> latent_size(int w, int h) const override { return {h / 8, w / 8}; }
  mutable Dtype last_compute = Dtype::kFp32;
};

ModelRequirements model() {
  ModelRequirements r;
  r.model_id = "synthetic";
  ComponentRequirement te;
  te.name = "te";
  te.role = ComponentRole::kTextEncoder;
  te.stored = Dtype::kBf16;
  te.parameters = 5 * GB;
  te.stored_bytes = 10 * GB;
  te.non_block_bytes = 2 * GB;
  te.block_bytes = {2 * GB, 2 * GB, 2 * GB, 2 * GB};
  ComponentRequirement dit;
  dit.name = "dit";
  dit.role = ComponentRole::kDenoiser;
  dit.stored = Dtype::kBf16;
  dit.parameters = 10 * GB;
  dit.keep_fp32_parameters = GB / 10;
  dit.stored_bytes = 2 * dit.parameters + 2 * dit.keep_fp32_parameters;  // 20.2 GB
  dit.non_block_bytes = 1'200'000'000;
  dit.block_bytes = std::vector<std::int64_t>(10, 1'900'000'000);
  ComponentRequirement vae;
  vae.name = "vae";
  vae.role = ComponentRole::kVae;
  vae.stored = Dtype::kFp32;
  vae.parameters = GB / 4;
  vae.stored_bytes = GB;
  r.components = {te, dit, vae};
  r.stages = {{"text", RunStage::kTextEncode, "te"},
              {"denoise", RunStage::kDenoise, "dit"},
              {"decode", RunStage::kDecode, "vae"}};
  r.default_width = 64;
  r.default_height = 64;
  r.default_frames = 5;
  r.activations = std::make_shared<FakeActivations>();
  return r;
}

OptimizationPlan plan_with(Residency residency, HostResidency host = HostResidency::kOnDemand) {
  OptimizationPlan p;
  p.device = "cuda:0";
  p.host_residency = host;
  for (const char* name : {"te", "dit", "vae"}) {
    ComponentPlan c;
    c.name = name;
    c.storage = c.compute = std::string(name) == "vae" ? Dtype::kFp32 : Dtype::kBf16;
    c.residency = residency;
    p.components.push_back(c);
  }
  return p;
}

Budget budget() {
  Budget b;
  b.device_capacity = 24 * GB;
  b.device_reserve = GB;
  b.host_capacity = 64 * GB;
  b.host_reserve = 4 * GB;
  return b;
}

const Workload kWork{64, 64, 5, false};

}  // namespace

TEST_CASE("weight bytes per dtype follow parameters and keep-fp32 parameters", "[optim]") {
  const auto m = model();
  const auto& dit = m.component("dit");
  CHECK(dit.bytes_at(Dtype::kBf16) == 20'200'000'000LL);      // as stored
  CHECK(dit.bytes_at(Dtype::kFp32) == 40'000'000'000LL);      // 4 B x 10e9
  CHECK(dit.split_at(Dtype::kBf16).second == 400'000'000LL);  // 1e8 keep-fp32 x 4 B
  CHECK(dit.split_at(Dtype::kBf16).first == 19'800'000'000LL);
  CHECK(m.component("te").bytes_at(Dtype::kFp32) == 20 * GB);
  CHECK(m.component("vae").bytes_at(Dtype::kBf16) == GB / 2);  // no keep-fp32 parameters
  // Blocks scale with the whole: fp32 doubles a bf16 block of a component without keep params.
  CHECK(m.component("te").max_block_at(Dtype::kFp32) == 4 * GB);
  CHECK(m.component("te").non_block_at(Dtype::kFp32) == 4 * GB);
}

TEST_CASE("resident plans hold every component in every stage", "[optim]") {
  const auto m = model();
  const auto e = estimate_memory(m, kWork, plan_with(Residency::kWholeRun), budget());
  const std::int64_t weights = 10 * GB + 20'200'000'000LL + GB;
  CHECK(e.stage("text").device_total == weights + 1 * GB + GB);
  CHECK(e.stage("denoise").device_total == weights + 7 * GB + GB);
  CHECK(e.stage("decode").device_total == weights + 3 * GB + GB);
  CHECK(e.device_peak == weights + 8 * GB);
  CHECK(e.device_peak_stage == "denoise");
  CHECK_FALSE(e.device_fits());
  // Host: everything is loaded before the first stage, one component at a time.
  CHECK(e.stage("text").host_total == 20'200'000'000LL + kHostProcessBaseline + 4 * GB);
  CHECK(e.stage("denoise").host_total == kHostProcessBaseline + 4 * GB);
  CHECK(e.stage("denoise").device_half_weights == 10 * GB + 19'800'000'000LL);
  CHECK(e.stage("denoise").device_fp32_weights == 400'000'000LL + GB);
}

TEST_CASE("model offload holds only the running component", "[optim]") {
  const auto m = model();
  const auto e = estimate_memory(m, kWork, plan_with(Residency::kDuringUse), budget());
  CHECK(e.stage("text").device_total == 10 * GB + 1 * GB + GB);
  CHECK(e.stage("denoise").device_total == 20'200'000'000LL + 7 * GB + GB);
  CHECK(e.stage("decode").device_total == GB + 3 * GB + GB);
  CHECK(e.device_peak_stage == "denoise");
  CHECK_FALSE(e.device_fits());  // 28.2 GB > 24 GB
  // On demand: each component passes through host RAM at its load, then is dropped.
  CHECK(e.stage("denoise").host_total == 20'200'000'000LL + kHostProcessBaseline + 4 * GB);
  // While a VAE runs, large blocks bypass the heap: it retains less (kHostVaeAllocatorRetention).
  CHECK(e.stage("decode").host_total ==
        GB + GB / 2 + kHostCodeBaseline + kHostVaeAllocatorRetention + 4 * GB);
  // Keeping all in host RAM: every stage holds all weights.
  const auto all =
      estimate_memory(m, kWork, plan_with(Residency::kDuringUse, HostResidency::kAll), budget());
  CHECK(all.stage("text").host_total == 31'200'000'000LL + kHostProcessBaseline + 4 * GB);
}

TEST_CASE("streaming holds the non-block part, k blocks and the blocks in flight", "[optim]") {
  const auto m = model();
  auto p = plan_with(Residency::kDuringUse);
  auto& dit = p.component("dit");
  dit.residency = Residency::kStreamed;
  dit.blocks_resident = 3;
  dit.prefetch = 1;
  auto e = estimate_memory(m, kWork, p, budget());
  const std::int64_t resident = 1'200'000'000LL + 3 * 1'900'000'000LL;
  const std::int64_t in_flight = 2 * 1'900'000'000LL;  // running + 1 prefetched
  CHECK(e.stage("denoise").device_total == resident + in_flight + 7 * GB + GB);
  CHECK(e.stage("denoise").device_bytes(MemoryItem::kWorkspace) == in_flight + 2 * GB);
  // The pinned host copy lives through the component's stage.
  CHECK(e.stage("denoise").host_total == 20'200'000'000LL + kHostProcessBaseline + 4 * GB);
  // k = 9 of 10: only one block can be in flight.
  dit.blocks_resident = 9;
  e = estimate_memory(m, kWork, p, budget());
  CHECK(e.stage("denoise").device_total == 1'200'000'000LL + 10 * 1'900'000'000LL + 7 * GB + GB);
}

TEST_CASE("a CPU stage puts its activations in host RAM, a CPU plan has no device", "[optim]") {
  const auto m = model();
  auto p = plan_with(Residency::kDuringUse);
  p.component("te").placement = Placement::kCpu;
  auto e = estimate_memory(m, kWork, p, budget());
  CHECK(e.stage("text").device_total == GB);  // the reserve only
  CHECK(e.stage("text").on_cpu);
  CHECK(e.stage("text").host_total == 10 * GB + 1 * GB + kHostProcessBaseline + 4 * GB);

  OptimizationPlan cpu = plan_with(Residency::kDuringUse);
  cpu.device = "cpu";
  for (auto& c : cpu.components) c.placement = Placement::kCpu;
  Budget b = budget();
  b.device_capacity = b.device_reserve = 0;
  e = estimate_memory(m, kWork, cpu, b);
  CHECK(e.device_peak == 0);
  CHECK(e.stage("denoise").host_total == 20'200'000'000LL + 7 * GB + kHostProcessBaseline + 4 * GB);
}

TEST_CASE("the independence report lists where components run and the fallbacks", "[optim]") {
  auto m = model();
  m.components[2].can_run_on_device = true;
  const Budget b = budget();
  const auto report = analyze_independence(m, &b);
  REQUIRE(report.components.size() == 3);
  CHECK(report.components[0].devices == std::vector<std::string>{"cpu", "cuda"});
  CHECK(report.components[0].fits_device_alone);  // 10 GB <= 23 GB
  CHECK(report.components[1].fits_device_alone);  // 20.2 GB <= 23 GB
  CHECK(report.components[1].blocks == 10);
  std::vector<std::string> names;
  for (const auto& f : report.fallbacks) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"text encoder on the CPU", "cached text embeddings",
                                          "VAE on the CPU", "decode later",
                                          "block streaming of dit"});
}

TEST_CASE("mapped weights a run without an image never reads are left out: the VAE's encoder",
          "[optim]") {
  auto m = model();
  m.mapped_weights = true;
  m.components[2].encode_only_bytes = 300'000'000;
  m.stages.insert(m.stages.begin() + 1, {"encode", RunStage::kImageEncode, "vae"});
  OptimizationPlan cpu = plan_with(Residency::kDuringUse, HostResidency::kAll);
  cpu.device = "cpu";
  for (auto& c : cpu.components) c.placement = Placement::kCpu;
  Budget b = budget();
  b.device_capacity = b.device_reserve = 0;
  const auto vae_weights = [](const StageEstimate& s) {
    for (const auto& i : s.host) {
      if (i.name == "vae weights") return i.bytes;
    }
    FAIL("no vae weights item in " << s.name);
    return std::int64_t{0};
  };
  // Text only: the 1 GB VAE file is mapped, its 0.3 GB encoder never paged in.
  CHECK(vae_weights(estimate_memory(m, kWork, cpu, b).stage("decode")) == GB - 300'000'000);
  // With an image the encode stage reads the encoder, and its pages stay mapped.
  Workload image = kWork;
  image.image = true;
  const auto with_image = estimate_memory(m, image, cpu, b);
  CHECK(vae_weights(with_image.stage("encode")) == GB);
  CHECK(vae_weights(with_image.stage("decode")) == GB);
  // Weights copied into RAM (not mapped) are held whole either way.
  m.mapped_weights = false;
  CHECK(vae_weights(estimate_memory(m, kWork, cpu, b).stage("decode")) == GB);
}
