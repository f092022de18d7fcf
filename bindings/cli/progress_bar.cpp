#include "bindings/cli/progress_bar.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace wanrt::cli {

ProgressBar::ProgressBar(Mode mode) : mode_(mode) {}

ProgressBar::Mode ProgressBar::parse_mode(const std::string& text) {
  if (text == "bar") return Mode::kBar;
  if (text == "plain") return Mode::kPlain;
  if (text == "none") return Mode::kNone;
  return stderr_is_terminal() ? Mode::kBar : Mode::kNone;  // "auto"
}
ProgressBar::~ProgressBar() { finish(); }

bool ProgressBar::stderr_is_terminal() { return isatty(fileno(stderr)) == 1; }

void ProgressBar::update(const std::string& stage, int step, int total) {
  if (mode_ == Mode::kNone) return;
  const auto now = std::chrono::steady_clock::now();
  if (stage != stage_) {
    finish();
    stage_ = stage;
    stage_start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - stage_start_).count();
  const double rate = (step > 0 && elapsed > 0) ? step / elapsed : 0.0;
  const int width = 30;
  const int filled = total > 0 ? width * step / total : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::string eta = "--";
  if (rate > 0 && total > step) eta = fmt::format("{:.0f}s", (total - step) / rate);
  if (mode_ == Mode::kPlain) {
    fmt::print(stderr, "{} {}/{} {:.2f} it/s ETA {}\n", stage, step, total, rate, eta);
  } else {
    fmt::print(stderr, "\r{:<12} [{}] {}/{}  {:.2f} it/s  ETA {}   ", stage, bar, step, total,
               rate, eta);
    line_open_ = true;
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (line_open_) {
    fmt::print(stderr, "\n");
    line_open_ = false;
  }
}

}  // namespace wanrt::cli
