// The stages of a Wan 2.2 generation, one job each: encode the prompts, condition on the
// image, denoise, decode. They run components through a ComponentRunner (a Session, or a fake
// in tests), so each can be run and tested alone. docs/wan22.md describes the algorithm.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dist/parallel_layout.h"
#include "models/wan22/callbacks.h"
#include "models/wan22/model_spec.h"
#include "models/wan22/request.h"
#include "models/wan22/tokenizer.h"
#include "models/wan22/vae_decoder.h"

namespace wanrt::wan22 {

/// Runs the components for the stages. Every call returns float32 CPU tensors; where and in
/// which dtype the component runs, and what happens after an out-of-memory error, is the
/// runner's business.
class ComponentRunner {
 public:
  virtual ~ComponentRunner() = default;
  /// Text encoder: ids and mask [1, text_len] -> hidden states [1, text_len, dim].
  virtual at::Tensor encode_tokens(const at::Tensor& ids, const at::Tensor& mask) = 0;
  /// DiT `expert`: x [1, in_dim, f, h, w], t [1] (or [1, tokens] per token), context
  /// [1, text_len, dim] -> velocity [1, z_dim, f, h, w].
  virtual at::Tensor run_dit(const std::string& expert, const at::Tensor& x, const at::Tensor& t,
                             const at::Tensor& context) = 0;
  /// VAE encoder: video [1, 3, F, H, W] in [-1, 1] -> latent [1, z_dim, f, h, w].
  virtual at::Tensor vae_encode(const at::Tensor& video) = 0;
  /// VAE decoder (VaeDecoder::decode) of latent [z_dim, f, h, w]: hands each decoded piece
  /// [3, n, H, W] to `sink` exactly once, in order, even when it retries after a fallback;
  /// returns the number of frames.
  virtual std::int64_t vae_decode(const at::Tensor& latent, const VaeDecodeOptions& options,
                                  const std::function<void(const at::Tensor&)>& sink) = 0;
  /// Component `name` is not used again in this run.
  virtual void finished(const std::string& name) = 0;
};

/// The text contexts of a request: [1, text_len, dim] float32, zero beyond the real tokens.
struct PromptContexts {
  at::Tensor cond;    ///< the prompt
  at::Tensor uncond;  ///< the negative prompt (undefined when every guidance is 1)
};

/// Encodes the prompt and the negative prompt (progress "text_encoder" 0..2), then finishes
/// the text encoder. With guidance 1 for every expert only the prompt (progress 0..1): no step
/// needs the negative one.
PromptContexts encode_prompts(ComponentRunner& runner, const Tokenizer& tokenizer,
                              const ResolvedRequest& request, const Callbacks& callbacks);

/// The image conditioning of a request (all undefined without an image).
struct ImageConditioning {
  at::Tensor y;       ///< I2V: [4 + z_dim, lat_f, lat_h, lat_w] = [mask, image latent]
  at::Tensor z0;      ///< TI2V: the image latent [z_dim, 1, lat_h, lat_w]
  at::Tensor keep;    ///< TI2V: 0 on latent frame 0 (pinned to z0), 1 elsewhere
  at::Tensor t_mask;  ///< TI2V: per-token timestep factor, 0 for frame 0's tokens, 1 elsewhere
  /// TI2V: latent with frame 0 pinned to the image latent (`latent` unchanged otherwise).
  at::Tensor pin(const at::Tensor& latent) const;
};

/// Encodes `image` (uint8 [H, W, 3]) with the VAE encoder: for I2V the first frame of an
/// otherwise black video, giving y; for TI2V the image alone, giving z0, keep and t_mask.
ImageConditioning condition_on_image(ComponentRunner& runner, const WanSpec& spec,
                                     const ResolvedRequest& request, const at::Tensor& image);

/// What the denoising loop produced.
struct DenoiseOutcome {
  at::Tensor latent;                      ///< [z_dim, lat_f, lat_h, lat_w]
  std::vector<std::string> expert_trace;  ///< the expert of each step
  int dit_calls = 0;  ///< DiT forward passes (per window per step: 2, or 1 at guidance 1)
  int windows = 1;                        ///< latent-frame windows per step
};

/// The denoising loop from `latent` (the initial noise, pinned for TI2V): per step the expert
/// for its timestep (WanSpec::expert_at), the conditional and unconditional velocities per
/// window, guidance uncond + g (cond - uncond) with the expert's scale (guidance 1: cond alone,
/// the unconditional pass skipped), windows blended
/// (ChunkedProcessor), one scheduler step. Progress "denoise" per step; cancellation checked
/// before each step. Finishes each expert after its last step.
///
/// With `parallel` whose layout has a CFG pair, the pair's rank 0 runs the conditional pass and
/// rank 1 the unconditional one, and both velocities meet by one all_gather per window, so each
/// rank takes the same scheduler step (dit_calls counts this rank's passes).
DenoiseOutcome denoise(ComponentRunner& runner, const WanSpec& spec,
                       const ResolvedRequest& request, const PromptContexts& contexts,
                       const ImageConditioning& image, at::Tensor latent,
                       const Callbacks& callbacks, dist::Parallelism* parallel = nullptr);

/// What decoding produced.
struct DecodeOutcome {
  at::Tensor video;             ///< float32 [3, F, H, W] (undefined when frames were streamed)
  std::int64_t frame_count = 0;
  int tiles = 1;                ///< spatial VAE tiles
};

/// Causal decode one latent frame at a time (spatially tiled with request.vae_tile): frames go
/// to callbacks.on_frames as uint8 when set, else are collected in DecodeOutcome::video.
/// Progress "vae_decode" per latent frame. Finishes the VAE.
DecodeOutcome decode(ComponentRunner& runner, const WanSpec& spec, const ResolvedRequest& request,
                     const at::Tensor& latent, const Callbacks& callbacks);

}  // namespace wanrt::wan22
