#include "bindings/cli/cli_common.h"

#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "runtime/error.h"

namespace wanrt::cli {
namespace {

std::atomic<int> g_interrupts{0};
std::atomic<int> g_signal{0};

extern "C" void on_interrupt(int signo) {
  g_signal.store(signo);
  if (g_interrupts.fetch_add(1) >= 1) _exit(128 + signo);  // a second signal: give up at once
}

}  // namespace

std::pair<int, int> parse_size(const std::string& text) {
  const auto sep = text.find_first_of("x*X");
  int w = 0, h = 0;
  size_t used_w = 0, used_h = 0;
  try {
    if (sep != std::string::npos) {
      w = std::stoi(text.substr(0, sep), &used_w);
      h = std::stoi(text.substr(sep + 1), &used_h);
    }
  } catch (const std::exception&) {
    used_w = 0;
  }
  if (sep == std::string::npos || used_w != sep || used_h != text.size() - sep - 1 || w <= 0 ||
      h <= 0) {
    throw Error(ErrorCategory::kUsage, fmt::format("--size '{}' is not WIDTHxHEIGHT", text),
                "for example --size 1280x704");
  }
  return {w, h};
}

std::string default_bundle_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const auto dir = exe.parent_path().parent_path() / "share" / "wanrt" / "demo-bundle";
  return std::filesystem::exists(dir / "wanrt.yaml", ec) ? dir.string() : std::string();
}

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // Past a file size limit (ulimit -f), a write fails with EFBIG and the writer reports it and
  // removes its temporary, instead of the process being killed mid-write.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGXFSZ, &ignore, nullptr);
}

bool cancel_requested() { return g_interrupts.load() > 0; }

int interrupt_signal() { return g_signal.load(); }

std::string format_bytes(long long bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

}  // namespace wanrt::cli
