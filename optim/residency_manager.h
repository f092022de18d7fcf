// The offload policies of docs/architecture.md as one mechanism: a ResidencyManager holds the
// weights of every component (runtime/module_weights.h), brings them to the compute device and
// releases them as the plan's Residency says, records every move in a ResidencyLedger, and
// gives StagedExecutor hooks that stream blocks. It also steps the plan down after an
// out-of-memory error (automatic fallback).
//
// What each policy promises (ledger order; "enter"/"leave" are the pipeline's phase marks):
//   kWholeRun      all units acquired by begin_run(), released by end_run();
//   kFromFirstUse  all units acquired at the first enter(), released by end_run();
//   kDuringUse     all units acquired at enter(), released at leave() (model offload);
//   kStreamed      enter() acquires the shell and blocks 0..k-1; before block i runs, block i is
//                  acquired (if not resident) and blocks i+1..i+prefetch are prefetched and
//                  acquired; after a streamed block ran it is released; leave() releases the
//                  rest. With k = 0 and prefetch p the device holds the shell and at most
//                  p + 1 blocks. A prefetched block is recorded when its copy starts (its
//                  device memory is taken then) and installed in the module just before its
//                  own stage, so that the copy overlaps the running block's compute.
// Units are acquired and released in unit order: the shell ("all" without blocks), then the
// blocks in order; components in the plan's order. A component placed on the CPU holds
// nothing on the device and records nothing (its weights stay on the host; an fp32 upcast of
// half weights still follows its residency).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/model_requirements.h"
#include "optim/optim_types.h"
#include "runtime/device_transfer.h"
#include "runtime/residency_ledger.h"
#include "runtime/safetensors_file.h"
#include "runtime/staged_executor.h"

namespace wanrt {

class ModuleWeights;

/// A component handed to the manager: its module, its blocks (empty when it does not run
/// stage by stage) and its keep-fp32 patterns.
struct ManagedComponent {
  std::string name;
  ComponentRole role = ComponentRole::kOther;
  torch::jit::Module module;
  std::vector<torch::jit::Module> blocks;
  std::vector<std::string> keep_fp32;
  /// Format 2 bundles: the mapped weights file its parameters were bound to (else null). With
  /// host residency "disk" its units page their weights in while held and drop them after.
  std::shared_ptr<MappedSafetensors> weights_file;
};

/// One automatic fallback: what failed and the cheaper setting taken.
struct FallbackStep {
  std::string component;  ///< the component whose stage ran out of memory
  std::string error;      ///< the out-of-memory message
  std::string from, to;   ///< e.g. "offload none" -> "offload model"
};

/// Weights, policies and ledger of one loaded pipeline.
class ResidencyManager {
 public:
  /// Casts each component to its ComponentPlan storage dtype (precision.h cast_module with its
  /// keep-fp32 patterns), then takes its weights. Every component must have a plan entry
  /// (Error(kInternal) otherwise). `budget`: the ledger's budget in bytes (0: none).
  ResidencyManager(std::vector<ManagedComponent> components, OptimizationPlan plan,
                   std::unique_ptr<DeviceTransfer> transfer, std::int64_t budget = 0);
  ~ResidencyManager();
  ResidencyManager(const ResidencyManager&) = delete;
  ResidencyManager& operator=(const ResidencyManager&) = delete;

  /// Adds a component loaded after construction (host residency on_demand: loaded at its first
  /// use); it is cast like the constructor's. Error(kInternal) when it is already attached or
  /// has no plan entry.
  void attach(ManagedComponent component);
  /// Releases everything of component `name` from the device and forgets it (its module keeps
  /// its host weights; the caller may then free it). Error(kInternal) when not attached.
  void detach(const std::string& name);
  /// Whether component `name` is attached.
  bool attached(const std::string& name) const;

  /// Start of a run: acquires the kWholeRun components.
  void begin_run();
  /// Component `name` starts being used (see the policy table above).
  void enter(const std::string& name);
  /// Component `name` is no longer used in this phase.
  void leave(const std::string& name);
  /// End of a run: releases everything.
  void end_run();

  /// Hooks for StagedExecutor::run of component `name` (they stream blocks for kStreamed and
  /// do nothing otherwise). Valid while the manager lives.
  StageHooks* hooks(const std::string& name);
  /// The device component `name` computes on (the CPU for Placement::kCpu).
  at::Device device_of(const std::string& name) const;
  /// The dtype the component's inputs should have (its compute dtype).
  at::ScalarType compute_dtype(const std::string& name) const;

  /// After an out-of-memory error in a stage of `component`: changes the plan to the next
  /// cheaper setting that the user did not fix (plan.user_set), walking the run-time rungs of
  /// the ladder table (optim/ladder.h) in its order: text encoder
  /// kWholeRun -> kDuringUse (the kWholeRun others become kFromFirstUse, so the text encoder
  /// is gone before they load; "text_encoder"); every component kDuringUse (model offload;
  /// "offload"); staged denoisers streamed with k = half their blocks and prefetch 1
  /// ("offload"; the user's k or prefetch when set), halving k down to 0 ("blocks_resident");
  /// denoisers' prefetch 0 ("prefetch"); text encoder streamed with k = 0 (full; "offload"
  /// and "text_encoder"). CPU-placed components are never changed. It then releases
  /// everything and re-acquires what the new plan holds at this point (components entered and
  /// not left are entered again); when that runs out of memory too, it takes the next step.
  /// Returns the (last) step taken, or nothing when no cheaper setting exists.
  std::optional<FallbackStep> step_down(const std::string& component, const std::string& error);

  /// The ledger (device bytes per unit, peak, events).
  const ResidencyLedger& ledger() const { return ledger_; }
  ResidencyLedger& ledger() { return ledger_; }
  /// The plan as it stands (after any fallback).
  const OptimizationPlan& plan() const { return plan_; }
  /// Bytes of component `name` on the device when fully resident (its units' device bytes).
  std::int64_t device_bytes(const std::string& name) const;
  /// The smallest device footprint any plan can reach: the largest over components of (shell +
  /// one block) for staged ones, whole size for the others, ignoring CPU-placed ones.
  std::int64_t minimum_device_bytes() const;
  /// Steps taken by step_down so far.
  const std::vector<FallbackStep>& fallbacks() const { return fallbacks_; }

 private:
  struct Managed;
  class Hooks;
  Managed& managed(const std::string& name);
  const Managed& managed(const std::string& name) const;
  // Records unit `unit` coming in, in the ledger: device bytes and paged host bytes.
  void record_acquire(Managed& m, int unit);
  void acquire_unit(Managed& m, int unit);
  void prefetch_unit(Managed& m, int unit);
  void release_unit(Managed& m, int unit);
  void acquire_all(Managed& m);
  void release_all(Managed& m);
  void enter_units(Managed& m);
  void reacquire();
  template <typename Fn>
  void for_each_in_plan_order(Fn fn);

  OptimizationPlan plan_;
  std::unique_ptr<DeviceTransfer> transfer_;
  ResidencyLedger ledger_;
  std::map<std::string, std::unique_ptr<Managed>> components_;
  std::vector<FallbackStep> fallbacks_;
  bool run_active_ = false;  // between begin_run() and end_run()
};

}  // namespace wanrt
