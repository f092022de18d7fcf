// Progress on stderr: a one-line bar (stage, step/total, it/s, ETA) on a terminal, plain
// lines for logs (`--progress plain`), or nothing.
#pragma once

#include <chrono>
#include <string>

namespace wanrt::cli {

class ProgressBar {
 public:
  enum class Mode { kNone, kBar, kPlain };
  /// Parses --progress: "auto" (bar on a terminal, else none), "bar", "plain", "none".
  static Mode parse_mode(const std::string& text);
  explicit ProgressBar(Mode mode);
  ~ProgressBar();
  /// Shows `step` of `total` in `stage`; a new stage restarts the rate measurement.
  void update(const std::string& stage, int step, int total);
  /// Ends the current line.
  void finish();
  /// True when stderr is a terminal.
  static bool stderr_is_terminal();

 private:
  Mode mode_;
  bool line_open_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point stage_start_;
};

}  // namespace wanrt::cli
