// A TorchScript component of a bundle, loaded to host memory and checked against its contract.
#pragma once

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/weight_binding.h"

namespace wanrt {

/// Puts the current thread in inference mode (no autograd graph, no version counters) for its
/// lifetime. Every thread that runs a component must hold one while it does: the mode is
/// thread-local. Tensors created inside are inference tensors; modify them in place only
/// inside such a scope.
class InferenceScope {
 public:
  InferenceScope() = default;
  InferenceScope(const InferenceScope&) = delete;
  InferenceScope& operator=(const InferenceScope&) = delete;

 private:
  c10::InferenceMode inference_;  // also disables grad mode
  c10::NoGradGuard no_grad_;      // explicit, for code that checks GradMode only
};

/// A loaded component: the TorchScript module (on the CPU, in eval mode), its manifest entry
/// and, for staged components, its blocks.
class Component {
 public:
  /// Loads component `name` of a bundle with torch::jit::load on the CPU and checks that the
  /// contract's methods exist and, for a staged component, that the blocks attribute holds
  /// contract.num_blocks modules with a forward method. In a format 2 bundle the parameters
  /// are then bound to the component's memory-mapped weights file (bind_weights). Every
  /// failure is an Error(kBundle) naming the component and its file.
  static Component load(const BundleManifest& manifest, const std::string& name);

  /// The whole module.
  torch::jit::Module& module() { return module_; }
  const torch::jit::Module& module() const { return module_; }
  /// The manifest entry it was loaded from.
  const ComponentEntry& entry() const { return entry_; }
  /// The absolute path it was loaded from.
  const std::string& path() const { return path_; }
  /// The blocks of a staged component in order (empty for other kinds); they share their
  /// parameters with module().
  const std::vector<torch::jit::Module>& blocks() const { return blocks_; }
  /// A component whose module is a clone of this one's sharing its tensors (their slots are
  /// the clone's own): installing other tensors in the clone's attributes (a cast, device
  /// copies) leaves this component unchanged, and tensors nobody replaces are not copied.
  /// Safe to call from several threads at once.
  Component share() const;

  /// Format 2: the mapped weights file and what was bound from it; nullptr for format 1.
  const BoundWeights* weights() const { return weights_.file ? &weights_ : nullptr; }

  /// Wall-clock seconds torch::jit::load, the checks and the binding took.
  double load_seconds() const { return load_seconds_; }

 private:
  Component() = default;

  torch::jit::Module module_;
  ComponentEntry entry_;
  std::string path_;
  std::vector<torch::jit::Module> blocks_;
  BoundWeights weights_;
  double load_seconds_ = 0.0;
};

/// The blocks of a staged module: submodules "0".."n-1" of attribute `blocks_attr`, in order.
/// Error(kBundle) naming `what` when the attribute is missing or is not a module list.
std::vector<torch::jit::Module> staged_blocks(const torch::jit::Module& module,
                                              const std::string& blocks_attr,
                                              const std::string& what);

}  // namespace wanrt
