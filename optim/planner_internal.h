// Internal to the planner (planner.cpp: evaluation, device, precision, streaming;
// planner_ladder.cpp: the rungs and the reasons). Not part of the public API.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "optim/machine.h"
#include "optim/planner.h"

namespace wanrt::detail {

constexpr std::int64_t kMiB = 1LL << 20;

/// "12.00 GiB <= 24.00 GiB" / "... > ...".
std::string fits_text(std::int64_t peak, std::int64_t capacity);

/// Thrown by a GPU rung whose device side fits while host RAM does not: every later rung needs
/// at least as much host RAM (streaming keeps pinned host copies), so the ladder stops.
struct HostLimited {};

/// One planning run: the working plan, its estimate and the decisions so far.
class Planner {
 public:
  Planner(const ModelRequirements& req, const SystemResources& res, const Workload& w,
          const PlanSettings& s, const OptimizationConfig& cfg)
      : req_(req), res_(res), w_(w), s_(s), cfg_(cfg) {}
  /// Walks the ladder and returns the plan with its estimate and reasons.
  PlanOutcome run();

 private:
  MemoryEstimate evaluate(OptimizationPlan& p) const;
  // Evaluates the working plan as rung `name` and records the step; true when it fits.
  bool attempt(const char* name, const std::string& note = {});
  void skip(const char* name, const std::string& why);
  // Whether every stage that `component` runs in fits the device.
  bool stages_fit(const MemoryEstimate& e, const std::string& component) const;
  std::int64_t stage_peak(const MemoryEstimate& e, const std::string& component) const;
  void decide(const std::string& setting, const std::string& value, const std::string& reason,
              bool user_set = false);
  void choose_device_and_precision();
  void set_policy(OffloadPolicy policy, TextEncoderPlacement te);
  // Largest k (resident blocks) that fits the stages of `c`; -1 when even k = 0 does not.
  int largest_k(const ComponentRequirement& c, int prefetch, std::string* why);
  // Streams the staged components that do not fit whole with the largest k that fits (the
  // user's k for the denoisers when given). Returns false when one does not fit at k = 0.
  bool stream_components(int prefetch);
  bool any_streamed() const;
  void summarize_streaming();
  void set_window(int window);
  void set_tile(int side);
  const ComponentRequirement* vae() const;
  // Whether the VAE's stages fit: on the device, or in host RAM where they run on the CPU.
  bool vae_fits(const MemoryEstimate& e) const;
  bool vae_stages_fit() const { return vae_fits(est_); }
  // The VAE stages' peak and the capacity it is compared with, as text.
  std::string vae_peak_text(const MemoryEstimate& e) const;
  // VAE rung: half precision (aggressive), then tiles of decreasing size, then (with a GPU)
  // the CPU.
  bool vae_rung();
  bool frame_rung(OffloadPolicy policy, TextEncoderPlacement te);
  bool vae_stages_fit_after_eval();
  void vae_rung_quiet();
  void gpu_ladder();
  std::string text_encoder_name() const;
  void cpu_ladder();
  // Applies a user-given offload policy to a CPU plan's residencies (ledger semantics only).
  void cpu_user_offload();
  void finish();

  const ModelRequirements& req_;
  const SystemResources& res_;
  Workload w_;
  const PlanSettings& s_;
  const OptimizationConfig& cfg_;
  std::string device_;
  bool gpu_ = false;
  bool half_fallback_ = false;
  std::optional<HostResidency> forced_host_;  // the CPU ladder steps host residency itself
  int prefetch_ = 1;
  Dtype base_storage_ = Dtype::kBf16;
  Budget budget_;
  OptimizationPlan plan_;
  MemoryEstimate est_;
  std::map<std::string, PlanDecision> decisions_;
  std::vector<std::string> order_;
};

}  // namespace wanrt::detail
