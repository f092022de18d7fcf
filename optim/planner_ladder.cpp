// The planner's rungs (VAE, frame chunking, the GPU and CPU ladders) and its reasons.
#include <fmt/format.h>

#include <algorithm>

#include "optim/planner_internal.h"
#include "runtime/error.h"

namespace wanrt::detail {

const ComponentRequirement* Planner::vae() const {
  for (const auto& c : req_.components) {
    if (c.role == ComponentRole::kVae) return &c;
  }
  return nullptr;
}

bool Planner::vae_fits(const MemoryEstimate& e) const {
  const ComponentRequirement* v = vae();
  if (!v) return true;
  for (const auto& st : e.stages) {
    if (st.component == v->name && (st.device_total > budget_.device_capacity ||
                                    (st.on_cpu && st.host_total > budget_.host_capacity))) {
      return false;
    }
  }
  return true;
}

std::string Planner::vae_peak_text(const MemoryEstimate& e) const {
  const ComponentRequirement* v = vae();
  std::int64_t peak = 0;
  bool cpu = !gpu_;
  for (const auto& st : e.stages) {
    if (st.component != v->name) continue;
    cpu = cpu || st.on_cpu;
    peak = std::max(peak, st.on_cpu ? st.host_total : st.device_total);
  }
  return fits_text(peak, cpu ? budget_.host_capacity : budget_.device_capacity);
}

bool Planner::vae_rung() {
  const ComponentRequirement* v = vae();
  if (!v || vae_stages_fit()) return false;
  ComponentPlan& cp = plan_.component(v->name);
  const std::string untiled = vae_peak_text(est_);
  // Half precision to fit memory only on a GPU: on the CPU LibTorch 1.13 has no bf16 kernel
  // for the decoder's nearest-exact upsampling, and bf16 there is the user's choice for speed
  // (--vae-dtype).
  if (cfg_.enable_aggressive_optimization && gpu_ && !s_.vae_dtype && cp.compute == Dtype::kFp32 &&
      plan_.dtype != Dtype::kFp32) {
    cp.storage = cp.compute = plan_.dtype;
    if (attempt(rung::kVaeTiling, fmt::format("VAE in {} (enable_aggressive_optimization)",
                                              dtype_name(plan_.dtype)))) {
      decide("vae", fmt::format("{}, untiled", dtype_name(plan_.dtype)),
             fmt::format("fp32 decode peaks at {}; {} (lossy) peaks at {}", untiled,
                         dtype_name(plan_.dtype), vae_peak_text(est_)));
      return true;
    }
  }
  if (!s_.vae_tile) {
    const auto [lat_h, lat_w] = req_.activations->latent_size(w_.width, w_.height);
    int side = std::max(lat_h, lat_w);
    while (true) {
      side = std::max(8, side * 4 / 5);
      set_tile(side);
      const MemoryEstimate e = evaluate(plan_);
      if (vae_fits(e) || side <= 8) {
        const bool ok =
            attempt(rung::kVaeTiling,
                    fmt::format("tiles of {}x{} latent px, overlap {}", plan_.vae_tiling.tile_h,
                                plan_.vae_tiling.tile_w, plan_.vae_tiling.overlap));
        if (vae_fits(est_)) {
          decide("vae",
                 fmt::format("tiled {}x{} (overlap {}) latent px", plan_.vae_tiling.tile_h,
                             plan_.vae_tiling.tile_w, plan_.vae_tiling.overlap),
                 fmt::format("untiled decode peaks at {}; the largest tile that fits peaks at {}",
                             untiled, vae_peak_text(est_)));
          return ok;
        }
        break;
      }
    }
  }
  if (!gpu_ || cp.placement == Placement::kCpu) return false;
  // The VAE decodes on the CPU: slow, but its memory is host RAM.
  cp.placement = Placement::kCpu;
  const bool ok = attempt(rung::kVaeTiling, "VAE on the CPU");
  decide("vae", "cpu",
         fmt::format("no tile size fits the device (untiled {}); the VAE runs on "
                     "the CPU: {}",
                     untiled, vae_peak_text(est_)));
  return ok;
}

bool Planner::frame_rung(OffloadPolicy policy, TextEncoderPlacement te) {
  if (s_.frame_chunk) return false;
  const int lat_f = req_.activations->latent_frames(w_.frames);
  const int top = std::min(cfg_.max_chunk_size, lat_f - 1);
  const std::int64_t before = est_.device_peak;
  for (int window = top; window >= 1; --window) {
    set_window(window);
    set_policy(policy, te);
    if (policy == OffloadPolicy::kSequential) stream_components(prefetch_);
    if (!vae_stages_fit_after_eval()) vae_rung_quiet();
    if (attempt(rung::kFrameChunking, fmt::format("windows of {} latent frames, overlap {}", window,
                                                  plan_.frame_chunking.overlap))) {
      decide(
          "frame_chunking",
          fmt::format("{} latent frames per window, overlap {}", window,
                      plan_.frame_chunking.overlap),
          fmt::format("all {} latent frames at once peak at {}; windows of {} peak at {}; "
                      "max_chunk_size {}",
                      lat_f, fits_text(before, budget_.device_capacity), window,
                      fits_text(est_.device_peak, budget_.device_capacity), cfg_.max_chunk_size));
      return true;
    }
  }
  return false;
}

bool Planner::vae_stages_fit_after_eval() {
  est_ = evaluate(plan_);
  return vae_stages_fit();
}

void Planner::vae_rung_quiet() {
  const std::size_t n = plan_.ladder.size();
  vae_rung();
  plan_.ladder.resize(n);  // the frame rung records the combined attempt
}

void Planner::gpu_ladder() {
  const std::int64_t room = budget_.device_capacity - budget_.device_reserve;
  const bool memory_first = cfg_.performance_priority == PerformancePriority::kMemory;
  const bool low_vram = room < cfg_.cpu_offload_threshold_mb * kMiB;
  const auto& pol = s_.offload;
  const auto& te_user = s_.text_encoder;
  const auto te_or = [&](TextEncoderPlacement d) { return te_user.value_or(d); };
  const bool policy_ok_none = !pol || *pol == OffloadPolicy::kNone;
  const std::string start_note =
      memory_first ? "performance_priority memory starts at model offload"
                   : fmt::format("device budget {} < cpu_offload_threshold_mb {} MiB",
                                 format_gib(room), cfg_.cpu_offload_threshold_mb);
  const bool skip_resident = (memory_first || low_vram) && !pol;
  // The policy and text encoder placement the rungs after the first two build on.
  OffloadPolicy current = pol.value_or(OffloadPolicy::kNone);
  TextEncoderPlacement te = te_or(TextEncoderPlacement::kOffloadAfterUse);

  const auto full_rung = [&]() {
    if (pol && *pol != OffloadPolicy::kFull) {
      skip(rung::kFullStreaming, "offload is set by the user");
      return false;
    }
    current = OffloadPolicy::kFull;
    set_policy(current, te);
    if (!s_.prefetch) {
      for (auto& cp : plan_.components) cp.prefetch = 0;
      summarize_streaming();
    }
    const bool ok = attempt(rung::kFullStreaming, "k = 0 everywhere, no prefetch");
    if (!ok && !te_user && !stages_fit(est_, text_encoder_name())) {
      te = TextEncoderPlacement::kCpu;
      set_policy(current, te);
      return attempt(rung::kFullStreaming, "text encoder on the CPU");
    }
    return ok;
  };

  // One rung of the table (optim/ladder.h); true when the plan fits there.
  const auto try_rung = [&](RungId id) -> bool {
    switch (id) {
      case RungId::kResident:
        if (!policy_ok_none || (te_user && *te_user == TextEncoderPlacement::kOffloadAfterUse)) {
          skip(rung::kResident, "a user setting rules it out");
          return false;
        }
        if (skip_resident) {
          skip(rung::kResident, start_note);
          return false;
        }
        set_policy(OffloadPolicy::kNone, te_or(TextEncoderPlacement::kDevice));
        return attempt(rung::kResident);
      case RungId::kTextEncoderOffload:
        if (!policy_ok_none || (te_user && *te_user != TextEncoderPlacement::kOffloadAfterUse)) {
          skip(rung::kTextEncoderOffload, "a user setting rules it out");
          return false;
        }
        if (skip_resident) {
          skip(rung::kTextEncoderOffload, start_note);
          return false;
        }
        set_policy(OffloadPolicy::kNone, TextEncoderPlacement::kOffloadAfterUse);
        return attempt(rung::kTextEncoderOffload);
      case RungId::kModelOffload:
        if (pol && *pol != OffloadPolicy::kModel) {
          skip(rung::kModelOffload, "offload is set by the user");
          return false;
        }
        current = OffloadPolicy::kModel;
        set_policy(current, te);
        return attempt(rung::kModelOffload);
      case RungId::kBlockStreaming: {
        // Only when a staged component does not fit whole in its stage.
        if (pol && *pol != OffloadPolicy::kSequential) {
          skip(rung::kBlockStreaming, "offload is set by the user");
          return false;
        }
        const OffloadPolicy before = current;
        current = OffloadPolicy::kSequential;
        set_policy(current, te);
        stream_components(prefetch_);
        if (!pol && plan_.blocks_resident < 0 && !any_streamed()) {
          current = before;
          set_policy(current, te);
          est_ = evaluate(plan_);
          skip(rung::kBlockStreaming, "not needed: every staged component fits whole in its stage");
          return false;
        }
        return attempt(rung::kBlockStreaming, fmt::format("prefetch {}", prefetch_));
      }
      case RungId::kVaeTiling:
        // A policy the user fixed is tried as given before the VAE is tiled.
        if (pol && *pol == OffloadPolicy::kFull) {
          current = OffloadPolicy::kFull;
          set_policy(current, te);
          if (attempt(rung::kFullStreaming)) return true;
        }
        if (pol && *pol == OffloadPolicy::kNone) {
          set_policy(OffloadPolicy::kNone, te_or(TextEncoderPlacement::kOffloadAfterUse));
        }
        // Changes anything only when a VAE stage does not fit.
        return vae_rung() && est_.fits();
      case RungId::kFullStreaming:
        return full_rung();
      case RungId::kFrameChunking:
        if (frame_rung(pol.value_or(OffloadPolicy::kSequential), te)) return true;
        return !cfg_.enable_aggressive_optimization && !pol &&
               frame_rung(OffloadPolicy::kFull, te);
      default:
        throw Error(ErrorCategory::kInternal,
                    fmt::format("rung '{}' is not on the GPU ladder", rung_of(id).name));
    }
  };
  for (const Rung* r : ladder_walk(/*gpu=*/true, cfg_.enable_aggressive_optimization)) {
    if (try_rung(r->id)) return;
  }
  plan_.rung = rung::kInfeasible;
}

std::string Planner::text_encoder_name() const {
  for (const auto& c : req_.components) {
    if (c.role == ComponentRole::kTextEncoder) return c.name;
  }
  return {};
}

void Planner::cpu_ladder() {
  plan_.offload = OffloadPolicy::kNone;
  plan_.text_encoder = TextEncoderPlacement::kCpu;
  for (auto& cp : plan_.components) {
    cp.placement = Placement::kCpu;
    cp.residency = Residency::kDuringUse;
  }
  // One rung of the table (optim/ladder.h); true when the plan fits there.
  const auto try_rung = [&](RungId id) -> bool {
    switch (id) {
      case RungId::kCpuResident:
        if (s_.host_residency && *s_.host_residency != HostResidency::kAll) return false;
        forced_host_ = HostResidency::kAll;
        return attempt(rung::kCpuResident);
      case RungId::kCpuOnDemand:
        forced_host_ = HostResidency::kOnDemand;
        if (s_.host_residency && *s_.host_residency != HostResidency::kOnDemand) return false;
        return attempt(rung::kCpuOnDemand);
      case RungId::kCpuDisk: {
        // Speed for memory, precision kept: only where the weights are mapped from files.
        if (!req_.mapped_weights) return false;
        if (s_.host_residency && *s_.host_residency != HostResidency::kDisk) return false;
        const std::int64_t before = est_.host_peak;
        forced_host_ = HostResidency::kDisk;
        if (!s_.offload) {
          // The denoisers page in block by block (the next one read ahead); the others whole,
          // while they run.
          plan_.offload = OffloadPolicy::kSequential;
          for (const auto& c : req_.components) {
            ComponentPlan& cp = plan_.component(c.name);
            const bool streamed = c.staged() && c.role == ComponentRole::kDenoiser;
            cp.residency = streamed ? Residency::kStreamed : Residency::kDuringUse;
            cp.blocks_resident = streamed ? std::min(s_.blocks_resident.value_or(0), c.num_blocks()) : -1;
            cp.prefetch = streamed ? s_.prefetch.value_or(1) : 0;
          }
          summarize_streaming();
        }
        if (!attempt(rung::kCpuDisk, "weights paged from the mapped files while in use")) {
          return false;
        }
        decide("host_residency", "disk",
               fmt::format("loading each component at its first use needs host peak {}; paging "
                           "the weights from their files (denoiser blocks one at a time) needs {}",
                           fits_text(before, budget_.host_capacity),
                           fits_text(est_.host_peak, budget_.host_capacity)));
        return true;
      }
      case RungId::kCpuHalf:
        if (!half_fallback_) return false;
        for (const auto& c : req_.components) {
          ComponentPlan& cp = plan_.component(c.name);
          if (c.role == ComponentRole::kVae) continue;
          cp.storage = Dtype::kBf16;
          cp.compute = Dtype::kFp32;
        }
        if (!attempt(rung::kCpuHalf, "bf16 storage, fp32 compute (upcast per layer)")) {
          return false;
        }
        decide("dtype", "bf16 storage, fp32 compute",
               fmt::format("fp32 weights need {}; bf16 storage fits",
                           fits_text(plan_.ladder.front().host_peak, budget_.host_capacity)));
        return true;
      case RungId::kVaeTiling:
        return vae_rung() && est_.fits();
      case RungId::kFrameChunking: {
        if (s_.frame_chunk) return false;
        const int lat_f = req_.activations->latent_frames(w_.frames);
        const std::int64_t before = est_.host_peak;
        for (int window = std::min(cfg_.max_chunk_size, lat_f - 1); window >= 1; --window) {
          set_window(window);
          if (attempt(rung::kFrameChunking, fmt::format("windows of {} latent frames", window))) {
            decide("frame_chunking",
                   fmt::format("{} latent frames per window, overlap {}", window,
                               plan_.frame_chunking.overlap),
                   fmt::format("all {} latent frames at once: host peak {}; windows of {}: {}",
                               lat_f, fits_text(before, budget_.host_capacity), window,
                               fits_text(est_.host_peak, budget_.host_capacity)));
            return true;
          }
        }
        return false;
      }
      default:
        throw Error(ErrorCategory::kInternal,
                    fmt::format("rung '{}' is not on the CPU ladder", rung_of(id).name));
    }
  };
  for (const Rung* r : ladder_walk(/*gpu=*/false)) {
    if (try_rung(r->id)) return;
  }
  plan_.rung = rung::kInfeasible;
}

void Planner::cpu_user_offload() {
  if (!s_.offload || *s_.offload == OffloadPolicy::kNone) return;
  // The residencies the policy gives on a GPU; placements stay on the CPU.
  const OffloadPolicy policy = *s_.offload;
  plan_.offload = policy;
  for (const auto& c : req_.components) {
    ComponentPlan& cp = plan_.component(c.name);
    const bool streamed = c.staged() && (policy == OffloadPolicy::kFull
                                             ? c.role != ComponentRole::kVae
                                             : policy == OffloadPolicy::kSequential &&
                                                   c.role == ComponentRole::kDenoiser);
    cp.residency = streamed ? Residency::kStreamed : Residency::kDuringUse;
    cp.blocks_resident = -1;
    cp.prefetch = 0;
    if (streamed) {
      cp.blocks_resident = policy == OffloadPolicy::kFull
                               ? 0
                               : std::min(s_.blocks_resident.value_or(0), c.num_blocks());
      cp.prefetch = s_.prefetch.value_or(0);
    }
  }
  summarize_streaming();
  // With host residency disk the streaming decides what RAM holds: estimate again.
  if (plan_.host_residency == HostResidency::kDisk) est_ = evaluate(plan_);
  decide("offload", offload_name(policy),
         plan_.host_residency == HostResidency::kDisk
             ? "given by the user; with host residency disk the streamed blocks are what RAM "
               "holds of the weights (paged in from the weights file, dropped after use)"
             : "given by the user; without a GPU the weights stay in RAM, so it changes only "
               "the residency ledger (acquire/release in the order a GPU run would use)",
         true);
}

void Planner::finish() {
  plan_.feasible = plan_.rung != rung::kInfeasible && est_.fits();
  if (!plan_.feasible) plan_.rung = rung::kInfeasible;
  std::string tried;
  for (const auto& step : plan_.ladder) {
    if (!tried.empty()) tried += "; ";
    if (step.note.rfind("skipped", 0) == 0) {
      tried += step.rung + " " + step.note;
      continue;
    }
    tried += fmt::format("{}{}: device {} at {}, host {} at {}", step.rung,
                         step.note.empty() ? "" : " (" + step.note + ")",
                         gpu_ ? fits_text(step.device_peak, budget_.device_capacity) : "-",
                         step.device_peak_stage.empty() ? "-" : step.device_peak_stage,
                         fits_text(step.host_peak, budget_.host_capacity), step.host_peak_stage);
  }
  // Streaming decisions left from rungs that were not kept.
  for (const auto& c : req_.components) {
    const std::string key = "blocks_resident:" + c.name;
    const ComponentPlan& cp = plan_.component(c.name);
    if (!c.staged()) continue;
    if (cp.residency == Residency::kStreamed && plan_.offload == OffloadPolicy::kFull) {
      decide(key, std::to_string(cp.blocks_resident),
             fmt::format("full streaming: no resident block; {} block(s) of {} in flight",
                         1 + cp.prefetch, format_gib(c.max_block_at(cp.storage))),
             s_.blocks_resident.has_value() && c.role == ComponentRole::kDenoiser);
    } else if (plan_.offload != OffloadPolicy::kSequential || cp.placement == Placement::kCpu) {
      if (decisions_.erase(key)) order_.erase(std::find(order_.begin(), order_.end(), key));
    }
  }
  if (plan_.blocks_resident >= 0) {
    decide("prefetch", std::to_string(plan_.prefetch),
           s_.prefetch ? "given by the user"
           : plan_.offload == OffloadPolicy::kFull
               ? "full streaming: one block at a time, nothing prefetched"
               : fmt::format("blocks prefetched ahead on a side stream while one "
                             "runs (performance_priority {}: {})",
                             priority_name(cfg_.performance_priority), prefetch_),
           s_.prefetch.has_value());
  }
  if (gpu_) {
    decide("offload", offload_name(plan_.offload),
           (s_.offload ? "given by the user. " : "") +
               fmt::format("rung '{}'. Tried: {}", plan_.rung, tried),
           s_.offload.has_value());
    const ComponentPlan* te = nullptr;
    for (const auto& c : req_.components) {
      if (c.role == ComponentRole::kTextEncoder) te = &plan_.component(c.name);
    }
    if (te) {
      std::string why;
      switch (plan_.text_encoder) {
        case TextEncoderPlacement::kDevice:
          why = "stays on the device for the whole run";
          break;
        case TextEncoderPlacement::kOffloadAfterUse:
          why = "on the device only while it encodes the prompts, then released";
          break;
        case TextEncoderPlacement::kCpu:
          why = "runs on the CPU (slow: minutes for umT5-XXL); only its output moves to the device";
          break;
      }
      if (te->residency == Residency::kStreamed) {
        why += fmt::format(", streamed with k={}", te->blocks_resident);
      }
      decide("text_encoder", text_encoder_placement_name(plan_.text_encoder),
             s_.text_encoder ? "given by the user; " + why : why, s_.text_encoder.has_value());
    }
  } else {
    decide("offload", "none", "CPU plan: " + tried);
  }
  if (decisions_.find("vae") == decisions_.end()) {
    const ComponentRequirement* v = vae();
    if (v) {
      const ComponentPlan& cp = plan_.component(v->name);
      decide("vae",
             s_.vae_tile && plan_.vae_tiling.enabled
                 ? fmt::format("tiled {}x{} latent px", plan_.vae_tiling.tile_h,
                               plan_.vae_tiling.tile_w)
                 : fmt::format("{}, untiled", dtype_name(cp.compute)),
             fmt::format("{}decode peaks at {}", s_.vae_tile ? "tile size given by the user; " : "",
                         gpu_ && cp.placement == Placement::kDevice
                             ? fits_text(stage_peak(est_, v->name), budget_.device_capacity)
                             : fits_text(est_.host_peak, budget_.host_capacity)),
             s_.vae_tile.has_value());
    }
  }
  if (decisions_.find("frame_chunking") == decisions_.end()) {
    decide("frame_chunking",
           plan_.frame_chunking.enabled
               ? fmt::format("{} latent frames per window", plan_.frame_chunking.window)
               : "off",
           s_.frame_chunk ? "given by the user"
                          : "all latent frames are denoised at once (no windows needed)",
           s_.frame_chunk.has_value());
  }
  std::int64_t all_host = 0;
  for (const auto& c : req_.components) all_host += c.bytes_at(plan_.component(c.name).storage);
  decide("host_residency", host_residency_name(plan_.host_residency),
         s_.host_residency ? "given by the user"
         : plan_.host_residency == HostResidency::kAll
             ? fmt::format("host peak {} with every component kept in RAM ({} of weights)",
                           fits_text(est_.host_peak, budget_.host_capacity), format_gib(all_host))
         : plan_.host_residency == HostResidency::kOnDemand
             ? fmt::format("keeping every component in RAM ({} of weights) does not fit; "
                           "each is loaded at its first use and released after its last: "
                           "host peak {} at {}",
                           format_gib(all_host), fits_text(est_.host_peak, budget_.host_capacity),
                           est_.host_peak_stage)
             : fmt::format("neither keeping every component in RAM ({} of weights) nor loading "
                           "each at its first use fits; the weights are paged from their "
                           "mapped files while in use: host peak {} at {}",
                           format_gib(all_host), fits_text(est_.host_peak, budget_.host_capacity),
                           est_.host_peak_stage),
         s_.host_residency.has_value());
  for (const auto& key : order_) plan_.reasons.push_back(decisions_.at(key));
}

}  // namespace wanrt::detail
