#include "models/wan22/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "optim/precision.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"
#include "runtime/threads.h"

namespace wanrt::wan22 {

struct Model::Impl {
  BundleManifest manifest;
  WanSpec spec;
  std::unique_ptr<Tokenizer> tokenizer;
  bool preload = true;
  std::map<std::string, Dtype> storage;
  std::unique_ptr<WanLoras> loras;

  mutable std::mutex mutex;  // guards the maps and load_seconds
  // One mutex per component so that two sessions asking for the same component get one
  // load, while different components load in parallel.
  mutable std::map<std::string, std::unique_ptr<std::mutex>> load_mutex;
  mutable std::map<std::string, std::shared_ptr<const Component>> held;  // preload
  mutable std::map<std::string, std::weak_ptr<const Component>> shared;  // on demand
  mutable double load_seconds = 0;
  mutable std::vector<LoraMerge> merges;

  std::shared_ptr<const Component> find(const std::string& name) const {
    const auto h = held.find(name);
    if (h != held.end()) return h->second;
    const auto s = shared.find(name);
    return s == shared.end() ? nullptr : s->second.lock();
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& bundle_dir,
                                         const ModelOptions& options) {
  configure_threads(options.threads);
  configure_host_allocator();  // tuned unless the application or WANRT_HOST_ALLOCATOR chose
  torch::jit::setGraphExecutorOptimize(options.jit_optimize);
  auto impl = std::make_unique<Impl>();
  BundleOptions bundle_options;
  bundle_options.verify = options.verify;
  bundle_options.hash_progress = options.hash_progress;
  impl->manifest = read_bundle(bundle_dir, bundle_options);
  impl->spec = read_wan_spec(impl->manifest);
  impl->preload = options.preload;
  impl->storage = options.storage;

  const YamlFile& file = impl->manifest.yaml;
  const YAML::Node& tok = impl->manifest.tokenizer;
  const int text_len = file.get<int>(tok, "text_len");
  if (text_len != impl->spec.text_len) {
    file.fail(tok, "text_len",
              fmt::format("{} differs from architecture.dit.text_len {}", text_len,
                          impl->spec.text_len));
  }
  impl->tokenizer = std::make_unique<Tokenizer>(impl->manifest.tokenizer_path, text_len);
  impl->loras = std::make_unique<WanLoras>(impl->spec, options.loras, options.lora_allow_partial);
  impl->loras->check(impl->manifest);  // a LoRA that does not fit fails now, not mid-run
  for (const std::string& name : impl->spec.components()) {
    impl->load_mutex[name] = std::make_unique<std::mutex>();
  }
  std::shared_ptr<const Model> model(new Model(std::move(impl)));
  if (options.preload) {
    for (const std::string& name : model->spec().components()) model->component(name);
  }
  return model;
}

const WanSpec& Model::spec() const { return impl_->spec; }
const BundleManifest& Model::manifest() const { return impl_->manifest; }
const Tokenizer& Model::tokenizer() const { return *impl_->tokenizer; }
bool Model::preloaded() const { return impl_->preload; }

std::shared_ptr<const Component> Model::component(const std::string& name) const {
  Impl& p = *impl_;
  const auto m = p.load_mutex.find(name);  // the map itself never changes after load()
  if (m == p.load_mutex.end()) {
    const std::vector<std::string> names = p.spec.components();
    throw Error(ErrorCategory::kInternal,
                fmt::format("model {} has no component '{}'", p.manifest.model_id, name),
                fmt::format("its components are {}", fmt::join(names, ", ")));
  }
  std::lock_guard<std::mutex> one_load(*m->second);
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (auto found = p.find(name)) return found;
  }
  const auto start = std::chrono::steady_clock::now();
  Component component = Component::load(p.manifest, name);
  const auto dtype = p.storage.find(name);
  if (dtype != p.storage.end()) {
    const BoundWeights* bound = component.weights();
    cast_module_from(component.module(), dtype->second, component.entry().keep_fp32,
                     bound ? bound->file.get() : nullptr);
  }
  std::optional<LoraMerge> merge;
  const std::vector<LoraApplication> loras = p.loras->for_component(name);
  if (!loras.empty()) {
    const BoundWeights* bound = component.weights();
    merge = LoraMerge{name, merge_loras(component.module(), loras, p.loras->merge_options(),
                                        fmt::format("{} of {}", name, p.manifest.model_id),
                                        bound ? bound->file.get() : nullptr)};
  }
  auto loaded = std::make_shared<const Component>(std::move(component));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.load_seconds += seconds;
  if (merge) {
    const auto same = std::find_if(p.merges.begin(), p.merges.end(),
                                   [&](const LoraMerge& m) { return m.component == name; });
    if (same != p.merges.end()) p.merges.erase(same);
    p.merges.push_back(std::move(*merge));
  }
  if (p.preload) {
    p.held[name] = loaded;
  } else {
    p.shared[name] = loaded;
  }
  return loaded;
}

bool Model::loaded(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->find(name) != nullptr;
}

double Model::load_seconds() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->load_seconds;
}

const WanLoras& Model::loras() const { return *impl_->loras; }

std::vector<LoraMerge> Model::lora_merges() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->merges;
}

}  // namespace wanrt::wan22
