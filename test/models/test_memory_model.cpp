// The Wan memory formulas against independent arithmetic: docs/wan22.md section 10's figures, the
// manifests' byte counts, and the exporter's own cache registry (Python reference values).
#include "support/catch.h"
#include <cmath>

#include "models/wan22/memory_model.h"
#include "optim/memory_estimate.h"
#include "optim/precision.h"
#include "runtime/component.h"
#include "runtime/module_weights.h"
#include "support/tiny_bundles.h"

using namespace wanrt;
using namespace wanrt::wan22;

namespace {

std::string profile_path(const std::string& name) {
  return std::string(WANRT_SOURCE_DIR) + "/models/profiles/" + name + ".yaml";
}

BundleManifest manifest(const std::string& name) { return read_profile(profile_path(name)); }

std::int64_t item(const std::vector<MemoryItem>& items, const std::string& name) {
  for (const auto& m : items) {
    if (m.name == name) return m.bytes;
  }
  FAIL("no item " << name);
  return 0;
}

bool has_item(const std::vector<MemoryItem>& items, const std::string& name) {
  for (const auto& m : items) {
    if (m.name == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("DiT token counts: latent frames x (latent h / 2) x (latent w / 2)", "[models]") {
  const DitDims ti2v = read_dit_dims(manifest("wan2.2-ti2v-5b"));
  // 1280x704x121, VAE stride 4x16x16: 31 x 44 x 80 latent, patch 1x2x2.
  CHECK(dit_tokens(ti2v, 31, 44, 80) == 27'280);
  const DitDims a14b = read_dit_dims(manifest("wan2.2-t2v-a14b"));
  // 1280x720x81, stride 4x8x8: 21 x 90 x 160 latent.
  CHECK(dit_tokens(a14b, 21, 90, 160) == 75'600);
}

TEST_CASE("keep-fp32 parameters from the architecture match the manifests' bytes", "[models]") {
  // Stored bf16: bytes = 2 * parameters + 2 * keep_fp32 (those are 4 bytes each).
  for (const std::string name : {"wan2.2-ti2v-5b", "wan2.2-t2v-a14b"}) {
    CAPTURE(name);
    const BundleManifest m = manifest(name);
    const DitDims dit = read_dit_dims(m);
    for (const auto& c : m.components) {
      if (c.name.rfind("dit", 0) == 0) {
        CHECK(dit_keep_fp32_parameters(dit) == (c.bytes - 2 * c.parameters) / 2);
      }
      if (c.name == "text_encoder") {
        CHECK(text_encoder_keep_fp32_parameters(read_text_encoder_dims(m)) ==
              (c.bytes - 2 * c.parameters) / 2);
      }
    }
  }
  // The 14B count by hand: patch 16*5120*4+5120, time embedding 256*5120+5120+5120^2+5120,
  // projection 5120*30720+30720, 40 blocks x 12*5120, head modulation 2*5120.
  CHECK(dit_keep_fp32_parameters(read_dit_dims(manifest("wan2.2-t2v-a14b"))) == 187'653'120);
}

TEST_CASE("14B weights: 28.6 GB of bf16 parameters, 57 GB in fp32", "[models]") {
  const ModelRequirements r = wan_requirements(manifest("wan2.2-t2v-a14b"));
  const auto& expert = r.component("dit_high_noise");
  CHECK(2.0 * expert.parameters / 1e9 == Approx(28.6).epsilon(0.002));
  CHECK(expert.bytes_at(Dtype::kBf16) == 2 * expert.parameters + 2 * 187'653'120LL);
  CHECK(expert.bytes_at(Dtype::kFp32) / 1e9 == Approx(57.15).epsilon(0.001));
  CHECK(expert.bytes_at(Dtype::kFp16) == expert.bytes_at(Dtype::kBf16));
  CHECK(expert.num_blocks() == 40);
  CHECK(r.component("text_encoder").bytes_at(Dtype::kBf16) / 1e9 == Approx(11.36).epsilon(0.001));
}

TEST_CASE("DiT activations reproduce docs/wan22.md section 10's hot spots", "[models]") {
  const DitDims a14b = read_dit_dims(manifest("wan2.2-t2v-a14b"));
  const auto per_token = dit_memory_items(a14b, 75'600, true, Dtype::kBf16, AttentionKind::kSdpa);
  // e0 [1, L, 6, 5120] fp32 at 1280x720x81: ~9.3 GB; the per-block (modulation + e0) as much.
  CHECK(item(per_token, "e0 per-token modulation") / 1e9 == Approx(9.29).epsilon(0.002));
  CHECK(item(per_token, "modulation + e0 per block") == item(per_token, "e0 per-token modulation"));
  // Residual x fp32 ~1.5 GB.
  CHECK(item(per_token, "x (residual stream)") / 1e9 == Approx(1.548).epsilon(0.001));
  // 832x480x81 (21 x 30 x 52 tokens): e0 ~4.0 GB.
  const auto small = dit_memory_items(a14b, 21 * 30 * 52, true, Dtype::kBf16, AttentionKind::kSdpa);
  CHECK(item(small, "e0 per-token modulation") / 1e9 == Approx(4.03).epsilon(0.002));
  // TI2V 720p: e0 ~2.0 GB.
  const DitDims ti2v = read_dit_dims(manifest("wan2.2-ti2v-5b"));
  const auto t = dit_memory_items(ti2v, 27'280, true, Dtype::kBf16, AttentionKind::kSdpa);
  CHECK(item(t, "e0 per-token modulation") / 1e9 == Approx(2.01).epsilon(0.002));
  // Uniform t (T2V): no per-token tensors at all.
  const auto uniform = dit_memory_items(a14b, 75'600, false, Dtype::kBf16, AttentionKind::kSdpa);
  for (const auto& m : uniform) CHECK(m.name.find("e0") == std::string::npos);
}

TEST_CASE("block temporaries: the largest of the RoPE, attention and FFN phases", "[models]") {
  const DitDims d = read_dit_dims(manifest("wan2.2-t2v-a14b"));
  const std::int64_t L = 75'600, D = 5120, F = 13824;
  const std::int64_t rope = L * D * (16 + 2 * 2);
  const std::int64_t ffn = L * D * (4 + 2) + 2 * L * F * 2;  // FFN hidden [L, 13824] bf16 x 2
  CHECK(L * F * 2 / 1e9 == Approx(2.09).epsilon(0.002));     // docs/wan22.md section 10: ~2.1 GB
  const auto sdpa = dit_memory_items(d, L, false, Dtype::kBf16, AttentionKind::kSdpa);
  CHECK(item(sdpa, "block temporaries") == std::max(rope, ffn));
  // Explicit attention: chunks of floor(2^28 / (40 * 75600)) = 88 queries, 88*40*75600 scores,
  // each costing 2 + 4 + 2 bytes (bf16 scores, fp32 probabilities, their bf16 cast), plus the
  // scaled q and the chunk outputs (L x D bf16 each).
  const std::int64_t scores = 88LL * 40 * L;
  const std::int64_t attn = L * D * 4 * 2 + scores * 8 + 2 * L * D * 2;
  const auto math = dit_memory_items(d, L, false, Dtype::kBf16, AttentionKind::kMath);
  CHECK(item(math, "block temporaries") == std::max({rope, ffn, attn}));
  // Small token counts: the whole score matrix fits one chunk.
  const std::int64_t n = 1000;
  const auto tiny = dit_memory_items(d, n, false, Dtype::kBf16, AttentionKind::kMath);
  const std::int64_t tiny_attn = n * D * 8 + n * 40 * n * 8 + 2 * n * D * 2;
  CHECK(item(tiny, "block temporaries") ==
        std::max({n * D * 20, n * D * 6 + 2 * n * F * 2, tiny_attn}));
}

TEST_CASE("VAE decoder caches match the exporter's cache registry", "[models]") {
  // Reference: sum of channels * frames * (h*num/den) * (w*num/den) * 4 over WanVAE21/22's
  // dec_specs, computed in Python from models/export/wanrt_export (see docs/optimization.md).
  const VaeDims v21 = read_vae_dims(manifest("wan2.2-t2v-a14b"));
  const VaeWalk d21 = walk_vae_decoder(v21);
  CHECK(d21.slots.size() == 32);
  CHECK(cache_bytes(d21.slots, 90, 160, 4) == 8'716'492'800LL);  // 720x1280: 8.12 GiB
  CHECK(cache_bytes(d21.slots, 60, 104, 4) == 3'777'146'880LL);  // 480x832
  const VaeDims v22 = read_vae_dims(manifest("wan2.2-ti2v-5b"));
  const VaeWalk d22 = walk_vae_decoder(v22);
  CHECK(d22.slots.size() == 32);
  CHECK(cache_bytes(d22.slots, 44, 80, 4) == 6'431'744'000LL);  // 704x1280: 5.99 GiB
  // Encoders (patchified input grid).
  const VaeWalk e21 = walk_vae_encoder(v21);
  CHECK(e21.slots.size() == 24);
  CHECK(cache_bytes(e21.slots, 720, 1280, 4) == 5'175'705'600LL);
  const VaeWalk e22 = walk_vae_encoder(v22);
  CHECK(e22.slots.size() == 24);
  CHECK(cache_bytes(e22.slots, 352, 640, 4) == 2'121'236'480LL);
}

TEST_CASE("VAE step workspace: the largest tensor of a decode step", "[models]") {
  // 2.1: the last upsample's nearest-exact x2 of 192 channels, 4 frames, 8x8 per latent pixel.
  CHECK(walk_vae_decoder(read_vae_dims(manifest("wan2.2-t2v-a14b"))).max_tensor_per_pixel ==
        192 * 4 * 64);
  // 2.2: the last level's causal conv input cat(2 cached + 4 frames) of 512 channels at 8x8.
  CHECK(walk_vae_decoder(read_vae_dims(manifest("wan2.2-ti2v-5b"))).max_tensor_per_pixel ==
        512 * 6 * 64);
  const auto items =
      vae_decode_memory_items(read_vae_dims(manifest("wan2.2-ti2v-5b")), 44, 80, Dtype::kFp32);
  CHECK(item(items, "decode step") ==
        static_cast<std::int64_t>(kVaeStepFactor * 512 * 6 * 64 * 44 * 80 * 4));
  CHECK(item(items, "middle attention scores") == 3LL * 3520 * 3520 * 4);
}

TEST_CASE("tiled VAE decode: every tile keeps its cache, one tile's workspace", "[models]") {
  // 720x1280 on the 2.1 VAE (latent 90x160) in tiles of 32 latent px (256 px): overlap
  // ceil(32/4) = 8, so a tile advances by 24: rows 0,24,48 + end-aligned 58 -> 4; cols
  // 0,24,...,120 + 128 -> 7; 28 tiles of 32x32.
  const VaeDims v = read_vae_dims(manifest("wan2.2-t2v-a14b"));
  const auto tiled = vae_tiled_decode_memory_items(v, 90, 160, 32, Dtype::kFp32);
  const auto one = vae_decode_memory_items(v, 32, 32, Dtype::kFp32);
  CHECK(item(tiled, "decoder cache") == 28 * cache_bytes(walk_vae_decoder(v).slots, 32, 32, 4));
  CHECK(item(tiled, "decode step") == item(one, "decode step"));
  CHECK(item(tiled, "blended output chunk") == 3LL * 4 * 720 * 1280 * 4);
  // All the caches together exceed the untiled frame's: tiling buys workspace, not caches.
  CHECK(item(tiled, "decoder cache") >
        item(vae_decode_memory_items(v, 90, 160, Dtype::kFp32), "decoder cache"));
}

TEST_CASE("requirements: stages in order, roles, image stage only with an image", "[models]") {
  const ModelRequirements a14b = wan_requirements_from_path(profile_path("wan2.2-t2v-a14b"));
  std::vector<std::string> names;
  for (const auto& s : a14b.stages_for(a14b.default_workload())) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"text_encoding", "denoise:dit_high_noise",
                                          "denoise:dit_low_noise", "vae_decode"});
  CHECK(a14b.component("dit_low_noise").role == ComponentRole::kDenoiser);
  CHECK(a14b.component("vae").role == ComponentRole::kVae);
  CHECK(a14b.default_width == 1280);
  CHECK(a14b.size_multiple == 16);
  CHECK_FALSE(a14b.image_optional);

  const ModelRequirements ti2v = wan_requirements_from_path(profile_path("wan2.2-ti2v-5b"));
  CHECK(ti2v.size_multiple == 32);
  CHECK(ti2v.image_optional);
  Workload w = ti2v.default_workload();
  w.image = true;
  CHECK(ti2v.stages_for(w).size() == 4);
  CHECK(ti2v.stages_for(w)[1].name == "vae_encode");
  // With an image TI2V uses per-token timesteps: e0 appears in the denoise stage.
  ActivationQuery q;
  q.workload = w;
  const auto items = ti2v.activations->stage_memory(ti2v.stages_for(w)[2], q);
  CHECK(item(items, "e0 per-token modulation") == 27'280LL * 6 * 3072 * 4);

  const ModelRequirements i2v = wan_requirements_from_path(profile_path("wan2.2-i2v-a14b"));
  CHECK(i2v.image_required);
  CHECK(i2v.default_workload().image);
}

TEST_CASE("sequence parallel: a rank's denoise activations are those of its tokens", "[models]") {
  const ModelRequirements ti2v = wan_requirements_from_path(profile_path("wan2.2-ti2v-5b"));
  Workload w = ti2v.default_workload();  // 1280x704, 121 frames: 27,280 tokens
  w.image = true;
  const StageRequirement denoise = ti2v.stages_for(w)[2];  // a copy: stages_for returns a vector
  ActivationQuery one, two;
  one.workload = two.workload = w;
  two.workload.ranks = two.workload.seq_ranks = 2;
  const auto whole = ti2v.activations->stage_memory(denoise, one);
  const auto half = ti2v.activations->stage_memory(denoise, two);
  // Per-token items follow the split exactly: 13,640 tokens a rank.
  CHECK(item(half, "x (residual stream)") == 13'640LL * 3072 * 4);
  CHECK(item(half, "e0 per-token modulation") == 13'640LL * 6 * 3072 * 4);
  CHECK(item(half, "RoPE tables") * 2 == item(whole, "RoPE tables"));
  // What the split adds: q, k, v in three copies (bf16) around the all-to-all, and the whole
  // sequence again before the head.
  CHECK(item(half, "sequence-parallel exchange") == 9LL * 13'640 * 3072 * 2);
  CHECK(item(half, "tokens gathered for the head") == 2LL * 27'280 * 3072 * 4);
  CHECK_FALSE(has_item(whole, "sequence-parallel exchange"));
}

TEST_CASE("requirements of a real bundle directory (tiny, fp32)", "[models]") {
  const std::string dir = wanrt_test::tiny_bundle("tiny-t2v-moe");
  const ModelRequirements r = wan_requirements_from_path(dir);
  CHECK(r.source == dir);
  REQUIRE(r.components.size() == 4);
  const auto& dit = r.component("dit_high_noise");
  CHECK(dit.stored == Dtype::kFp32);
  CHECK(dit.bytes_at(Dtype::kFp32) == dit.stored_bytes);
  // fp32-stored: keep-fp32 parameters come from the architecture formula.
  CHECK(dit.keep_fp32_parameters ==
        dit_keep_fp32_parameters(read_dit_dims(read_profile(dir + "/wanrt.yaml"))));
  CHECK(dit.bytes_at(Dtype::kBf16) == 2 * dit.parameters + 2 * dit.keep_fp32_parameters);
}

TEST_CASE("half-precision shell and block sizes equal the cast module's tensors", "[models]") {
  // The requirements' per-block keep-fp32 split against the bytes a real cast produces: the
  // shell holds the patch/time embeddings (fp32), each block its norms and modulation.
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  const BundleManifest manifest = read_bundle(wanrt_test::tiny_bundle(bundle));
  const ModelRequirements req = wan_requirements(manifest);
  const std::string dit = bundle == "tiny-ti2v" ? "dit" : "dit_low_noise";
  for (const std::string& name : {std::string("text_encoder"), dit}) {
    INFO(bundle << " " << name);
    Component component = Component::load(manifest, name);
    const ComponentRequirement& c = req.component(name);
    REQUIRE(c.block_keep_fp32_parameters > 0);
    cast_module(component.module(), Dtype::kBf16, component.entry().keep_fp32);
    const auto transfer = make_cpu_transfer();
    const ModuleWeights weights(component.module(), component.blocks(), *transfer);
    CHECK(weights.device_bytes(0) == c.non_block_at(Dtype::kBf16));
    std::int64_t largest = 0;
    for (int b = 0; b < static_cast<int>(component.blocks().size()); ++b) {
      largest = std::max(largest, weights.device_bytes(weights.block_unit(b)));
    }
    CHECK(largest == c.max_block_at(Dtype::kBf16));
  }
}

TEST_CASE("the VAE's encoder bytes come from its weights file: what a decode never reads",
          "[models]") {
  // Counted independently here from the loaded module's parameters: the official VAE names put
  // the encoder side under encoder.* and conv1.* (conv2.* and decoder.* are the decode side).
  const BundleManifest manifest = read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  REQUIRE(manifest.format_version >= 2);
  const ModelRequirements req = wan_requirements(manifest);
  Component vae = Component::load(manifest, "vae");
  std::int64_t encoder = 0, decoder = 0;
  for (const auto& p : vae.module().named_parameters(/*recurse=*/true)) {
    const std::int64_t bytes = p.value.numel() * static_cast<std::int64_t>(p.value.element_size());
    const bool enc = p.name.rfind("encoder.", 0) == 0 || p.name.rfind("conv1.", 0) == 0;
    (enc ? encoder : decoder) += bytes;
  }
  CHECK(encoder > 0);
  CHECK(decoder > 0);
  CHECK(req.component("vae").encode_only_bytes == encoder);
  // The planner reads requirements from the path: the same figure.
  CHECK(wan_requirements_from_path(wanrt_test::tiny_bundle("tiny-ti2v"))
            .component("vae")
            .encode_only_bytes == encoder);
  CHECK(req.component("dit").encode_only_bytes == 0);
  // Profiles carry no weights file: nothing is left out.
  CHECK(wan_requirements_from_path(profile_path("wan2.2-ti2v-5b")).component("vae").encode_only_bytes == 0);
}
