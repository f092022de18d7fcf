#include "support/catch.h"
#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/staged_executor.h"
#include "support/tiny_bundles.h"

using wanrt::ErrorCategory;
using wanrt::StageInfo;
using wanrt::StageKind;

namespace {

// Records every hook call as "before prologue", "after block 1", ...
class Recorder : public wanrt::StageHooks {
 public:
  void before_stage(const StageInfo& info) override { record("before", info); }
  void after_stage(const StageInfo& info) override { record("after", info); }

  std::vector<std::string> events;
  std::vector<const std::string*> names;
  std::vector<int> num_blocks;
  std::function<void(const std::string&)> on_event;

 private:
  void record(const char* when, const StageInfo& info) {
    std::string stage = info.kind == StageKind::kPrologue   ? "prologue"
                        : info.kind == StageKind::kEpilogue ? "epilogue"
                                                            : "block " + std::to_string(info.block);
    if (info.kind != StageKind::kBlock) CHECK(info.block == -1);
    events.push_back(std::string(when) + " " + stage);
    names.push_back(info.component);
    num_blocks.push_back(info.num_blocks);
    if (on_event) on_event(events.back());
  }
};

// The hook order the contract prescribes, written out independently of the executor.
std::vector<std::string> expected_events(int n) {
  std::vector<std::string> out = {"before prologue", "after prologue"};
  for (int i = 0; i < n; ++i) {
    out.push_back("before block " + std::to_string(i));
    out.push_back("after block " + std::to_string(i));
  }
  out.push_back("before epilogue");
  out.push_back("after epilogue");
  return out;
}

struct Case {
  std::string component;
  std::vector<at::Tensor> inputs;
};

// Inputs of the right shapes for the tiny TI2V bundle's text encoder and DiT.
std::vector<Case> cases(const wanrt::BundleManifest& m) {
  at::manual_seed(0);
  const int vocab = m.architecture["text_encoder"]["vocab_size"].as<int>();
  const int text_len = m.architecture["dit"]["text_len"].as<int>();
  const int text_dim = m.architecture["dit"]["text_dim"].as<int>();
  const int in_dim = m.architecture["dit"]["in_dim"].as<int>();
  const at::Tensor ids = at::randint(vocab, {2, text_len}, at::kLong);
  at::Tensor mask = at::ones({2, text_len}, at::kLong);
  mask.slice(1, text_len / 2).select(0, 1).zero_();  // second prompt: half padding
  const at::Tensor x = at::randn({1, in_dim, 2, 4, 4});
  const at::Tensor t = at::full({1}, 500.0);
  const at::Tensor context = at::randn({1, text_len, text_dim});
  return {{"text_encoder", {ids, mask}}, {"dit", {x, t, context}}};
}

}  // namespace

TEST_CASE("staged runs equal the monolithic forward exactly, hooks in stage order", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  for (const auto& c : cases(m)) {
    INFO(c.component);
    const auto component = wanrt::Component::load(m, c.component);
    wanrt::StagedExecutor executor(component);
    CHECK(executor.name() == c.component);
    REQUIRE(executor.num_blocks() == component.entry().contract.num_blocks);
    REQUIRE(executor.num_blocks() >= 2);

    Recorder hooks;
    const auto staged = executor.run(c.inputs, &hooks);
    const auto whole = executor.forward_monolithic(c.inputs);
    REQUIRE(staged.size() == 1);
    REQUIRE(whole.size() == 1);
    CHECK(staged[0].sizes() == whole[0].sizes());
    CHECK(at::equal(staged[0], whole[0]));
    CHECK(staged[0].abs().sum().item<double>() > 0.0);

    CHECK(hooks.events == expected_events(executor.num_blocks()));
    for (std::size_t i = 0; i < hooks.names.size(); ++i) {
      CHECK(*hooks.names[i] == c.component);
      CHECK(hooks.num_blocks[i] == executor.num_blocks());
    }
    // Running again without hooks gives the same result (no state kept between runs).
    CHECK(at::equal(executor.run(c.inputs)[0], staged[0]));
  }
}

TEST_CASE("a cancelled staged run stops between stages with kCancelled", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  const auto component = wanrt::Component::load(m, "dit");
  wanrt::StagedExecutor executor(component.module(), "dit");
  bool stop = false;
  Recorder hooks;
  hooks.on_event = [&](const std::string& event) { stop = stop || event == "after block 0"; };
  const auto inputs = cases(m)[1].inputs;
  try {
    executor.run(inputs, &hooks, [&] { return stop; });
    FAIL("expected a cancellation");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kCancelled);
    CHECK_THAT(e.what(), Catch::Contains("'dit'") && Catch::Contains("block 1"));
  }
  const std::vector<std::string> expected = {"before prologue", "after prologue", "before block 0",
                                             "after block 0"};
  CHECK(hooks.events == expected);
}

TEST_CASE("stage failures and non-staged modules are reported with the component", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  const auto dit = wanrt::Component::load(m, "dit");
  wanrt::StagedExecutor executor(dit);
  Recorder hooks;
  try {
    executor.run({at::zeros({1})}, &hooks);  // the prologue expects [x, t, context]
    FAIL("expected a stage failure");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kInternal);
    CHECK_THAT(e.what(), Catch::Contains("component 'dit' prologue"));
  }
  CHECK(hooks.events == std::vector<std::string>{"before prologue"});
  CHECK_THROWS_WITH(executor.block(executor.num_blocks()), Catch::Contains("block 2"));

  const auto vae = wanrt::Component::load(m, "vae");
  try {
    wanrt::StagedExecutor not_staged(vae.module(), "vae");
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("component 'vae'") && Catch::Contains("prologue"));
  }
}

// Elementwise outputs keep their first input's strides, so a transposed token view from the
// prologue would reach every block and make each LayerNorm copy it back (bench/README.md,
// "Roofline").
TEST_CASE("the DiT's prologue hands the blocks contiguous tokens", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  auto component = wanrt::Component::load(m, "dit");
  const auto dit = cases(m).back();
  REQUIRE(dit.component == "dit");
  std::vector<c10::IValue> args{c10::IValue(dit.inputs)};
  const auto state = component.module().get_method("prologue")(std::move(args)).toTensorVector();
  REQUIRE(state.size() >= 1);
  CHECK(state[0].dim() == 3);
  CHECK(state[0].is_contiguous());
}
