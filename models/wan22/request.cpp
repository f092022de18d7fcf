#include "models/wan22/request.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <random>

#include "chunking/blend_weights.h"
#include "models/wan22/sampling_preset.h"
#include "models/wan22/scheduler.h"
#include "models/wan22/vae_decoder.h"
#include "models/wan22/video_shape.h"
#include "runtime/error.h"

namespace wanrt::wan22 {

std::vector<std::int64_t> ResolvedRequest::latent_shape(const WanSpec& spec) const {
  return {spec.z_dim, (frames - 1) / spec.vae_stride[0] + 1, height / spec.vae_stride[1],
          width / spec.vae_stride[2]};
}

ChunkPlan ResolvedRequest::window_plan(const WanSpec& spec) const {
  if (chunk_frames <= 0) {
    const std::int64_t latent_frames = (frames - 1) / spec.vae_stride[0] + 1;
    return plan_chunks(latent_frames, latent_frames, 0);
  }
  return plan_latent_frame_chunks(frames, chunk_frames, chunk_overlap, spec.vae_stride[0]);
}

namespace {

// A quarter of the window rounded up to whole latent frames, below the window.
int default_overlap(int chunk_frames, int stride_t) {
  const int latent = (chunk_frames - 1) / stride_t + 1;
  return std::min((latent + 3) / 4, latent - 1) * stride_t;
}

void resolve_chunking(const WanSpec& spec, const GenerateRequest& request, ResolvedRequest& r) {
  const int stride_t = spec.vae_stride[0];
  if (request.chunk_overlap && !request.chunk_frames) {
    throw Error(ErrorCategory::kUsage, "--chunk-overlap needs --chunk-frames",
                fmt::format("add --chunk-frames N (4n+1, at most {})", r.frames));
  }
  if (request.chunk_frames) {
    r.chunk_frames = *request.chunk_frames;
    r.user_set.push_back("chunk_frames");
    if (r.chunk_frames >= 1 && (r.chunk_frames - 1) % stride_t == 0) {
      r.chunk_overlap = default_overlap(r.chunk_frames, stride_t);
    }
    if (request.chunk_overlap) {
      r.chunk_overlap = *request.chunk_overlap;
      r.user_set.push_back("chunk_overlap");
    }
    try {
      plan_latent_frame_chunks(r.frames, r.chunk_frames, r.chunk_overlap, stride_t);
    } catch (const Error& e) {
      const std::string given =
          request.chunk_overlap
              ? fmt::format("--chunk-frames {} --chunk-overlap {}", r.chunk_frames,
                            r.chunk_overlap)
              : fmt::format("--chunk-frames {}", r.chunk_frames);
      throw Error(e.category(), fmt::format("{}: {}", given, e.what()), e.hint());
    }
  }
  if (request.vae_tile) {
    vae_tiling_for_pixels(*request.vae_tile, spec.vae_stride[1]);  // throws with the nearest
    r.vae_tile = *request.vae_tile;
    r.user_set.push_back("vae_tile");
  }
  if (request.blend) {
    try {
      parse_blend_kind(*request.blend);
    } catch (const Error& e) {
      throw Error(e.category(), fmt::format("--blend: {}", e.what()), e.hint());
    }
    r.blend = *request.blend;
    r.user_set.push_back("blend");
  }
}

}  // namespace

ResolvedRequest resolve_request(const WanSpec& spec, const GenerateRequest& request) {
  const SamplingDefaults& d = spec.sampling;
  ResolvedRequest r;
  auto pick = [&r](const char* name, const auto& value, auto fallback) {
    if (value) {
      r.user_set.push_back(name);
      return static_cast<decltype(fallback)>(*value);
    }
    return fallback;
  };
  r.prompt = request.prompt;
  if (request.negative_prompt && !request.negative_prompt->empty()) {
    r.negative_prompt = *request.negative_prompt;
    r.user_set.push_back("negative_prompt");
  } else {
    r.negative_prompt = d.negative_prompt;
  }
  r.width = pick("width", request.width, d.width);
  r.height = pick("height", request.height, d.height);
  r.frames = pick("frames", request.frames, d.frames);
  SamplingDefaults base = d;
  if (request.preset) {
    const SamplingPreset& preset = find_sampling_preset(*request.preset);
    r.preset = preset.name;
    r.user_set.push_back("preset");
    base.sampler = preset.sampler;
    base.steps = preset.steps;
    base.shift = preset.shift;
    base.guide_low = base.guide_high = preset.guidance;
  }
  r.steps = pick("steps", request.steps, base.steps);
  r.shift = pick("shift", request.shift, base.shift);
  r.sampler = pick("sampler", request.sampler, base.sampler);
  r.guide_low = pick("guidance", request.guidance, base.guide_low);
  r.guide_high = request.guidance ? *request.guidance : base.guide_high;
  r.has_image = request.image.has_value();
  if (request.seed >= 0) {
    r.seed = request.seed;
    r.user_set.push_back("seed");
  } else {
    std::random_device device;
    r.seed = static_cast<std::int64_t>((static_cast<std::uint64_t>(device()) << 31) ^ device()) &
             0x7fffffffffffLL;
  }

  check_frame_count(r.frames);
  check_frame_size(r.width, r.height, spec.size_multiple());
  if (r.steps < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("--steps must be at least 1, got {}", r.steps),
                fmt::format("the model's default is {}", d.steps));
  }
  if (!(r.shift > 0)) {
    throw Error(ErrorCategory::kUsage, fmt::format("--shift must be > 0, got {}", r.shift),
                fmt::format("the model's default is {}", d.shift));
  }
  const auto& samplers = sampler_names();
  if (std::find(samplers.begin(), samplers.end(), r.sampler) == samplers.end()) {
    throw Error(ErrorCategory::kUsage, fmt::format("unknown sampler '{}'", r.sampler),
                fmt::format("use one of {}", fmt::join(samplers, ", ")));
  }
  if (spec.task == "i2v" && !r.has_image) {
    throw Error(ErrorCategory::kUsage, fmt::format("{} is an image-to-video model", spec.model_id),
                "pass the first frame with --image FILE");
  }
  if (spec.task == "t2v" && r.has_image) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("{} is a text-to-video model and takes no image", spec.model_id),
                "drop --image, or use an i2v or ti2v bundle");
  }
  resolve_chunking(spec, request, r);
  if (r.has_image) {
    const at::Tensor& image = *request.image;
    if (image.scalar_type() != at::kByte || image.dim() != 3 || image.size(2) != 3) {
      throw Error(ErrorCategory::kUsage, "the image must be a uint8 RGB tensor [H, W, 3]");
    }
  }
  return r;
}

}  // namespace wanrt::wan22
