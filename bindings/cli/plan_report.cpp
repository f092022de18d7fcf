#include "bindings/cli/plan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "runtime/error.h"

namespace wanrt::cli {
namespace {

namespace fs = std::filesystem;

double gib(std::int64_t bytes) { return static_cast<double>(bytes) / (1LL << 30); }

std::string g(std::int64_t bytes) { return fmt::format("{:.2f}", gib(bytes)); }

}  // namespace

void MachineOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--vram", vram, "Simulate GPU(s) with this much memory each (e.g. 24GiB)");
  cmd->add_option("--ram", ram, "Simulate this much host RAM (e.g. 64GiB)");
  cmd->add_option("--gpu-cc", gpu_cc, "Simulated compute capability (e.g. 8.9; default 8.0)");
  cmd->add_option("--gpu-count", gpu_count, "Simulated GPUs (0: a machine without GPU)");
  cmd->add_option("--cpu-bf16", cpu_bf16,
                  "Simulate a CPU with (yes) or without (no) avx512_bf16/AMX");
  cmd->add_option("--optim-config", optim_config,
                  "Optimization config YAML (docs/optimization.md)");
}

MachineOverrides MachineOptions::overrides() const {
  MachineOverrides o;
  if (!vram.empty()) o.vram = parse_byte_size(vram, "--vram");
  if (!ram.empty()) o.ram = parse_byte_size(ram, "--ram");
  if (!gpu_cc.empty()) {
    try {
      std::size_t used = 0;
      o.gpu_cc = std::stod(gpu_cc, &used);
      if (used != gpu_cc.size()) throw std::invalid_argument(gpu_cc);
    } catch (const std::exception&) {
      throw Error(ErrorCategory::kUsage, fmt::format("--gpu-cc '{}' is not a number", gpu_cc),
                  "for example --gpu-cc 8.9");
    }
  }
  o.gpu_count = gpu_count;
  if (!cpu_bf16.empty()) {
    if (cpu_bf16 != "yes" && cpu_bf16 != "no") {
      throw Error(ErrorCategory::kUsage, fmt::format("--cpu-bf16 '{}' is not yes or no", cpu_bf16));
    }
    o.cpu_bf16 = cpu_bf16 == "yes";
  }
  return o;
}

SystemResources MachineOptions::resources() const {
  return simulate_resources(probe_system(), overrides());
}

OptimizationConfig MachineOptions::config() const {
  return optim_config.empty() ? OptimizationConfig{} : load_optimization_config(optim_config);
}

std::vector<std::string> profile_dirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    dirs.push_back((exe.parent_path().parent_path() / "share" / "wanrt" / "profiles").string());
#ifdef WANRT_PROFILES_SOURCE_DIR
  dirs.push_back(WANRT_PROFILES_SOURCE_DIR);
#endif
  return dirs;
}

std::vector<std::string> list_profiles() {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& dir : profile_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto name = entry.path().filename().string();
      if (entry.path().extension() == ".yaml" && name.rfind("wan", 0) == 0)
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      if (seen.insert(f.stem().string()).second) out.push_back(f.string());
    }
  }
  return out;
}

std::string find_profile(const std::string& name_or_file) {
  std::error_code ec;
  if (fs::is_regular_file(name_or_file, ec)) return name_or_file;
  for (const auto& dir : profile_dirs()) {
    const fs::path p = fs::path(dir) / (name_or_file + ".yaml");
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  std::string known;
  for (const auto& p : list_profiles())
    known += (known.empty() ? "" : ", ") + fs::path(p).stem().string();
  throw Error(ErrorCategory::kUsage,
              fmt::format("--profile '{}' is neither a file nor a known profile", name_or_file),
              known.empty() ? "no profiles are installed; pass a profile file"
                            : "known profiles: " + known);
}

std::string summary_line(const OptimizationResult& r) {
  const MemoryEstimate& e = r.estimate;
  const std::string device = r.plan.on_gpu()
                                 ? fmt::format("device peak {} of {} GiB ({})", g(e.device_peak),
                                               g(e.budget.device_capacity), e.device_peak_stage)
                                 : std::string("CPU only");
  return fmt::format("{}: {}, host peak {} of {} GiB ({})",
                     r.plan.feasible ? fmt::format("fits, rung '{}'", r.plan.rung) : "does not fit",
                     device, g(e.host_peak), g(e.budget.host_capacity), e.host_peak_stage);
}

void print_result(const OptimizationResult& r, bool details) {
  const OptimizationPlan& p = r.plan;
  const SystemResources& m = r.resources;
  std::string gpus;
  for (const auto& gpu : m.gpus) {
    gpus += fmt::format("{}cuda:{} {} cc {}.{} {} GiB", gpus.empty() ? "" : ", ", gpu.index,
                        gpu.name, gpu.cc_major, gpu.cc_minor, g(gpu.free_bytes));
  }
  fmt::print("model     {} ({})\n", r.model_id, r.source);
  fmt::print("request   {}x{}, {} frames{}\n", r.workload.width, r.workload.height,
             r.workload.frames, r.workload.image ? ", image-conditioned" : "");
  if (r.workload.ranks > 1) {
    fmt::print("ranks     {} ({} split the tokens); the figures below are per rank, and each "
               "rank holds its own copy of the weights\n",
               r.workload.ranks, r.workload.seq_ranks);
  }
  fmt::print("machine   {}; RAM {} GiB; CPU {} cores{}{}\n", gpus.empty() ? "no GPU" : gpus,
             g(m.ram_available), m.cpu_cores, m.cpu_avx512_bf16 ? " avx512_bf16" : "",
             m.cpu_amx ? " amx" : "");
  fmt::print("result    {}\n\n", summary_line(r));

  fmt::print("plan\n");
  fmt::print("  {:<16} {}\n", "device", p.device);
  fmt::print("  {:<16} {}\n", "dtype", dtype_name(p.dtype));
  fmt::print("  {:<16} {}\n", "offload", offload_name(p.offload));
  if (p.blocks_resident >= 0) {
    fmt::print("  {:<16} {}\n  {:<16} {}\n", "blocks_resident", p.blocks_resident, "prefetch",
               p.prefetch);
  }
  fmt::print("  {:<16} {}\n", "text_encoder", text_encoder_placement_name(p.text_encoder));
  fmt::print("  {:<16} {}\n", "host_residency", host_residency_name(p.host_residency));
  fmt::print("  {:<16} {}\n", "attention", attention_name(p.attention));
  fmt::print("  {:<16} {}\n", "vae_tiling",
             p.vae_tiling.enabled ? fmt::format("{}x{} latent px, overlap {}", p.vae_tiling.tile_h,
                                                p.vae_tiling.tile_w, p.vae_tiling.overlap)
                                  : "off");
  fmt::print("  {:<16} {}\n", "frame_chunking",
             p.frame_chunking.enabled
                 ? fmt::format("{} latent frames, overlap {}", p.frame_chunking.window,
                               p.frame_chunking.overlap)
                 : "off");
  fmt::print("\n  {:<16} {:<9} {:<8} {:<8} {:<15} {:>6} {:>8}\n", "component", "placement",
             "storage", "compute", "residency", "k", "prefetch");
  for (const auto& c : p.components) {
    fmt::print("  {:<16} {:<9} {:<8} {:<8} {:<15} {:>6} {:>8}\n", c.name,
               c.placement == Placement::kCpu ? "cpu" : "device", dtype_name(c.storage),
               dtype_name(c.compute), residency_name(c.residency),
               c.residency == Residency::kStreamed ? std::to_string(c.blocks_resident) : "-",
               c.residency == Residency::kStreamed ? std::to_string(c.prefetch) : "-");
  }

  fmt::print("\nreasons\n");
  for (const auto& d : p.reasons) {
    fmt::print("  {} = {}{}\n      {}\n", d.setting, d.value, d.user_set ? "  [user]" : "",
               d.reason);
  }

  const MemoryEstimate& e = r.estimate;
  fmt::print("\nestimate (GiB; budget: device {} = {}, reserve {}; host {} = {}, reserve {})\n",
             e.budget.device_source.empty() ? "-" : e.budget.device_source,
             g(e.budget.device_capacity), g(e.budget.device_reserve), e.budget.host_source,
             g(e.budget.host_capacity), g(e.budget.host_reserve));
  fmt::print("  {:<24} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}\n", "stage", "w.half", "w.fp32",
             "activ.", "workspace", "reserve", "device", "host");
  for (const auto& s : e.stages) {
    fmt::print("  {:<24} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}{}\n", s.name,
               g(s.device_half_weights), g(s.device_fp32_weights),
               g(s.device_bytes(MemoryItem::kActivation)),
               g(s.device_bytes(MemoryItem::kWorkspace)), g(s.device_bytes(MemoryItem::kReserve)),
               g(s.device_total), g(s.host_total), s.on_cpu ? "  (on the CPU)" : "");
    if (details) {
      for (const auto& it : s.device) {
        fmt::print("      device {:<30} {:>8}  {}\n", it.name, g(it.bytes), it.detail);
      }
      for (const auto& it : s.host) {
        fmt::print("      host   {:<30} {:>8}  {}\n", it.name, g(it.bytes), it.detail);
      }
    }
  }
  fmt::print("  peaks: device {} GiB at {}, host {} GiB at {}{}\n", g(e.device_peak),
             e.device_peak_stage.empty() ? "-" : e.device_peak_stage, g(e.host_peak),
             e.host_peak_stage, details ? "" : "  (--details lists every item and its formula)");

  fmt::print("\nladder\n");
  for (const auto& s : p.ladder) {
    if (s.note.rfind("skipped", 0) == 0) {
      fmt::print("  {:<34} {}\n", s.rung, s.note);
      continue;
    }
    fmt::print("  {:<34} {:<5} device {:>7} ({}), host {:>7} ({}){}\n", s.rung,
               s.fits ? "fits" : "no", g(s.device_peak),
               s.device_peak_stage.empty() ? "-" : s.device_peak_stage, g(s.host_peak),
               s.host_peak_stage, s.note.empty() ? "" : "  " + s.note);
  }

  fmt::print("\ncomponent independence\n");
  for (const auto& c : r.independence.components) fmt::print("  {}\n", c.summary);
  for (const auto& f : r.independence.fallbacks) {
    if (f.applicable) fmt::print("  fallback: {}: {}\n", f.name, f.description);
  }

  if (!p.guidance.empty()) {
    fmt::print("\nguidance: this request does not fit; what would:\n");
    for (const auto& line : p.guidance) fmt::print("  - {}\n", line);
  }
}

}  // namespace wanrt::cli
