#include "models/wan22/pipeline.h"

namespace wanrt::wan22 {

Pipeline::Pipeline(std::shared_ptr<const Model> model, std::unique_ptr<Session> session)
    : model_(std::move(model)), session_(std::move(session)) {}
Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::load(const std::string& bundle_dir, const LoadOptions& options) {
  ModelOptions model_options;
  model_options.verify = options.verify;
  model_options.threads = options.threads;
  model_options.jit_optimize = options.jit_optimize;
  model_options.hash_progress = options.hash_progress;
  model_options.loras = options.loras;
  model_options.lora_allow_partial = options.lora_allow_partial;
  // on_demand and disk load each component at its first use (disk: mapping a format 2 file
  // costs nothing, and a component a run never reaches, such as an expert below the MoE
  // boundary in a short run, is never mapped).
  model_options.preload = !(options.plan && options.plan->host_residency != HostResidency::kAll);
  // The one session's storage dtypes are the model's: its casts need no second copy.
  if (options.plan) {
    for (const ComponentPlan& c : options.plan->components) model_options.storage[c.name] = c.storage;
  }
  std::shared_ptr<const Model> model = Model::load(bundle_dir, model_options);
  SessionOptions session_options;
  session_options.plan = options.plan;
  session_options.vram_budget = options.vram_budget;
  session_options.fallback = options.fallback;
  session_options.parallel = options.parallel;
  auto session = std::make_unique<Session>(model, session_options);
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(model), std::move(session)));
}

const WanSpec& Pipeline::spec() const { return model_->spec(); }
const BundleManifest& Pipeline::manifest() const { return model_->manifest(); }
double Pipeline::load_seconds() const { return model_->load_seconds(); }
const ResidencyManager& Pipeline::residency() const { return session_->residency(); }
std::shared_ptr<const Model> Pipeline::model() const { return model_; }
Session& Pipeline::session() { return *session_; }

ResolvedRequest Pipeline::resolve(const GenerateRequest& request) const {
  return session_->resolve(request);
}

GenerateResult Pipeline::generate(const GenerateRequest& request, const Callbacks& callbacks) {
  return session_->generate(request, callbacks);
}

}  // namespace wanrt::wan22
