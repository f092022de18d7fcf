// One user of a loaded Model: a memory plan, the residency of the components' weights (device
// copies, casts), and the runs made with them. Several sessions, with different plans, may
// share one Model and run at the same time on different threads.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/parallel_layout.h"
#include "models/wan22/callbacks.h"
#include "models/wan22/model.h"
#include "models/wan22/request.h"
#include "optim/optim_types.h"
#include "optim/residency_manager.h"

namespace wanrt::wan22 {

/// How a session runs.
struct SessionOptions {
  /// The memory plan to apply (wanrun plan, plan_request in request_plan.h, or
  /// OptimizationManager): device, dtypes, offload policy per component. None: every component
  /// resident on the CPU in its stored dtype (resident_plan).
  std::optional<OptimizationPlan> plan;
  /// Device memory budget in bytes for the residency ledger (0: none). Holding more weights
  /// than this is an out-of-memory error, handled like a CUDA one (see `fallback`).
  std::int64_t vram_budget = 0;
  /// After an out-of-memory error in a stage, step the plan down (ResidencyManager::step_down)
  /// and retry the stage; false: fail at once. Off in a run of several ranks (a retry on one
  /// rank would leave the others waiting in a collective).
  bool fallback = true;
  /// The ranks this session works with (dist/parallel_layout.h); none: one process. Every rank
  /// holds its own copy of the weights; CFG pairs split the guidance passes, sequence groups the
  /// DiT's tokens; only the leader (world rank 0) decodes the video.
  std::shared_ptr<dist::Parallelism> parallel;
};

/// Wall time and peak memory of one stage.
struct StageTime {
  std::string stage;
  double seconds = 0;
  std::int64_t peak_rss_bytes = 0;  ///< peak RSS while the stage ran (process-wide)
  /// Resident memory the host allocator held beyond the live tensors when the stage ended: what
  /// the trim that ends every stage gave back (RSS before minus after).
  std::int64_t retained_bytes = 0;
  /// Peak of live LibTorch CPU tensor bytes while the stage ran (runtime/tracking_allocator.h;
  /// 0 unless install_cpu_tracking() was called; process-wide).
  std::int64_t peak_tracked_bytes = 0;
  /// Peak of the CUDA caching allocator's allocated bytes while the stage ran (0 on the CPU;
  /// device-wide).
  std::int64_t peak_device_bytes = 0;
};

/// What a generation produced and how it went.
struct GenerateResult {
  at::Tensor frames;   ///< uint8 [F, H, W, 3] RGB (undefined when Callbacks::on_frames is set)
  at::Tensor video;    ///< float32 [3, F, H, W] in [-1, 1] (before the uint8 mapping; undefined
                       ///< when Callbacks::on_frames is set)
  at::Tensor latent;   ///< final latent [z, lat_f, lat_h, lat_w]
  ResolvedRequest request;
  std::vector<std::string> expert_trace;  ///< the DiT component used at each step
  std::vector<StageTime> times;
  std::int64_t peak_rss_bytes = 0;  ///< peak RSS during generate() (the largest stage peak)
  int fps = 16;
  int dit_calls = 0;  ///< DiT forward passes: steps x denoise_windows x (2, or 1 at guidance 1)
  int denoise_windows = 1;   ///< latent-frame windows per step (1 without chunk_frames)
  int vae_tiles = 1;         ///< spatial VAE tiles (1 without vae_tile)
  std::int64_t frame_count = 0;  ///< video frames produced (also when streamed)
  std::vector<FallbackStep> fallbacks;   ///< automatic fallbacks taken during this run
  std::int64_t ledger_peak_bytes = 0;    ///< the residency ledger's peak during this run
  /// The ledger's host column peak during this run: weights paged in from mapped files (host
  /// residency disk; 0 otherwise).
  std::int64_t ledger_host_peak_bytes = 0;
  std::string plan_summary;              ///< the plan as applied at the end of the run
  std::string parallel = "1 rank";        ///< the rank layout (ParallelLayout::describe)
  /// The collectives' transport: "gloo", "nccl", or "none" in one process.
  std::string parallel_backend = "none";
  /// Seconds this rank spent in collectives during the run (0 in one process).
  double comm_seconds = 0;
  /// False on the ranks other than the leader of a multi-rank run: they do not decode, so
  /// frames, video and frame_count are empty.
  bool decoded = true;
};

/// The plan of the plain pipeline: every component of `manifest` resident on `device` for the
/// whole run in its stored dtype, nothing offloaded.
OptimizationPlan resident_plan(const BundleManifest& manifest, const std::string& device = "cpu");

/// A plan applied to a model.
///
/// Weights: the session runs its own clone of each component's module (Component::share). A
/// component whose planned dtype is its stored dtype shares the model's host tensors (no
/// copy); a cast makes the session's own copy; device copies are the session's own. With the
/// plan's host residency "all" the session takes every component at construction; with "on
/// demand" it takes each at its first use in a run and lets go after its last (the model frees
/// it when no session holds it and the model was not loaded with preload).
///
/// Thread safety: one thread at a time per session (generate() is not reentrant); different
/// sessions, on one model or not, may run concurrently. Stage peaks (StageTime) are process-
/// or device-wide, so concurrent runs see each other's memory in them.
class Session {
 public:
  /// Applies `options.plan` (or resident_plan) to `model`. Error(kResources) when the plan's
  /// device is absent; Error(kBundle) when a component fails to load.
  explicit Session(std::shared_ptr<const Model> model, const SessionOptions& options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// The model this session runs.
  const Model& model() const;
  /// Weights, plan and residency ledger (the plan may change during generate() by fallback).
  const ResidencyManager& residency() const;

  /// Validates and fills a request without running it (Error(kUsage) on bad values).
  ResolvedRequest resolve(const GenerateRequest& request) const;

  /// Runs the stages (stages.h): encode the prompts -> condition on the image (I2V, TI2V with
  /// an image) -> denoise (CFG, expert switch, sliding windows) -> decode (causal, tiled).
  ///
  /// Chunking (request.chunk_frames, chunk_overlap, vae_tile, blend; none set = the plain
  /// pipeline, bit for bit):
  /// - Sliding-window denoising: at each step the DiT runs once per window of latent frames
  ///   (ResolvedRequest::window_plan) for the conditional and the unconditional prompt, and the
  ///   guided velocities are blended along the latent frames (ChunkedProcessor). A window sees
  ///   its own slice of the latent, of the I2V conditioning y, and of the TI2V per-token
  ///   timesteps; its RoPE positions are local (the DiT numbers the window's frames from 0),
  ///   as in FreeNoise-style sliding windows. A single window covering the video is exactly
  ///   the unchunked result.
  /// - VAE decoding is always causal and chunked in time (one latent frame per step, the cache
  ///   carried over); vae_tile adds spatial tiles blended in pixel space (vae_decoder.h).
  /// After an out-of-memory error a stage is retried with a cheaper plan (SessionOptions::
  /// fallback); the run ends with no weights held on the device, whatever happens.
  GenerateResult generate(const GenerateRequest& request, const Callbacks& callbacks = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt::wan22
