#include "models/wan22/stages.h"

#include <fmt/format.h>

#include "chunking/chunked_processor.h"
#include "models/wan22/image_prep.h"
#include "models/wan22/scheduler.h"
#include "runtime/error.h"
#include "runtime/host_allocator.h"

namespace wanrt::wan22 {
namespace {

void check_cancelled(const Callbacks& callbacks, const std::string& where) {
  if (callbacks.cancelled && callbacks.cancelled()) {
    throw Error(ErrorCategory::kCancelled, fmt::format("cancelled during {}", where));
  }
}

void report(const Callbacks& callbacks, const char* stage, int step, int total) {
  if (callbacks.progress) callbacks.progress(ProgressEvent{stage, step, total});
}

// Prompt -> context [1, text_len, dim] float32, zero beyond the real tokens.
at::Tensor encode_text(ComponentRunner& runner, const Tokenizer& tokenizer,
                       const std::string& text) {
  const Tokenizer::Encoded tokens = tokenizer.encode(text);
  const at::Tensor hidden = runner.encode_tokens(tokens.ids, tokens.mask);
  at::Tensor context = at::zeros_like(hidden.slice(0, 0, 1));
  context.slice(1, 0, tokens.length).copy_(hidden.slice(0, 0, 1).slice(1, 0, tokens.length));
  return context;
}

}  // namespace

PromptContexts encode_prompts(ComponentRunner& runner, const Tokenizer& tokenizer,
                              const ResolvedRequest& request, const Callbacks& callbacks) {
  PromptContexts out;
  // With guidance 1 on every expert no step runs the unconditional pass (denoise): the
  // negative prompt is not encoded.
  const bool negative = request.guide_low != 1.0 || request.guide_high != 1.0;
  const int total = negative ? 2 : 1;
  report(callbacks, "text_encoder", 0, total);
  check_cancelled(callbacks, "text encoding");
  out.cond = encode_text(runner, tokenizer, request.prompt);
  report(callbacks, "text_encoder", 1, total);
  if (negative) {
    check_cancelled(callbacks, "text encoding");
    out.uncond = encode_text(runner, tokenizer, request.negative_prompt);
    report(callbacks, "text_encoder", 2, total);
  }
  runner.finished(component::kTextEncoder);
  return out;
}

at::Tensor ImageConditioning::pin(const at::Tensor& latent) const {
  return keep.defined() ? (1.0 - keep) * z0 + keep * latent : latent;
}

ImageConditioning condition_on_image(ComponentRunner& runner, const WanSpec& spec,
                                     const ResolvedRequest& r, const at::Tensor& image) {
  ImageConditioning out;
  const std::vector<int64_t> shape = r.latent_shape(spec);
  const at::Tensor img = prepare_image(image, r.width, r.height);
  if (spec.task == "i2v") {
    // The image as frame 0 of an otherwise black video; the mask marks the known frame.
    const at::Tensor video =
        at::cat({img.unsqueeze(1), at::zeros({3, r.frames - 1, r.height, r.width})}, 1);
    const at::Tensor y_lat = runner.vae_encode(video.unsqueeze(0))[0].to(at::kFloat);
    out.y = at::cat({i2v_mask(r.frames, shape[2], shape[3], spec.vae_stride[0]), y_lat});
  } else {
    // TI2V: latent frame 0 is the image latent throughout, and its tokens see timestep 0.
    out.z0 = runner.vae_encode(img.unsqueeze(0).unsqueeze(2))[0].to(at::kFloat);
    out.keep = at::ones(shape, at::kFloat);
    out.keep.select(1, 0).zero_();
    out.t_mask = out.keep[0]
                     .slice(1, 0, c10::nullopt, spec.patch[1])
                     .slice(2, 0, c10::nullopt, spec.patch[2])
                     .flatten();
  }
  return out;
}

DenoiseOutcome denoise(ComponentRunner& runner, const WanSpec& spec, const ResolvedRequest& r,
                       const PromptContexts& contexts, const ImageConditioning& image,
                       at::Tensor latent, const Callbacks& callbacks,
                       dist::Parallelism* parallel) {
  const bool cfg_parallel = parallel != nullptr && parallel->layout.cfg == 2;
  DenoiseOutcome out;
  const std::vector<int64_t> shape = r.latent_shape(spec);
  auto scheduler = make_scheduler(r.sampler, spec.sampling.num_train_timesteps);
  scheduler->set_timesteps(r.steps, r.shift);
  const auto& timesteps = scheduler->timesteps();
  const BlendKind blend = parse_blend_kind(r.blend);
  const ChunkPlan windows = r.window_plan(spec);
  out.windows = static_cast<int>(windows.chunks.size());
  const ChunkedProcessor window_processor(windows.chunk_size, windows.overlap,
                                          /*memory_cleanup=*/true);
  const at::Tensor& t_mask = image.t_mask;
  // TI2V per-token timestep mask as a [lat_f, h / patch, w / patch] grid, sliced per window.
  const at::Tensor t_grid =
      t_mask.defined()
          ? t_mask.view({shape[1], shape[2] / spec.patch[1], shape[3] / spec.patch[2]})
          : at::Tensor();
  const int total = static_cast<int>(timesteps.size());
  latent = image.pin(latent);
  std::string active_expert;
  for (int i = 0; i < total; ++i) {
    check_cancelled(callbacks, fmt::format("denoising step {}", i + 1));
    const double t = timesteps[i];
    const std::string& name = spec.expert_at(t);
    const bool high = spec.is_moe() && name == spec.experts[0];
    const double g = high ? r.guide_high : r.guide_low;
    if (name != active_expert) {
      if (!active_expert.empty()) runner.finished(active_expert);  // the switch happens once
      active_expert = name;
    }
    const at::Tensor t_val = at::full({1}, static_cast<float>(t), at::kFloat);
    // The guided velocity of latent frames [start, end): the whole latent without windows.
    auto guided_velocity = [&](const Chunk& w) {
      const bool whole = w.start == 0 && w.end == shape[1];
      const at::Tensor lat = whole ? latent : latent.slice(1, w.start, w.end);
      at::Tensor t_in = t_val;
      if (t_mask.defined()) {
        const at::Tensor mask = whole ? t_mask : t_grid.slice(0, w.start, w.end).flatten();
        t_in = (mask * t_val).unsqueeze(0);
      }
      const at::Tensor& y = image.y;
      const at::Tensor x_in =
          (y.defined() ? at::cat({lat, whole ? y : y.slice(1, w.start, w.end)}) : lat)
              .unsqueeze(0);
      if (cfg_parallel && g != 1.0) {
        // One pass here, the other on the pair's other rank; the sum below is then the same
        // arithmetic on the same tensors as in one process.
        const bool conditional = parallel->cfg->rank() == 0;
        const at::Tensor mine =
            runner.run_dit(name, x_in, t_in, conditional ? contexts.cond : contexts.uncond)[0];
        ++out.dit_calls;
        const std::vector<at::Tensor> both = parallel->cfg->all_gather(mine);
        return both[1] + g * (both[0] - both[1]);
      }
      const at::Tensor cond = runner.run_dit(name, x_in, t_in, contexts.cond)[0];
      ++out.dit_calls;
      // Guidance 1 is the conditional velocity alone: the unconditional pass is skipped (the
      // distilled models run so), which saves half the DiT work of the step.
      if (g == 1.0) return cond;
      const at::Tensor uncond = runner.run_dit(name, x_in, t_in, contexts.uncond)[0];
      ++out.dit_calls;
      return uncond + g * (cond - uncond);
    };
    at::Tensor v;
    if (r.chunk_frames <= 0) {
      v = guided_velocity(Chunk{0, shape[1]});
    } else {
      ChunkedRunOptions run;
      run.blend = blend;
      run.label = fmt::format("denoising step {} window", i + 1);
      run.cancelled = callbacks.cancelled;
      run.release_memory = trim_host_memory;
      v = window_processor.process_chunked_generation(at::zeros_like(latent), 1, guided_velocity,
                                                      run);
    }
    latent = image.pin(scheduler->step(v, i, latent));
    out.expert_trace.push_back(name);
    report(callbacks, "denoise", i + 1, total);
  }
  if (!active_expert.empty()) runner.finished(active_expert);
  out.latent = latent;
  return out;
}

DecodeOutcome decode(ComponentRunner& runner, const WanSpec& spec, const ResolvedRequest& r,
                     const at::Tensor& latent, const Callbacks& callbacks) {
  DecodeOutcome out;
  VaeDecodeOptions options;
  options.chunk_latent_frames = 1;
  if (r.vae_tile > 0) options.tiling = vae_tiling_for_pixels(r.vae_tile, spec.vae_stride[1]);
  options.blend = parse_blend_kind(r.blend);
  options.cancelled = callbacks.cancelled;
  options.progress = [&callbacks](int done, int all) {
    report(callbacks, "vae_decode", done, all);
  };
  options.release_memory = trim_host_memory;
  out.tiles = static_cast<int>(VaeDecoder::tile_plan(latent.size(2), options.tiling).chunks.size() *
                               VaeDecoder::tile_plan(latent.size(3), options.tiling).chunks.size());
  std::vector<at::Tensor> videos;
  out.frame_count = runner.vae_decode(latent, options, [&](const at::Tensor& video) {
    if (callbacks.on_frames) {
      callbacks.on_frames(frames_to_uint8(video));
    } else {
      videos.push_back(video);
    }
  });
  runner.finished(component::kVae);
  if (!callbacks.on_frames) out.video = videos.size() == 1 ? videos[0] : at::cat(videos, 1);
  return out;
}

}  // namespace wanrt::wan22
