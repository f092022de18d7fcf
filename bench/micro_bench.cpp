// Micro benchmarks of the optimization machinery (not part of `make test`; numbers and
// commands in bench/README.md):
//   planner   latency of reading a model's requirements and of planning (CPU ladder, a
//             simulated 24 GiB GPU with 64 GiB RAM, and a real model's planning profile on
//             that machine);
//   executor  StagedExecutor::run (prologue -> blocks -> epilogue, with and without no-op
//             hooks) against the module's monolithic forward on the same inputs: the
//             overhead per block of running a component stage by stage (goal < 2 %);
//   transfer  host -> device and device -> host copy bandwidth, pageable and pinned host
//             memory (CUDA only: skipped with a message on a machine or build without CUDA).
// Blend throughput has its own program, blend_bench. Each timing is the median (and min) of
// --repeat wall-clock runs after warm-up runs; the variants alternate inside each repetition
// so that a shared machine's load affects them alike, and the executor's overhead is the
// median of the per-repetition ratios staged / monolithic.
//
// Usage: micro_bench BUNDLE [--repeat N] [--threads T] [--latent F,H,W] [--profile YAML]
//                           [--only planner|executor|transfer]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "models/wan22/memory_model.h"
#include "optim/machine.h"
#include "optim/optimization_manager.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "runtime/staged_executor.h"
#include "runtime/version.h"

namespace {

struct Options {
  std::string bundle, profile, only;
  int repeat = 20, threads = 0;
  std::vector<int> latent;  // F, H, W; empty: from the bundle's default request
};

double seconds_of(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Stat {
  double median = 0, min = 0;
};

Stat stat_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front()};
}

// Runs every variant `repeat` times, alternating; returns each variant's times in run order.
std::vector<std::vector<double>> alternate_raw(int repeat,
                                               const std::vector<std::function<void()>>& variants) {
  std::vector<std::vector<double>> t(variants.size());
  for (int i = 0; i < repeat; ++i) {
    for (std::size_t v = 0; v < variants.size(); ++v) t[v].push_back(seconds_of(variants[v]));
  }
  return t;
}

std::vector<Stat> alternate(int repeat, const std::vector<std::function<void()>>& variants) {
  std::vector<Stat> out;
  for (auto& times : alternate_raw(repeat, variants)) out.push_back(stat_of(times));
  return out;
}

// Median of the per-repetition ratios a[i] / b[i]: runs next to each other share the machine's
// load of the moment, so their ratio drifts less than the ratio of two medians.
double paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t i = 0; i < a.size(); ++i) r.push_back(a[i] / b[i]);
  return stat_of(r).median;
}

std::string us(double s) { return fmt::format("{:.1f} µs", s * 1e6); }
std::string ms(double s) { return fmt::format("{:.3f} ms", s * 1e3); }

void bench_planner(const Options& o) {
  using namespace wanrt;
  fmt::print("\n## planner latency (median / min of {} runs)\n\n", o.repeat);
  const OptimizationManager manager = wan22::make_optimization_manager();
  const SystemResources real = manager.analyze_system_resources();
  MachineOverrides sim;  // a 24 GiB GPU in a 64 GiB machine
  sim.vram = 24LL << 30;
  sim.ram = 64LL << 30;
  sim.gpu_cc = 8.9;
  sim.gpu_count = 1;
  const SystemResources gpu24 = simulate_resources(real, sim);
  const ModelRequirements req = wan22::wan_requirements_from_path(o.bundle);
  PlanSettings on_cpu, on_gpu;
  on_cpu.device = "cpu";
  on_gpu.device = "cuda:0";
  std::vector<std::string> names = {"read requirements (bundle manifest)",
                                    "plan: bundle, CPU ladder",
                                    "plan: bundle, simulated 24 GiB GPU + 64 GiB RAM"};
  std::vector<std::function<void()>> variants = {
      [&] { (void)wan22::wan_requirements_from_path(o.bundle); },
      [&] { (void)manager.recommend_optimizations(req, real, {}, on_cpu); },
      [&] { (void)manager.recommend_optimizations(req, gpu24, {}, on_gpu); }};
  // The same GPU with this machine's RAM: a large model may not fit, and then the planner
  // also searches what would (guidance).
  MachineOverrides sim_small = sim;
  sim_small.ram.reset();
  const SystemResources gpu24_here = simulate_resources(real, sim_small);
  ModelRequirements profile;
  std::string rungs;
  if (!o.profile.empty()) {
    profile = wan22::wan_requirements_from_path(o.profile);
    names.push_back("plan: " + profile.model_id + " profile, default request, same machine");
    variants.push_back([&] { (void)manager.recommend_optimizations(profile, gpu24, {}, on_gpu); });
    names.push_back("plan: same, 24 GiB GPU with this machine's RAM");
    variants.push_back(
        [&] { (void)manager.recommend_optimizations(profile, gpu24_here, {}, on_gpu); });
    rungs = fmt::format("{} with 64 GiB RAM; {} with this machine's {}",
                        manager.recommend_optimizations(profile, gpu24, {}, on_gpu).plan.rung,
                        manager.recommend_optimizations(profile, gpu24_here, {}, on_gpu).plan.rung,
                        format_gib(real.ram_total));
  }
  for (auto& v : variants) v();  // warm-up
  const std::vector<Stat> stats = alternate(o.repeat, variants);
  for (std::size_t i = 0; i < names.size(); ++i) {
    fmt::print("  {:<72} {:>12} / {:>12}\n", names[i], ms(stats[i].median), ms(stats[i].min));
  }
  if (!rungs.empty()) fmt::print("  (the profile's plans: {})\n", rungs);
}

// Inputs of a staged component: the DiT's (x, t, context) or the text encoder's (ids, mask).
std::vector<at::Tensor> inputs_for(const wanrt::BundleManifest& m, const std::string& name,
                                   const std::vector<int>& latent) {
  const int text_len = m.architecture["dit"]["text_len"].as<int>();
  if (name == "text_encoder") {
    const int vocab = m.architecture["text_encoder"]["vocab_size"].as<int>();
    return {at::randint(vocab, {2, text_len}, at::kLong), at::ones({2, text_len}, at::kLong)};
  }
  const int in_dim = m.architecture["dit"]["in_dim"].as<int>();
  const int text_dim = m.architecture["dit"]["text_dim"].as<int>();
  return {at::randn({1, in_dim, latent[0], latent[1], latent[2]}), at::full({1}, 500.0),
          at::randn({1, text_len, text_dim})};
}

void bench_executor(const Options& o) {
  using namespace wanrt;
  const BundleManifest m = read_bundle(o.bundle, BundleOptions{false, {}});
  std::vector<int> latent = o.latent;
  if (latent.empty()) {
    const auto size = m.sampling["size"];
    const int frames = m.sampling["frames"].as<int>();
    const auto stride = m.architecture["vae"]["stride"];
    latent = {(frames - 1) / stride[0].as<int>() + 1, size[1].as<int>() / stride[1].as<int>(),
              size[0].as<int>() / stride[2].as<int>()};
  }
  fmt::print(
      "\n## staged executor against the monolithic forward (median / min of {} runs, {} "
      "threads)\n\nDiT latent [F, H, W] = [{}, {}, {}]\n\n",
      o.repeat, at::get_num_threads(), latent[0], latent[1], latent[2]);
  InferenceScope scope;
  StageHooks noop;
  for (const auto& entry : m.components) {
    if (!entry.staged()) continue;
    at::manual_seed(0);
    const Component component = Component::load(m, entry.name);
    StagedExecutor executor(component);
    const auto inputs =
        inputs_for(m, entry.name == "text_encoder" ? "text_encoder" : "dit", latent);
    const bool equal = at::equal(executor.run(inputs)[0], executor.forward_monolithic(inputs)[0]);
    for (int i = 0; i < 2; ++i) {  // warm-up
      executor.forward_monolithic(inputs);
      executor.run(inputs, &noop);
    }
    const auto raw = alternate_raw(
        o.repeat, {[&] { executor.forward_monolithic(inputs); }, [&] { executor.run(inputs); },
                   [&] { executor.run(inputs, &noop); }});
    std::vector<Stat> s;
    for (const auto& times : raw) s.push_back(stat_of(times));
    const int n = executor.num_blocks();
    fmt::print("  {} ({} blocks; staged output {} the monolithic one)\n", entry.name, n,
               equal ? "equals" : "DIFFERS FROM");
    fmt::print("    monolithic forward        {:>12} / {:>12}\n", ms(s[0].median), ms(s[0].min));
    for (int v = 1; v <= 2; ++v) {
      const double ratio = paired_ratio(raw[v], raw[0]);
      const double over_min = s[v].min - s[0].min;
      fmt::print(
          "    staged{:<19} {:>12} / {:>12}   overhead {:+.2f} % (median of paired "
          "ratios; of the minima: {:+.2f} %), {} per block\n",
          v == 1 ? "" : ", no-op hooks", ms(s[v].median), ms(s[v].min), 100.0 * (ratio - 1.0),
          100.0 * over_min / s[0].min, us((ratio - 1.0) * s[0].median / n));
    }
  }
}

void bench_transfer(const Options& o) {
  using namespace wanrt;
  fmt::print("\n## host <-> device transfer bandwidth (best of {} copies)\n\n", o.repeat);
  if (cuda_device_count() == 0) {
    fmt::print(
        "  skipped: {}; run it on a GPU machine with a CUDA build\n",
        built_with_cuda() ? "this CUDA build sees no device" : "this build's LibTorch has no CUDA");
    return;
  }
  const auto backend = make_cuda_backend(0);
  fmt::print("  device: {}\n", backend->name());
  for (std::int64_t mib : {16, 256}) {
    const std::int64_t n = (mib << 20) / 4;
    const at::Tensor pageable = at::rand({n});
    const at::Tensor pinned = at::empty({n}, at::TensorOptions().pinned_memory(true));
    pinned.copy_(pageable);
    at::Tensor device = at::empty({n}, at::TensorOptions().device(at::kCUDA, 0));
    const auto best = [&](const std::function<void()>& copy) {
      copy();
      backend->synchronize();
      double t = 1e30;
      for (int i = 0; i < o.repeat; ++i) {
        t = std::min(t, seconds_of([&] {
                       copy();
                       backend->synchronize();
                     }));
      }
      return static_cast<double>(mib << 20) / t / 1e9;
    };
    const double h2d_page = best([&] { device.copy_(pageable); });
    const double h2d_pin = best([&] { device.copy_(pinned, /*non_blocking=*/true); });
    const double d2h_page = best([&] { pageable.copy_(device); });
    const double d2h_pin = best([&] { pinned.copy_(device, /*non_blocking=*/true); });
    fmt::print(
        "  {:>4} MiB  host->device: pageable {:6.1f} GB/s, pinned {:6.1f} GB/s;  "
        "device->host: pageable {:6.1f} GB/s, pinned {:6.1f} GB/s\n",
        mib, h2d_page, h2d_pin, d2h_page, d2h_pin);
  }
}

std::vector<int> parse_ints(const std::string& text) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    out.push_back(std::atoi(text.substr(pos, comma - pos).c_str()));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  const std::string usage =
      "usage: micro_bench BUNDLE [--repeat N] [--threads T] [--latent F,H,W] [--profile YAML] "
      "[--only planner|executor|transfer]\n";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--repeat" && has_value) {
      o.repeat = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--threads" && has_value) {
      o.threads = std::atoi(argv[++i]);
    } else if (arg == "--latent" && has_value) {
      o.latent = parse_ints(argv[++i]);
    } else if (arg == "--profile" && has_value) {
      o.profile = argv[++i];
    } else if (arg == "--only" && has_value) {
      o.only = argv[++i];
    } else if (arg.rfind("--", 0) != 0 && o.bundle.empty()) {
      o.bundle = arg;
    } else {
      fmt::print(stderr, "unknown or incomplete option {}\n{}", arg, usage);
      return 2;
    }
  }
  if (o.bundle.empty() || (!o.latent.empty() && o.latent.size() != 3)) {
    fmt::print(stderr, "{}", usage);
    return 2;
  }
  if (o.threads > 0) at::set_num_threads(o.threads);
  try {
    fmt::print("micro_bench {} ({} threads)\n", o.bundle, at::get_num_threads());
    if (o.only.empty() || o.only == "planner") bench_planner(o);
    if (o.only.empty() || o.only == "executor") bench_executor(o);
    if (o.only.empty() || o.only == "transfer") bench_transfer(o);
  } catch (const wanrt::Error& e) {
    fmt::print(stderr, "{}\n", wanrt::format_error(e));
    return wanrt::exit_code(e.category());
  }
  return 0;
}
