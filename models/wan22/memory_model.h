// The Wan 2.2 memory formulas: weights, DiT activations from the token count and the attention
// implementation, VAE caches and step workspace derived from the VAE architecture, text
// encoder activations; and the ModelRequirements the optimization layer plans with.
// Derivations and checks: docs/optimization.md.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/wan22/lora.h"
#include "optim/model_requirements.h"
#include "optim/optim_config.h"
#include "runtime/bundle.h"

namespace wanrt {
class OptimizationManager;
}

namespace wanrt::wan22 {

/// DiT sizes (architecture.dit).
struct DitDims {
  int dim = 0, ffn_dim = 0, num_heads = 0, head_dim = 0, num_layers = 0;
  int in_dim = 0, out_dim = 0, freq_dim = 0, text_dim = 0, text_len = 0;
  int patch_t = 1, patch_h = 2, patch_w = 2;
};

/// Text encoder (umT5) sizes (architecture.text_encoder; text_len from the DiT).
struct TextEncoderDims {
  int dim = 0, dim_ffn = 0, num_heads = 0, num_layers = 0, num_buckets = 0, text_len = 0;
  std::int64_t vocab_size = 0;
};

/// VAE sizes (architecture.vae).
struct VaeDims {
  std::string version;  ///< "2.1" | "2.2"
  int z_dim = 0, dim = 0, dec_dim = 0, num_res_blocks = 0;
  std::vector<int> dim_mult;
  std::vector<bool> temporal_downsample;
  int stride_t = 4, stride_s = 8, patch = 1;
};

/// One causal-conv cache slot: `channels` x `frames` at spatial size latent * num / den
/// (decoder: latent size; encoder: patchified input size), as the exporter's CacheRegistry.
struct CacheSlot {
  int channels = 0, frames = 0, num = 1, den = 1;
};

/// What a VAE's decoder or encoder holds per step, derived by walking its layers.
struct VaeWalk {
  std::vector<CacheSlot> slots;
  /// Elements of the largest tensor of one later step (4 output frames; causal-conv input
  /// concatenations included), per pixel of the walk's base grid (decoder: latent pixel;
  /// encoder: patchified input pixel).
  std::int64_t max_tensor_per_pixel = 0;
};

/// Transient of a VAE step = kVaeStepFactor x its largest tensor: calibrated on LibTorch 1.13
/// CPU (measured 4.3-5.6x for both VAEs at 240x320..480x640, rounded up); see the docs.
constexpr double kVaeStepFactor = 6.0;

/// Reads the three architecture sections; errors name the manifest file, line and key.
DitDims read_dit_dims(const BundleManifest& manifest);
TextEncoderDims read_text_encoder_dims(const BundleManifest& manifest);
VaeDims read_vae_dims(const BundleManifest& manifest);

/// The decoder's cache slots and largest step tensor (mirrors vae21.py / vae22.py).
VaeWalk walk_vae_decoder(const VaeDims& vae);
/// The encoder's cache slots and largest chunk tensor.
VaeWalk walk_vae_encoder(const VaeDims& vae);
/// Bytes of the cache `slots` for a base grid of h x w pixels in elements of `elem` bytes.
std::int64_t cache_bytes(const std::vector<CacheSlot>& slots, std::int64_t h, std::int64_t w,
                         int elem);

/// DiT tokens: latent frames x (latent h / patch h) x (latent w / patch w).
std::int64_t dit_tokens(const DitDims& dit, int latent_frames, int latent_h, int latent_w);

/// Parameters the keep-fp32 patterns cover, from the architecture (patch/time embeddings,
/// time projection, modulations, norm3 and q/k norms; umT5: norms and relative position
/// embeddings).
std::int64_t dit_keep_fp32_parameters(const DitDims& dit);
/// The keep-fp32 parameters inside one DiT block / one umT5 block.
std::int64_t dit_block_keep_fp32_parameters(const DitDims& dit);
std::int64_t text_encoder_block_keep_fp32_parameters(const TextEncoderDims& te);
std::int64_t text_encoder_keep_fp32_parameters(const TextEncoderDims& te);

/// Activation (persistent over the blocks) and workspace (one block's temporaries) items of
/// one DiT forward over `tokens` tokens; per_token: the TI2V image case with t per token.
std::vector<MemoryItem> dit_memory_items(const DitDims& dit, std::int64_t tokens, bool per_token,
                                         Dtype compute, AttentionKind attention);
/// Items of one text-encoder forward (prompt and negative prompt run one after the other).
std::vector<MemoryItem> text_encoder_memory_items(const TextEncoderDims& te, Dtype compute);
/// Items of the VAE decode of a latent of latent_h x latent_w per frame (a tile when tiled).
std::vector<MemoryItem> vae_decode_memory_items(const VaeDims& vae, int latent_h, int latent_w,
                                                Dtype dtype);
/// Items of the tiled VAE decode of a latent of latent_h x latent_w per frame in square tiles of
/// `tile` latent pixels, as the pipeline decodes (quarter-tile overlap): one tile's workspace,
/// every tile's causal cache (they all live for the whole decode), the blended output chunk.
std::vector<MemoryItem> vae_tiled_decode_memory_items(const VaeDims& vae, int latent_h,
                                                      int latent_w, int tile, Dtype dtype);
/// Items of the VAE encode of `frames` frames of width x height (the conditioning video).
std::vector<MemoryItem> vae_encode_memory_items(const VaeDims& vae, int width, int height,
                                                int frames, Dtype dtype);

/// The requirements of a Wan 2.2 bundle or planning profile: components with their sizes,
/// roles and inputs; stages text_encoding, [vae_encode], denoise:<expert>..., vae_decode; the
/// Wan activation model. Error(kBundle) naming the manifest when a section is missing.
ModelRequirements wan_requirements(const BundleManifest& manifest);

/// Reads a bundle directory (manifest only, no hashing) or a profile / manifest file.
ModelRequirements wan_requirements_from_path(const std::string& bundle_dir_or_yaml);

/// An OptimizationManager that reads Wan 2.2 bundles and profiles; with `loras`, their merge
/// costs are added to the requirements it reads (WanLoras::account).
OptimizationManager make_optimization_manager(const OptimizationConfig& config = {},
                                              std::shared_ptr<const WanLoras> loras = nullptr);

}  // namespace wanrt::wan22
