#include "models/wan22/memory_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "models/wan22/model_spec.h"
#include "models/wan22/vae_decoder.h"
#include "optim/optimization_manager.h"
#include "runtime/safetensors_file.h"

namespace wanrt::wan22 {
namespace {

// Score elements per query chunk of the exported explicit attention (attention.py). Bundles
// exported since the host-allocator work use 2^25; older ones bake in 2^28 and the manifest
// does not say which, so the estimate keeps the larger: an upper bound for both.
constexpr std::int64_t kMaxScoreElements = 1LL << 28;

const YAML::Node arch_section(const BundleManifest& m, const std::string& key) {
  const YAML::Node node = m.architecture[key];
  if (!node || !node.IsMap()) m.yaml.fail(m.architecture, key, "missing or not a mapping");
  return node;
}

template <typename T>
std::vector<T> list_of(const YamlFile& file, const YAML::Node& map, const std::string& key) {
  const YAML::Node node = map[key];
  if (!node || !node.IsSequence()) file.fail(node ? node : map, key, "expected a list");
  std::vector<T> out;
  for (std::size_t i = 0; i < node.size(); ++i) {
    try {
      out.push_back(node[i].as<T>());
    } catch (const YAML::Exception&) {
      file.fail(node[i], key, fmt::format("element {} has the wrong type", i));
    }
  }
  return out;
}

std::string gb(std::int64_t bytes) { return format_gib(bytes); }

// Tracks the largest tensor (elements per base pixel) of a VAE walk.
struct Walker {
  VaeWalk out;
  double max = 0;
  void see(double elems) { max = std::max(max, elems); }
  void slot(int channels, int frames, int num, int den) {
    out.slots.push_back({channels, frames, num, den});
  }
  // A residual block at relative spatial area `area` (per base pixel) with T frames; in-place
  // order as in vae_common.ResidualBlock. Causal 3x3x3 convs see cat(cache 2 frames, x).
  void residual(int in, int out_c, int frames, double area, int num, int den) {
    slot(in, 2, num, den);
    slot(out_c, 2, num, den);
    see(double(in) * (frames + 2) * area);
    see(double(out_c) * (frames + 2) * area);
  }
};

}  // namespace

// ---- manifest sections ----------------------------------------------------------------------

DitDims read_dit_dims(const BundleManifest& m) {
  const YamlFile& f = m.yaml;
  const YAML::Node n = arch_section(m, "dit");
  DitDims d;
  d.dim = f.get<int>(n, "dim");
  d.ffn_dim = f.get<int>(n, "ffn_dim");
  d.num_heads = f.get<int>(n, "num_heads");
  d.num_layers = f.get<int>(n, "num_layers");
  d.head_dim = n["head_dim"] ? f.get<int>(n, "head_dim") : d.dim / std::max(1, d.num_heads);
  d.in_dim = f.get<int>(n, "in_dim");
  d.out_dim = f.get<int>(n, "out_dim");
  d.freq_dim = f.get<int>(n, "freq_dim");
  d.text_dim = f.get<int>(n, "text_dim");
  d.text_len = f.get<int>(n, "text_len");
  const auto patch = list_of<int>(f, n, "patch_size");
  if (patch.size() != 3) f.fail(n["patch_size"], "patch_size", "expected [t, h, w]");
  d.patch_t = patch[0];
  d.patch_h = patch[1];
  d.patch_w = patch[2];
  return d;
}

TextEncoderDims read_text_encoder_dims(const BundleManifest& m) {
  const YamlFile& f = m.yaml;
  const YAML::Node n = arch_section(m, "text_encoder");
  TextEncoderDims t;
  t.dim = f.get<int>(n, "dim");
  t.dim_ffn = f.get<int>(n, "dim_ffn");
  t.num_heads = f.get<int>(n, "num_heads");
  t.num_layers = f.get<int>(n, "num_layers");
  t.num_buckets = f.get<int>(n, "num_buckets");
  t.vocab_size = f.get<std::int64_t>(n, "vocab_size");
  t.text_len = f.get<int>(arch_section(m, "dit"), "text_len");
  return t;
}

VaeDims read_vae_dims(const BundleManifest& m) {
  const YamlFile& f = m.yaml;
  const YAML::Node n = arch_section(m, "vae");
  VaeDims v;
  v.version = f.get<std::string>(n, "version");
  if (v.version != "2.1" && v.version != "2.2") {
    f.fail(n["version"], "version", fmt::format("unknown VAE version '{}'", v.version),
           "expected '2.1' or '2.2'");
  }
  v.z_dim = f.get<int>(n, "z_dim");
  v.dim = f.get<int>(n, "dim");
  v.dec_dim = n["dec_dim"] ? f.get<int>(n, "dec_dim") : v.dim;
  v.num_res_blocks = f.get<int>(n, "num_res_blocks");
  v.dim_mult = list_of<int>(f, n, "dim_mult");
  v.temporal_downsample = list_of<bool>(f, n, "temporal_downsample");
  const auto stride = list_of<int>(f, n, "stride");
  if (stride.size() != 3) f.fail(n["stride"], "stride", "expected [t, h, w]");
  v.stride_t = stride[0];
  v.stride_s = stride[1];
  v.patch = n["patch"] ? f.get<int>(n, "patch") : 1;
  if (v.dim_mult.empty()) f.fail(n["dim_mult"], "dim_mult", "must not be empty");
  return v;
}

// ---- VAE walks (mirror vae21.py / vae22.py) -------------------------------------------------

VaeWalk walk_vae_decoder(const VaeDims& v) {
  Walker w;
  const int levels = static_cast<int>(v.dim_mult.size());
  std::vector<int> dims = {v.dec_dim * v.dim_mult.back()};
  for (int i = levels - 1; i >= 0; --i) dims.push_back(v.dec_dim * v.dim_mult[i]);
  std::vector<bool> temporal_up(v.temporal_downsample.rbegin(), v.temporal_downsample.rend());
  const bool v22 = v.version == "2.2";
  int num = 1, frames = 1;   // a later step: one latent frame in
  double area = 1.0;         // (num)^2 pixels of the latent grid
  w.slot(v.z_dim, 2, 1, 1);  // conv1
  w.see(double(v.z_dim) * 3);
  w.see(dims[0]);
  for (int r = 0; r < 2; ++r) w.residual(dims[0], dims[0], frames, area, num, 1);  // middle
  w.see(3.0 * dims[0] * frames);                                                   // attention qkv
  int out_dim = dims[0];
  for (int i = 0; i < levels; ++i) {
    int in_dim = dims[i];
    out_dim = dims[i + 1];
    if (!v22 && i > 0) in_dim /= 2;  // 2.1: the previous Resample halved the width
    const int block_in = in_dim;
    const int frames_in = frames;
    const double area_in = area;
    for (int r = 0; r < v.num_res_blocks + 1; ++r) {
      w.residual(in_dim, out_dim, frames, area, num, 1);
      in_dim = out_dim;
    }
    if (i != levels - 1) {
      const bool temporal = i < int(temporal_up.size()) && temporal_up[i];
      if (temporal) {
        w.slot(out_dim, 2, num, 1);
        w.see(double(out_dim) * (frames + 2) * area);  // time_conv input
        w.see(2.0 * out_dim * frames * area);          // time_conv output
        frames *= 2;
      }
      w.see(double(out_dim) * frames * area * 4);  // nearest-exact x2
      const int resampled = v22 ? out_dim : out_dim / 2;
      w.see(double(resampled) * frames * area * 4);
      if (v22) {
        // DupUp3D shortcut: repeat_interleave to out * factor channels, then depth-to-space.
        const int ft = temporal ? 2 : 1;
        w.see(double(block_in) * frames_in * area_in * (double(out_dim) * ft * 4 / block_in));
      }
      num *= 2;
      area *= 4;
    }
  }
  w.slot(out_dim, 2, num, 1);  // head conv
  w.see(double(out_dim) * (frames + 2) * area);
  w.out.max_tensor_per_pixel = static_cast<std::int64_t>(std::ceil(w.max));
  return w.out;
}

VaeWalk walk_vae_encoder(const VaeDims& v) {
  Walker w;
  const int levels = static_cast<int>(v.dim_mult.size());
  std::vector<int> dims = {v.dim};
  for (int m : v.dim_mult) dims.push_back(v.dim * m);
  const int in_ch = 3 * v.patch * v.patch;
  int den = 1, frames = 4;  // a later chunk: 4 frames in
  double area = 1.0;
  w.slot(in_ch, 2, 1, 1);
  w.see(double(in_ch) * (frames + 2));
  w.see(double(dims[0]) * frames);
  int out_dim = dims[0];
  for (int i = 0; i < levels; ++i) {
    int in_dim = dims[i];
    out_dim = dims[i + 1];
    if (v.version == "2.2") w.see(double(in_dim) * frames * area);  // AvgDown3D copy
    for (int r = 0; r < v.num_res_blocks; ++r) {
      w.residual(in_dim, out_dim, frames, area, 1, den);
      in_dim = out_dim;
    }
    if (i != levels - 1) {
      const bool temporal = i < int(v.temporal_downsample.size()) && v.temporal_downsample[i];
      w.see(double(out_dim) * frames * area * 1.1);  // zero pad (0,1,0,1)
      area /= 4;
      if (temporal) {
        w.slot(out_dim, 1, 1, den * 2);
        w.see(double(out_dim) * (frames + 1) * area);
        frames = std::max(1, frames / 2);
      }
      den *= 2;
    }
  }
  for (int r = 0; r < 2; ++r) w.residual(out_dim, out_dim, frames, area, 1, den);
  w.slot(out_dim, 2, 1, den);
  w.out.max_tensor_per_pixel = static_cast<std::int64_t>(std::ceil(w.max));
  return w.out;
}

std::int64_t cache_bytes(const std::vector<CacheSlot>& slots, std::int64_t h, std::int64_t w,
                         int elem) {
  std::int64_t total = 0;
  for (const auto& s : slots) {
    total += std::int64_t(s.channels) * s.frames * (h * s.num / s.den) * (w * s.num / s.den) * elem;
  }
  return total;
}

// ---- DiT, text encoder -------------------------------------------------------------------

std::int64_t dit_tokens(const DitDims& d, int latent_frames, int latent_h, int latent_w) {
  return std::int64_t(latent_frames / std::max(1, d.patch_t)) * (latent_h / d.patch_h) *
         (latent_w / d.patch_w);
}

std::int64_t dit_block_keep_fp32_parameters(const DitDims& d) {
  // modulation 6D, norm3 weight+bias 2D, self/cross norm_q and norm_k 4D
  return 12 * std::int64_t(d.dim);
}

std::int64_t text_encoder_block_keep_fp32_parameters(const TextEncoderDims& t) {
  // norm1, norm2 and the block's relative position embedding [buckets, heads]
  return 2 * std::int64_t(t.dim) + std::int64_t(t.num_buckets) * t.num_heads;
}

std::int64_t dit_keep_fp32_parameters(const DitDims& d) {
  const std::int64_t D = d.dim;
  const std::int64_t patch = std::int64_t(d.in_dim) * D * d.patch_t * d.patch_h * d.patch_w + D;
  const std::int64_t time_embedding = std::int64_t(d.freq_dim) * D + D + D * D + D;
  const std::int64_t time_projection = D * 6 * D + 6 * D;
  const std::int64_t blocks = std::int64_t(d.num_layers) * dit_block_keep_fp32_parameters(d);
  const std::int64_t head = 2 * D;
  return patch + time_embedding + time_projection + blocks + head;
}

std::int64_t text_encoder_keep_fp32_parameters(const TextEncoderDims& t) {
  // every block's, and the final norm
  return std::int64_t(t.num_layers) * text_encoder_block_keep_fp32_parameters(t) + t.dim;
}

std::vector<MemoryItem> dit_memory_items(const DitDims& d, std::int64_t L, bool per_token,
                                         Dtype compute, AttentionKind attention) {
  const std::int64_t D = d.dim, F = d.ffn_dim, H = d.num_heads, c = dtype_size(compute);
  std::vector<MemoryItem> items;
  items.push_back(make_memory_item("x (residual stream)", L * D * 4, MemoryItem::kActivation,
                      fmt::format("[L={}, dim={}] fp32", L, D)));
  items.push_back(make_memory_item("x after the residual add", L * D * 4, MemoryItem::kActivation,
                      "old and new x are both alive at each add"));
  if (per_token) {
    items.push_back(
        make_memory_item("e0 per-token modulation", L * 6 * D * 4, MemoryItem::kActivation,
            fmt::format("[L={}, 6, {}] fp32 (per-token t: image-conditioned TI2V)", L, D)));
    items.push_back(make_memory_item("e per-token time embedding", L * D * 4, MemoryItem::kActivation,
                        fmt::format("[L={}, {}] fp32", L, D)));
  }
  items.push_back(make_memory_item("RoPE tables", L * d.head_dim * 4, MemoryItem::kActivation,
                      fmt::format("cos + sin [L={}, {}] fp32", L, d.head_dim / 2)));
  items.push_back(make_memory_item("text context", std::int64_t(d.text_len) * D * c, MemoryItem::kActivation,
                      fmt::format("embedded [{}, {}] {}", d.text_len, D, dtype_name(compute))));
  // One block's temporaries: the largest of its phases (see docs/optimization.md).
  const std::int64_t rope = L * D * (16 + 2 * c);
  std::int64_t attn = L * D * 4 * c;
  std::string attn_detail;
  if (attention == AttentionKind::kMath) {
    const std::int64_t per_query = H * L;
    const std::int64_t chunk =
        std::max<std::int64_t>(1, kMaxScoreElements / std::max<std::int64_t>(1, per_query));
    const std::int64_t scores = std::min(L, chunk) * per_query;
    // Per score element: the scores (compute dtype), the fp32 probabilities and, below fp32,
    // their cast back for the second product; plus the scaled q and the chunk outputs.
    const std::int64_t per_score = c + 4 + (c < 4 ? c : 0);
    attn += scores * per_score + 2 * L * D * c;
    attn_detail = fmt::format("q,k,v,out {} + score chunk {} elements x {} B + scaled q + chunk outputs",
                              dtype_name(compute), scores, per_score);
  } else {
    attn += L * H * 8;
    attn_detail = fmt::format("q,k,v,out {} + SDPA statistics", dtype_name(compute));
  }
  const std::int64_t ffn = L * D * (4 + c) + 2 * L * F * c;
  const std::int64_t block = std::max({rope, attn, ffn});
  const char* phase = block == rope ? "RoPE" : block == attn ? "attention" : "FFN";
  items.push_back(make_memory_item("block temporaries", block, MemoryItem::kWorkspace,
                      fmt::format("max of RoPE {} (L*dim*(16+2*{})), attention {} ({}), FFN {} "
                                  "(L*dim*(4+{}) + 2*L*ffn={}*{}): {}",
                                  gb(rope), c, gb(attn), attn_detail, gb(ffn), c, F, c, phase)));
  if (per_token) {
    items.push_back(make_memory_item("modulation + e0 per block", L * 6 * D * 4, MemoryItem::kWorkspace,
                        fmt::format("[L={}, 6, {}] fp32 temporary in every block", L, D)));
  }
  return items;
}

std::vector<MemoryItem> text_encoder_memory_items(const TextEncoderDims& t, Dtype compute) {
  const std::int64_t L = t.text_len, D = t.dim, F = t.dim_ffn, H = t.num_heads;
  const std::int64_t c = dtype_size(compute);
  return {
      make_memory_item("hidden states", 6 * L * D * 4, MemoryItem::kActivation,
          fmt::format("x, norm, q, k, v, out [{}, {}] (fp32 bound)", L, D)),
      make_memory_item("FFN hidden", 3 * L * F * 4, MemoryItem::kActivation,
          fmt::format("gate, up, product [{}, {}] (fp32 bound)", L, F)),
      make_memory_item("attention scores", H * L * L * (4 + 4 + 2 * c), MemoryItem::kWorkspace,
          fmt::format("[{} heads, {}, {}] scores + bias, softmax fp32, probs", H, L, L)),
      make_memory_item("prompt embeddings", 2 * L * D * c, MemoryItem::kActivation,
          "prompt and negative prompt outputs"),
  };
}

std::vector<MemoryItem> vae_decode_memory_items(const VaeDims& v, int lat_h, int lat_w,
                                                Dtype dtype) {
  const VaeWalk walk = walk_vae_decoder(v);
  const int e = dtype_size(dtype);
  const std::int64_t pixels = std::int64_t(lat_h) * lat_w;
  const std::int64_t cache = cache_bytes(walk.slots, lat_h, lat_w, e);
  const auto step =
      static_cast<std::int64_t>(kVaeStepFactor * walk.max_tensor_per_pixel * pixels * e);
  const std::int64_t scores = 3 * pixels * pixels * 4;
  const std::int64_t out_pixels = pixels * v.stride_s * v.stride_s;
  return {
      make_memory_item("decoder cache", cache, MemoryItem::kActivation,
          fmt::format("{} causal-conv slots x 2 frames at {}x{} latent px ({}), {}",
                      walk.slots.size(), lat_h, lat_w, "latent x num/den", dtype_name(dtype))),
      make_memory_item("decode step", step, MemoryItem::kWorkspace,
          fmt::format("{} x largest tensor {} elements/latent px x {} px x {} B", kVaeStepFactor,
                      walk.max_tensor_per_pixel, pixels, e)),
      make_memory_item("middle attention scores", scores, MemoryItem::kWorkspace,
          fmt::format("single head over {} latent px: 3 x {}^2 fp32", pixels, pixels)),
      make_memory_item("latent and output chunk", std::int64_t(v.z_dim) * pixels * e + 3LL * 4 * out_pixels * 4,
          MemoryItem::kActivation, "one latent frame in, 4 frames out"),
  };
}

std::vector<MemoryItem> vae_tiled_decode_memory_items(const VaeDims& v, int lat_h, int lat_w,
                                                      int tile, Dtype dtype) {
  // The tiling the pipeline decodes with (VaeDecoder): square tiles of `tile` latent px, a
  // quarter-tile overlap, end-aligned, so every tile has the full size (or the frame's).
  const wan22::VaeTiling tiling = vae_tiling_for_pixels(tile * v.stride_s, v.stride_s);
  const ChunkPlan rows = VaeDecoder::tile_plan(lat_h, tiling);
  const ChunkPlan cols = VaeDecoder::tile_plan(lat_w, tiling);
  const int th = static_cast<int>(rows.chunks.front().end - rows.chunks.front().start);
  const int tw = static_cast<int>(cols.chunks.front().end - cols.chunks.front().start);
  const std::int64_t tiles = static_cast<std::int64_t>(rows.chunks.size() * cols.chunks.size());
  std::vector<MemoryItem> items = vae_decode_memory_items(v, th, tw, dtype);
  // Each tile carries its own causal cache from one latent frame to the next, so all of them
  // are alive for the whole decode: tiling shrinks the step workspace, not the caches.
  MemoryItem& cache = items.front();
  cache.detail = fmt::format("{} tiles ({}x{}) x [{}]", tiles, rows.chunks.size(),
                             cols.chunks.size(), cache.detail);
  cache.bytes *= tiles;
  const std::int64_t frame_pixels = std::int64_t(lat_h) * lat_w * v.stride_s * v.stride_s;
  items.push_back(make_memory_item("blended output chunk", 3LL * v.stride_t * frame_pixels * 4,
                                   MemoryItem::kActivation,
                                   fmt::format("[3, {}, {}, {}] fp32: the tiles are blended into it",
                                               v.stride_t, lat_h * v.stride_s, lat_w * v.stride_s)));
  return items;
}

std::vector<MemoryItem> vae_encode_memory_items(const VaeDims& v, int width, int height, int frames,
                                                Dtype dtype) {
  const VaeWalk walk = walk_vae_encoder(v);
  const int e = dtype_size(dtype);
  const std::int64_t h = height / v.patch, w = width / v.patch;
  const std::int64_t lat_pixels = std::int64_t(height / v.stride_s) * (width / v.stride_s);
  const std::int64_t cache = cache_bytes(walk.slots, h, w, e);
  const auto chunk =
      static_cast<std::int64_t>(kVaeStepFactor * walk.max_tensor_per_pixel * h * w * e);
  return {
      make_memory_item("input video", 3LL * frames * height * width * 4, MemoryItem::kActivation,
          fmt::format("[3, {}, {}, {}] fp32", frames, height, width)),
      make_memory_item("encoder cache", cache, MemoryItem::kActivation,
          fmt::format("{} slots at {}x{} (patchified input px), {}", walk.slots.size(), h, w,
                      dtype_name(dtype))),
      make_memory_item("encode chunk", chunk, MemoryItem::kWorkspace,
          fmt::format("{} x largest tensor {} elements/px x {} px x {} B", kVaeStepFactor,
                      walk.max_tensor_per_pixel, h * w, e)),
      make_memory_item("middle attention scores", 3 * lat_pixels * lat_pixels * 4, MemoryItem::kWorkspace,
          fmt::format("single head over {} latent px", lat_pixels)),
  };
}

// ---- requirements ---------------------------------------------------------------------------

namespace {

class WanActivationModel : public ActivationModel {
 public:
  WanActivationModel(const BundleManifest& m)
      : spec_(read_wan_spec(m)),
        dit_(read_dit_dims(m)),
        te_(read_text_encoder_dims(m)),
        vae_(read_vae_dims(m)) {}

  std::vector<MemoryItem> stage_memory(const StageRequirement& stage,
                                       const ActivationQuery& q) const override {
    const Workload& w = q.workload;
    const int lat_f = latent_frames(w.frames);
    const auto [lat_h, lat_w] = latent_size(w.width, w.height);
    switch (stage.kind) {
      case RunStage::kTextEncode:
        return text_encoder_memory_items(te_, q.compute);
      case RunStage::kImageEncode:
        return vae_encode_memory_items(vae_, w.width, w.height, spec_.task == "i2v" ? w.frames : 1,
                                       q.vae_dtype);
      case RunStage::kDecode: {
        if (!q.vae_tiling.enabled) return vae_decode_memory_items(vae_, lat_h, lat_w, q.vae_dtype);
        const int side = std::max(std::min(lat_h, q.vae_tiling.tile_h),
                                  std::min(lat_w, q.vae_tiling.tile_w));
        return vae_tiled_decode_memory_items(vae_, lat_h, lat_w, side, q.vae_dtype);
      }
      case RunStage::kDenoise:
        break;
    }
    const int window = q.frame_chunking.enabled ? std::min(lat_f, q.frame_chunking.window) : lat_f;
    const std::int64_t all_tokens = dit_tokens(dit_, window, lat_h, lat_w);
    // Sequence parallel: a rank keeps tokens / S tokens through the blocks; attention sees
    // every token of heads / S heads, the same bytes as its own tokens of every head.
    const std::int64_t S = std::max(1, w.seq_ranks);
    const std::int64_t L = (all_tokens + S - 1) / S;
    auto items = dit_memory_items(dit_, L, spec_.task == "ti2v" && w.image, q.compute, q.attention);
    if (S > 1) {
      const std::int64_t c = dtype_size(q.compute);
      items.push_back(make_memory_item(
          "sequence-parallel exchange", 3 * 3 * L * dit_.dim * c, MemoryItem::kWorkspace,
          fmt::format("q, k, v [L/{}={}, {}] {} each: the split parts, the sent and the received "
                      "copy (all-to-all)",
                      S, L, dit_.dim, dtype_name(q.compute))));
      items.push_back(make_memory_item(
          "tokens gathered for the head", 2 * all_tokens * dit_.dim * 4, MemoryItem::kActivation,
          fmt::format("[L={}, {}] fp32: the parts and the whole sequence (all_gather)",
                      all_tokens, dit_.dim)));
    }
    const std::int64_t latent = std::int64_t(dit_.in_dim) * lat_f * lat_h * lat_w;
    items.push_back(make_memory_item("latents and sampler state", 8 * latent * 4, MemoryItem::kActivation,
                        fmt::format("8 x [{}, {}, {}, {}] fp32 (latent, input, cond/uncond, "
                                    "velocity, sampler history)",
                                    dit_.in_dim, lat_f, lat_h, lat_w)));
    items.push_back(
        make_memory_item("prompt embeddings", 2LL * dit_.text_len * dit_.text_dim * dtype_size(q.compute),
            MemoryItem::kActivation, "prompt and negative prompt, from the text encoder"));
    return items;
  }

  std::int64_t output_bytes(const Workload& w) const override {
    return std::int64_t(w.frames) * w.height * w.width * 3 * (4 + 1);
  }

  int latent_frames(int frames) const override { return (frames - 1) / vae_.stride_t + 1; }

  std::pair<int, int> latent_size(int width, int height) const override {
    return {height / vae_.stride_s, width / vae_.stride_s};
  }

 private:
  WanSpec spec_;
  DitDims dit_;
  TextEncoderDims te_;
  VaeDims vae_;
};

Dtype manifest_dtype(const BundleManifest& m, const ComponentEntry& c) {
  if (c.dtype == "fp32") return Dtype::kFp32;
  if (c.dtype == "bf16") return Dtype::kBf16;
  if (c.dtype == "fp16") return Dtype::kFp16;
  m.yaml.fail(m.yaml.root["components"][c.name], "dtype",
              fmt::format("unknown dtype '{}'", c.dtype));
}

// Bytes of the VAE's encoder side in its weights file (the encoder and the conv1 that follows
// it): a decode never reads them. From the file's header only; the data stays unread.
std::int64_t vae_encoder_bytes(const BundleManifest& m, const ComponentEntry& e) {
  const auto file = MappedSafetensors::open(m.weights_path_of(e));
  std::int64_t bytes = 0;
  for (const auto& t : file->header().entries) {
    if (t.name.rfind("encoder.", 0) == 0 || t.name.rfind("conv1.", 0) == 0) {
      bytes += t.end - t.begin;
    }
  }
  return bytes;
}

}  // namespace

ModelRequirements wan_requirements(const BundleManifest& m) {
  const WanSpec spec = read_wan_spec(m);
  const DitDims dit = read_dit_dims(m);
  const TextEncoderDims te = read_text_encoder_dims(m);
  ModelRequirements r;
  r.model_id = m.model_id;
  if (!m.profile) r.attention = parse_attention(m.attention, "attention in " + m.yaml.path);
  r.mapped_weights = m.profile || m.format_version >= 2;
  r.source = m.root.empty() ? m.yaml.path : m.root;
  for (const auto& e : m.components) {
    ComponentRequirement c;
    c.name = e.name;
    c.stored = manifest_dtype(m, e);
    c.parameters = e.parameters;
    c.stored_bytes = e.bytes;
    c.non_block_bytes = e.non_block_bytes;
    c.block_bytes = e.block_bytes;
    c.inputs = e.contract.inputs;
    c.methods = e.contract.methods;
    c.role = component_role(e.name);
    switch (c.role) {
      case ComponentRole::kTextEncoder:
        c.needs = {"token ids (tokenizer)"};
        // The token embedding: a run reads the rows of its prompts' tokens only.
        c.sparse_bytes = te.vocab_size * te.dim * dtype_size(c.stored);
        break;
      case ComponentRole::kDenoiser:
        c.needs = {"context (text_encoder output)", "noise latents"};
        if (spec.task != "t2v") c.needs.push_back("image latents (vae encode)");
        break;
      case ComponentRole::kVae:
        c.needs = {"latents (denoiser output)"};
        if (!m.profile && !m.root.empty() && !e.weights.empty()) {
          c.encode_only_bytes = vae_encoder_bytes(m, e);
        }
        break;
      case ComponentRole::kOther:
        break;
    }
    if (!e.keep_fp32.empty()) {
      c.block_keep_fp32_parameters =
          c.role == ComponentRole::kTextEncoder ? text_encoder_block_keep_fp32_parameters(te)
          : c.role == ComponentRole::kDenoiser  ? dit_block_keep_fp32_parameters(dit)
                                                : 0;
    }
    if (is_half(c.stored) && !e.keep_fp32.empty()) {
      c.keep_fp32_parameters = std::max<std::int64_t>(0, (e.bytes - 2 * e.parameters) / 2);
    } else if (!e.keep_fp32.empty()) {
      c.keep_fp32_parameters = c.role == ComponentRole::kTextEncoder
                                   ? text_encoder_keep_fp32_parameters(te)
                               : c.role == ComponentRole::kDenoiser ? dit_keep_fp32_parameters(dit)
                                                                    : 0;
    }
    r.components.push_back(c);
  }
  r.stages.push_back({"text_encoding", RunStage::kTextEncode, component::kTextEncoder});
  r.stages.push_back({"vae_encode", RunStage::kImageEncode, component::kVae});
  for (const auto& expert : spec.experts) {
    r.stages.push_back({"denoise:" + expert, RunStage::kDenoise, expert});
  }
  r.stages.push_back({"vae_decode", RunStage::kDecode, component::kVae});
  r.default_width = spec.sampling.width;
  r.default_height = spec.sampling.height;
  r.default_frames = spec.sampling.frames;
  r.size_multiple = spec.size_multiple();
  r.temporal_stride = spec.vae_stride[0];
  r.image_required = spec.task == "i2v";
  r.image_optional = spec.task == "ti2v";
  r.activations = std::make_shared<WanActivationModel>(m);
  return r;
}

ModelRequirements wan_requirements_from_path(const std::string& path) {
  std::error_code ec;
  const std::string yaml = std::filesystem::is_directory(path, ec)
                               ? (std::filesystem::path(path) / "wanrt.yaml").string()
                               : path;
  BundleManifest m = read_profile(yaml);
  if (!m.profile) {
    // A bundle: read as one where its files are there, so sizes may come from their headers
    // (the VAE's encoder bytes); planning needs the manifest only, so a bundle whose files
    // are not (yet) all there is still planned from its sizes.
    try {
      m = read_bundle(std::filesystem::path(yaml).parent_path().string());
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kBundle) throw;
    }
  }
  ModelRequirements r = wan_requirements(m);
  r.source = path;
  return r;
}

OptimizationManager make_optimization_manager(const OptimizationConfig& config,
                                              std::shared_ptr<const WanLoras> loras) {
  return OptimizationManager(config, [loras](const std::string& path) {
    ModelRequirements r = wan_requirements_from_path(path);
    if (loras) loras->account(r);
    return r;
  });
}

}  // namespace wanrt::wan22
