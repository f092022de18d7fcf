#include "optim/residency_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "optim/ladder.h"
#include "optim/precision.h"
#include "runtime/error.h"
#include "runtime/module_weights.h"

namespace wanrt {
namespace {

bool user_set(const OptimizationPlan& plan, Setting setting) {
  return plan.user_set.contains(setting);
}

// What step_down needs to know of a component besides its plan.
struct Shape {
  std::string name;
  ComponentRole role;
  int num_blocks;
};

// The k a streamed plan keeps resident, clamped to the blocks there are.
int resident_blocks(const ComponentPlan& cp, int num_blocks) {
  return cp.blocks_resident < 0 ? num_blocks : std::min(cp.blocks_resident, num_blocks);
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

// The run-time steps of the ladder (optim/ladder.h), walked in the table's order. Each
// returns whether it changed the plan (and then fills from/to); a step that would change a
// user-set field does nothing.
class RuntimeLadder {
 public:
  RuntimeLadder(OptimizationPlan& plan, const std::vector<Shape>& shapes)
      : plan_(plan), shapes_(shapes) {}

  bool next(FallbackStep& step) {
    for (const Rung& rung : ladder()) {
      if (rung.at_run_time && take(rung.id, step)) return true;
    }
    return false;
  }

 private:
  bool take(RungId id, FallbackStep& step) {
    switch (id) {
      case RungId::kTextEncoderOffload:
        return text_encoder_after_use(step);
      case RungId::kModelOffload:
        return model_offload(step);
      case RungId::kBlockStreaming:
        return start_streaming(step) || halve_resident(step) || drop_prefetch(step);
      case RungId::kFullStreaming:
        return stream_text_encoder(step);
      default:
        throw Error(ErrorCategory::kInternal,
                    fmt::format("rung '{}' is marked as a run-time rung but has no run-time step",
                                rung_of(id).name));
    }
  }

  template <typename Pred>
  std::vector<std::pair<const Shape*, ComponentPlan*>> select(Pred pred) {
    std::vector<std::pair<const Shape*, ComponentPlan*>> out;
    for (const Shape& s : shapes_) {
      ComponentPlan& cp = plan_.component(s.name);
      if (cp.placement == Placement::kCpu) continue;  // holds nothing on the device
      if (pred(s, cp)) out.emplace_back(&s, &cp);
    }
    return out;
  }
  static bool held_to_end(const ComponentPlan& cp) {
    return cp.residency == Residency::kWholeRun || cp.residency == Residency::kFromFirstUse;
  }
  static bool staged_denoiser(const Shape& s) {
    return s.role == ComponentRole::kDenoiser && s.num_blocks > 0;
  }

  // Text encoder on the device only while it encodes; the others then load at their first
  // use instead of at the start, so the text encoder is gone before they arrive.
  bool text_encoder_after_use(FallbackStep& step) {
    if (user_set(plan_, Setting::kTextEncoder)) return false;
    const auto te = select([](const Shape& s, const ComponentPlan& cp) {
      return s.role == ComponentRole::kTextEncoder && held_to_end(cp);
    });
    if (te.empty()) return false;
    for (auto& [s, cp] : te) cp->residency = Residency::kDuringUse;
    for (auto& [s, cp] : select([](const Shape&, const ComponentPlan& cp) {
           return cp.residency == Residency::kWholeRun;
         })) {
      cp->residency = Residency::kFromFirstUse;
    }
    step.from = fmt::format("text_encoder {}", text_encoder_placement_name(plan_.text_encoder));
    plan_.text_encoder = TextEncoderPlacement::kOffloadAfterUse;
    step.to = fmt::format("text_encoder {}", text_encoder_placement_name(plan_.text_encoder));
    return true;
  }

  bool model_offload(FallbackStep& step) {
    if (user_set(plan_, Setting::kOffload)) return false;
    const bool keep_te = user_set(plan_, Setting::kTextEncoder);
    const auto all = select([&](const Shape& s, const ComponentPlan& cp) {
      return held_to_end(cp) && !(keep_te && s.role == ComponentRole::kTextEncoder);
    });
    if (all.empty()) return false;
    for (auto& [s, cp] : all) cp->residency = Residency::kDuringUse;
    step.from = fmt::format("offload {}", offload_name(plan_.offload));
    plan_.offload = OffloadPolicy::kModel;
    step.to = "offload model";
    return true;
  }

  bool start_streaming(FallbackStep& step) {
    if (user_set(plan_, Setting::kOffload)) return false;
    const auto dits = select([](const Shape& s, const ComponentPlan& cp) {
      return staged_denoiser(s) && cp.residency != Residency::kStreamed;
    });
    if (dits.empty()) return false;
    const bool user_k = user_set(plan_, Setting::kBlocksResident) && plan_.blocks_resident >= 0;
    const int prefetch = user_set(plan_, Setting::kPrefetch) ? plan_.prefetch : 1;
    std::vector<std::string> to;
    for (auto& [s, cp] : dits) {
      cp->residency = Residency::kStreamed;
      cp->blocks_resident =
          user_k ? std::min(plan_.blocks_resident, s->num_blocks) : s->num_blocks / 2;
      cp->prefetch = prefetch;
      to.push_back(fmt::format("{} blocks_resident {}", s->name, cp->blocks_resident));
      plan_.blocks_resident = cp->blocks_resident;
    }
    step.from = fmt::format("offload {}", offload_name(plan_.offload));
    plan_.offload = OffloadPolicy::kSequential;
    plan_.prefetch = prefetch;
    step.to = fmt::format("offload sequential ({}, prefetch {})", join(to), prefetch);
    return true;
  }

  bool halve_resident(FallbackStep& step) {
    if (user_set(plan_, Setting::kBlocksResident)) return false;
    const auto dits = select([](const Shape& s, const ComponentPlan& cp) {
      return staged_denoiser(s) && cp.residency == Residency::kStreamed &&
             resident_blocks(cp, s.num_blocks) > 0;
    });
    if (dits.empty()) return false;
    std::vector<std::string> from, to;
    for (auto& [s, cp] : dits) {
      const int k = resident_blocks(*cp, s->num_blocks);
      cp->blocks_resident = k / 2;
      from.push_back(fmt::format("{} blocks_resident {}", s->name, k));
      to.push_back(fmt::format("{} blocks_resident {}", s->name, cp->blocks_resident));
      plan_.blocks_resident = cp->blocks_resident;
    }
    step.from = join(from);
    step.to = join(to);
    return true;
  }

  bool drop_prefetch(FallbackStep& step) {
    if (user_set(plan_, Setting::kPrefetch)) return false;
    const auto dits = select([](const Shape& s, const ComponentPlan& cp) {
      return staged_denoiser(s) && cp.residency == Residency::kStreamed && cp.prefetch > 0;
    });
    if (dits.empty()) return false;
    std::vector<std::string> from, to;
    for (auto& [s, cp] : dits) {
      from.push_back(fmt::format("{} prefetch {}", s->name, cp->prefetch));
      cp->prefetch = 0;
      to.push_back(fmt::format("{} prefetch 0", s->name));
    }
    plan_.prefetch = 0;
    step.from = join(from);
    step.to = join(to);
    return true;
  }

  bool stream_text_encoder(FallbackStep& step) {
    if (user_set(plan_, Setting::kOffload) || user_set(plan_, Setting::kTextEncoder)) return false;
    const auto te = select([](const Shape& s, const ComponentPlan& cp) {
      return s.role == ComponentRole::kTextEncoder && s.num_blocks > 0 &&
             !(cp.residency == Residency::kStreamed && cp.blocks_resident == 0);
    });
    if (te.empty()) return false;
    const int prefetch = user_set(plan_, Setting::kPrefetch) ? plan_.prefetch : 0;
    std::vector<std::string> to;
    for (auto& [s, cp] : te) {
      cp->residency = Residency::kStreamed;
      cp->blocks_resident = 0;
      cp->prefetch = prefetch;
      to.push_back(fmt::format("{} blocks_resident 0", s->name));
    }
    step.from = fmt::format("offload {}", offload_name(plan_.offload));
    plan_.offload = OffloadPolicy::kFull;
    plan_.text_encoder = TextEncoderPlacement::kOffloadAfterUse;
    step.to = fmt::format("offload full ({})", join(to));
    return true;
  }

  OptimizationPlan& plan_;
  const std::vector<Shape>& shapes_;
};

// A failure of the copy itself (CUDA out of memory) as an Error the fallback recognises.
[[noreturn]] void rethrow_transfer_failure(const std::string& what, const std::exception& e) {
  if (dynamic_cast<const Error*>(&e) == nullptr && is_out_of_memory(e)) {
    throw Error(ErrorCategory::kOutOfMemory, fmt::format("{}: {}", what, first_line(e.what())),
                "offload more (--offload model|sequential|full) or use --dtype bf16");
  }
  throw;
}

}  // namespace

struct ResidencyManager::Managed {
  ManagedComponent component;
  std::unique_ptr<DeviceTransfer> cpu_transfer;  // a CPU-placed component's own transfer
  std::unique_ptr<ModuleWeights> weights;
  std::unique_ptr<Hooks> hooks;
  bool on_device = true;  // Placement::kDevice: its moves are recorded in the ledger
  bool entered = false;   // between enter() and leave()
  bool used = false;      // entered since begin_run()
};

// Streams the blocks of a kStreamed component around each block stage (see the header).
class ResidencyManager::Hooks final : public StageHooks {
 public:
  Hooks(ResidencyManager& owner, Managed& m) : owner_(owner), m_(m) {}

  void before_stage(const StageInfo& info) override {
    int k = 0, n = 0;
    const ComponentPlan* cp = streamed(info, &k, &n);
    if (!cp) return;
    const ModuleWeights& w = *m_.weights;
    owner_.acquire_unit(m_, w.block_unit(info.block));
    // Prefetched blocks are recorded now (their device memory is taken when the copy starts)
    // and installed when their own stage begins, so the copy overlaps this block's compute.
    for (int j = info.block + 1; j <= std::min(info.block + cp->prefetch, n - 1); ++j) {
      if (j >= k) owner_.prefetch_unit(m_, w.block_unit(j));
    }
  }

  void after_stage(const StageInfo& info) override {
    int k = 0, n = 0;
    if (!streamed(info, &k, &n)) return;
    if (info.block >= k) owner_.release_unit(m_, m_.weights->block_unit(info.block));
  }

 private:
  const ComponentPlan* streamed(const StageInfo& info, int* k, int* n) const {
    if (info.kind != StageKind::kBlock || m_.component.blocks.empty()) return nullptr;
    const ComponentPlan& cp = owner_.plan_.component(m_.component.name);
    if (cp.residency != Residency::kStreamed) return nullptr;
    *n = static_cast<int>(m_.component.blocks.size());
    *k = resident_blocks(cp, *n);
    return &cp;
  }

  ResidencyManager& owner_;
  Managed& m_;
};

ResidencyManager::ResidencyManager(std::vector<ManagedComponent> components, OptimizationPlan plan,
                                   std::unique_ptr<DeviceTransfer> transfer, std::int64_t budget)
    : plan_(std::move(plan)), transfer_(std::move(transfer)), ledger_(budget) {
  if (!transfer_) throw Error(ErrorCategory::kInternal, "residency manager: no device transfer");
  for (ManagedComponent& c : components) attach(std::move(c));
}

void ResidencyManager::attach(ManagedComponent c) {
  if (components_.count(c.name) != 0) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("residency manager: component '{}' given twice", c.name));
  }
  const ComponentPlan& cp = plan_.component(c.name);  // kInternal when absent
  cast_module_from(c.module, cp.storage, c.keep_fp32, c.weights_file.get());
  auto m = std::make_unique<Managed>();
  m->on_device = cp.placement != Placement::kCpu;
  if (!m->on_device) m->cpu_transfer = make_cpu_transfer();
  DeviceTransfer& t = m->on_device ? *transfer_ : *m->cpu_transfer;
  std::shared_ptr<MappedSafetensors> paged =
      plan_.host_residency == HostResidency::kDisk ? c.weights_file : nullptr;
  m->weights =
      std::make_unique<ModuleWeights>(c.module, c.blocks, t, upcast_on_acquire(cp), paged);
  m->component = std::move(c);
  m->hooks = std::make_unique<Hooks>(*this, *m);
  const std::string name = m->component.name;
  components_.emplace(name, std::move(m));
}

void ResidencyManager::detach(const std::string& name) {
  Managed& m = managed(name);
  release_all(m);
  components_.erase(name);
}

bool ResidencyManager::attached(const std::string& name) const {
  return components_.count(name) != 0;
}

ResidencyManager::~ResidencyManager() {
  // Leave the modules holding their host weights (they may outlive the manager).
  for (auto& [name, m] : components_) {
    for (int u = 0; u < m->weights->num_units(); ++u) {
      try {
        m->weights->release(u);
      } catch (...) {  // nothing sensible to do while destroying
      }
    }
  }
}

ResidencyManager::Managed& ResidencyManager::managed(const std::string& name) {
  const auto it = components_.find(name);
  if (it == components_.end()) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("residency manager: no component '{}'", name));
  }
  return *it->second;
}

const ResidencyManager::Managed& ResidencyManager::managed(const std::string& name) const {
  return const_cast<ResidencyManager*>(this)->managed(name);
}

void ResidencyManager::record_acquire(Managed& m, int unit) {
  const ModuleWeights& w = *m.weights;
  // A CPU-placed component holds no device memory, but what it pages in is in the host column.
  if (!m.on_device && w.paged_bytes(unit) == 0) return;
  ledger_.acquire(m.component.name, w.unit_name(unit), m.on_device ? w.device_bytes(unit) : 0,
                  w.paged_bytes(unit));  // may refuse: budget
}

void ResidencyManager::acquire_unit(Managed& m, int unit) {
  ModuleWeights& w = *m.weights;
  if (w.resident(unit)) return;
  const std::string& name = m.component.name;
  if (!w.in_flight(unit)) record_acquire(m, unit);  // a prefetched unit is recorded already
  try {
    w.acquire(unit);
  } catch (const std::exception& e) {
    if (!w.resident(unit) && !w.in_flight(unit) && ledger_.holds(name, w.unit_name(unit))) {
      ledger_.release(name, w.unit_name(unit));
    }
    if (dynamic_cast<const Error*>(&e)) throw;
    rethrow_transfer_failure(fmt::format("component '{}' {}", name, w.unit_name(unit)), e);
  }
}

void ResidencyManager::prefetch_unit(Managed& m, int unit) {
  ModuleWeights& w = *m.weights;
  if (w.resident(unit) || w.in_flight(unit)) return;
  const std::string& name = m.component.name;
  record_acquire(m, unit);
  try {
    w.prefetch(unit);
  } catch (const std::exception& e) {
    if (ledger_.holds(name, w.unit_name(unit))) ledger_.release(name, w.unit_name(unit));
    if (dynamic_cast<const Error*>(&e)) throw;
    rethrow_transfer_failure(fmt::format("component '{}' {}", name, w.unit_name(unit)), e);
  }
}

void ResidencyManager::release_unit(Managed& m, int unit) {
  ModuleWeights& w = *m.weights;
  if (!w.resident(unit) && !w.in_flight(unit)) return;
  w.release(unit);
  if (m.on_device || ledger_.holds(m.component.name, w.unit_name(unit))) {
    ledger_.release(m.component.name, w.unit_name(unit));
  }
}

void ResidencyManager::release_all(Managed& m) {
  for (int u = 0; u < m.weights->num_units(); ++u) release_unit(m, u);
}

void ResidencyManager::acquire_all(Managed& m) {
  for (int u = 0; u < m.weights->num_units(); ++u) acquire_unit(m, u);
}

void ResidencyManager::enter_units(Managed& m) {
  const ComponentPlan& cp = plan_.component(m.component.name);
  if (cp.residency != Residency::kStreamed || m.component.blocks.empty()) {
    acquire_all(m);
    return;
  }
  const int k = resident_blocks(cp, static_cast<int>(m.component.blocks.size()));
  acquire_unit(m, 0);  // the shell
  for (int b = 0; b < k; ++b) acquire_unit(m, m.weights->block_unit(b));
}

template <typename Fn>
void ResidencyManager::for_each_in_plan_order(Fn fn) {
  for (const ComponentPlan& cp : plan_.components) {
    const auto it = components_.find(cp.name);
    if (it != components_.end()) fn(*it->second, cp);
  }
}

void ResidencyManager::begin_run() {
  if (!run_active_) {
    for (auto& [name, m] : components_) m->entered = m->used = false;
  }
  run_active_ = true;
  for_each_in_plan_order([&](Managed& m, const ComponentPlan& cp) {
    if (cp.residency == Residency::kWholeRun) acquire_all(m);
  });
}

void ResidencyManager::enter(const std::string& name) {
  Managed& m = managed(name);
  m.entered = m.used = true;  // before acquiring: step_down re-enters it after a failure
  enter_units(m);
}

void ResidencyManager::leave(const std::string& name) {
  Managed& m = managed(name);
  m.entered = false;
  const Residency r = plan_.component(name).residency;
  if (r == Residency::kDuringUse || r == Residency::kStreamed) release_all(m);
}

void ResidencyManager::end_run() {
  for_each_in_plan_order([&](Managed& m, const ComponentPlan&) {
    release_all(m);
    m.entered = m.used = false;
  });
  run_active_ = false;
}

StageHooks* ResidencyManager::hooks(const std::string& name) { return managed(name).hooks.get(); }

at::Device ResidencyManager::device_of(const std::string& name) const {
  const Managed& m = managed(name);
  return m.on_device ? transfer_->device() : at::Device(at::kCPU);
}

at::ScalarType ResidencyManager::compute_dtype(const std::string& name) const {
  managed(name);  // kInternal for an unknown component
  return to_scalar_type(plan_.component(name).compute);
}

std::int64_t ResidencyManager::device_bytes(const std::string& name) const {
  const ModuleWeights& w = *managed(name).weights;
  std::int64_t total = 0;
  for (int u = 0; u < w.num_units(); ++u) total += w.device_bytes(u);
  return total;
}

std::int64_t ResidencyManager::minimum_device_bytes() const {
  std::int64_t out = 0;
  for (const auto& [name, m] : components_) {
    if (!m->on_device) continue;
    const ModuleWeights& w = *m->weights;
    std::int64_t need = device_bytes(name);
    if (!m->component.blocks.empty()) {
      std::int64_t largest = 0;
      for (int u = 1; u < w.num_units(); ++u) largest = std::max(largest, w.device_bytes(u));
      need = w.device_bytes(0) + largest;
    }
    out = std::max(out, need);
  }
  return out;
}

void ResidencyManager::reacquire() {
  for_each_in_plan_order([&](Managed& m, const ComponentPlan&) { release_all(m); });
  for_each_in_plan_order([&](Managed& m, const ComponentPlan& cp) {
    if (m.entered) {
      enter_units(m);
    } else if (run_active_ && (cp.residency == Residency::kWholeRun ||
                               (cp.residency == Residency::kFromFirstUse && m.used))) {
      acquire_all(m);
    }
  });
}

std::optional<FallbackStep> ResidencyManager::step_down(const std::string& component,
                                                        const std::string& error) {
  std::vector<Shape> shapes;
  for (const ComponentPlan& cp : plan_.components) {
    const auto it = components_.find(cp.name);
    if (it == components_.end()) continue;
    const ManagedComponent& c = it->second->component;
    shapes.push_back({c.name, c.role, static_cast<int>(c.blocks.size())});
  }
  RuntimeLadder ladder(plan_, shapes);
  std::optional<FallbackStep> taken;
  std::string why = error;
  for (;;) {
    FallbackStep step;
    step.component = component;
    step.error = why;
    if (!ladder.next(step)) return taken;  // nothing cheaper: the caller gives up
    fallbacks_.push_back(step);
    taken = step;
    try {
      reacquire();
      return taken;
    } catch (const Error& e) {
      // What the new plan holds at this point does not fit either: one more step.
      if (e.category() != ErrorCategory::kOutOfMemory) throw;
      why = e.what();
    }
  }
}

}  // namespace wanrt
