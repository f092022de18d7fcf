// Blend throughput against this machine's memory bandwidth.
//
// The overlap blend is memory-bound: each add reads the chunk, reads the output region and
// writes it back, i.e. 3 bytes moved per byte of chunk. This program measures
//   - the copy bandwidth: at::Tensor::copy_ of a large fp32 buffer, counted as read + write;
//   - the blend bandwidth: OverlapBlender::add over every chunk of a plan, counted as
//     3 x the chunk bytes (plus, for comparison, ATen's addcmul_ on the same regions),
// for fp32 and bf16 with 1 and 2 intra-op threads, and prints blend / copy (goal >= 0.5).
// Notes: the caches are flushed before every timed blend; the copy, the blend and addcmul_
// alternate and each keeps its best of N wall-clock runs. copy_ is counted as 2 bytes per byte
// although a write-allocating CPU also reads the destination, so a ratio above 1 is expected
// for a blend, whose output reads are useful. On a machine shared with other busy processes
// the 2-thread numbers are unreliable: a parallel region waits for its descheduled thread.
//
// Usage: blend_bench [--copy-mib N] [--repeat N] [--threads 1,2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"
#include "chunking/overlap_blender.h"

namespace {

// Best (smallest) wall time of `repeat` runs of `run`, each after an untimed `setup`.
double best_seconds(int repeat, const std::function<void()>& setup,
                    const std::function<void()>& run) {
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < repeat; ++i) {
    setup();
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

// The copy reference: a large fp32 buffer copied with at::Tensor::copy_ (read + write).
struct CopyBuffer {
  at::Tensor src;
  at::Tensor dst;
  explicit CopyBuffer(std::int64_t bytes)
      : src(at::rand({bytes / 4}, at::kFloat)), dst(at::empty_like(src)) {
    dst.copy_(src);  // first touch outside the timing
  }
  double seconds() {
    return best_seconds(
        1, [] {}, [&] { dst.copy_(src); });
  }
  double moved() const { return 2.0 * static_cast<double>(src.nbytes()); }
};

struct Case {
  std::string name;
  std::vector<std::int64_t> shape;
  std::int64_t dim;
  std::int64_t chunk;
  std::int64_t overlap;
};

struct Result {
  double copy_bps;     // at::Tensor::copy_, best run
  double blender_bps;  // OverlapBlender::add over all chunks, best run
  double addcmul_bps;  // ATen addcmul_ on the same regions (weights in the output dtype)
};

// Evicts the caches (the development VM reports a 32 MiB L3, its host may have more) so that
// every timed blend starts from memory, as after the model call that produced the chunk.
struct CacheFlush {
  at::Tensor scratch = at::zeros({(std::int64_t{256} << 20) / 4}, at::kFloat);
  void operator()() { scratch.add_(1.0f); }
};

// The three measurements alternate within each repetition, so that the load of a shared
// machine affects them alike; each keeps its best run.
Result measure(const Case& c, at::ScalarType dtype, int repeat, CopyBuffer& copy,
               CacheFlush& flush) {
  const wanrt::ChunkPlan plan = wanrt::plan_chunks(c.shape[c.dim], c.chunk, c.overlap);
  std::vector<at::Tensor> chunks;
  double moved = 0.0;  // a fused blend reads the chunk and the output region, writes the region
  for (const auto& ch : plan.chunks) {
    std::vector<std::int64_t> shape = c.shape;
    shape[c.dim] = ch.size();
    chunks.push_back(at::rand(shape, at::kFloat).to(dtype));
    moved += 3.0 * static_cast<double>(chunks.back().nbytes());
  }
  at::Tensor out = at::empty(c.shape, at::TensorOptions().dtype(dtype));
  std::vector<at::Tensor> w;
  for (const auto& wc : wanrt::chunk_weights(plan, wanrt::BlendKind::kCosine)) {
    std::vector<std::int64_t> shape(c.shape.size() - c.dim, 1);
    shape[0] = static_cast<std::int64_t>(wc.size());
    w.push_back(at::tensor(wc, at::kDouble).to(dtype).view(shape));
  }
  std::unique_ptr<wanrt::OverlapBlender> blender;
  const auto fresh = [&] {
    blender = std::make_unique<wanrt::OverlapBlender>(out, c.dim, plan, wanrt::BlendKind::kCosine);
  };
  const auto add_all = [&] {
    for (std::size_t i = 0; i < chunks.size(); ++i) blender->add(i, chunks[i]);
  };
  const auto addcmul_all = [&] {
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      out.narrow(c.dim, plan.chunks[i].start, plan.chunks[i].size()).addcmul_(chunks[i], w[i]);
    }
  };
  fresh();
  add_all();  // warm-up: first touch of every page
  double t_copy = 1e30, t_blend = 1e30, t_addcmul = 1e30;
  for (int i = 0; i < repeat; ++i) {
    t_copy = std::min(t_copy, copy.seconds());
    const auto fresh_cold = [&] {
      fresh();
      flush();
    };
    const auto zero_cold = [&] {
      out.zero_();
      flush();
    };
    t_blend = std::min(t_blend, best_seconds(1, fresh_cold, add_all));
    t_addcmul = std::min(t_addcmul, best_seconds(1, zero_cold, addcmul_all));
  }
  return {copy.moved() / t_copy, moved / t_blend, moved / t_addcmul};
}

std::vector<int> parse_threads(const std::string& list) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos < list.size()) {
    const std::size_t comma = list.find(',', pos);
    out.push_back(std::atoi(list.substr(pos, comma - pos).c_str()));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t copy_mib = 512;
  int repeat = 10;
  std::vector<int> threads = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--copy-mib")
      copy_mib = std::atoll(argv[i + 1]);
    else if (key == "--repeat")
      repeat = std::atoi(argv[i + 1]);
    else if (key == "--threads")
      threads = parse_threads(argv[i + 1]);
    else {
      fmt::print(stderr,
                 "unknown option {}\nusage: blend_bench [--copy-mib N] [--repeat N] "
                 "[--threads 1,2]\n",
                 key);
      return 2;
    }
  }
  const std::vector<Case> cases = {
      // Wan 2.2 A14B latent/velocity of 81 frames at 720p: [C, T, H, W] = [16, 21, 90, 160],
      // windows of 9 latent frames overlapping by 2 along T.
      {"latent [16,21,90,160] T-windows 9/2", {16, 21, 90, 160}, 1, 9, 2},
      // A large tensor (256 MiB in fp32) blended along its leading dimension.
      {"large [64,16,256,256] dim0 16/4", {64, 16, 256, 256}, 0, 16, 4},
      // Blending along the last dimension (every element its own weight).
      {"large [1024,256,256] last-dim 64/16", {1024, 256, 256}, 2, 64, 16},
  };
  fmt::print("blend_bench: copy buffer {} MiB, best of {} runs\n", copy_mib, repeat);
  for (int t : threads) {
    at::set_num_threads(t);
    CopyBuffer copy(copy_mib << 20);
    CacheFlush flush;
    fmt::print(
        "\nthreads {} (GB/s = 1e9 bytes/s; copy_ counts read + write, a blend reads the "
        "chunk and the region and writes the region)\n",
        t);
    fmt::print("  {:<38} {:<5} {:>10} {:>10} {:>6} {:>12} {:>6}\n", "case", "dtype", "copy_ GB/s",
               "blend GB/s", "ratio", "addcmul_ GB/s", "ratio");
    for (const Case& c : cases) {
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        const Result r = measure(c, dtype, repeat, copy, flush);
        fmt::print("  {:<38} {:<5} {:>10.2f} {:>10.2f} {:>6.2f} {:>12.2f} {:>6.2f}\n", c.name,
                   dtype == at::kFloat ? "fp32" : "bf16", r.copy_bps / 1e9, r.blender_bps / 1e9,
                   r.blender_bps / r.copy_bps, r.addcmul_bps / 1e9, r.addcmul_bps / r.copy_bps);
      }
    }
  }
  return 0;
}
