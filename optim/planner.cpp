#include "optim/planner.h"

#include <fmt/format.h>

#include <algorithm>

#include "optim/planner_internal.h"
#include "optim/precision.h"
#include "runtime/error.h"

namespace wanrt {
namespace detail {

std::string fits_text(std::int64_t peak, std::int64_t capacity) {
  return fmt::format("{} {} {}", format_gib(peak), peak <= capacity ? "<=" : ">",
                     format_gib(capacity));
}

PlanOutcome Planner::run() {
  choose_device_and_precision();
  if (gpu_) {
    try {
      gpu_ladder();
    } catch (const HostLimited&) {
      plan_.rung = rung::kInfeasible;
    }
  } else {
    cpu_ladder();
    cpu_user_offload();
  }
  finish();
  return {plan_, est_};
}

MemoryEstimate Planner::evaluate(OptimizationPlan& p) const {
  if (s_.host_residency || forced_host_) {
    p.host_residency = s_.host_residency ? *s_.host_residency : *forced_host_;
    return estimate_memory(req_, w_, p, budget_);
  }
  p.host_residency = HostResidency::kAll;
  MemoryEstimate e = estimate_memory(req_, w_, p, budget_);
  if (e.host_fits()) return e;
  p.host_residency = HostResidency::kOnDemand;
  e = estimate_memory(req_, w_, p, budget_);
  if (e.host_fits() || !req_.mapped_weights) return e;
  // Mapped weights can be paged in while in use and dropped after.
  OptimizationPlan disk = p;
  disk.host_residency = HostResidency::kDisk;
  MemoryEstimate d = estimate_memory(req_, w_, disk, budget_);
  if (!d.host_fits()) return e;
  p = disk;
  return d;
}

bool Planner::attempt(const char* name, const std::string& note) {
  est_ = evaluate(plan_);
  LadderStep step;
  step.rung = name;
  step.fits = est_.fits();
  step.device_peak = est_.device_peak;
  step.host_peak = est_.host_peak;
  step.device_peak_stage = est_.device_peak_stage;
  step.host_peak_stage = est_.host_peak_stage;
  step.note = note;
  plan_.ladder.push_back(step);
  if (step.fits) plan_.rung = name;
  if (gpu_ && est_.device_fits() && !est_.host_fits()) {
    plan_.ladder.back().note += (step.note.empty() ? "" : "; ") +
                                std::string("host RAM is the limit: later rungs need more");
    throw HostLimited{};
  }
  return step.fits;
}

void Planner::skip(const char* name, const std::string& why) {
  LadderStep step;
  step.rung = name;
  step.note = "skipped: " + why;
  plan_.ladder.push_back(step);
}

bool Planner::stages_fit(const MemoryEstimate& e, const std::string& component) const {
  for (const auto& st : e.stages) {
    if (st.component == component && st.device_total > budget_.device_capacity) return false;
  }
  return true;
}

std::int64_t Planner::stage_peak(const MemoryEstimate& e, const std::string& component) const {
  std::int64_t peak = 0;
  for (const auto& st : e.stages) {
    if (st.component == component) peak = std::max(peak, st.device_total);
  }
  return peak;
}

void Planner::decide(const std::string& setting, const std::string& value,
                     const std::string& reason, bool user_set) {
  PlanDecision d;
  d.setting = setting;
  d.value = value;
  d.reason = reason;
  d.user_set = user_set;
  decisions_[setting] = d;
  if (std::find(order_.begin(), order_.end(), setting) == order_.end()) order_.push_back(setting);
}

void Planner::choose_device_and_precision() {
  plan_.user_set = SettingSet::of(s_);
  const int best = preferred_gpu(res_);
  if (s_.device) {
    device_ =
        *s_.device == "cuda" ? (best >= 0 ? fmt::format("cuda:{}", best) : "cuda:0") : *s_.device;
    if (device_ != "cpu" && device_.rfind("cuda:", 0) != 0) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("--device '{}' is not cpu or cuda[:N]", device_));
    }
  } else {
    device_ = best >= 0 ? fmt::format("cuda:{}", best) : "cpu";
  }
  gpu_ = device_ != "cpu";
  budget_ = compute_budget(res_, device_, cfg_);
  plan_.device = device_;
  if (s_.device) {
    decide("device", device_, "given by the user: " + budget_.device_source, true);
  } else if (gpu_) {
    decide("device", device_,
           fmt::format("{}; the GPU with the most free memory of {}", budget_.device_source,
                       res_.gpus.size()) +
               (res_.gpus.size() > 1 ? " (a plan uses one GPU; the others stay idle)" : ""));
  } else {
    decide("device", "cpu",
           "no GPU: everything runs on the CPU in host RAM (" + budget_.host_source + ")");
  }

  const PrecisionChoice choice = choose_precision(res_, device_);
  Dtype compute = choice.compute, storage = choice.compute;
  if (s_.dtype) {
    check_dtype_supported(res_, device_, *s_.dtype, "--dtype");
    compute = storage = *s_.dtype;
    if (gpu_ && *s_.dtype == Dtype::kFp16 && choice.compute == Dtype::kFp32) compute = Dtype::kFp32;
    decide("dtype", dtype_name(*s_.dtype),
           compute == storage ? "given by the user"
                              : "given by the user; stored fp16, computed in fp32 (no fast fp16 "
                                "below compute capability 7.0)",
           true);
  } else {
    const std::int64_t threshold = cfg_.mixed_precision_threshold_mb * kMiB;
    const std::int64_t room = gpu_ ? budget_.device_capacity : budget_.host_capacity;
    if (choice.half_saves_memory_only && room < threshold) {
      storage = gpu_ ? Dtype::kFp16 : Dtype::kBf16;
      decide("dtype", fmt::format("{} storage, fp32 compute", dtype_name(storage)),
             fmt::format("{}; {} {} < mixed_precision_threshold_mb {} MiB: weights stored in "
                         "half precision, upcast per layer",
                         choice.reason, gpu_ ? "device memory" : "RAM", format_gib(room),
                         cfg_.mixed_precision_threshold_mb));
    } else {
      decide("dtype", dtype_name(compute), choice.reason);
    }
  }
  plan_.dtype = compute;
  base_storage_ = storage;

  // The official code decodes in fp32; bf16 is the user's choice (docs/optimization.md states
  // its measured error).
  const Dtype vae_dtype = s_.vae_dtype.value_or(Dtype::kFp32);
  if (s_.vae_dtype) {
    check_dtype_supported(res_, device_, vae_dtype, "--vae-dtype");
    if (!gpu_ && vae_dtype == Dtype::kBf16 && !cpu_vae_bf16_supported()) {
      throw Error(ErrorCategory::kResources,
                  "--vae-dtype bf16 cannot decode on the CPU with this LibTorch: it has no "
                  "bfloat16 kernel for the decoder's nearest-exact upsampling",
                  "use LibTorch 2.x (the default build), or decode in fp32");
    }
    decide("vae_dtype", dtype_name(vae_dtype),
           vae_dtype == Dtype::kFp32 ? "given by the user"
                                     : "given by the user; lossy against the fp32 decode "
                                       "(docs/optimization.md)",
           true);
  }
  half_fallback_ = choice.half_saves_memory_only && !s_.dtype && storage == Dtype::kFp32;

  plan_.attention = s_.attention.value_or(req_.attention.value_or(AttentionKind::kMath));
  decide("attention", attention_name(plan_.attention),
         s_.attention      ? "given by the user"
         : req_.attention  ? "what the bundle's components bake in (wanrt.yaml: attention)"
                           : "explicit query-chunked softmax, as in bundles exported with "
                             "PyTorch 1.13 (sized for score chunks of up to 2^28 elements); "
                             "--attention sdpa for exports made with PyTorch >= 2.1",
         s_.attention.has_value());

  for (const auto& c : req_.components) {
    ComponentPlan cp;
    cp.name = c.name;
    cp.placement = gpu_ ? Placement::kDevice : Placement::kCpu;
    if (c.role == ComponentRole::kVae) {
      cp.storage = cp.compute = vae_dtype;
    } else {
      cp.storage = storage;
      cp.compute = compute;
    }
    cp.residency = Residency::kWholeRun;
    plan_.components.push_back(cp);
  }
  if (s_.frame_chunk && *s_.frame_chunk > 0) set_window(*s_.frame_chunk);
  if (s_.vae_tile && *s_.vae_tile > 0) set_tile(*s_.vae_tile);
  prefetch_ =
      s_.prefetch.value_or(cfg_.performance_priority == PerformancePriority::kSpeed ? 2 : 1);
}

void Planner::set_policy(OffloadPolicy policy, TextEncoderPlacement te) {
  plan_.offload = policy;
  plan_.text_encoder = te;
  for (const auto& c : req_.components) {
    ComponentPlan& cp = plan_.component(c.name);
    if (cp.placement == Placement::kCpu && c.role != ComponentRole::kTextEncoder) continue;
    cp.placement = Placement::kDevice;
    cp.blocks_resident = -1;
    cp.prefetch = 0;
    if (c.role == ComponentRole::kTextEncoder) {
      if (te == TextEncoderPlacement::kCpu) {
        cp.placement = Placement::kCpu;
        cp.residency = Residency::kDuringUse;
        // On the CPU: keep the stored half weights; compute fp32 where bf16 is not native.
        const PrecisionChoice cpu = choose_precision(res_, "cpu");
        cp.storage = is_half(cp.storage) ? Dtype::kBf16 : cp.storage;
        cp.compute = cpu.compute == Dtype::kBf16 ? cp.storage : Dtype::kFp32;
        continue;
      }
      cp.storage = base_storage_;
      cp.compute = plan_.dtype;
      if (policy == OffloadPolicy::kNone && te == TextEncoderPlacement::kDevice) {
        cp.residency = Residency::kWholeRun;
      } else if (policy == OffloadPolicy::kFull) {
        cp.residency = Residency::kStreamed;
        cp.blocks_resident = 0;
        cp.prefetch = s_.prefetch.value_or(0);
      } else {
        cp.residency = Residency::kDuringUse;
      }
      continue;
    }
    switch (policy) {
      case OffloadPolicy::kNone:
        cp.residency =
            te == TextEncoderPlacement::kDevice ? Residency::kWholeRun : Residency::kFromFirstUse;
        break;
      case OffloadPolicy::kModel:
        cp.residency = Residency::kDuringUse;
        break;
      case OffloadPolicy::kSequential:
      case OffloadPolicy::kFull:
        if (c.staged()) {
          cp.residency = Residency::kStreamed;
          cp.blocks_resident = 0;
          cp.prefetch = policy == OffloadPolicy::kFull ? s_.prefetch.value_or(0) : prefetch_;
        } else {
          cp.residency = Residency::kDuringUse;
        }
        break;
    }
  }
  summarize_streaming();
}

int Planner::largest_k(const ComponentRequirement& c, int prefetch, std::string* why) {
  ComponentPlan& cp = plan_.component(c.name);
  cp.residency = Residency::kStreamed;
  cp.prefetch = prefetch;
  const auto fits_with = [&](int k, std::int64_t* peak) {
    cp.blocks_resident = k;
    const MemoryEstimate e = estimate_memory(req_, w_, plan_, budget_);
    if (peak) *peak = stage_peak(e, c.name);
    return stages_fit(e, c.name);
  };
  std::int64_t peak0 = 0;
  if (!fits_with(0, &peak0)) {
    if (why) {
      *why = fmt::format("even k=0 (prefetch {}) peaks at {}", prefetch,
                         fits_text(peak0, budget_.device_capacity));
    }
    return -1;
  }
  int lo = 0, hi = c.num_blocks();  // lo fits; find the largest fitting k in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (fits_with(mid, nullptr)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  std::int64_t peak = 0, next_peak = 0;
  fits_with(lo, &peak);
  if (why) {
    *why = fmt::format("k={} of {} blocks ({} each, prefetch {}) peaks at {}", lo, c.num_blocks(),
                       format_gib(c.max_block_at(cp.storage)), prefetch,
                       fits_text(peak, budget_.device_capacity));
    if (lo < c.num_blocks()) {
      fits_with(lo + 1, &next_peak);
      *why += fmt::format("; k={} would need {}", lo + 1, format_gib(next_peak));
    }
  }
  cp.blocks_resident = lo;
  return lo;
}

bool Planner::stream_components(int prefetch) {
  bool all = true;
  for (const auto& c : req_.components) {
    ComponentPlan& cp = plan_.component(c.name);
    if (!c.staged() || cp.placement == Placement::kCpu) continue;
    if (c.role == ComponentRole::kDenoiser && s_.blocks_resident) {
      cp.residency = Residency::kStreamed;
      cp.blocks_resident = std::min(*s_.blocks_resident, c.num_blocks());
      cp.prefetch = prefetch;
      decide("blocks_resident:" + c.name, std::to_string(cp.blocks_resident), "given by the user",
             true);
      continue;
    }
    std::string why;
    const int k = largest_k(c, prefetch, &why);
    if (k < 0) {
      all = false;
      cp.blocks_resident = 0;
    } else if (k >= c.num_blocks()) {
      cp.residency = Residency::kDuringUse;  // fits whole: no streaming needed
      cp.blocks_resident = -1;
      cp.prefetch = 0;
    }
    if (c.role != ComponentRole::kDenoiser && cp.residency != Residency::kStreamed) continue;
    decide(
        "blocks_resident:" + c.name,
        cp.residency == Residency::kStreamed ? std::to_string(cp.blocks_resident) : "all",
        k >= c.num_blocks() ? "fits whole in its stage(s): " + why : "largest k that fits: " + why);
  }
  summarize_streaming();
  return all;
}

bool Planner::any_streamed() const {
  for (const auto& cp : plan_.components) {
    if (cp.residency == Residency::kStreamed) return true;
  }
  return false;
}

void Planner::summarize_streaming() {
  plan_.blocks_resident = -1;
  plan_.prefetch = 0;
  for (const auto& c : req_.components) {
    const ComponentPlan& cp = plan_.component(c.name);
    if (c.role == ComponentRole::kDenoiser && cp.residency == Residency::kStreamed) {
      plan_.blocks_resident = cp.blocks_resident;
      plan_.prefetch = cp.prefetch;
    }
  }
}

void Planner::set_window(int window) {
  const int lat_f = req_.activations->latent_frames(w_.frames);
  window = std::min(window, lat_f);
  plan_.frame_chunking.enabled = window < lat_f;
  plan_.frame_chunking.window = window;
  plan_.frame_chunking.overlap = window >= 4 ? window / 4 : (window >= 2 ? 1 : 0);
  if (!plan_.frame_chunking.enabled) plan_.frame_chunking = FrameChunking{};
}

void Planner::set_tile(int side) {
  const auto [lat_h, lat_w] = req_.activations->latent_size(w_.width, w_.height);
  VaeTiling t;
  t.tile_h = std::min(lat_h, side);
  t.tile_w = std::min(lat_w, side);
  t.enabled = t.tile_h < lat_h || t.tile_w < lat_w;
  // The pipeline's tiling (models/wan22 vae_tiling_for_pixels): a quarter tile, rounded up.
  t.overlap = t.enabled ? (side + 3) / 4 : 0;
  plan_.vae_tiling = t.enabled ? t : VaeTiling{};
}

}  // namespace detail

void check_workload(const ModelRequirements& req, const Workload& w) {
  const int m = std::max(1, req.size_multiple);
  if (w.width <= 0 || w.height <= 0 || w.width % m != 0 || w.height % m != 0) {
    const auto near = [m](int v) { return std::max(m, (v + m / 2) / m * m); };
    throw Error(ErrorCategory::kUsage,
                fmt::format("size {}x{} is not a positive multiple of {} for {}", w.width, w.height,
                            m, req.model_id),
                fmt::format("try --size {}x{}", near(w.width), near(w.height)));
  }
  const int s = std::max(1, req.temporal_stride);
  if (w.frames < 1 || (w.frames - 1) % s != 0) {
    const int lower = std::max(1, 1 + (w.frames - 1) / s * s);
    throw Error(ErrorCategory::kUsage,
                fmt::format("{} frames is not 1 + {}n for {}", w.frames, s, req.model_id),
                fmt::format("try --frames {} or {}", lower, lower + s));
  }
  if (w.image && !req.image_required && !req.image_optional) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{} takes no image (text-to-video)", req.model_id), "drop --image");
  }
}

PlanOutcome plan_optimizations(const ModelRequirements& requirements,
                               const SystemResources& resources, const Workload& workload,
                               const PlanSettings& settings, const OptimizationConfig& config,
                               bool guidance) {
  Workload w = workload;
  if (requirements.image_required) w.image = true;
  check_workload(requirements, w);
  if (settings.blocks_resident && *settings.blocks_resident < 0) {
    throw Error(ErrorCategory::kUsage, "--blocks-resident must be >= 0");
  }
  if (settings.prefetch && *settings.prefetch < 0) {
    throw Error(ErrorCategory::kUsage, "--prefetch must be >= 0");
  }
  detail::Planner planner(requirements, resources, w, settings, config);
  PlanOutcome out = planner.run();
  if (!out.plan.feasible && guidance)
    add_guidance(requirements, resources, w, settings, config, out);
  return out;
}

}  // namespace wanrt
