// Soak test (docs/development.md, "Soak test"): many consecutive generations in one process
// through the C++ API, valid and invalid requests mixed, on the tiny bundles; checks that the
// resident memory stays in a band and that no file descriptor or thread is leaked.
//
//   wanrt_soak TINY_BUNDLES_DIR [--runs N] [--quick] [--reload-every K] [--reuse-sessions]
//
// --runs N (default 200); --quick: 30 runs (CI). Every K-th run (default 25; 0: never) reloads
// a model, with a LoRA on alternate reloads. Each run opens its own Session unless
// --reuse-sessions (one per bundle; for telling a per-session leak from others). After a
// warm-up of 10 runs the RSS, the open descriptors (/proc/self/fd) and the threads
// (/proc/self/status) are sampled after every run (WANRT_SOAK_TRACE=1 prints the RSS). Fails
// (exit 1) when: a valid request fails or an invalid one succeeds or fails with another
// category than usage; the descriptors or threads at the end exceed those after the warm-up;
// or the peak RSS of the last half of the runs exceeds the first half's by more than 32 MiB (a
// leak of 0.3 MiB a run over 200 runs). Prints one JSON summary line.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/wan22/model.h"
#include "models/wan22/session.h"
#include "runtime/error.h"
#include "runtime/proc_fields.h"

namespace fs = std::filesystem;
namespace w = wanrt::wan22;
using wanrt::internal::read_proc_kib_field;

namespace {

int open_descriptors() {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

std::int64_t threads() {
  // "Threads:" is a plain count, not KiB; read_proc_kib_field multiplies by 1024.
  return read_proc_kib_field("/proc/self/status", "Threads") / 1024;
}

struct Case {
  std::string bundle;  // tiny-ti2v, tiny-t2v-moe, tiny-i2v-moe
  w::GenerateRequest request;
  bool valid = true;
};

// The request of run i: a rotation over bundles, sizes, frames, samplers, guidance, presets,
// windows and tiles; every fifth run is invalid in one of several ways.
Case make_case(int i) {
  static const char* kBundles[] = {"tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe"};
  static const char* kSamplers[] = {"unipc", "euler", "lightning"};
  Case c;
  c.bundle = kBundles[i % 3];
  w::GenerateRequest& r = c.request;
  r.prompt = fmt::format("soak run {}: a paper boat drifting on a pond", i);
  r.seed = i;
  r.steps = 1 + i % 3;
  r.frames = (i / 3) % 2 == 0 ? 5 : 9;
  r.sampler = kSamplers[(i / 2) % 3];
  if (i % 4 == 1) r.guidance = 1.0;  // the unconditional pass skipped
  if (i % 7 == 3) r.preset = "lightning";
  if (i % 6 == 5) r.chunk_frames = 5;
  if (i % 8 == 7) r.vae_tile = 32;
  if (c.bundle == "tiny-i2v-moe" || (c.bundle == "tiny-ti2v" && i % 2 == 0)) {
    r.image = at::randint(0, 256, {40 + i % 9, 48}, at::kByte)
                  .unsqueeze(2)
                  .expand({-1, -1, 3})
                  .contiguous();
  }
  if (i % 5 == 4) {
    c.valid = false;
    switch ((i / 5) % 5) {
      case 0: r.frames = 4; break;                  // not 4n+1
      case 1: r.width = 50; r.height = 64; break;   // not a multiple of the stride
      case 2: r.sampler = "ddim"; break;
      case 3: r.preset = "turbo"; break;
      default: r.steps = 0; break;
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr,
               "usage: wanrt_soak TINY_BUNDLES_DIR [--runs N] [--quick] [--reload-every K] "
               "[--reuse-sessions]\n");
    return 2;
  }
  const fs::path dir = argv[1];
  int runs = 200;
  int reload_every = 25;
  bool reuse_sessions = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      runs = 30;
    } else if (a == "--reuse-sessions") {
      reuse_sessions = true;
    } else if (a == "--reload-every" && i + 1 < argc) {
      reload_every = std::atoi(argv[++i]);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "wanrt_soak: unknown argument '{}'\n", a);
      return 2;
    }
  }
  const int warmup = std::min(10, runs / 3);
  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, std::shared_ptr<const w::Model>> models;
  auto model = [&](const std::string& name, int i) {
    auto& m = models[name];
    if (!m || (reload_every > 0 && i % reload_every == reload_every - 1)) {
      w::ModelOptions options;
      options.threads = 1;
      options.verify = false;
      if (name == "tiny-ti2v" && reload_every > 0 && (i / reload_every) % 2 == 1) {
        options.loras = {{(dir / "loras" / "ti2v-official.safetensors").string(), 0.7}};
      }
      m.reset();  // the old model goes before the new one loads
      m = w::Model::load((dir / name).string(), options);
    }
    return m;
  };

  std::map<std::string, std::unique_ptr<w::Session>> sessions;
  std::vector<std::int64_t> rss;
  int base_fds = 0, max_fds = 0, failures = 0, invalid = 0;
  std::int64_t base_threads = 0, max_threads = 0;
  for (int i = 0; i < runs; ++i) {
    const Case c = make_case(i);
    try {
      std::shared_ptr<const w::Model> m = model(c.bundle, i);
      std::unique_ptr<w::Session> own;
      w::Session* session = nullptr;
      if (reuse_sessions) {
        auto& kept = sessions[c.bundle];
        if (!kept || &kept->model() != m.get()) kept = std::make_unique<w::Session>(m);
        session = kept.get();
      } else {
        own = std::make_unique<w::Session>(m);
        session = own.get();
      }
      const w::GenerateResult result = session->generate(c.request);
      if (!c.valid) {
        fmt::print(stderr, "run {}: an invalid request succeeded\n", i);
        ++failures;
      } else if (result.frames.size(0) != *c.request.frames) {
        fmt::print(stderr, "run {}: {} frames, asked for {}\n", i, result.frames.size(0),
                   *c.request.frames);
        ++failures;
      }
    } catch (const wanrt::Error& e) {
      if (c.valid || e.category() != wanrt::ErrorCategory::kUsage) {
        fmt::print(stderr, "run {}: {}\n", i, wanrt::format_error(e));
        ++failures;
      } else {
        ++invalid;
      }
    }
    if (i + 1 == warmup) {
      base_fds = open_descriptors();
      base_threads = threads();
    }
    if (i + 1 >= warmup) {
      rss.push_back(read_proc_kib_field("/proc/self/status", "VmRSS"));
      if (std::getenv("WANRT_SOAK_TRACE")) {
        fmt::print(stderr, "run {} rss {}\n", i, rss.back() >> 20);
      }
      max_fds = std::max(max_fds, open_descriptors());
      max_threads = std::max(max_threads, threads());
    }
  }
  const int fds = open_descriptors();
  const std::int64_t end_threads = threads();
  const std::size_t half = rss.size() / 2;
  const std::int64_t first_peak = *std::max_element(rss.begin(), rss.begin() + half);
  const std::int64_t last_peak = *std::max_element(rss.begin() + half, rss.end());
  const std::int64_t low = *std::min_element(rss.begin(), rss.end());
  const std::int64_t growth = last_peak - first_peak;
  const bool fds_ok = fds <= base_fds;
  const bool threads_ok = end_threads <= base_threads;
  const bool rss_ok = growth <= (std::int64_t{32} << 20);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(
      "{{\"runs\": {}, \"invalid_refused\": {}, \"failures\": {}, \"seconds\": {:.1f}, "
      "\"rss_band_bytes\": [{}, {}], \"rss_first_half_peak\": {}, \"rss_last_half_peak\": {}, "
      "\"rss_growth_bytes\": {}, \"fds\": {{\"after_warmup\": {}, \"max\": {}, \"end\": {}}}, "
      "\"threads\": {{\"after_warmup\": {}, \"max\": {}, \"end\": {}}}, \"ok\": {}}}\n",
      runs, invalid, failures, seconds, low, std::max(first_peak, last_peak), first_peak,
      last_peak, growth, base_fds, max_fds, fds, base_threads, max_threads, end_threads,
      failures == 0 && fds_ok && threads_ok && rss_ok);
  if (!fds_ok) {
    fmt::print(stderr, "file descriptors leaked: {} after warm-up, {} at the end\n", base_fds,
               fds);
  }
  if (!threads_ok) {
    fmt::print(stderr, "threads leaked: {} after warm-up, {} at the end\n", base_threads,
               end_threads);
  }
  if (!rss_ok) fmt::print(stderr, "RSS grew by {} MiB between the halves\n", growth >> 20);
  return failures == 0 && fds_ok && threads_ok && rss_ok ? 0 : 1;
}
