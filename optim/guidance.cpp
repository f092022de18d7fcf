// What would make an infeasible request fit: each candidate change is planned again (without
// guidance) on a modified machine, request or configuration.
#include <fmt/format.h>

#include <algorithm>

#include "optim/machine.h"
#include "optim/planner.h"

namespace wanrt {
namespace {

constexpr std::int64_t kGiB = 1LL << 30;

bool fits(const ModelRequirements& req, const SystemResources& res, const Workload& w,
          const PlanSettings& s, const OptimizationConfig& cfg, std::string* rung = nullptr) {
  try {
    const PlanOutcome o = plan_optimizations(req, res, w, s, cfg, false);
    if (rung) *rung = o.plan.rung;
    return o.plan.feasible;
  } catch (const std::exception&) {
    return false;
  }
}

SystemResources with_vram(const SystemResources& res, std::int64_t vram) {
  SystemResources r = res;
  if (r.gpus.empty()) {
    GpuInfo g;
    g.name = "simulated GPU";
    g.cc_major = 8;
    g.bf16 = g.fp16 = true;
    r.gpus.push_back(g);
  }
  for (auto& g : r.gpus) g.total_bytes = g.free_bytes = vram;
  return r;
}

SystemResources with_ram(const SystemResources& res, std::int64_t ram) {
  SystemResources r = res;
  r.ram_total = r.ram_available = ram;
  return r;
}

// Smallest size in [lo, hi] (0.25 GiB steps) for which `ok` holds; -1 when hi does not.
template <typename Ok>
std::int64_t smallest(std::int64_t lo, std::int64_t hi, Ok ok) {
  const std::int64_t step = kGiB / 4;
  if (!ok(hi)) return -1;
  lo = std::max<std::int64_t>(step, lo / step * step);
  while (hi - lo > step) {
    const std::int64_t mid = (lo + hi) / 2 / step * step;
    if (ok(mid)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

}  // namespace

void add_guidance(const ModelRequirements& req, const SystemResources& res, const Workload& w,
                  const PlanSettings& s, const OptimizationConfig& cfg, PlanOutcome& outcome) {
  auto& g = outcome.plan.guidance;
  const MemoryEstimate& e = outcome.estimate;
  const bool gpu = outcome.plan.on_gpu();
  if (!e.host_fits()) {
    g.push_back(fmt::format("host RAM is short: the best plan peaks at {} (stage {}) > {}",
                            format_gib(e.host_peak), e.host_peak_stage,
                            format_gib(e.budget.host_capacity)));
  }
  if (gpu && !e.device_fits()) {
    g.push_back(fmt::format("device memory is short: the best plan peaks at {} (stage {}) > {}",
                            format_gib(e.device_peak), e.device_peak_stage,
                            format_gib(e.budget.device_capacity)));
  }

  // More VRAM (with this RAM), more RAM (with this GPU).
  if (gpu || !s.device) {
    const std::int64_t vram_now = gpu ? e.budget.device_capacity : 0;
    const std::int64_t vram = smallest(vram_now, 1024 * kGiB, [&](std::int64_t v) {
      return fits(req, with_vram(res, v), w, s, cfg);
    });
    if (vram > 0) {
      g.push_back(
          fmt::format("a GPU with {} (vram_safety_margin_mb included) would fit with "
                      "this RAM",
                      format_gib(vram)));
    } else {
      g.push_back("no GPU size fits with this RAM");
    }
  }
  const std::int64_t ram = smallest(res.ram_total, 4096 * kGiB, [&](std::int64_t r) {
    return fits(req, with_ram(res, r), w, s, cfg);
  });
  if (ram > 0) {
    g.push_back(fmt::format("{} of RAM would fit with this {}", format_gib(ram),
                            gpu ? "GPU" : "CPU-only machine"));
  } else {
    g.push_back(gpu ? "no RAM size fits with this GPU" : "no RAM size fits without a GPU");
  }

  // Smaller frames, fewer frames.
  const int m = std::max(1, req.size_multiple);
  for (int pct = 90; pct >= 20; pct -= 10) {
    Workload smaller = w;
    smaller.width = std::max(m, w.width * pct / 100 / m * m);
    smaller.height = std::max(m, w.height * pct / 100 / m * m);
    if (smaller.width == w.width && smaller.height == w.height) continue;
    std::string rung;
    if (fits(req, res, smaller, s, cfg, &rung)) {
      g.push_back(fmt::format("--size {}x{} fits ({})", smaller.width, smaller.height, rung));
      break;
    }
    if (pct == 20) g.push_back("no smaller size fits on this machine");
  }
  const int stride = std::max(1, req.temporal_stride);
  for (int frames = w.frames - stride; frames >= 1; frames -= stride) {
    Workload fewer = w;
    fewer.frames = frames;
    std::string rung;
    if (fits(req, res, fewer, s, cfg, &rung)) {
      g.push_back(fmt::format("--frames {} fits ({})", frames, rung));
      break;
    }
    if (frames - stride < 1) g.push_back("no frame count fits on this machine");
  }

  // Flags and settings.
  if (gpu && !s.device) {
    PlanSettings cpu = s;
    cpu.device = "cpu";
    if (fits(req, res, w, cpu, cfg)) g.push_back("--device cpu fits (very slow: hours)");
  }
  if (!cfg.enable_aggressive_optimization) {
    OptimizationConfig aggressive = cfg;
    aggressive.enable_aggressive_optimization = true;
    if (fits(req, res, w, s, aggressive)) {
      g.push_back("enable_aggressive_optimization: true (in --optim-config) fits");
    }
  }
  const auto names = s.names();
  if (!names.empty()) {
    PlanSettings open;
    open.device = s.device;
    std::string rung;
    if (fits(req, res, w, open, cfg, &rung)) {
      std::string list;
      for (const auto& n : names) {
        if (n != "device") list += (list.empty() ? "" : ", ") + n;
      }
      if (!list.empty()) {
        g.push_back(fmt::format("the settings you gave ({}) rule out what fits; without them: {}",
                                list, rung));
      }
    }
  }
}

}  // namespace wanrt
