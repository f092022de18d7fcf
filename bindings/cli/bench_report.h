// What `wanrun bench` measured, and its two reports: a JSON document (every run's figures, so
// that anything in the table can be recomputed) and a Markdown table, one row per cell.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/cli/bench_matrix.h"
#include "runtime/error.h"

namespace wanrt::cli {

/// One timed generation of a cell.
struct BenchRun {
  std::vector<std::pair<std::string, double>> stage_seconds;  ///< in stage order
  std::map<std::string, std::int64_t> stage_peak_rss;
  /// Peak CPU tensor bytes per stage, as delimited by the progress events (a stage ends at
  /// its last progress event; what follows the last one belongs to the last stage).
  std::map<std::string, std::int64_t> stage_tracked_peak;
  double total_seconds = 0;         ///< wall time of Pipeline::generate
  std::int64_t peak_rss = 0;        ///< process peak RSS during the run
  std::int64_t tracked_peak = -1;   ///< peak CPU tensor bytes of the pipeline (-1: not tracked)
  std::int64_t device_peak = -1;    ///< CUDA allocator peak (-1: not a CUDA run)
  std::int64_t ledger_peak = 0;     ///< residency ledger's peak
  double video_dev = -1;            ///< max |video - baseline video| (float, [-1, 1]); -1:
                                    ///< no baseline output to compare with
  int frames_dev = -1;              ///< max |frames - baseline frames| (uint8 levels)
  double latent_dev = -1;           ///< max |latent - baseline latent|
  std::vector<double> fingerprint;  ///< sums of the outputs, to see that repeats agree
  int fallbacks = 0;                ///< automatic fallbacks taken (0 expected)
  std::string plan_summary;         ///< the plan as the pipeline applied it
};

/// A cell with its runs (empty when skipped or failed).
struct BenchCellResult {
  BenchCell cell;
  std::string status = "ok";                          ///< "ok" | "skipped" | "failed"
  std::string error;                                  ///< the reason when not ok
  ErrorCategory category = ErrorCategory::kInternal;  ///< of the failure
  double load_seconds = 0;
  /// Heap bytes of CPU tensors the loaded pipeline holds (weights of a format 2 bundle used
  /// in place from its mapped files are not on the heap)
  std::int64_t tracked_weights = -1;
  std::string plan_summary;
  /// Highest device bytes each component held at once, replayed from the ledger's events.
  std::map<std::string, std::int64_t> ledger_component_peak;
  std::vector<BenchRun> runs;
};

/// The whole benchmark.
struct BenchReport {
  std::string version, bundle, model_id, task;
  std::string device, device_name, planned_for, memory_note;
  int threads = 0, repeat = 0, warmup = 0;
  int width = 0, height = 0, frames = 0, steps = 0;
  std::int64_t seed = 0;
  std::string prompt;
  std::vector<BenchCellResult> cells;
  double wall_seconds = 0;
};

/// Median, min and max of `values` (zeros when empty).
struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread spread_of(std::vector<double> values);

/// The JSON document (schema "wanrt-bench/1", described in docs/cli.md).
nlohmann::json bench_json(const BenchReport& report);
/// The Markdown table: a header paragraph and one row per cell (skipped and failed included).
std::string bench_markdown(const BenchReport& report);

}  // namespace wanrt::cli
