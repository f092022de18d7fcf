#include "bindings/cli/bench_matrix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "models/wan22/memory_model.h"
#include "models/wan22/request_plan.h"
#include "optim/machine.h"
#include "optim/optimization_manager.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"

namespace wanrt::cli {
namespace {

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : list + ",") {
    if (ch == ',') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else if (!std::isspace(static_cast<unsigned char>(ch))) {
      item += ch;
    }
  }
  return out;
}

std::optional<int> parse_non_negative(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  for (char ch : text) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) return std::nullopt;
  }
  return std::stoi(text);
}

BenchPlanSpec sequential(int k) {
  return {fmt::format("sequential-k{}", k), OffloadPolicy::kSequential, k};
}

// 80 GiB, compute capability 8.0: large enough that every offload setting of the benchmark
// bundles fits, so the planner keeps the settings it is given.
constexpr std::int64_t kSimulatedVram = 80LL << 30;

}  // namespace

std::vector<BenchPlanSpec> bench_plan_specs(int num_blocks, const std::vector<int>& ks) {
  std::vector<BenchPlanSpec> out = {{"resident", OffloadPolicy::kNone, std::nullopt},
                                    {"model", OffloadPolicy::kModel, std::nullopt}};
  std::vector<int> k = ks.empty() ? std::vector<int>{0, num_blocks / 2} : ks;
  std::set<int> seen;
  for (int v : k) {
    if (v < 0 || v > num_blocks) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("--blocks-resident {} is outside 0..{} (the denoiser's blocks)", v,
                              num_blocks));
    }
    if (seen.insert(v).second) out.push_back(sequential(v));
  }
  out.push_back({"full", OffloadPolicy::kFull, std::nullopt});
  return out;
}

std::vector<BenchPlanSpec> select_plans(const std::vector<BenchPlanSpec>& specs,
                                        const std::string& list, int num_blocks) {
  const std::vector<std::string> names = split(list);
  if (names.empty() || (names.size() == 1 && names[0] == "all")) return specs;
  std::vector<BenchPlanSpec> out;
  const auto add = [&out](const BenchPlanSpec& s) {
    for (const auto& o : out) {
      if (o.name == s.name) return;
    }
    out.push_back(s);
  };
  for (const std::string& name : names) {
    bool found = false;
    for (const BenchPlanSpec& s : specs) {
      if (s.name == name || (name == "sequential" && s.offload == OffloadPolicy::kSequential)) {
        add(s);
        found = true;
      }
    }
    if (!found && name.rfind("sequential-k", 0) == 0) {
      const auto k = parse_non_negative(name.substr(12));
      if (k && *k <= num_blocks) {
        add(sequential(*k));
        found = true;
      }
    }
    if (!found) {
      std::string valid;
      for (const BenchPlanSpec& s : specs) valid += (valid.empty() ? "" : ", ") + s.name;
      throw Error(ErrorCategory::kUsage, fmt::format("--plans: unknown plan '{}'", name),
                  fmt::format("plans are {}, sequential (every sequential-kN) or sequential-kN "
                              "with N in 0..{}",
                              valid, num_blocks));
    }
  }
  return out;
}

std::vector<Dtype> parse_dtype_list(const std::string& list) {
  std::vector<Dtype> out;
  for (const std::string& name : split(list)) {
    const Dtype d = parse_dtype(name, "--dtypes");
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  }
  if (out.empty()) throw Error(ErrorCategory::kUsage, "--dtypes is empty", "e.g. fp32,bf16");
  return out;
}

std::vector<BenchChunkSpec> parse_chunk_list(const std::string& list) {
  std::vector<BenchChunkSpec> out;
  for (const std::string& name : split(list)) {
    BenchChunkSpec c;
    c.name = name;
    if (name != "none") {
      std::size_t pos = 0;
      while (pos < name.size()) {
        const std::size_t plus = name.find('+', pos);
        const std::string part = name.substr(pos, plus == std::string::npos ? plus : plus - pos);
        const auto value = part.size() > 1 ? parse_non_negative(part.substr(1)) : std::nullopt;
        if (!value || *value == 0 || (part[0] != 'f' && part[0] != 't') ||
            (part[0] == 'f' ? c.chunk_frames : c.vae_tile) != 0) {
          throw Error(ErrorCategory::kUsage, fmt::format("--chunks: cannot read '{}'", name),
                      "entries are none, fN (windows of N frames), tN (VAE tiles of N pixels) "
                      "or fN+tM, e.g. --chunks none,f9,t64");
        }
        (part[0] == 'f' ? c.chunk_frames : c.vae_tile) = *value;
        if (plus == std::string::npos) break;
        pos = plus + 1;
      }
    }
    bool dup = false;
    for (const auto& o : out) dup = dup || o.name == c.name;
    if (!dup) out.push_back(c);
  }
  if (out.empty()) throw Error(ErrorCategory::kUsage, "--chunks is empty", "e.g. none,f9");
  return out;
}

std::vector<int> parse_int_list(const std::string& list, const std::string& what) {
  std::vector<int> out;
  for (const std::string& item : split(list)) {
    const auto v = parse_non_negative(item);
    if (!v) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("{}: '{}' is not a non-negative integer", what, item));
    }
    out.push_back(*v);
  }
  return out;
}

BenchPlanning bench_planning(const std::string& device, std::optional<int> prefetch) {
  BenchPlanning p;
  std::optional<int> index;
  if (device.rfind("cuda:", 0) == 0) index = parse_non_negative(device.substr(5));
  if (!device.empty() && device != "cpu" && device != "cuda" && !index) {
    throw Error(ErrorCategory::kUsage, fmt::format("--device '{}' is not cpu or cuda[:N]", device));
  }
  p.real = probe_system();
  const bool want_gpu = device.empty() ? !p.real.gpus.empty() : device != "cpu";
  if (want_gpu) {
    const int gpu = index.value_or(0);
    if (gpu >= static_cast<int>(p.real.gpus.size())) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("--device {}: this machine or build has {} CUDA device(s)",
                              device.empty() ? "cuda" : device, p.real.gpus.size()),
                  "use --device cpu");
    }
    p.run_device = p.planning_device = fmt::format("cuda:{}", gpu);
    p.planning = p.real;
    const GpuInfo& g = p.real.gpus[gpu];
    p.planned_for = fmt::format("{} ({} free of {}), the device the plans run on", g.name,
                                format_gib(g.free_bytes), format_gib(g.total_bytes));
  } else {
    p.run_device = "cpu";
    p.planning_device = "cuda:0";
    MachineOverrides sim;
    sim.vram = kSimulatedVram;
    sim.gpu_cc = 8.0;
    sim.gpu_count = 1;
    p.planning = simulate_resources(p.real, sim);
    p.planned_for = fmt::format(
        "a simulated GPU ({}, compute capability 8.0, so that estimates are device estimates), "
        "run with the CPU as the device: the ledger counts what that GPU would hold",
        format_gib(kSimulatedVram));
  }
  p.base.prefetch = prefetch;
  return p;
}

std::int64_t estimate_weights_peak(const MemoryEstimate& estimate) {
  std::int64_t peak = 0;
  for (const StageEstimate& s : estimate.stages) {
    std::int64_t bytes = s.device_bytes(MemoryItem::kWeights);
    for (const MemoryItem& m : s.device) {
      if (m.kind == MemoryItem::kWorkspace &&
          m.name.find("streaming buffers") != std::string::npos) {
        bytes += m.bytes;
      }
    }
    peak = std::max(peak, bytes);
  }
  return peak;
}

std::int64_t estimate_device_peak_excl_reserve(const MemoryEstimate& estimate) {
  std::int64_t peak = 0;
  for (const StageEstimate& s : estimate.stages) {
    peak = std::max(peak, s.device_total - s.device_bytes(MemoryItem::kReserve));
  }
  return peak;
}

std::vector<BenchCell> plan_cells(const ModelRequirements& requirements, const Workload& workload,
                                  const BenchPlanning& planning,
                                  const std::vector<BenchPlanSpec>& plans,
                                  const std::vector<Dtype>& dtypes,
                                  const std::vector<BenchChunkSpec>& chunks, int temporal_stride,
                                  int spatial_stride) {
  const OptimizationManager manager = wan22::make_optimization_manager();
  std::vector<BenchCell> cells;
  const auto settings_for = [&](const BenchCell& c) {
    PlanSettings s = planning.base;
    s.dtype = c.dtype;
    s.frame_chunk = wan22::window_latent_frames(c.chunk.chunk_frames, temporal_stride);
    s.vae_tile = wan22::tile_latent_pixels(c.chunk.vae_tile, spatial_stride);
    return s;
  };
  const auto plan_one = [&](BenchCell c) {
    c.id = fmt::format("{}/{}/{}", c.plan.name, dtype_name(c.dtype), c.chunk.name);
    PlanSettings s = settings_for(c);
    s.device = planning.planning_device;
    s.offload = c.plan.offload;
    s.blocks_resident = c.plan.blocks_resident;
    const OptimizationResult r =
        manager.recommend_optimizations(requirements, planning.planning, workload, s);
    c.estimate = r.estimate;
    if (!r.feasible()) {
      c.skip_reason = fmt::format(
          "the planner finds it does not fit {}: device peak {} at {}, host peak {} at {}",
          planning.planning_device, format_gib(r.estimate.device_peak),
          r.estimate.device_peak_stage, format_gib(r.estimate.host_peak),
          r.estimate.host_peak_stage);
      return c;
    }
    c.run_plan = r.plan;
    c.run_plan.device = planning.run_device;
    try {  // planned (the estimate is reported), but not run where the device cannot compute it
      check_dtype_supported(planning.real, planning.run_device, c.dtype, "--dtypes");
    } catch (const Error& e) {
      c.skip_reason = e.what();
      return c;
    }
    if (planning.run_device == "cpu") {
      // The same dtype and chunking planned for the CPU itself: host tensor bytes.
      PlanSettings cpu = settings_for(c);
      cpu.device = "cpu";
      const OptimizationResult h =
          manager.recommend_optimizations(requirements, planning.real, workload, cpu);
      c.cpu_tensor_estimate =
          h.estimate.host_peak - h.estimate.budget.host_reserve - kHostProcessBaseline;
      c.cpu_estimate = h.estimate;
    }
    return c;
  };
  BenchCell base;
  base.plan = {"resident", OffloadPolicy::kNone, std::nullopt};
  base.dtype = Dtype::kFp32;
  base.baseline = true;
  cells.push_back(plan_one(base));
  for (const BenchPlanSpec& p : plans) {
    for (Dtype d : dtypes) {
      for (const BenchChunkSpec& ch : chunks) {
        if (p.offload == OffloadPolicy::kNone && d == Dtype::kFp32 && ch.name == "none") continue;
        BenchCell c;
        c.plan = p;
        c.dtype = d;
        c.chunk = ch;
        cells.push_back(plan_one(c));
      }
    }
  }
  return cells;
}

}  // namespace wanrt::cli
