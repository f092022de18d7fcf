#include "bindings/cli/cli_common.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "io/temp_registry.h"
#include "runtime/error.h"

namespace wanrt::cli {
namespace {

std::atomic<int> g_interrupts{0};
std::atomic<int> g_signal{0};

extern "C" void on_interrupt(int signo) {
  g_signal.store(signo);
  if (g_interrupts.fetch_add(1) >= 1) {
    // A second signal: give up at once, but leave no temporary output behind.
    remove_registered_temporaries();
    _exit(128 + signo);
  }
}

// The test hook (docs/development.md): WANRT_TEST_SIGNAL_AT="STAGE:STEP[:COUNT[:SIGNAL]]".
struct SignalAt {
  std::string stage;
  int step = 0, count = 1, signo = SIGINT;
  bool armed = false;
};

SignalAt parse_signal_at() {
  SignalAt at;
  const char* text = std::getenv("WANRT_TEST_SIGNAL_AT");
  if (text == nullptr || *text == '\0') return at;
  std::vector<std::string> parts;
  std::string part;
  for (const char* c = text;; ++c) {
    if (*c == ':' || *c == '\0') {
      parts.push_back(part);
      part.clear();
      if (*c == '\0') break;
    } else {
      part += *c;
    }
  }
  at.stage = parts[0];
  if (parts.size() > 1) at.step = std::atoi(parts[1].c_str());
  if (parts.size() > 2) at.count = std::max(1, std::atoi(parts[2].c_str()));
  if (parts.size() > 3) {
    at.signo = parts[3] == "TERM" ? SIGTERM : parts[3] == "KILL" ? SIGKILL : SIGINT;
  }
  // A fifth part arms the hook on that rank only (RANK, as the launcher sets it).
  if (parts.size() > 4) {
    const char* rank = std::getenv("RANK");
    if (parts[4] != (rank != nullptr ? rank : "0")) return at;
  }
  at.armed = true;
  return at;
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

namespace {
std::vector<std::string>& command_line_storage() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

void set_command_line(int argc, char** argv) {
  command_line_storage().assign(argv, argv + argc);
}

const std::vector<std::string>& command_line() { return command_line_storage(); }

void test_signal_hook(const std::string& stage, int step) {
  static SignalAt at = parse_signal_at();
  if (!at.armed || stage != at.stage || step != at.step) return;
  at.armed = false;
  for (int i = 0; i < at.count; ++i) std::raise(at.signo);
}

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
