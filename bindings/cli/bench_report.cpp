#include "bindings/cli/bench_report.h"
#include "bindings/cli/plan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace wanrt::cli {
namespace {

using nlohmann::json;

json or_null(std::int64_t value) { return value >= 0 ? json(value) : json(nullptr); }

json spread_json(const Spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }

// The largest value of one field over the runs (-1 when no run has it).
template <class F>
std::int64_t max_over(const std::vector<BenchRun>& runs, F field) {
  std::int64_t out = -1;
  for (const BenchRun& r : runs) out = std::max<std::int64_t>(out, field(r));
  return out;
}

// The largest deviation over the runs; -1 when there was no baseline to compare with.
template <class F>
double max_dev(const std::vector<BenchRun>& runs, F field) {
  double out = -1;
  for (const BenchRun& r : runs) out = std::max<double>(out, field(r));
  return out;
}

json dev_json(double value) { return value >= 0 ? json(value) : json(nullptr); }
json levels_json(double value) {
  return value >= 0 ? json(static_cast<int>(value)) : json(nullptr);
}

Spread total_spread(const BenchCellResult& c) {
  std::vector<double> v;
  for (const BenchRun& r : c.runs) v.push_back(r.total_seconds);
  return spread_of(v);
}

// Stage names in the order they first appear in the runs of all cells.
std::vector<std::string> stage_names(const BenchReport& report) {
  std::vector<std::string> out;
  for (const auto& c : report.cells) {
    for (const auto& r : c.runs) {
      for (const auto& [name, seconds] : r.stage_seconds) {
        (void)seconds;
        if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
      }
    }
  }
  return out;
}

Spread stage_spread(const BenchCellResult& c, const std::string& stage) {
  std::vector<double> v;
  for (const BenchRun& r : c.runs) {
    for (const auto& [name, seconds] : r.stage_seconds) {
      if (name == stage) v.push_back(seconds);
    }
  }
  return spread_of(v);
}

const BenchCellResult* baseline_of(const BenchReport& report) {
  for (const auto& c : report.cells) {
    if (c.cell.baseline && c.status == "ok" && !c.runs.empty()) return &c;
  }
  return nullptr;
}

json ratio(double value, double base) {
  return base > 0 && value >= 0 ? json(value / base) : json(nullptr);
}

std::string mib(std::int64_t bytes) {
  if (bytes < 0) return "–";
  const double m = static_cast<double>(bytes) / (1 << 20);
  return m < 10    ? fmt::format("{:.2f}", m)
         : m < 100 ? fmt::format("{:.1f}", m)
                   : fmt::format("{:.0f}", m);
}

std::string secs(double s) {
  return s < 1    ? fmt::format("{:.3f}", s)
         : s < 10 ? fmt::format("{:.2f}", s)
                  : fmt::format("{:.1f}", s);
}

// Per component, the most device weight bytes (weights + streaming buffers) any stage of the
// estimate gives it: the estimate's counterpart of the ledger's per-component peak.
std::map<std::string, std::int64_t> estimate_component_peaks(const BenchCell& cell) {
  std::map<std::string, std::int64_t> out;
  for (const ComponentPlan& c : cell.run_plan.components) out[c.name] = 0;
  for (const StageEstimate& s : cell.estimate.stages) {
    std::map<std::string, std::int64_t> stage;
    for (const MemoryItem& m : s.device) {
      for (auto& [name, peak] : out) {
        (void)peak;
        if (m.name == name + " weights" || m.name == name + " streaming buffers") {
          stage[name] += m.bytes;
        }
      }
    }
    for (const auto& [name, bytes] : stage) out[name] = std::max(out[name], bytes);
  }
  return out;
}

std::string component_text(const BenchCellResult& c) {
  std::string out;
  for (const ComponentPlan& p : c.cell.run_plan.components) {
    const auto it = c.ledger_component_peak.find(p.name);
    const std::int64_t bytes = it == c.ledger_component_peak.end() ? 0 : it->second;
    out += fmt::format("{}{} {}", out.empty() ? "" : " · ", p.name, mib(bytes));
  }
  return out;
}

// CPU runs: the planner's CPU estimate per stage, as tensor bytes (host total without the
// process baseline and the reserve), comparable to the tracked per-stage peaks.
json cpu_stages_json(const BenchCell& cell) {
  json out = json::array();
  for (const StageEstimate& s : cell.cpu_estimate.stages) {
    out.push_back({{"name", s.name},
                   {"component", s.component},
                   {"tensor_bytes",
                    s.host_total - s.host_bytes(MemoryItem::kReserve) - kHostProcessBaseline}});
  }
  return out;
}

json estimate_json(const BenchCell& cell) {
  const MemoryEstimate& e = cell.estimate;
  json stages = json::array();
  for (const StageEstimate& s : e.stages) {
    stages.push_back({{"name", s.name},
                      {"component", s.component},
                      {"device_total_bytes", s.device_total},
                      {"device_weights_bytes", s.device_bytes(MemoryItem::kWeights)},
                      {"host_total_bytes", s.host_total}});
  }
  return {{"device_peak_bytes", e.device_peak},
          {"device_peak_stage", e.device_peak_stage},
          {"device_reserve_bytes", e.budget.device_reserve},
          {"device_peak_excl_reserve_bytes", estimate_device_peak_excl_reserve(e)},
          {"device_weights_peak_bytes", estimate_weights_peak(e)},
          {"host_peak_bytes", e.host_peak},
          {"host_peak_stage", e.host_peak_stage},
          {"cpu_tensor_peak_bytes", or_null(cell.cpu_tensor_estimate)},
          {"cpu_stages", cpu_stages_json(cell)},
          {"component_weights_peak_bytes", estimate_component_peaks(cell)},
          {"stages", stages}};
}


json run_json(const BenchRun& r) {
  json times = json::object();
  for (const auto& [name, seconds] : r.stage_seconds) times[name] = seconds;
  times["total"] = r.total_seconds;
  return {{"times_s", times},
          {"peak_rss_bytes", r.peak_rss},
          {"stage_peak_rss_bytes", r.stage_peak_rss},
          {"stage_tracked_peak_bytes", r.stage_tracked_peak},
          {"tracked_peak_bytes", or_null(r.tracked_peak)},
          {"device_peak_bytes", or_null(r.device_peak)},
          {"ledger_peak_bytes", r.ledger_peak},
          {"video_max_abs_dev", dev_json(r.video_dev)},
          {"frames_max_dev", levels_json(r.frames_dev)},
          {"latent_max_abs_dev", dev_json(r.latent_dev)},
          {"fallbacks", r.fallbacks}};
}

json cell_json(const BenchCellResult& c, const BenchCellResult* base) {
  const BenchCell& cell = c.cell;
  json j = {{"id", cell.id},
            {"plan", cell.plan.name},
            {"offload", offload_name(cell.plan.offload)},
            {"blocks_resident",
             cell.plan.blocks_resident ? json(*cell.plan.blocks_resident) : json(nullptr)},
            {"dtype", dtype_name(cell.dtype)},
            {"chunk", cell.chunk.name},
            {"chunk_frames", cell.chunk.chunk_frames > 0 ? json(cell.chunk.chunk_frames) : json()},
            {"vae_tile", cell.chunk.vae_tile > 0 ? json(cell.chunk.vae_tile) : json()},
            {"baseline", cell.baseline},
            {"status", c.status},
            {"reason", c.error.empty() ? json(nullptr) : json(c.error)}};
  if (!cell.estimate.stages.empty()) j["estimate"] = estimate_json(cell);
  if (c.status != "ok") return j;
  j["rung"] = cell.run_plan.rung;
  j["plan_summary"] = c.plan_summary;
  j["components"] = components_json(cell.run_plan);
  j["load_s"] = c.load_seconds;
  json times = json::object();
  for (const auto& [name, seconds] : c.runs.front().stage_seconds) {
    (void)seconds;
    times[name] = spread_json(stage_spread(c, name));
  }
  times["total"] = spread_json(total_spread(c));
  j["times_s"] = times;
  std::map<std::string, std::int64_t> stage_rss, stage_tracked;
  for (const BenchRun& r : c.runs) {
    for (const auto& [name, bytes] : r.stage_peak_rss) {
      stage_rss[name] = std::max(stage_rss[name], bytes);
    }
    for (const auto& [name, bytes] : r.stage_tracked_peak) {
      stage_tracked[name] = std::max(stage_tracked[name], bytes);
    }
  }
  const auto ledger = max_over(c.runs, [](const BenchRun& r) { return r.ledger_peak; });
  const auto device = max_over(c.runs, [](const BenchRun& r) { return r.device_peak; });
  const auto tracked = max_over(c.runs, [](const BenchRun& r) { return r.tracked_peak; });
  j["memory"] = {{"ledger_peak_bytes", ledger},
                 {"device_peak_bytes", or_null(device)},
                 {"tracked_peak_bytes", or_null(tracked)},
                 {"tracked_weights_bytes", or_null(c.tracked_weights)},
                 {"ledger_component_peak_bytes", c.ledger_component_peak},
                 {"peak_rss_bytes", max_over(c.runs, [](const BenchRun& r) { return r.peak_rss; })},
                 {"stage_peak_rss_bytes", stage_rss},
                 {"stage_tracked_peak_bytes", stage_tracked}};
  bool agree = true;
  for (const BenchRun& r : c.runs) agree = agree && r.fingerprint == c.runs.front().fingerprint;
  j["deviation"] = {
      {"video_max_abs", dev_json(max_dev(c.runs, [](const BenchRun& r) { return r.video_dev; }))},
      {"frames_max", levels_json(max_dev(c.runs, [](const BenchRun& r) { return r.frames_dev; }))},
      {"latent_max_abs", dev_json(max_dev(c.runs, [](const BenchRun& r) { return r.latent_dev; }))},
      {"repeats_agree", agree}};
  if (base) {
    const auto b = [&](auto field) { return static_cast<double>(max_over(base->runs, field)); };
    j["vs_baseline"] = {
        {"time", ratio(total_spread(c).median, total_spread(*base).median)},
        {"ledger_peak", ratio(ledger, b([](const BenchRun& r) { return r.ledger_peak; }))},
        {"device_peak", ratio(device, b([](const BenchRun& r) { return r.device_peak; }))},
        {"tracked_peak", ratio(tracked, b([](const BenchRun& r) { return r.tracked_peak; }))}};
  }
  json runs = json::array();
  for (const BenchRun& r : c.runs) runs.push_back(run_json(r));
  j["runs"] = runs;
  return j;
}

std::string dev_text(double video, double frames) {
  return video < 0 ? "–" : fmt::format("{:.3g} / {:.0f}", video, frames);
}

std::string change(double value, double base) {
  if (base <= 0 || value < 0) return "–";
  const double pct = 100.0 * (value / base - 1.0);
  if (std::fabs(pct) < 0.5) return "±0%";
  return fmt::format("{}{:.0f}%", pct > 0 ? "+" : "−", std::fabs(pct));
}

}  // namespace

Spread spread_of(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  return {median, values.front(), values.back()};
}

nlohmann::json bench_json(const BenchReport& report) {
  const BenchCellResult* base = baseline_of(report);
  json cells = json::array();
  for (const auto& c : report.cells) cells.push_back(cell_json(c, base));
  return {{"schema", "wanrt-bench/1"},
          {"wanrt_version", report.version},
          {"bundle", report.bundle},
          {"model_id", report.model_id},
          {"task", report.task},
          {"device", report.device},
          {"device_name", report.device_name},
          {"planned_for", report.planned_for},
          {"memory_note", report.memory_note},
          {"threads", report.threads},
          {"repeat", report.repeat},
          {"warmup", report.warmup},
          {"request",
           {{"prompt", report.prompt},
            {"width", report.width},
            {"height", report.height},
            {"frames", report.frames},
            {"steps", report.steps},
            {"seed", report.seed}}},
          {"baseline", base ? json(base->cell.id) : json(nullptr)},
          {"wall_s", report.wall_seconds},
          {"cells", cells}};
}

std::string bench_markdown(const BenchReport& report) {
  const BenchCellResult* base = baseline_of(report);
  const std::vector<std::string> stages = stage_names(report);
  const bool cuda = report.device != "cpu";
  std::string out = fmt::format(
      "`wanrun bench` — {} ({}), device {}, {}x{}, {} frames, {} steps, seed {}, {} threads; "
      "times are the median [min–max] of {} runs after {} warm-up run(s); Δ: change against "
      "the baseline {}.\n\n",
      report.model_id, report.bundle, report.device, report.width, report.height, report.frames,
      report.steps, report.seed, report.threads, report.repeat, report.warmup,
      base ? base->cell.id : "(not run)");
  out += fmt::format("{}\n\n", report.memory_note);
  out += "| plan | dtype | chunk | total s | Δ time |";
  for (const auto& s : stages) out += fmt::format(" {} s |", s);
  out += fmt::format(
      " ledger peak MiB | Δ ledger | {} | Δ {} | estimate: weights / device MiB "
      "| ledger per component MiB | peak RSS MiB | max dev video / u8 |\n",
      cuda ? "device peak MiB" : "tracked peak MiB", cuda ? "device" : "tracked");
  out += "|---|---|---|---|---|";
  for (std::size_t i = 0; i < stages.size(); ++i) out += "---|";
  out += "---|---|---|---|---|---|---|---|\n";
  const auto peak = [](const BenchCellResult& c, auto field) { return max_over(c.runs, field); };
  const auto ledger_of = [](const BenchRun& r) { return r.ledger_peak; };
  const auto mem_of = [cuda](const BenchRun& r) { return cuda ? r.device_peak : r.tracked_peak; };
  for (const auto& c : report.cells) {
    const BenchCell& cell = c.cell;
    out += fmt::format("| {}{} | {} | {} |", cell.plan.name, cell.baseline ? " (baseline)" : "",
                       dtype_name(cell.dtype), cell.chunk.name);
    const std::string est =
        cell.estimate.stages.empty()
            ? "–"
            : fmt::format("{} / {}", mib(estimate_weights_peak(cell.estimate)),
                          mib(estimate_device_peak_excl_reserve(cell.estimate)));
    if (c.status != "ok") {
      out += fmt::format(" {}: {} |", c.status, c.error);
      for (std::size_t i = 0; i < stages.size() + 5; ++i) out += " – |";
      out += fmt::format(" {} | – | – | – |\n", est);
      continue;
    }
    const Spread t = total_spread(c);
    out += fmt::format(" {} [{}–{}] | {} |", secs(t.median), secs(t.min), secs(t.max),
                       base ? change(t.median, total_spread(*base).median) : "–");
    for (const auto& s : stages) out += fmt::format(" {} |", secs(stage_spread(c, s).median));
    const std::int64_t ledger = peak(c, ledger_of), mem = peak(c, mem_of);
    out += fmt::format(
        " {} | {} | {} | {} | {} | {} | {} | {} |\n", mib(ledger),
        base ? change(static_cast<double>(ledger), static_cast<double>(peak(*base, ledger_of)))
             : "–",
        mib(mem),
        base ? change(static_cast<double>(mem), static_cast<double>(peak(*base, mem_of))) : "–",
        est, component_text(c), mib(peak(c, [](const BenchRun& r) { return r.peak_rss; })),
        dev_text(max_dev(c.runs, [](const BenchRun& r) { return r.video_dev; }),
                 max_dev(c.runs, [](const BenchRun& r) { return r.frames_dev; })));
  }
  return out;
}

}  // namespace wanrt::cli
