// One Model, many Sessions: sessions with different plans share one load, run concurrently on
// two threads and give the frames each gives alone; a session's casts never reach the model.
#include "support/catch.h"

#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "models/wan22/model.h"
#include "models/wan22/session.h"
#include "runtime/error.h"
#include "support/tiny_bundles.h"

using wanrt::Dtype;
using wanrt::OffloadPolicy;
using wanrt::OptimizationPlan;
using wanrt::Residency;
using wanrt::wan22::GenerateRequest;
using wanrt::wan22::GenerateResult;
using wanrt::wan22::Model;
using wanrt::wan22::ModelOptions;
using wanrt::wan22::Session;
using wanrt::wan22::SessionOptions;

namespace {

std::shared_ptr<const Model> load_model(const std::string& bundle, bool preload = true) {
  ModelOptions options;
  options.threads = 1;
  options.preload = preload;
  return Model::load(wanrt_test::tiny_bundle(bundle), options);
}

GenerateRequest request(const std::string& prompt, std::int64_t seed) {
  GenerateRequest r;
  r.prompt = prompt;
  r.seed = seed;
  r.frames = 5;
  r.steps = 3;
  return r;
}

// The DiTs in bf16 (storage and compute): a plan whose casts must stay in its session.
OptimizationPlan bf16_dit_plan(const Model& model) {
  OptimizationPlan plan = wanrt::wan22::resident_plan(model.manifest());
  plan.dtype = Dtype::kBf16;
  for (auto& c : plan.components) {
    if (wanrt::wan22::component_role(c.name) == wanrt::ComponentRole::kDenoiser) {
      c.storage = c.compute = Dtype::kBf16;
    }
  }
  return plan;
}

// Model offload: every component on the device only while it is used.
OptimizationPlan model_offload_plan(const Model& model) {
  OptimizationPlan plan = wanrt::wan22::resident_plan(model.manifest());
  plan.offload = OffloadPolicy::kModel;
  for (auto& c : plan.components) c.residency = Residency::kDuringUse;
  return plan;
}

at::ScalarType first_parameter_dtype(const Model& model, const std::string& name) {
  for (const auto& p : model.component(name)->module().parameters()) return p.scalar_type();
  FAIL("component " << name << " has no parameters");
  return at::kFloat;
}

}  // namespace

TEST_CASE("two sessions on one model run concurrently and give the frames they give alone",
          "[models][session]") {
  const auto model = load_model("tiny-t2v-moe");
  SessionOptions fp32;
  SessionOptions bf16;
  bf16.plan = bf16_dit_plan(*model);
  const GenerateRequest ra = request("a lighthouse in a storm", 11);
  const GenerateRequest rb = request("a cat on a windowsill", 12);

  // One at a time first, each in its own session.
  Session a(model, fp32);
  const GenerateResult alone_a = a.generate(ra);
  Session b(model, bf16);
  const GenerateResult alone_b = b.generate(rb);
  // The bf16 session cast its own clone: the model's DiT weights are still fp32, and the
  // fp32 session still gives the same frames after it.
  CHECK(first_parameter_dtype(*model, "dit_high_noise") == at::kFloat);
  CHECK(at::equal(a.generate(ra).frames, alone_a.frames));
  // The two plans do differ in what they compute (else this test could not fail).
  Session b_fp32(model, fp32);
  CHECK_FALSE(at::equal(b_fp32.generate(rb).latent, alone_b.latent));

  // Then both at once, on two threads.
  GenerateResult together_a, together_b;
  std::exception_ptr error_a, error_b;
  std::thread ta([&] {
    try {
      together_a = a.generate(ra);
    } catch (...) {
      error_a = std::current_exception();
    }
  });
  std::thread tb([&] {
    try {
      together_b = b.generate(rb);
    } catch (...) {
      error_b = std::current_exception();
    }
  });
  ta.join();
  tb.join();
  if (error_a) std::rethrow_exception(error_a);
  if (error_b) std::rethrow_exception(error_b);
  CHECK(at::equal(together_a.frames, alone_a.frames));
  CHECK(at::equal(together_b.frames, alone_b.frames));
  CHECK(together_a.expert_trace == alone_a.expert_trace);
}

TEST_CASE("sessions with different offload plans share one load", "[models][session]") {
  const auto model = load_model("tiny-ti2v");
  const double loaded = model->load_seconds();
  SessionOptions offload;
  offload.plan = model_offload_plan(*model);
  Session resident(model);
  Session offloaded(model, offload);
  // Opening sessions loads nothing more.
  CHECK(model->load_seconds() == loaded);
  const GenerateRequest r = request("waves on a pier", 3);
  const GenerateResult x = resident.generate(r);
  const GenerateResult y = offloaded.generate(r);
  CHECK(at::equal(x.frames, y.frames));
  // Each session has its own plan and ledger: the resident one holds everything at once, the
  // offloaded one a component at a time.
  CHECK(resident.residency().plan().offload == OffloadPolicy::kNone);
  CHECK(offloaded.residency().plan().offload == OffloadPolicy::kModel);
  CHECK(y.ledger_peak_bytes < x.ledger_peak_bytes);
}

TEST_CASE("without preload a component lives while a session uses it", "[models][session]") {
  const auto model = load_model("tiny-ti2v", /*preload=*/false);
  CHECK_FALSE(model->preloaded());
  for (const auto& name : model->spec().components()) CHECK_FALSE(model->loaded(name));
  {
    // Two holders of one component get the same load.
    const auto first = model->component("vae");
    const auto second = model->component("vae");
    CHECK(first.get() == second.get());
    CHECK(model->loaded("vae"));
  }
  CHECK_FALSE(model->loaded("vae"));  // nobody holds it any more

  SessionOptions lazy;
  lazy.plan = wanrt::wan22::resident_plan(model->manifest());
  lazy.plan->host_residency = wanrt::HostResidency::kOnDemand;
  Session session(model, lazy);
  const GenerateResult result = session.generate(request("rain on a window", 5));
  CHECK(result.frame_count == 5);
  for (const auto& name : model->spec().components()) {
    INFO(name);
    CHECK_FALSE(model->loaded(name));
  }
  // A session that keeps everything (host residency all) holds the components while it lives.
  {
    Session keeper(model);
    CHECK(model->loaded("dit"));
  }
  CHECK_FALSE(model->loaded("dit"));
}

TEST_CASE("a model names its components and refuses unknown ones", "[models][session]") {
  const auto model = load_model("tiny-t2v-moe");
  CHECK(model->spec().components() ==
        std::vector<std::string>{"text_encoder", "dit_high_noise", "dit_low_noise", "vae"});
  try {
    model->component("dit");
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kInternal);
    CHECK(std::string(e.hint()).find("dit_high_noise") != std::string::npos);
  }
}
