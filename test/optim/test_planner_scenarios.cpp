// The planner on the real planning profiles (models/profiles/) and simulated machines: the
// high / medium / low / minimal memory scenarios of the specification, the invariants every
// plan must keep (peaks within the budgets, user settings untouched, a reason per choice) and
// the bias of the config keys.
#include <torch/version.h>

#include <algorithm>
#include <map>

#include "models/wan22/memory_model.h"
#include "optim/machine.h"
#include "optim/planner.h"
#include "optim/precision.h"
#include "runtime/error.h"
#include "support/catch.h"

using namespace wanrt;

namespace {

constexpr std::int64_t kGiB = 1LL << 30;

const ModelRequirements& profile(const std::string& name) {
  static std::map<std::string, ModelRequirements> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache
             .emplace(name, wan22::wan_requirements_from_path(std::string(WANRT_SOURCE_DIR) +
                                                              "/models/profiles/" + name + ".yaml"))
             .first;
  }
  return it->second;
}

SystemResources machine(std::int64_t vram_gib, std::int64_t ram_gib, double cc = 8.9,
                        bool cpu_bf16 = true) {
  SystemResources base;
  base.cpu_cores = 16;
  MachineOverrides o;
  if (vram_gib > 0) {
    o.vram = vram_gib * kGiB;
    o.gpu_cc = cc;
  } else {
    o.gpu_count = 0;
  }
  o.ram = ram_gib * kGiB;
  o.cpu_bf16 = cpu_bf16;
  return simulate_resources(base, o);
}

PlanOutcome plan(const std::string& model, const SystemResources& res, const PlanSettings& s = {},
                 const OptimizationConfig& cfg = {}, Workload w = {}) {
  const auto& req = profile(model);
  if (w.frames == 0) w = req.default_workload();
  return plan_optimizations(req, res, w, s, cfg);
}

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

// The invariants of every plan: a feasible one fits both budgets in every stage; an
// infeasible one says what would fit; every plan explains its settings.
void check_invariants(const PlanOutcome& o) {
  const auto& e = o.estimate;
  if (o.plan.feasible) {
    CHECK(e.device_peak <= e.budget.device_capacity);
    CHECK(e.host_peak <= e.budget.host_capacity);
    for (const auto& st : e.stages) {
      CAPTURE(st.name);
      CHECK(st.device_total <= e.budget.device_capacity);
      CHECK(st.host_total <= e.budget.host_capacity);
    }
    CHECK(o.plan.guidance.empty());
  } else {
    CHECK(o.plan.rung == rung::kInfeasible);
    CHECK_FALSE(o.plan.guidance.empty());
    CHECK((mentions(o.plan.guidance, "RAM") || mentions(o.plan.guidance, "GPU")));
  }
  std::vector<std::string> settings;
  for (const auto& d : o.plan.reasons) {
    settings.push_back(d.setting);
    CHECK_FALSE(d.reason.empty());
  }
  for (const char* s :
       {"device", "dtype", "attention", "offload", "vae", "frame_chunking", "host_residency"}) {
    CAPTURE(s);
    CHECK(std::find(settings.begin(), settings.end(), s) != settings.end());
  }
}

}  // namespace

TEST_CASE("scenario matrix: every plan fits its budgets or says what would", "[optim]") {
  for (const std::string model : {"wan2.2-ti2v-5b", "wan2.2-t2v-a14b"}) {
    for (std::int64_t vram : {80, 24, 12, 8, 0}) {
      for (std::int64_t ram : {32, 64, 128}) {
        CAPTURE(model, vram, ram);
        check_invariants(plan(model, machine(vram, ram)));
      }
    }
  }
}

TEST_CASE("high memory (80 GB): TI2V stays resident, A14B offloads the inactive expert",
          "[optim]") {
  const auto ti2v = plan("wan2.2-ti2v-5b", machine(80, 64));
  CHECK(ti2v.plan.feasible);
  CHECK(ti2v.plan.rung == rung::kResident);
  CHECK(ti2v.plan.offload == OffloadPolicy::kNone);

  const auto a14b = plan("wan2.2-t2v-a14b", machine(80, 64));
  REQUIRE(a14b.plan.feasible);
  CHECK(a14b.plan.offload == OffloadPolicy::kModel);
  // Each denoising stage holds one expert only.
  for (const auto& st : a14b.estimate.stages) {
    if (st.name.rfind("denoise:", 0) != 0) continue;
    const std::string other = st.component == "dit_high_noise" ? "dit_low_noise" : "dit_high_noise";
    for (const auto& item : st.device) CHECK(item.name.find(other) == std::string::npos);
  }
  // 64 GB of RAM cannot hold both experts and the text encoder (65 GiB): on demand.
  CHECK(a14b.plan.host_residency == HostResidency::kOnDemand);
  CHECK(plan("wan2.2-t2v-a14b", machine(80, 128)).plan.host_residency == HostResidency::kAll);
}

TEST_CASE("medium memory (24 GB): block streaming for A14B, offload for TI2V", "[optim]") {
  const auto a14b = plan("wan2.2-t2v-a14b", machine(24, 64));
  REQUIRE(a14b.plan.feasible);
  CHECK(a14b.plan.offload == OffloadPolicy::kSequential);
  CHECK(a14b.plan.blocks_resident > 0);
  CHECK(a14b.plan.blocks_resident < 40);
  // The largest k: one more resident block would not fit the denoising stage.
  auto more = a14b.plan;
  for (auto& c : more.components) {
    if (c.name.rfind("dit", 0) == 0) c.blocks_resident += 1;
  }
  const auto bigger =
      estimate_memory(profile("wan2.2-t2v-a14b"), profile("wan2.2-t2v-a14b").default_workload(),
                      more, a14b.estimate.budget);
  CHECK(bigger.stage("denoise:dit_high_noise").device_total > bigger.budget.device_capacity);

  const auto ti2v = plan("wan2.2-ti2v-5b", machine(24, 64));
  REQUIRE(ti2v.plan.feasible);
  CHECK(ti2v.plan.offload != OffloadPolicy::kNone);
}

TEST_CASE("low and minimal memory (12 / 8 GB): streaming, chunking or guidance", "[optim]") {
  const auto a14b12 = plan("wan2.2-t2v-a14b", machine(12, 64));
  REQUIRE(a14b12.plan.feasible);
  CHECK((a14b12.plan.offload == OffloadPolicy::kSequential ||
         a14b12.plan.offload == OffloadPolicy::kFull));
  const auto a14b8 = plan("wan2.2-t2v-a14b", machine(8, 32));
  const std::string r = a14b8.plan.rung;
  CHECK((r == rung::kFullStreaming || r == rung::kFrameChunking || r == rung::kInfeasible));
  const auto ti2v8 = plan("wan2.2-ti2v-5b", machine(8, 32));
  REQUIRE(ti2v8.plan.feasible);
  CHECK((ti2v8.plan.offload == OffloadPolicy::kSequential ||
         ti2v8.plan.offload == OffloadPolicy::kFull));
}

TEST_CASE("no GPU: the CPU plan fits RAM or says how much RAM would", "[optim]") {
  const auto ti2v = plan("wan2.2-ti2v-5b", machine(0, 64));
  REQUIRE(ti2v.plan.feasible);
  CHECK(ti2v.plan.device == "cpu");
  CHECK(ti2v.plan.host_residency == HostResidency::kAll);  // disk only when RAM demands it
  CHECK(ti2v.estimate.device_peak == 0);
  // Format 2 weights are memory-mapped: the A14B experts (27 GiB each) page in block by block,
  // so 32 GB of RAM is enough; with the weights read onto the heap (format 1) it is not.
  const auto a14b = plan("wan2.2-t2v-a14b", machine(0, 32));
  REQUIRE(a14b.plan.feasible);
  CHECK(a14b.plan.host_residency == HostResidency::kDisk);
  CHECK(a14b.plan.component("dit_high_noise").residency == Residency::kStreamed);
  CHECK(a14b.estimate.host_peak <= 32 * kGiB);
  const auto& expert = profile("wan2.2-t2v-a14b").component("dit_high_noise");
  std::int64_t expert_in_ram = 0;
  for (const auto& item : a14b.estimate.stage("denoise:dit_high_noise").host) {
    if (item.name == "dit_high_noise weights") expert_in_ram = item.bytes;
  }
  CHECK(expert_in_ram > 0);
  CHECK(expert_in_ram < expert.stored_bytes / 4);
  ModelRequirements heap = profile("wan2.2-t2v-a14b");
  heap.mapped_weights = false;
  const auto v1 = plan_optimizations(heap, machine(0, 32), heap.default_workload(), {}, {});
  CHECK_FALSE(v1.plan.feasible);
  CHECK(mentions(v1.plan.guidance, "of RAM would fit"));
  // Without avx512_bf16/AMX the CPU prefers fp32 and falls back to bf16 storage when short.
  const auto fp32 = plan("wan2.2-ti2v-5b", machine(0, 128, 0, false));
  CHECK(fp32.plan.dtype == Dtype::kFp32);
  const auto half = plan("wan2.2-ti2v-5b", machine(0, 24, 0, false));
  REQUIRE(half.plan.feasible);
  CHECK(half.plan.component("dit").storage == Dtype::kBf16);
  CHECK(half.plan.component("dit").compute == Dtype::kFp32);
}

TEST_CASE("acceptance: A14B 720p fits 24 GiB + 64 GiB, not 8 GiB + 16 GiB", "[optim]") {
  const Workload w{1280, 720, 81, false};
  const auto fits = plan("wan2.2-t2v-a14b", machine(24, 64), {}, {}, w);
  CHECK(fits.plan.feasible);
  const auto no = plan("wan2.2-t2v-a14b", machine(8, 16), {}, {}, w);
  CHECK_FALSE(no.plan.feasible);
  CHECK(mentions(no.plan.guidance, "host RAM is short"));
  CHECK(mentions(no.plan.guidance, "of RAM would fit"));
}

TEST_CASE("settings the user gives are never changed", "[optim]") {
  PlanSettings s;
  s.offload = OffloadPolicy::kSequential;
  s.blocks_resident = 10;
  s.prefetch = 2;
  s.text_encoder = TextEncoderPlacement::kCpu;
  s.dtype = Dtype::kBf16;
  s.attention = AttentionKind::kSdpa;
  s.frame_chunk = 0;
  for (std::int64_t vram : {80, 24, 12}) {
    CAPTURE(vram);
    const auto o = plan("wan2.2-t2v-a14b", machine(vram, 128), s);
    CHECK(o.plan.offload == OffloadPolicy::kSequential);
    CHECK(o.plan.dtype == Dtype::kBf16);
    CHECK(o.plan.attention == AttentionKind::kSdpa);
    CHECK(o.plan.text_encoder == TextEncoderPlacement::kCpu);
    CHECK(o.plan.component("text_encoder").placement == Placement::kCpu);
    CHECK_FALSE(o.plan.frame_chunking.enabled);
    for (const char* expert : {"dit_high_noise", "dit_low_noise"}) {
      CHECK(o.plan.component(expert).blocks_resident == 10);
      CHECK(o.plan.component(expert).prefetch == 2);
    }
    CHECK(o.plan.user_set.size() == 7);
    for (const auto& d : o.plan.reasons) {
      if (d.setting == "offload" || d.setting == "dtype" || d.setting == "attention")
        CHECK(d.user_set);
    }
  }
  // A user-set policy that cannot fit is reported, not replaced.
  PlanSettings none;
  none.offload = OffloadPolicy::kNone;
  const auto o = plan("wan2.2-t2v-a14b", machine(24, 64), none);
  CHECK_FALSE(o.plan.feasible);
  CHECK(o.plan.offload == OffloadPolicy::kNone);
  CHECK(mentions(o.plan.guidance, "the settings you gave (offload)"));
}

TEST_CASE("config keys bias the ladder", "[optim]") {
  OptimizationConfig memory;
  memory.performance_priority = PerformancePriority::kMemory;
  const auto m = plan("wan2.2-ti2v-5b", machine(80, 64), {}, memory);
  CHECK(m.plan.feasible);
  CHECK(m.plan.offload != OffloadPolicy::kNone);
  CHECK(m.plan.ladder.front().note.find("skipped") == 0);

  OptimizationConfig low;
  low.cpu_offload_threshold_mb = 200 * 1024;  // every device counts as low on memory
  CHECK(plan("wan2.2-ti2v-5b", machine(80, 64), {}, low).plan.offload != OffloadPolicy::kNone);

  OptimizationConfig speed;
  speed.performance_priority = PerformancePriority::kSpeed;
  const auto fast = plan("wan2.2-t2v-a14b", machine(24, 64), {}, speed);
  REQUIRE(fast.plan.offload == OffloadPolicy::kSequential);
  CHECK(fast.plan.prefetch == 2);
  CHECK(plan("wan2.2-t2v-a14b", machine(24, 64)).plan.prefetch == 1);

  // Aggressive: frame chunking is tried before full streaming.
  OptimizationConfig aggressive;
  aggressive.enable_aggressive_optimization = true;
  const auto a = plan("wan2.2-t2v-a14b", machine(8, 64), {}, aggressive);
  const auto first = [&](const char* name) {
    const auto& l = a.plan.ladder;
    return std::find_if(l.begin(), l.end(), [&](const LadderStep& s) { return s.rung == name; }) -
           l.begin();
  };
  CHECK(first(rung::kFrameChunking) < first(rung::kFullStreaming));

  OptimizationConfig small_chunks;
  small_chunks.max_chunk_size = 3;
  const auto c = plan("wan2.2-t2v-a14b", machine(12, 64), {}, small_chunks);
  if (c.plan.frame_chunking.enabled) CHECK(c.plan.frame_chunking.window <= 3);
}

TEST_CASE("precision from the simulated GPU and refusals", "[optim]") {
  CHECK(plan("wan2.2-ti2v-5b", machine(24, 64, 7.5)).plan.dtype == Dtype::kFp16);
  const auto old = plan("wan2.2-ti2v-5b", machine(24, 64, 6.1));
  CHECK(old.plan.dtype == Dtype::kFp32);
  PlanSettings bf16;
  bf16.dtype = Dtype::kBf16;
  CHECK_THROWS_AS(plan("wan2.2-ti2v-5b", machine(24, 64, 7.5), bf16), Error);
  PlanSettings fp16_cpu;
  fp16_cpu.dtype = Dtype::kFp16;
  CHECK_THROWS_AS(plan("wan2.2-ti2v-5b", machine(0, 64), fp16_cpu), Error);
}

TEST_CASE("invalid workloads are usage errors with the nearest valid values", "[optim]") {
  try {
    plan("wan2.2-t2v-a14b", machine(24, 64), {}, {}, Workload{1280, 720, 80, false});
    FAIL("80 frames accepted");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kUsage);
    CHECK(e.hint() == "try --frames 77 or 81");
  }
  CHECK_THROWS_AS(plan("wan2.2-ti2v-5b", machine(24, 64), {}, {}, Workload{1280, 720, 121, false}),
                  Error);  // 720 is not a multiple of 32
  CHECK_THROWS_AS(plan("wan2.2-t2v-a14b", machine(24, 64), {}, {}, Workload{1280, 720, 81, true}),
                  Error);  // T2V takes no image
}

TEST_CASE("the VAE decodes in fp32 unless the user sets --vae-dtype", "[optim]") {
  // The probe agrees with what LibTorch's releases say: bf16 nearest-exact upsampling on the
  // CPU came with 2.x; 1.13 lacks it.
  CHECK(cpu_vae_bf16_supported() == (TORCH_VERSION_MAJOR >= 2));
  const auto fp32 = plan("wan2.2-ti2v-5b", machine(0, 64));
  REQUIRE(fp32.plan.feasible);
  CHECK(fp32.plan.component("vae").compute == Dtype::kFp32);
  CHECK(fp32.plan.component("dit").compute == Dtype::kBf16);
  CHECK_FALSE(fp32.plan.user_set.contains(Setting::kVaeDtype));

  PlanSettings s;
  s.vae_dtype = Dtype::kBf16;
  if (cpu_vae_bf16_supported()) {
    const auto bf16 = plan("wan2.2-ti2v-5b", machine(0, 64), s);
    REQUIRE(bf16.plan.feasible);
    CHECK(bf16.plan.component("vae").storage == Dtype::kBf16);
    CHECK(bf16.plan.component("vae").compute == Dtype::kBf16);
    CHECK(bf16.plan.user_set.contains(Setting::kVaeDtype));
    // Half the weights and activations of the decode.
    CHECK(bf16.estimate.stage("vae_decode").host_total <
          fp32.estimate.stage("vae_decode").host_total);
  } else {
    CHECK_THROWS_WITH(plan("wan2.2-ti2v-5b", machine(0, 64), s), Catch::Contains("nearest-exact"));
  }
  // fp16 cannot compute on the CPU; a GPU takes what the user gives.
  s.vae_dtype = Dtype::kFp16;
  CHECK_THROWS_WITH(plan("wan2.2-ti2v-5b", machine(0, 64), s), Catch::Contains("--vae-dtype fp16"));
  const auto gpu = plan("wan2.2-ti2v-5b", machine(80, 128), s);
  CHECK(gpu.plan.component("vae").compute == Dtype::kFp16);
  // The memory rung that halves the VAE on a short GPU leaves a user-set fp32 alone.
  OptimizationConfig aggressive;
  aggressive.enable_aggressive_optimization = true;
  s.vae_dtype = Dtype::kFp32;
  for (std::int64_t vram : {24, 8}) {
    CAPTURE(vram);
    const auto o = plan("wan2.2-ti2v-5b", machine(vram, 64), s, aggressive);
    CHECK(o.plan.component("vae").compute == Dtype::kFp32);
  }
}
