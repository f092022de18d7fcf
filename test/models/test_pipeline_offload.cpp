// The pipeline under memory plans on the tiny bundles: every offload policy gives the plain
// pipeline's frames bit for bit with a smaller ledger peak; an imposed --vram-budget makes the
// run step its plan down (automatic fallback) and still give the same frames; half precision
// stays close to fp32 without being equal.
#include <fmt/format.h>

#include <algorithm>
#include "support/catch.h"
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/wan22/pipeline.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/tracking_allocator.h"
#include "support/tiny_bundles.h"

using wanrt::ComponentPlan;
using wanrt::Dtype;
using wanrt::OffloadPolicy;
using wanrt::OptimizationPlan;
using wanrt::Residency;
using wanrt::wan22::GenerateRequest;
using wanrt::wan22::GenerateResult;
using wanrt::wan22::Pipeline;

namespace {

GenerateRequest request_for(const Pipeline& pipeline) {
  GenerateRequest request;
  request.prompt = "a lighthouse in a storm";
  request.seed = 11;
  request.frames = 5;
  request.steps = 3;
  if (pipeline.spec().task == "i2v") {
    request.image = at::full({64, 48, 3}, 128, at::kByte);
  }
  return request;
}

std::unique_ptr<Pipeline> load(const std::string& bundle,
                               const std::optional<OptimizationPlan>& plan = std::nullopt,
                               std::int64_t budget = 0, bool fallback = true) {
  wanrt::wan22::LoadOptions options;
  options.threads = 1;
  options.plan = plan;
  options.vram_budget = budget;
  options.fallback = fallback;
  return Pipeline::load(wanrt_test::tiny_bundle(bundle), options);
}

bool is_denoiser(const std::string& name) { return name != "text_encoder" && name != "vae"; }

// The resident plan with `policy` applied as docs/architecture.md (offload policies) describes it.
OptimizationPlan with_policy(OptimizationPlan plan, OffloadPolicy policy, int k, int prefetch) {
  plan.offload = policy;
  for (ComponentPlan& c : plan.components) {
    switch (policy) {
      case OffloadPolicy::kNone:
        c.residency = Residency::kWholeRun;
        break;
      case OffloadPolicy::kModel:
        c.residency = Residency::kDuringUse;
        break;
      case OffloadPolicy::kSequential:
        c.residency = is_denoiser(c.name) ? Residency::kStreamed : Residency::kDuringUse;
        break;
      case OffloadPolicy::kFull:
        c.residency = c.name == "vae" ? Residency::kDuringUse : Residency::kStreamed;
        break;
    }
    if (c.residency == Residency::kStreamed) {
      c.blocks_resident = policy == OffloadPolicy::kFull ? 0 : k;
      c.prefetch = prefetch;
    }
  }
  return plan;
}

// Stored bytes of all components of the bundle (the manifest's sizes, independent of the ledger).
std::int64_t total_bytes(const Pipeline& p) {
  std::int64_t total = 0;
  for (const auto& c : p.manifest().components) total += c.bytes;
  return total;
}

std::int64_t largest_component(const Pipeline& p) {
  std::int64_t largest = 0;
  for (const auto& c : p.manifest().components) largest = std::max(largest, c.bytes);
  return largest;
}

std::int64_t component_bytes(const Pipeline& p, const std::string& name) {
  for (const auto& c : p.manifest().components) {
    if (c.name == name) return c.bytes;
  }
  FAIL("no component " << name);
  return 0;
}

// A budget below the resident plan that the VAE (not streamable) still fits in, and that a
// DiT does not fit in whole: the largest of the VAE and three quarters of the largest DiT.
std::int64_t tight_budget(const Pipeline& p) {
  std::int64_t dit = 0;
  for (const auto& c : p.manifest().components) {
    if (is_denoiser(c.name)) dit = std::max(dit, c.bytes);
  }
  return std::max(component_bytes(p, "vae"), dit * 3 / 4);
}

// The most bytes each component held at once, replayed from the ledger's events.
std::map<std::string, std::int64_t> per_component_peak(const wanrt::ResidencyLedger& ledger) {
  std::map<std::string, std::int64_t> held, peak;
  for (const auto& e : ledger.events()) {
    held[e.component] += e.kind == wanrt::LedgerEvent::kAcquire ? e.bytes : -e.bytes;
    peak[e.component] = std::max(peak[e.component], held[e.component]);
  }
  return peak;
}

}  // namespace

TEST_CASE("offload policies give the plain pipeline's frames bit for bit", "[models]") {
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  auto plain = load(bundle);
  const GenerateResult reference = plain->generate(request_for(*plain));
  const std::int64_t all = total_bytes(*plain);
  // Everything resident: the ledger holds exactly the stored bytes of every component.
  CHECK(reference.ledger_peak_bytes == all);
  CHECK(reference.fallbacks.empty());

  const auto [policy, k, prefetch] = GENERATE(table<OffloadPolicy, int, int>(
      {{OffloadPolicy::kModel, 0, 0},
       {OffloadPolicy::kSequential, 1, 1},
       {OffloadPolicy::kSequential, 0, 0},
       {OffloadPolicy::kFull, 0, 1}}));
  INFO(bundle << " offload " << wanrt::offload_name(policy) << " k " << k << " prefetch "
              << prefetch);
  const OptimizationPlan plan =
      with_policy(wanrt::wan22::resident_plan(plain->manifest()), policy, k, prefetch);
  auto offloaded = load(bundle, plan);
  const GenerateResult result = offloaded->generate(request_for(*offloaded));
  CHECK(at::equal(result.frames, reference.frames));
  CHECK(at::equal(result.latent, reference.latent));
  CHECK(result.fallbacks.empty());
  // Every policy here holds one component at a time; a streamed DiT never holds all of itself.
  CHECK(result.ledger_peak_bytes <= largest_component(*plain));
  CHECK(result.ledger_peak_bytes < all);
  const auto peaks = per_component_peak(offloaded->residency().ledger());
  for (const auto& c : plain->manifest().components) {
    INFO("component " << c.name);
    REQUIRE(peaks.count(c.name) == 1);
    CHECK(peaks.at(c.name) <= c.bytes);
    const bool streamed = policy == OffloadPolicy::kFull ? c.staged() && c.name != "vae"
                                                          : policy == OffloadPolicy::kSequential &&
                                                                is_denoiser(c.name);
    if (streamed) {
      // The shell, the k resident blocks, the running one and `prefetch` ahead (manifest sizes).
      const int kk = policy == OffloadPolicy::kFull ? 0 : k;
      const int n = static_cast<int>(c.block_bytes.size());
      const int held = std::min(n, kk + prefetch + 1);
      const std::int64_t block = *std::max_element(c.block_bytes.begin(), c.block_bytes.end());
      CHECK(peaks.at(c.name) <= c.non_block_bytes + held * block);
      if (held < n) CHECK(peaks.at(c.name) < c.bytes);
    }
  }
  // Nothing is left on the device after the run.
  CHECK(offloaded->residency().ledger().current() == 0);
}

TEST_CASE("a vram budget below the resident plan makes the run fall back, same frames",
          "[models]") {
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  auto plain = load(bundle);
  const GenerateResult reference = plain->generate(request_for(*plain));
  const std::int64_t budget = tight_budget(*plain);
  REQUIRE(budget < reference.ledger_peak_bytes);
  auto limited = load(bundle, std::nullopt, budget);
  const GenerateResult result = limited->generate(request_for(*limited));
  CHECK(at::equal(result.frames, reference.frames));
  REQUIRE_FALSE(result.fallbacks.empty());
  CHECK(result.ledger_peak_bytes <= budget);
  CHECK(limited->residency().plan().offload != OffloadPolicy::kNone);
  for (const auto& step : result.fallbacks) {
    CHECK_FALSE(step.from.empty());
    CHECK_FALSE(step.to.empty());
    CHECK(step.error.find("budget") != std::string::npos);
  }
}

TEST_CASE("a vram budget nothing fits in is an out-of-memory error saying what would",
          "[models]") {
  auto tiny = load("tiny-ti2v", std::nullopt, 1024);
  try {
    tiny->generate(request_for(*tiny));
    FAIL("expected an out-of-memory error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kOutOfMemory);
    CHECK_THAT(e.what(), Catch::Contains("smallest"));
    CHECK_THAT(e.hint(), Catch::Contains("--vram-budget"));
  }
  CHECK(tiny->residency().ledger().current() == 0);
}

TEST_CASE("without fallback the budget error surfaces at once", "[models]") {
  auto plain = load("tiny-ti2v");
  auto limited = load("tiny-ti2v", std::nullopt, tight_budget(*plain), false);
  try {
    limited->generate(request_for(*limited));
    FAIL("expected an out-of-memory error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kOutOfMemory);
    CHECK_THAT(e.what(), Catch::Contains("budget"));
  }
  CHECK(limited->residency().fallbacks().empty());
}

TEST_CASE("bf16 DiT and text encoder stay close to fp32 on the CPU", "[models]") {
  auto plain = load("tiny-ti2v");
  const GenerateResult reference = plain->generate(request_for(*plain));
  OptimizationPlan plan = wanrt::wan22::resident_plan(plain->manifest());
  plan.dtype = Dtype::kBf16;
  for (ComponentPlan& c : plan.components) {
    if (c.name != "vae") c.storage = c.compute = Dtype::kBf16;
  }
  auto half = load("tiny-ti2v", plan);
  const GenerateResult result = half->generate(request_for(*half));
  // The cast really happened: bf16 rounding (8-bit mantissa) changes the latent.
  CHECK_FALSE(at::equal(result.latent, reference.latent));
  // Latents are O(1) noise-level values; bf16 weights and matmuls with fp32 norms and
  // residuals keep the relative error of 3 steps at the percent level.
  const double rel = (result.latent - reference.latent).norm().item<double>() /
                     reference.latent.norm().item<double>();
  INFO("relative L2 error of the latent: " << rel);
  CHECK(rel < 0.05);
  // The ledger counts the bf16 weights: less than the fp32 resident plan.
  CHECK(result.ledger_peak_bytes < reference.ledger_peak_bytes);
}

TEST_CASE("host residency on_demand loads each component at first use and frees it after",
          "[models]") {
  // Tracked bytes are process-wide: each pipeline's peaks are taken against what was live
  // before it was loaded, and the plain one is gone before the lazy one loads. The tracker
  // sees heap memory: the format 1 bundle, whose weights are read onto the heap (format 2
  // maps them from its files).
  wanrt::install_cpu_tracking();
  const std::int64_t plain_base = wanrt::cpu_tracked_bytes();
  auto plain = load("tiny-t2v-moe-v1");
  const GenerateResult reference = plain->generate(request_for(*plain));
  OptimizationPlan plan = wanrt::wan22::resident_plan(plain->manifest());
  plan.host_residency = wanrt::HostResidency::kOnDemand;
  const std::int64_t saved =
      component_bytes(*plain, "text_encoder") + component_bytes(*plain, "vae");
  plain.reset();
  const std::int64_t lazy_base = wanrt::cpu_tracked_bytes();
  auto lazy = load("tiny-t2v-moe-v1", plan);
  const GenerateResult result = lazy->generate(request_for(*lazy));
  CHECK(at::equal(result.frames, reference.frames));
  // Nothing is kept after the run; a second run loads again and gives the same frames.
  CHECK_FALSE(lazy->residency().attached("text_encoder"));
  CHECK_FALSE(lazy->residency().attached("vae"));
  CHECK(at::equal(lazy->generate(request_for(*lazy)).frames, reference.frames));
  // The ledger sees each component come and go in the order of use: the text encoder is gone
  // before the first expert arrives, the high-noise expert before the low-noise one.
  std::vector<std::string> order;
  for (const auto& e : lazy->residency().ledger().events()) {
    const std::string tag = (e.kind == wanrt::LedgerEvent::kAcquire ? "+" : "-") + e.component;
    if (order.empty() || order.back() != tag) order.push_back(tag);
  }
  const std::vector<std::string> one_run = {"+text_encoder",  "-text_encoder",  "+dit_high_noise",
                                            "-dit_high_noise", "+dit_low_noise", "-dit_low_noise",
                                            "+vae",            "-vae"};
  std::vector<std::string> two_runs = one_run;
  two_runs.insert(two_runs.end(), one_run.begin(), one_run.end());
  CHECK(order == two_runs);
  // Host memory while denoising: the text encoder and the VAE are not loaded then, so the
  // tracked peak of that stage is lower by at least their stored bytes (the manifest's).
  auto stage_peak = [](const GenerateResult& r, const std::string& stage) {
    for (const auto& t : r.times) {
      if (t.stage == stage) return t.peak_tracked_bytes;
    }
    FAIL("no stage " << stage);
    return std::int64_t{0};
  };
  const std::int64_t plain_peak = stage_peak(reference, "denoise") - plain_base;
  const std::int64_t lazy_peak = stage_peak(result, "denoise") - lazy_base;
  INFO("denoise peak above the baseline: plain " << plain_peak << ", on demand " << lazy_peak);
  CHECK(plain_peak - lazy_peak >= saved);
}

TEST_CASE("host residency disk pages blocks in while they run and drops them after",
          "[models]") {
  auto plain = load("tiny-t2v-moe");
  const GenerateResult reference = plain->generate(request_for(*plain));
  const int prefetch = 0;  // the tiny DiTs have 2 blocks: one at a time is a strict bound
  OptimizationPlan plan =
      with_policy(wanrt::wan22::resident_plan(plain->manifest()), OffloadPolicy::kSequential, 0,
                  prefetch);
  plan.host_residency = wanrt::HostResidency::kDisk;
  auto paged = load("tiny-t2v-moe", plan);
  const GenerateResult result = paged->generate(request_for(*paged));
  CHECK(at::equal(result.frames, reference.frames));

  // The bound each denoiser's stage must keep, from the module's own parameters (not from
  // what the pipeline recorded): its parameters outside the blocks plus the running block and
  // those read ahead.
  const auto bundle = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-t2v-moe"));
  std::map<std::string, std::int64_t> bound, whole;
  for (const auto& entry : bundle.components) {
    const wanrt::Component c = wanrt::Component::load(bundle, entry.name);
    std::int64_t total = 0, largest = 0;
    for (const auto& p : c.module().parameters()) total += p.numel() * p.element_size();
    std::int64_t in_blocks = 0;
    for (const auto& b : c.blocks()) {
      std::int64_t n = 0;
      for (const auto& p : b.parameters()) n += p.numel() * p.element_size();
      in_blocks += n;
      largest = std::max(largest, n);
    }
    whole[entry.name] = total;
    bound[entry.name] = is_denoiser(entry.name) ? total - in_blocks + (1 + prefetch) * largest : total;
  }
  // Every event in the host column stays within the bound of the component that is running
  // (components run one after another), and nothing is left paged in after the run.
  const auto events = paged->residency().ledger().events();
  std::int64_t peak = 0;
  std::map<std::string, std::int64_t> most;
  for (const auto& e : events) {
    INFO(e.component << " " << e.unit << " host total " << e.host_total);
    CHECK(e.host_total <= bound.at(e.component));
    peak = std::max(peak, e.host_total);
    most[e.component] = std::max(most[e.component], e.host_total);
  }
  REQUIRE_FALSE(events.empty());
  CHECK(paged->residency().ledger().host_current() == 0);
  CHECK(paged->residency().ledger().host_peak() == peak);
  // A denoiser never had all its blocks in at once; the others were in whole while they ran.
  for (const std::string name : {"dit_high_noise", "dit_low_noise"}) {
    INFO(name);
    CHECK(most.at(name) < whole.at(name));
    CHECK(most.at(name) > 0);
  }
  CHECK(most.at("text_encoder") == whole.at("text_encoder"));
}
