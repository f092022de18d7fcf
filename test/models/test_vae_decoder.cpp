// Chunked and tiled causal VAE decoding (models/wan22/vae_decoder.h) on the tiny bundles' real
// Wan 2.1 and 2.2 VAEs, against the VAE's own full decode() (the exported TorchScript loop).
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "support/catch.h"
#include <string>
#include <vector>

#include "chunking/blend_weights.h"
#include "models/wan22/model_spec.h"
#include "models/wan22/vae_decoder.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/threads.h"
#include "support/tiny_bundles.h"

using wanrt::BlendKind;
using wanrt::ChunkPlan;
using wanrt::wan22::VaeDecodeOptions;
using wanrt::wan22::VaeDecoder;
using wanrt::wan22::VaeTiling;

namespace {

struct LoadedVae {
  wanrt::Component component;
  wanrt::wan22::WanSpec spec;
};

// tiny-ti2v holds a Wan 2.2 VAE (z 48, stride 4x16x16), tiny-t2v-moe a Wan 2.1 one (z 16,
// stride 4x8x8).
LoadedVae load_vae(const std::string& bundle) {
  wanrt::configure_threads(1);  // tiny work; ctest runs test processes side by side
  const wanrt::BundleManifest manifest = wanrt::read_bundle(wanrt_test::tiny_bundle(bundle));
  return {wanrt::Component::load(manifest, "vae"), wanrt::wan22::read_wan_spec(manifest)};
}

at::Tensor random_latent(const wanrt::wan22::WanSpec& spec, std::int64_t frames, std::int64_t h,
                         std::int64_t w, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn({spec.z_dim, frames, h, w}, gen, at::TensorOptions().dtype(at::kFloat));
}

// The VAE's own decode() of the whole latent: [3, F, H, W].
at::Tensor full_decode(wanrt::Component& vae, const at::Tensor& latent) {
  return vae.module().get_method("decode")({latent.unsqueeze(0)}).toTensor()[0];
}

struct Decoded {
  at::Tensor video;                 // the sink's pieces concatenated
  std::vector<std::int64_t> sizes;  // frames per sink call
  std::int64_t returned = 0;
};

Decoded chunked_decode(const LoadedVae& vae, const at::Tensor& latent,
                       const VaeDecodeOptions& options) {
  const VaeDecoder decoder(vae.component.module(), vae.spec.vae_stride[0], vae.spec.vae_stride[1]);
  Decoded out;
  std::vector<at::Tensor> pieces;
  out.returned = decoder.decode(latent, options, [&](const at::Tensor& video) {
    CHECK(video.scalar_type() == at::kFloat);
    pieces.push_back(video.clone());
    out.sizes.push_back(video.size(1));
  });
  out.video = at::cat(pieces, 1);
  return out;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

double mean_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().mean().item<double>();
}

// Every tile decoded on its own (untiled decodes of the tile's latent), row-major.
std::vector<at::Tensor> decode_tiles(const LoadedVae& vae, const at::Tensor& latent,
                                     const VaeTiling& tiling) {
  std::vector<at::Tensor> parts;
  for (const auto& r : VaeDecoder::tile_plan(latent.size(2), tiling).chunks)
    for (const auto& c : VaeDecoder::tile_plan(latent.size(3), tiling).chunks)
      parts.push_back(
          chunked_decode(vae, latent.slice(2, r.start, r.end).slice(3, c.start, c.end), {}).video);
  return parts;
}

// Tiles pasted without blending, each later tile overwriting the earlier ones ("hard seams"):
// what tiling without any blending gives.
at::Tensor pasted_tiles(const LoadedVae& vae, const at::Tensor& latent, const VaeTiling& tiling,
                        const std::vector<at::Tensor>& parts) {
  const std::int64_t s = vae.spec.vae_stride[1];
  at::Tensor out = at::zeros({3, parts[0].size(1), latent.size(2) * s, latent.size(3) * s});
  std::size_t k = 0;
  for (const auto& r : VaeDecoder::tile_plan(latent.size(2), tiling).chunks)
    for (const auto& c : VaeDecoder::tile_plan(latent.size(3), tiling).chunks)
      out.slice(2, r.start * s, r.end * s).slice(3, c.start * s, c.end * s).copy_(parts[k++]);
  return out;
}

// The blend of the tiles with the separable chunk_weights of the pixel plans, in float64.
at::Tensor blended_tiles(const LoadedVae& vae, const at::Tensor& latent, const VaeTiling& tiling,
                         BlendKind kind, const std::vector<at::Tensor>& parts) {
  const std::int64_t s = vae.spec.vae_stride[1];
  const ChunkPlan rows = VaeDecoder::tile_plan(latent.size(2), tiling);
  const ChunkPlan cols = VaeDecoder::tile_plan(latent.size(3), tiling);
  const auto wr = wanrt::chunk_weights(VaeDecoder::scale_plan(rows, s), kind);
  const auto wc = wanrt::chunk_weights(VaeDecoder::scale_plan(cols, s), kind);
  at::Tensor out =
      at::zeros({3, parts[0].size(1), latent.size(2) * s, latent.size(3) * s}, at::kDouble);
  std::size_t k = 0;
  for (std::size_t i = 0; i < rows.chunks.size(); ++i) {
    for (std::size_t j = 0; j < cols.chunks.size(); ++j) {
      const auto& r = rows.chunks[i];
      const auto& c = cols.chunks[j];
      const at::Tensor weight =
          at::tensor(wr[i], at::kDouble).unsqueeze(1) * at::tensor(wc[j], at::kDouble).unsqueeze(0);
      out.slice(2, r.start * s, r.end * s).slice(3, c.start * s, c.end * s) +=
          parts[k++].to(at::kDouble) * weight;
    }
  }
  return out.to(at::kFloat);
}

}  // namespace

TEST_CASE("VAE: chunked causal decode equals the full decode exactly, any chunk size", "[models]") {
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  INFO(bundle);
  wanrt::InferenceScope inference;
  LoadedVae vae = load_vae(bundle);
  const std::int64_t frames = 5;
  const at::Tensor latent = random_latent(vae.spec, frames, 3, 5, 7);
  const at::Tensor full = full_decode(vae.component, latent);
  REQUIRE(full.sizes() == at::IntArrayRef({3, 1 + 4 * (frames - 1), 3 * vae.spec.vae_stride[1],
                                           5 * vae.spec.vae_stride[2]}));
  for (std::int64_t chunk = 1; chunk <= frames + 2; ++chunk) {
    INFO("chunk of " << chunk << " latent frames");
    VaeDecodeOptions options;
    options.chunk_latent_frames = chunk;
    std::vector<std::pair<int, int>> progress;
    options.progress = [&](int done, int total) { progress.emplace_back(done, total); };
    std::size_t released = 0;
    options.release_memory = [&] { ++released; };
    const Decoded d = chunked_decode(vae, latent, options);
    CHECK(released == d.sizes.size());  // after every chunk
    CHECK(d.returned == full.size(1));
    CHECK(at::equal(d.video, full));
    // Chunks of `chunk` latent frames (the first latent frame gives 1 frame, the others 4);
    // the end-aligned last chunk only brings the frames not decoded yet.
    std::vector<std::int64_t> want;
    std::vector<std::pair<int, int>> want_progress;
    for (std::int64_t start = 0; start < frames; start += chunk) {
      const std::int64_t end = std::min(frames, start + chunk);
      want.push_back((start == 0 ? 1 : 0) + 4 * (end - std::max<std::int64_t>(start, 1)));
      want_progress.emplace_back(static_cast<int>(end), static_cast<int>(frames));
    }
    CHECK(d.sizes == want);
    CHECK(progress == want_progress);
  }
}

TEST_CASE("VAE: a tile covering the frame is the untiled decode exactly", "[models]") {
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  INFO(bundle);
  wanrt::InferenceScope inference;
  LoadedVae vae = load_vae(bundle);
  const at::Tensor latent = random_latent(vae.spec, 3, 4, 6, 11);
  const at::Tensor full = full_decode(vae.component, latent);
  for (const std::int64_t tile : {6, 7, 40}) {
    VaeDecodeOptions options;
    options.tiling = {tile, tile / 4};
    options.chunk_latent_frames = 2;
    const Decoded d = chunked_decode(vae, latent, options);
    INFO("tile " << tile);
    CHECK(at::equal(d.video, full));
  }
}

TEST_CASE("VAE: tiles are blended, the error falls with the overlap and beats hard seams",
          "[models]") {
  const std::string bundle = GENERATE(as<std::string>{}, "tiny-ti2v", "tiny-t2v-moe");
  INFO(bundle);
  wanrt::InferenceScope inference;
  LoadedVae vae = load_vae(bundle);
  const std::int64_t s = vae.spec.vae_stride[1];
  const at::Tensor latent = random_latent(vae.spec, 2, 8, 8, 3);
  const at::Tensor full = full_decode(vae.component, latent);
  std::vector<double> max_err, mean_err;
  for (const std::int64_t overlap : {1, 2, 3}) {
    const VaeTiling tiling{4, overlap};
    VaeDecodeOptions options;
    options.tiling = tiling;
    options.chunk_latent_frames = 1;  // tiles carry their caches across time chunks
    const Decoded d = chunked_decode(vae, latent, options);
    REQUIRE(d.video.sizes() == full.sizes());
    REQUIRE(d.sizes == std::vector<std::int64_t>{1, 4});
    // The decoder's blend is the blend of the independently decoded tiles.
    const std::vector<at::Tensor> parts = decode_tiles(vae, latent, tiling);
    CHECK(max_abs(d.video, blended_tiles(vae, latent, tiling, BlendKind::kLinear, parts)) < 1e-5);
    max_err.push_back(max_abs(d.video, full));
    mean_err.push_back(mean_abs(d.video, full));
    const at::Tensor seams = pasted_tiles(vae, latent, tiling, parts);
    const double seam_max = max_abs(seams, full), seam_mean = mean_abs(seams, full);
    WARN(
        fmt::format("{} tile 4 overlap {} (latent px, x{}): max |tiled - full| {:.4f}, mean "
                    "{:.5f}; hard seams: max {:.4f}, mean {:.5f}",
                    bundle, overlap, s, max_err.back(), mean_err.back(), seam_max, seam_mean));
    CHECK(mean_err.back() < seam_mean);
    CHECK(max_err.back() <= seam_max);
    CHECK(max_err.back() > 0);  // tiles see zero padding at their borders
  }
  for (std::size_t i = 1; i < mean_err.size(); ++i) {
    INFO("overlap " << i + 1);
    CHECK(mean_err[i] < mean_err[i - 1]);
    CHECK(max_err[i] < max_err[i - 1]);
  }
}

TEST_CASE("VAE: tile sizes in pixels map to latent tiles with a quarter-tile overlap", "[models]") {
  using wanrt::wan22::vae_tiling_for_pixels;
  CHECK(vae_tiling_for_pixels(256, 16).tile == 16);
  CHECK(vae_tiling_for_pixels(256, 16).overlap == 4);
  CHECK(vae_tiling_for_pixels(96, 16).overlap == 2);  // 6 / 4 rounded up
  CHECK(vae_tiling_for_pixels(32, 16).overlap == 1);
  CHECK(vae_tiling_for_pixels(16, 16).overlap == 0);  // a one-pixel tile cannot overlap
  CHECK(vae_tiling_for_pixels(64, 8).tile == 8);
  for (const int bad : {0, 8, 40, -16}) {
    INFO(bad);
    try {
      vae_tiling_for_pixels(bad, 16);
      FAIL("expected a usage error");
    } catch (const wanrt::Error& e) {
      CHECK(e.category() == wanrt::ErrorCategory::kUsage);
      CHECK_THAT(e.hint(), Catch::Contains(bad == 40 ? "32 or 48" : "16"));
    }
  }
}

TEST_CASE("VAE: decoding stops when cancelled", "[models]") {
  wanrt::InferenceScope inference;
  LoadedVae vae = load_vae("tiny-ti2v");
  const at::Tensor latent = random_latent(vae.spec, 4, 2, 2, 1);
  int polls = 0, sunk = 0;
  VaeDecodeOptions options;
  options.cancelled = [&] { return ++polls > 2; };
  const VaeDecoder decoder(vae.component.module(), 4, 16);
  try {
    decoder.decode(latent, options, [&](const at::Tensor&) { ++sunk; });
    FAIL("expected cancellation");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kCancelled);
  }
  CHECK(polls == 3);
  CHECK(sunk == 2);
}
