// A generation request as the planner sees it, and the planner's chunking put back into the
// request: the conversions between video frames / pixels (requests) and latent frames /
// latent pixels (plans), in one place for the CLI and every embedder.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "models/wan22/lora.h"
#include "models/wan22/model_spec.h"
#include "models/wan22/request.h"
#include "optim/optim_config.h"
#include "optim/optimization_manager.h"
#include "optim/optim_types.h"
#include "runtime/system_resources.h"

namespace wanrt::wan22 {

/// A denoising window of `chunk_frames` video frames in latent frames ((n - 1) / stride_t + 1;
/// 0 stays 0: no windows).
int window_latent_frames(int chunk_frames, int temporal_stride);
/// A VAE tile of `vae_tile` pixels in latent pixels (0 stays 0: no tiling).
int tile_latent_pixels(int vae_tile, int spatial_stride);

/// The planner's inputs for a request.
struct PlanInputs {
  Workload workload;      ///< the request's size, frames and image presence (defaults filled)
  PlanSettings settings;  ///< the caller's settings plus the request's own chunking, fixed
};

/// Resolves `request` against `spec` (Error(kUsage) on bad values) and states it for the
/// planner: the workload, and the request's chunking as fixed settings so the planner keeps it
/// (chunk_frames video frames -> frame_chunk latent frames, or 0 when the request turns
/// windows off; vae_tile pixels -> latent pixels).
PlanInputs plan_inputs(const WanSpec& spec, const GenerateRequest& request,
                       PlanSettings settings = {});

/// Plans `request` on the model at `bundle` (a bundle directory or a profile) for `resources`:
/// plan_inputs + OptimizationManager::get_optimization_recommendations with the Wan memory
/// model. The result may be infeasible (OptimizationResult::feasible(); its guidance says what
/// would fit).
/// `loras`: LoRAs merged at load, whose RAM the estimate counts (WanLoras::account).
/// `ranks`, `seq_ranks`: Workload::ranks and seq_ranks (pass per_rank_resources as `resources`).
OptimizationResult plan_request(const std::string& bundle, const GenerateRequest& request,
                                const PlanSettings& settings, const OptimizationConfig& config,
                                const SystemResources& resources,
                                const std::vector<LoraSpec>& loras = {}, int ranks = 1,
                                int seq_ranks = 1);

/// Puts the chunking `plan` chose into `request` where the request left it open: windows of
/// plan.frame_chunking.window latent frames become chunk_frames = (window - 1) x stride_t + 1
/// video frames with overlap x stride_t; VAE tiles of the larger planned side (tile_h or tile_w,
/// one of which may be clipped to the frame) become square tiles of side x stride_s pixels.
void apply_plan_chunking(const OptimizationPlan& plan, const WanSpec& spec,
                         GenerateRequest& request);

}  // namespace wanrt::wan22
