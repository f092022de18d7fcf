// The offload policies as one mechanism (optim/residency_manager.h) on the tiny TI2V bundle's
// text encoder and DiT: for each policy the ledger's peak against a budget computed here from
// the modules' parameter sizes, the exact acquire/release sequence the policy table promises
// (written out by hand below), and staged outputs bit-identical to a run without offload. The
// weights are stored in bf16 and computed in fp32, so a block that runs without having been
// acquired (upcast) gives a different output. Then the automatic fallback (step_down).
#include "support/catch.h"
#include <cmath>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "optim/precision.h"
#include "optim/residency_manager.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/staged_executor.h"
#include "support/tiny_bundles.h"

using wanrt::Component;
using wanrt::ComponentPlan;
using wanrt::ComponentRole;
using wanrt::Dtype;
using wanrt::ErrorCategory;
using wanrt::LedgerEvent;
using wanrt::OptimizationPlan;
using wanrt::Placement;
using wanrt::Residency;
using wanrt::ResidencyManager;

namespace {

// Bytes of the parameters and buffers of `module` (each tensor once) by the module API.
std::int64_t bytes_of(const torch::jit::Module& module) {
  std::set<const c10::TensorImpl*> seen;
  std::int64_t total = 0;
  auto add = [&](const at::Tensor& t) {
    if (seen.insert(t.unsafeGetTensorImpl()).second) total += t.numel() * t.element_size();
  };
  for (const auto& p : module.named_parameters()) add(p.value);
  for (const auto& b : module.named_buffers()) add(b.value);
  return total;
}

// A component's fp32 sizes: everything outside the blocks, and each block.
struct Sizes {
  std::int64_t shell = 0, whole = 0, largest = 0;
  explicit Sizes(const Component& c) : whole(bytes_of(c.module())) {
    shell = whole;
    for (const auto& b : c.blocks()) {
      shell -= bytes_of(b);
      largest = std::max(largest, bytes_of(b));
    }
  }
};

struct Tiny {
  wanrt::BundleManifest m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  std::vector<at::Tensor> te_inputs, dit_inputs;
  Tiny() {
    at::manual_seed(3);
    const int vocab = m.architecture["text_encoder"]["vocab_size"].as<int>();
    const int text_len = m.architecture["dit"]["text_len"].as<int>();
    const int text_dim = m.architecture["dit"]["text_dim"].as<int>();
    const int in_dim = m.architecture["dit"]["in_dim"].as<int>();
    te_inputs = {at::randint(vocab, {1, text_len}, at::kLong), at::ones({1, text_len}, at::kLong)};
    dit_inputs = {at::randn({1, in_dim, 2, 4, 4}), at::full({1}, 600.0),
                  at::randn({1, text_len, text_dim})};
  }
  Component load(const std::string& name) const { return Component::load(m, name); }
  // The output of a run without offload: weights rounded to bf16 (keep-fp32 ones kept), fp32.
  at::Tensor reference(const std::string& name, const std::vector<at::Tensor>& inputs) const {
    Component c = load(name);
    wanrt::cast_module(c.module(), Dtype::kBf16, c.entry().keep_fp32);
    wanrt::cast_module(c.module(), Dtype::kFp32, c.entry().keep_fp32);
    return wanrt::StagedExecutor(c).run(inputs)[0];
  }
};

ComponentRole role_of(const std::string& name) {
  if (name == "text_encoder") return ComponentRole::kTextEncoder;
  if (name == "vae") return ComponentRole::kVae;
  return ComponentRole::kDenoiser;
}

wanrt::ManagedComponent managed(const Component& c) {
  return {c.entry().name, role_of(c.entry().name), c.module(), c.blocks(), c.entry().keep_fp32,
          c.weights() ? c.weights()->file : nullptr};
}

ComponentPlan cplan(const std::string& name, Residency residency, int k = -1, int prefetch = 0,
                    Dtype storage = Dtype::kBf16) {
  ComponentPlan cp;
  cp.name = name;
  cp.placement = Placement::kDevice;
  cp.storage = storage;
  cp.compute = Dtype::kFp32;
  cp.residency = residency;
  cp.blocks_resident = k;
  cp.prefetch = prefetch;
  return cp;
}

// The CPU transfer, counting the copies it starts (and how many of them asynchronously).
class CountingTransfer : public wanrt::DeviceTransfer {
 public:
  explicit CountingTransfer(int* starts, int* async_starts, at::Device device = at::kCPU)
      : starts_(starts), async_(async_starts), device_(device) {}
  at::Device device() const override { return device_; }
  at::Tensor host_copy(const at::Tensor& t) override { return cpu_->host_copy(t); }
  wanrt::PendingCopy start(const std::vector<at::Tensor>& host,
                           const std::vector<std::optional<at::ScalarType>>& dtypes,
                           bool async) override {
    ++*starts_;
    if (async) ++*async_;
    return cpu_->start(host, dtypes, async);
  }
  std::vector<at::Tensor> finish(wanrt::PendingCopy& copy) override { return cpu_->finish(copy); }

 private:
  std::unique_ptr<wanrt::DeviceTransfer> cpu_ = wanrt::make_cpu_transfer();
  int* starts_;
  int* async_;
  at::Device device_;
};

// "+dit/block 0 202496" / "-dit/block 0 202496".
std::string ev(char kind, const std::string& component, const std::string& unit,
               std::int64_t bytes) {
  return std::string(1, kind) + component + "/" + unit + " " + std::to_string(bytes);
}

std::vector<std::string> shown(const wanrt::ResidencyLedger& ledger) {
  std::vector<std::string> out;
  for (const LedgerEvent& e : ledger.events()) {
    out.push_back(ev(e.kind == LedgerEvent::kAcquire ? '+' : '-', e.component, e.unit, e.bytes));
  }
  return out;
}

bool any_param_of_dtype(const torch::jit::Module& module, at::ScalarType dtype) {
  for (const auto& p : module.named_parameters()) {
    if (p.value.scalar_type() == dtype) return true;
  }
  return false;
}

struct PolicyCase {
  std::string label;
  Residency te;
  int te_k;
  Residency dit;
  int k, prefetch;
};

}  // namespace

TEST_CASE("offload policies hold what they promise, in order, with identical outputs", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  const at::Tensor te_expected = tiny.reference("text_encoder", tiny.te_inputs);
  const at::Tensor dit_expected = tiny.reference("dit", tiny.dit_inputs);
  const Sizes te(tiny.load("text_encoder")), dit(tiny.load("dit"));
  REQUIRE(te.largest > 0);
  REQUIRE(dit.largest > 0);
  const int n = 2;  // blocks of each tiny component (checked below)

  const std::vector<PolicyCase> cases = {
      {"none", Residency::kWholeRun, -1, Residency::kWholeRun, -1, 0},
      {"none, text encoder offloaded", Residency::kDuringUse, -1, Residency::kFromFirstUse, -1, 0},
      {"model", Residency::kDuringUse, -1, Residency::kDuringUse, -1, 0},
      {"sequential k=1 prefetch=1", Residency::kDuringUse, -1, Residency::kStreamed, 1, 1},
      {"sequential k=0 prefetch=0", Residency::kDuringUse, -1, Residency::kStreamed, 0, 0},
      {"sequential k=0 prefetch=1", Residency::kDuringUse, -1, Residency::kStreamed, 0, 1},
      {"full", Residency::kStreamed, 0, Residency::kStreamed, 0, 0},
  };
  for (const PolicyCase& c : cases) {
    INFO(c.label);
    const Component te_c = tiny.load("text_encoder"), dit_c = tiny.load("dit");
    REQUIRE(te_c.blocks().size() == n);
    REQUIRE(dit_c.blocks().size() == n);
    OptimizationPlan plan;
    plan.components = {cplan("text_encoder", c.te, c.te_k), cplan("dit", c.dit, c.k, c.prefetch)};
    int starts = 0, async_starts = 0;
    ResidencyManager mgr({managed(te_c), managed(dit_c)}, plan,
                         std::make_unique<CountingTransfer>(&starts, &async_starts));
    // Stored in bf16 now: a block running without being acquired would compute in bf16.
    REQUIRE(any_param_of_dtype(dit_c.blocks()[1], at::kBFloat16));
    CHECK(mgr.device_bytes("dit") == dit.whole);
    CHECK(mgr.device_bytes("text_encoder") == te.whole);
    CHECK(mgr.minimum_device_bytes() == std::max(te.shell + te.largest, dit.shell + dit.largest));
    CHECK(mgr.compute_dtype("dit") == at::kFloat);
    CHECK(mgr.ledger().events().empty());

    wanrt::StagedExecutor te_run(te_c.module(), "text_encoder");
    wanrt::StagedExecutor dit_run(dit_c.module(), "dit");
    mgr.begin_run();
    mgr.enter("text_encoder");
    const at::Tensor te_out = te_run.run(tiny.te_inputs, mgr.hooks("text_encoder"))[0];
    mgr.leave("text_encoder");
    mgr.enter("dit");
    const at::Tensor dit_out1 = dit_run.run(tiny.dit_inputs, mgr.hooks("dit"))[0];
    const at::Tensor dit_out2 = dit_run.run(tiny.dit_inputs, mgr.hooks("dit"))[0];
    mgr.leave("dit");
    mgr.end_run();

    // (c) the same output as without offload.
    CHECK(at::equal(te_out, te_expected));
    CHECK(at::equal(dit_out1, dit_expected));
    CHECK(at::equal(dit_out2, dit_expected));
    // Everything back on the host, in its storage dtype.
    CHECK(mgr.ledger().current() == 0);
    CHECK(any_param_of_dtype(dit_c.blocks()[0], at::kBFloat16));
    CHECK(any_param_of_dtype(te_c.module(), at::kBFloat16));

    // (b) the event sequence of the policy table, by hand.
    auto T = [&](char k, const std::string& unit) {
      return ev(k, "text_encoder", unit, unit == "shell" ? te.shell : te.largest);
    };
    auto D = [&](char k, const std::string& unit) {
      return ev(k, "dit", unit, unit == "shell" ? dit.shell : dit.largest);
    };
    const std::vector<std::string> te_all_in = {T('+', "shell"), T('+', "block 0"),
                                                T('+', "block 1")};
    const std::vector<std::string> te_all_out = {T('-', "shell"), T('-', "block 0"),
                                                 T('-', "block 1")};
    const std::vector<std::string> dit_all_in = {D('+', "shell"), D('+', "block 0"),
                                                 D('+', "block 1")};
    const std::vector<std::string> dit_all_out = {D('-', "shell"), D('-', "block 0"),
                                                  D('-', "block 1")};
    std::vector<std::string> expected;
    auto add = [&](const std::vector<std::string>& more) {
      expected.insert(expected.end(), more.begin(), more.end());
    };
    std::int64_t budget = 0;
    if (c.label == "none") {
      add(te_all_in), add(dit_all_in), add(te_all_out), add(dit_all_out);  // begin, end
      budget = te.whole + dit.whole;
    } else if (c.label == "none, text encoder offloaded") {
      add(te_all_in), add(te_all_out), add(dit_all_in), add(dit_all_out);  // end_run releases
      budget = std::max(te.whole, dit.whole);
    } else if (c.label == "model") {
      add(te_all_in), add(te_all_out), add(dit_all_in), add(dit_all_out);
      budget = std::max(te.whole, dit.whole);
    } else if (c.label == "sequential k=1 prefetch=1") {
      add(te_all_in), add(te_all_out);
      add({D('+', "shell"), D('+', "block 0")});  // enter: shell + k resident blocks
      for (int step = 0; step < 2; ++step) {
        // before block 0: block 1 prefetched; after block 1: released (block 0 is resident).
        add({D('+', "block 1"), D('-', "block 1")});
      }
      add({D('-', "shell"), D('-', "block 0")});
      budget = std::max(te.whole, dit.shell + (c.k + c.prefetch + 1) * dit.largest);
    } else if (c.label == "sequential k=0 prefetch=0") {
      add(te_all_in), add(te_all_out);
      add({D('+', "shell")});
      for (int step = 0; step < 2; ++step) {
        add({D('+', "block 0"), D('-', "block 0"), D('+', "block 1"), D('-', "block 1")});
      }
      add({D('-', "shell")});
      budget = std::max(te.whole, dit.shell + (c.k + c.prefetch + 1) * dit.largest);
    } else if (c.label == "sequential k=0 prefetch=1") {
      add(te_all_in), add(te_all_out);
      add({D('+', "shell")});
      for (int step = 0; step < 2; ++step) {
        // before block 0: block 0, then block 1 prefetched; block 1 arrives already held.
        add({D('+', "block 0"), D('+', "block 1"), D('-', "block 0"), D('-', "block 1")});
      }
      add({D('-', "shell")});
      budget = std::max(te.whole, dit.shell + (c.k + c.prefetch + 1) * dit.largest);
      CHECK(async_starts == 2);  // the two prefetches were asynchronous copies
    } else if (c.label == "full") {
      add({T('+', "shell"), T('+', "block 0"), T('-', "block 0"), T('+', "block 1"),
           T('-', "block 1"), T('-', "shell")});
      add({D('+', "shell")});
      for (int step = 0; step < 2; ++step) {
        add({D('+', "block 0"), D('-', "block 0"), D('+', "block 1"), D('-', "block 1")});
      }
      add({D('-', "shell")});
      budget = std::max(te.shell + te.largest, dit.shell + dit.largest);
    }
    REQUIRE(budget > 0);
    CHECK(shown(mgr.ledger()) == expected);
    if (c.label.rfind("sequential", 0) != 0) CHECK(async_starts == 0);
    CHECK(starts > 0);

    // (a) the peak within the budget; below the model-offload peak when fewer blocks than
    // the component has are on the device at once.
    CHECK(mgr.ledger().peak() <= budget);
    if (c.dit == Residency::kStreamed && c.k + c.prefetch + 1 < n) {
      CHECK(mgr.ledger().peak() < dit.whole);
      CHECK(mgr.ledger().peak() < std::max(te.whole, dit.whole));
    }
  }
}

TEST_CASE("a component placed on the CPU records nothing and still upcasts", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  const at::Tensor expected = tiny.reference("dit", tiny.dit_inputs);
  const Component te_c = tiny.load("text_encoder"), dit_c = tiny.load("dit");
  OptimizationPlan plan;
  plan.device = "cuda:0";
  plan.components = {cplan("text_encoder", Residency::kDuringUse, -1, 0, Dtype::kFp32),
                     cplan("dit", Residency::kDuringUse)};
  plan.components[1].placement = Placement::kCpu;
  int starts = 0, async_starts = 0;
  // A transfer that claims to be a GPU: the CPU-placed DiT must not use it.
  ResidencyManager mgr(
      {managed(te_c), managed(dit_c)}, plan,
      std::make_unique<CountingTransfer>(&starts, &async_starts, at::Device(at::kCUDA, 0)));
  CHECK(mgr.device_of("dit") == at::Device(at::kCPU));
  CHECK(mgr.device_of("text_encoder") == at::Device(at::kCUDA, 0));
  CHECK(mgr.compute_dtype("text_encoder") == at::kFloat);
  CHECK(mgr.minimum_device_bytes() ==
        Sizes(tiny.load("text_encoder")).shell + Sizes(tiny.load("text_encoder")).largest);

  mgr.begin_run();
  mgr.enter("dit");
  CHECK_FALSE(any_param_of_dtype(dit_c.module(), at::kBFloat16));  // upcast on the host
  const at::Tensor out =
      wanrt::StagedExecutor(dit_c.module(), "dit").run(tiny.dit_inputs, mgr.hooks("dit"))[0];
  mgr.leave("dit");
  mgr.end_run();
  CHECK(at::equal(out, expected));
  CHECK(mgr.ledger().events().empty());
  CHECK(mgr.ledger().peak() == 0);
  CHECK(starts == 0);
  CHECK(any_param_of_dtype(dit_c.module(), at::kBFloat16));

  // Unknown components and plans without a component are internal errors.
  CHECK_THROWS_AS(mgr.enter("vae"), wanrt::Error);
  OptimizationPlan partial;
  partial.components = {cplan("dit", Residency::kWholeRun)};
  try {
    ResidencyManager bad({managed(tiny.load("text_encoder"))}, partial, wanrt::make_cpu_transfer());
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kInternal);
    CHECK_THAT(e.what(), Catch::Contains("text_encoder"));
  }
}

namespace {

// All three roles, everything resident for the whole run, fp32 (no cast needed).
struct Resident {
  Component te, dit, vae;
  OptimizationPlan plan;
  explicit Resident(const Tiny& tiny, wanrt::SettingSet user_set = {})
      : te(tiny.load("text_encoder")), dit(tiny.load("dit")), vae(tiny.load("vae")) {
    for (const char* name : {"text_encoder", "dit", "vae"}) {
      plan.components.push_back(cplan(name, Residency::kWholeRun, -1, 0, Dtype::kFp32));
    }
    plan.user_set = user_set;
  }
  std::unique_ptr<ResidencyManager> manager() const {
    return std::make_unique<ResidencyManager>(
        std::vector<wanrt::ManagedComponent>{managed(te), managed(dit), managed(vae)}, plan,
        wanrt::make_cpu_transfer());
  }
};

// Every step_down until none is left, as "from -> to".
std::vector<std::string> all_steps(ResidencyManager& mgr) {
  std::vector<std::string> out;
  while (const auto step = mgr.step_down("dit", "out of memory")) {
    out.push_back(step->from + " -> " + step->to);
    REQUIRE(out.size() < 20);
  }
  return out;
}

}  // namespace

TEST_CASE("step_down walks from an all-resident plan to full offload, then stops", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  const Resident r(tiny);
  auto mgr = r.manager();
  const Sizes dit(r.dit);
  auto res = [&](const char* name) { return mgr->plan().component(name).residency; };

  // A run in progress with the DiT entered: after each step the ledger holds exactly what
  // the new plan holds at this point.
  mgr->begin_run();
  mgr->enter("dit");

  auto step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->component == "dit");
  CHECK(step->error == "boom");
  CHECK(step->from == "text_encoder device");
  CHECK(step->to == "text_encoder offload");
  CHECK(res("text_encoder") == Residency::kDuringUse);
  CHECK(res("dit") == Residency::kFromFirstUse);
  CHECK(res("vae") == Residency::kFromFirstUse);
  CHECK(mgr->plan().text_encoder == wanrt::TextEncoderPlacement::kOffloadAfterUse);
  CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kNone);
  CHECK(mgr->ledger().held_by("text_encoder") == 0);
  CHECK(mgr->ledger().held_by("vae") == 0);  // not used yet in this run
  CHECK(mgr->ledger().held_by("dit") == dit.whole);

  step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->from + " -> " + step->to == "offload none -> offload model");
  for (const char* name : {"text_encoder", "dit", "vae"}) CHECK(res(name) == Residency::kDuringUse);
  CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kModel);
  CHECK(mgr->ledger().current() == dit.whole);

  step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->from + " -> " + step->to ==
        "offload model -> offload sequential (dit blocks_resident 1, prefetch 1)");
  const ComponentPlan& dp = mgr->plan().component("dit");
  CHECK(dp.residency == Residency::kStreamed);
  CHECK(dp.blocks_resident == 1);
  CHECK(dp.prefetch == 1);
  CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kSequential);
  CHECK(mgr->plan().blocks_resident == 1);
  CHECK(mgr->plan().prefetch == 1);
  CHECK(mgr->ledger().current() == dit.shell + dit.largest);  // shell + block 0
  CHECK(mgr->ledger().holds("dit", "block 0"));

  step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->from + " -> " + step->to == "dit blocks_resident 1 -> dit blocks_resident 0");
  CHECK(mgr->plan().component("dit").blocks_resident == 0);
  CHECK(mgr->plan().blocks_resident == 0);
  CHECK(mgr->ledger().current() == dit.shell);

  step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->from + " -> " + step->to == "dit prefetch 1 -> dit prefetch 0");
  CHECK(mgr->plan().component("dit").prefetch == 0);
  CHECK(mgr->plan().prefetch == 0);

  step = mgr->step_down("dit", "boom");
  REQUIRE(step);
  CHECK(step->from + " -> " + step->to ==
        "offload sequential -> offload full (text_encoder blocks_resident 0)");
  const ComponentPlan& tp = mgr->plan().component("text_encoder");
  CHECK(tp.residency == Residency::kStreamed);
  CHECK(tp.blocks_resident == 0);
  CHECK(tp.prefetch == 0);
  CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kFull);
  CHECK(res("vae") == Residency::kDuringUse);  // nothing to stream

  CHECK_FALSE(mgr->step_down("dit", "boom"));
  CHECK(mgr->fallbacks().size() == 6);
  CHECK(mgr->ledger().current() == dit.shell);
  mgr->leave("dit");
  mgr->end_run();
  CHECK(mgr->ledger().current() == 0);
}

TEST_CASE("step_down never changes what the user set", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  const std::string te_step = "text_encoder device -> text_encoder offload";
  const std::string model = "offload none -> offload model";
  const std::string full = "offload sequential -> offload full (text_encoder blocks_resident 0)";

  SECTION("offload") {
    const Resident r(tiny, {wanrt::Setting::kOffload});
    auto mgr = r.manager();
    CHECK(all_steps(*mgr) == std::vector<std::string>{te_step});
    CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kNone);
    CHECK(mgr->plan().component("dit").residency == Residency::kFromFirstUse);
  }
  SECTION("text_encoder") {
    const Resident r(tiny, {wanrt::Setting::kTextEncoder});
    auto mgr = r.manager();
    const std::vector<std::string> expected = {
        model, "offload model -> offload sequential (dit blocks_resident 1, prefetch 1)",
        "dit blocks_resident 1 -> dit blocks_resident 0", "dit prefetch 1 -> dit prefetch 0"};
    CHECK(all_steps(*mgr) == expected);
    CHECK(mgr->plan().component("text_encoder").residency == Residency::kWholeRun);
    CHECK(mgr->plan().text_encoder == wanrt::TextEncoderPlacement::kDevice);
    CHECK(mgr->plan().offload == wanrt::OffloadPolicy::kSequential);
  }
  SECTION("blocks_resident") {
    Resident r(tiny, {wanrt::Setting::kBlocksResident});
    r.plan.blocks_resident = 2;
    auto mgr = r.manager();
    const std::vector<std::string> expected = {
        te_step, model, "offload model -> offload sequential (dit blocks_resident 2, prefetch 1)",
        "dit prefetch 1 -> dit prefetch 0", full};
    CHECK(all_steps(*mgr) == expected);
    CHECK(mgr->plan().component("dit").blocks_resident == 2);
    CHECK(mgr->plan().blocks_resident == 2);
  }
  SECTION("prefetch") {
    Resident r(tiny, {wanrt::Setting::kPrefetch});
    r.plan.prefetch = 0;
    auto mgr = r.manager();
    const std::vector<std::string> expected = {
        te_step, model, "offload model -> offload sequential (dit blocks_resident 1, prefetch 0)",
        "dit blocks_resident 1 -> dit blocks_resident 0", full};
    CHECK(all_steps(*mgr) == expected);
    CHECK(mgr->plan().component("dit").prefetch == 0);
  }
}

TEST_CASE("a device budget below the whole model is met by stepping down", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  const at::Tensor expected = tiny.reference("dit", tiny.dit_inputs);
  const Component dit_c = tiny.load("dit");
  const Sizes dit(dit_c);
  const std::int64_t smallest = dit.shell + dit.largest;  // k = 0, no prefetch
  REQUIRE(smallest < dit.whole);
  OptimizationPlan plan;
  plan.components = {cplan("dit", Residency::kWholeRun)};

  const bool enough = GENERATE(true, false);
  const std::int64_t budget = enough ? smallest : smallest - 1;
  INFO("budget " << budget);
  ResidencyManager mgr({managed(dit_c)}, plan, wanrt::make_cpu_transfer(), budget);
  CHECK(mgr.minimum_device_bytes() == smallest);
  CHECK(mgr.ledger().budget() == budget);

  wanrt::StagedExecutor executor(dit_c.module(), "dit");
  std::vector<std::string> failed_in;  // where each attempt ran out
  std::optional<at::Tensor> out;
  bool gave_up = false;
  while (!out && !gave_up) {
    REQUIRE(failed_in.size() < 10);
    std::string where = "begin_run";
    try {
      mgr.begin_run();
      where = "enter";
      mgr.enter("dit");
      where = "run";
      at::Tensor result = executor.run(tiny.dit_inputs, mgr.hooks("dit"))[0];
      mgr.leave("dit");
      mgr.end_run();
      out = result;
    } catch (const wanrt::Error& e) {
      REQUIRE(e.category() == ErrorCategory::kOutOfMemory);
      failed_in.push_back(where);
      gave_up = !mgr.step_down("dit", e.what());
    }
  }
  std::vector<std::string> steps;
  for (const auto& s : mgr.fallbacks()) steps.push_back(s.from + " -> " + s.to);
  const std::vector<std::string> expected_steps = {
      "offload none -> offload model",
      "offload model -> offload sequential (dit blocks_resident 1, prefetch 1)",
      "dit blocks_resident 1 -> dit blocks_resident 0", "dit prefetch 1 -> dit prefetch 0"};
  CHECK(steps == expected_steps);
  CHECK(mgr.ledger().peak() <= budget);
  if (enough) {
    // Whole at begin_run, whole at enter, then shell + 2 blocks while block 0 runs (k=1 with
    // block 1 prefetched; then k=0 with block 1 prefetched).
    CHECK(failed_in == std::vector<std::string>{"begin_run", "enter", "run", "run"});
    REQUIRE(out);
    CHECK(at::equal(*out, expected));
    CHECK(mgr.ledger().peak() == smallest);
    CHECK(mgr.plan().offload == wanrt::OffloadPolicy::kSequential);
    CHECK(mgr.plan().blocks_resident == 0);
    CHECK(mgr.plan().prefetch == 0);
  } else {
    CHECK(gave_up);
    CHECK_FALSE(out);
    // The streaming step's re-acquire (shell + block 0) does not fit either: step_down
    // takes the next step (k = 0) at once.
    CHECK(failed_in == std::vector<std::string>{"begin_run", "enter", "run", "run"});
  }
}

TEST_CASE("a cast drops the pages of the mapped weights file it read", "[optim]") {
  const Tiny tiny;
  wanrt::InferenceScope scope;
  for (const Dtype storage : {Dtype::kBf16, Dtype::kFp32}) {
    CAPTURE(dtype_name(storage));
    const Component vae = tiny.load("vae");  // stored fp32 in a mapped file (format 2)
    REQUIRE(vae.weights());
    const auto file = vae.weights()->file;
    REQUIRE(file);
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    double sum = 0;
    for (const auto& p : vae.module().named_parameters()) {
      const auto range = file->range_of(p.value.data_ptr(), p.value.nbytes());
      REQUIRE(range);
      ranges.push_back(*range);
      sum += p.value.sum().item<double>();  // pages every parameter in
    }
    const auto resident = [&] {
      std::int64_t bytes = 0;
      for (const auto& [begin, end] : ranges) bytes += file->resident_bytes(begin, end);
      return bytes;
    };
    REQUIRE(std::isfinite(sum));
    REQUIRE(resident() > 0);
    OptimizationPlan plan;
    plan.components = {cplan("vae", Residency::kWholeRun, -1, 0, storage)};
    plan.components[0].placement = Placement::kCpu;
    const ResidencyManager mgr({managed(vae)}, plan, wanrt::make_cpu_transfer());
    if (storage == Dtype::kBf16) {
      // Every parameter was converted to a heap copy: none of the file's pages stay mapped in.
      CHECK(any_param_of_dtype(vae.module(), at::kBFloat16));
      CHECK(resident() == 0);
    } else {
      // Used in place: the pages are the weights.
      CHECK(resident() > 0);
    }
  }
}
