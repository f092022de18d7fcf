#include "models/wan22/request_plan.h"

#include <algorithm>

#include "models/wan22/memory_model.h"
#include "runtime/bundle.h"

namespace wanrt::wan22 {

int window_latent_frames(int chunk_frames, int temporal_stride) {
  return chunk_frames > 0 ? (chunk_frames - 1) / temporal_stride + 1 : 0;
}

int tile_latent_pixels(int vae_tile, int spatial_stride) {
  return vae_tile > 0 ? vae_tile / spatial_stride : 0;
}

PlanInputs plan_inputs(const WanSpec& spec, const GenerateRequest& request,
                       PlanSettings settings) {
  const ResolvedRequest r = resolve_request(spec, request);
  PlanInputs in;
  in.workload.width = r.width;
  in.workload.height = r.height;
  in.workload.frames = r.frames;
  in.workload.image = r.has_image;
  if (request.chunk_frames) {
    settings.frame_chunk = window_latent_frames(r.chunk_frames, spec.vae_stride[0]);
  }
  if (request.vae_tile) settings.vae_tile = tile_latent_pixels(r.vae_tile, spec.vae_stride[1]);
  in.settings = std::move(settings);
  return in;
}

OptimizationResult plan_request(const std::string& bundle, const GenerateRequest& request,
                                const PlanSettings& settings, const OptimizationConfig& config,
                                const SystemResources& resources,
                                const std::vector<LoraSpec>& loras, int ranks, int seq_ranks) {
  BundleOptions bundle_options;
  bundle_options.verify = false;  // planning reads sizes only; loading verifies
  const WanSpec spec = read_wan_spec(read_bundle(bundle, bundle_options));
  PlanInputs in = plan_inputs(spec, request, settings);
  in.workload.ranks = ranks;
  in.workload.seq_ranks = seq_ranks;
  std::shared_ptr<const WanLoras> lora_costs;
  if (!loras.empty()) lora_costs = std::make_shared<const WanLoras>(spec, loras, true);
  return make_optimization_manager(config, lora_costs)
      .get_optimization_recommendations(bundle, in.workload, in.settings, resources);
}

void apply_plan_chunking(const OptimizationPlan& plan, const WanSpec& spec,
                         GenerateRequest& request) {
  if (!request.chunk_frames && plan.frame_chunking.enabled) {
    request.chunk_frames = (plan.frame_chunking.window - 1) * spec.vae_stride[0] + 1;
    request.chunk_overlap = plan.frame_chunking.overlap * spec.vae_stride[0];
  }
  if (!request.vae_tile && plan.vae_tiling.enabled) {
    request.vae_tile =
        std::max(plan.vae_tiling.tile_h, plan.vae_tiling.tile_w) * spec.vae_stride[1];
  }
}

}  // namespace wanrt::wan22
