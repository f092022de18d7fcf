// A loaded Wan 2.2 bundle, shareable between sessions: manifest, spec, tokenizer and the
// components' host weights. What one run needs on top of it (plan, residency, device copies,
// scratch) lives in a Session (session.h), as llama.cpp separates its model from its contexts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "models/wan22/lora.h"
#include "models/wan22/model_spec.h"
#include "models/wan22/tokenizer.h"
#include "optim/optim_types.h"
#include "runtime/bundle.h"
#include "runtime/component.h"

namespace wanrt::wan22 {

/// How to open a bundle as a Model.
/// Model::load also sets up the process's host allocator (runtime/host_allocator.h: tuned glibc
/// unless the application chose first with configure_host_allocator() or WANRT_HOST_ALLOCATOR).
struct ModelOptions {
  bool verify = true;  ///< check sha256 of every file (false: --no-verify)
  int threads = 0;     ///< LibTorch intra-op threads (process-wide); <= 0 means one per core
  /// TorchScript graph optimisation (process-wide setting). Off by default: on LibTorch's CPU
  /// executor the profiling/specialisation passes cost more than they save for these models
  /// (bench/README.md, "JIT graph optimisation").
  bool jit_optimize = false;
  /// Load every component at load() and keep it for the model's lifetime (host residency
  /// "all"). False: a component is loaded when a session first asks for it and freed when no
  /// session uses it any more (host residency "on demand").
  bool preload = true;
  /// The dtype each component's host weights are held in (a plan's ComponentPlan::storage);
  /// components not named keep their stored dtype. The model casts at load, keeping the
  /// manifest's keep-fp32 tensors in fp32. A session whose plan stores a component in this
  /// dtype shares the model's tensors; one that stores it otherwise casts its own copy.
  std::map<std::string, Dtype> storage;
  /// Called while hashing large files: (file, bytes done, bytes total).
  std::function<void(const std::string&, std::int64_t, std::int64_t)> hash_progress;
  /// LoRAs merged into the DiTs' host weights when each is loaded, after the storage cast
  /// (docs/lora.md). Files are read and, for format 2 bundles, checked against the weights'
  /// shapes at load(). A component loaded again (host residency on_demand) is merged again.
  std::vector<LoraSpec> loras;
  /// Apply the LoRA keys that match a parameter and skip the others (listed in lora_merges());
  /// false: such keys are an error.
  bool lora_allow_partial = false;
};

/// The last LoRA merge into one component.
struct LoraMerge {
  std::string component;
  LoraMergeReport report;
};

/// A loaded Wan 2.2 bundle.
///
/// Thread safety: every member is safe to call from several threads at once. The model never
/// changes a loaded component's weights: a session that casts or moves weights works on its
/// own clone of the module, which shares the host tensors it does not change (session.h).
class Model {
 public:
  /// Reads and verifies the bundle and its Wan sections; with options.preload loads every
  /// component. Throws Error(kBundle) on a bad bundle, naming the file and key.
  static std::shared_ptr<const Model> load(const std::string& bundle_dir,
                                           const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  /// The model's facts and defaults.
  const WanSpec& spec() const;
  /// The manifest the bundle was read from.
  const BundleManifest& manifest() const;
  /// The prompt tokenizer (its encode() is const and thread-safe).
  const Tokenizer& tokenizer() const;
  /// Whether components are kept loaded for the model's lifetime (ModelOptions::preload).
  bool preloaded() const;

  /// Component `name` (one of spec().components()), loading it now when it is not held.
  /// Without preload the model keeps only a weak reference: the component stays in memory
  /// while some caller holds the returned pointer. Two threads asking at once get one load.
  /// Error(kBundle) when the file does not load; Error(kInternal) for an unknown name.
  std::shared_ptr<const Component> component(const std::string& name) const;
  /// Whether component `name` is in memory now.
  bool loaded(const std::string& name) const;
  /// Seconds spent loading components so far (all loads, by every session), LoRA merges
  /// included.
  double load_seconds() const;
  /// The LoRAs given at load (empty() when none).
  const WanLoras& loras() const;
  /// The last merge into each component loaded so far, in load order.
  std::vector<LoraMerge> lora_merges() const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt::wan22
