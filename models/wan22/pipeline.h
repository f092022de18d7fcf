// The Wan 2.2 generation pipeline in C++: load a bundle, turn a request into frames.
// This is the library's public entry point for applications (see docs/embedding.md).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/wan22/model_spec.h"
#include "models/wan22/request.h"
#include "optim/optim_types.h"
#include "optim/residency_manager.h"

namespace wanrt::wan22 {

/// How to open a bundle.
struct LoadOptions {
  bool verify = true;  ///< check sha256 of every file (false: --no-verify)
  int threads = 0;     ///< LibTorch intra-op threads; <= 0 means one per core
  /// TorchScript graph optimisation (process-wide setting). Off by default: on LibTorch's CPU
  /// executor the profiling/specialisation passes cost more than they save for these models
  /// (bench/README.md, "JIT graph optimisation").
  bool jit_optimize = false;
  /// Called while hashing large files: (file, bytes done, bytes total).
  std::function<void(const std::string&, std::int64_t, std::int64_t)> hash_progress;
  /// The memory plan to apply (wan22::plan_pipeline or OptimizationManager): device, dtypes,
  /// offload policy per component. None: every component resident on the CPU in its stored
  /// dtype (the plain pipeline).
  std::optional<OptimizationPlan> plan;
  /// Device memory budget in bytes for the residency ledger (0: none). Holding more weights
  /// than this is an out-of-memory error, handled like a CUDA one (see `fallback`).
  std::int64_t vram_budget = 0;
  /// After an out-of-memory error in a stage, step the plan down (ResidencyManager::step_down)
  /// and retry the stage; false: fail at once.
  bool fallback = true;
};

/// One progress report: a stage ("text_encoder", "denoise", "vae_decode", ...) and how far.
struct ProgressEvent {
  std::string stage;
  int step = 0;   ///< completed units in this stage
  int total = 0;  ///< units in this stage
};

/// Callbacks of a generation; all optional. `cancelled` is polled between steps and blocks:
/// returning true stops the run with Error(kCancelled).
struct Callbacks {
  std::function<void(const ProgressEvent&)> progress;
  std::function<bool()> cancelled;
  /// Streaming output: when set, generate() hands the decoded frames to it as soon as the VAE
  /// has produced them (uint8 [n, H, W, 3] RGB, in order, n = 1 for the first latent frame and
  /// the temporal stride after that; all calls together give the whole video) and does not
  /// keep the video: GenerateResult::frames and ::video stay undefined, and peak memory no
  /// longer grows with the frame count during decoding. An exception it throws stops the run
  /// and propagates. Time spent in it counts in the "vae_decode" stage.
  std::function<void(const at::Tensor& frames_u8)> on_frames;
};

/// Wall time and peak memory of one stage.
struct StageTime {
  std::string stage;
  double seconds = 0;
  std::int64_t peak_rss_bytes = 0;  ///< peak RSS while the stage ran (process-wide)
  /// Peak of live LibTorch CPU tensor bytes while the stage ran (runtime/tracking_allocator.h;
  /// 0 unless install_cpu_tracking() was called).
  std::int64_t peak_tracked_bytes = 0;
  /// Peak of the CUDA caching allocator's allocated bytes while the stage ran (0 on the CPU).
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
  int dit_calls = 0;         ///< DiT forward passes: steps x 2 (CFG) x denoise_windows
  int denoise_windows = 1;   ///< latent-frame windows per step (1 without chunk_frames)
  int vae_tiles = 1;         ///< spatial VAE tiles (1 without vae_tile)
  std::int64_t frame_count = 0;  ///< video frames produced (also when streamed)
  std::vector<FallbackStep> fallbacks;   ///< automatic fallbacks taken during this run
  std::int64_t ledger_peak_bytes = 0;    ///< the residency ledger's peak during this run
  std::string plan_summary;              ///< the plan as applied at the end of the run
};

/// The plan of the plain pipeline: every component of `manifest` resident on `device` for the
/// whole run in its stored dtype, nothing offloaded.
OptimizationPlan resident_plan(const BundleManifest& manifest, const std::string& device = "cpu");

/// A loaded Wan 2.2 bundle, ready to generate. Components are loaded to host memory — all at
/// load(), or with the plan's host residency on_demand each at its first use in a run and freed
/// after its last; the plan (LoadOptions::plan) decides their dtype, the compute device and
/// when weights move there.
/// Without a plan everything runs on the CPU in the stored dtype (fp32 bundles give results
/// equal to the Python reference within 1e-4).
class Pipeline {
 public:
  /// Reads and verifies the bundle, loads every component. Throws Error(kBundle) on a bad
  /// bundle, naming the file and key.
  static std::unique_ptr<Pipeline> load(const std::string& bundle_dir,
                                        const LoadOptions& options = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// The model's facts and defaults.
  const WanSpec& spec() const;
  /// The manifest the bundle was read from.
  const BundleManifest& manifest() const;
  /// Seconds spent loading components (with host residency on_demand, summed over the loads
  /// made during generate() calls so far).
  double load_seconds() const;
  /// Weights, plan and residency ledger (the plan may change during generate() by fallback).
  const ResidencyManager& residency() const;

  /// Validates and fills a request without running it (Error(kUsage) on bad values).
  ResolvedRequest resolve(const GenerateRequest& request) const;

  /// Runs tokenize -> text encoder -> denoising loop (CFG, expert switch) -> VAE decode.
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
  GenerateResult generate(const GenerateRequest& request, const Callbacks& callbacks = {});

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wanrt::wan22
