#include "dist/local_launcher.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "runtime/error.h"

extern char** environ;

namespace wanrt::dist {
namespace {

using Clock = std::chrono::steady_clock;

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// The temporary folder the FileStore lives in; removed with everything in it.
struct StoreDir {
  std::string path;
  StoreDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                          "/wanrt-ranks-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("cannot create a folder in {} for the ranks to meet: {}",
                              pattern, std::strerror(errno)),
                  "set TMPDIR to a writable folder");
    }
    path = pattern;
  }
  ~StoreDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

}  // namespace

LaunchOutcome launch_local_ranks(const LaunchOptions& options) {
  if (options.ranks < 1 || options.argv.empty()) {
    throw Error(ErrorCategory::kUsage, "launch_local_ranks: no ranks or no command");
  }
  const StoreDir dir;
  const std::string store = dir.path + "/store";
  LaunchOutcome out;
  std::vector<bool> running;

  // Each rank leads its own process group, so a signal reaches what it started too.
  auto signal_all = [&](int sig) {
    for (std::size_t i = 0; i < out.pids.size(); ++i) {
      if (running[i]) ::kill(-out.pids[i], sig);
    }
  };
  auto reap = [&](bool block) {
    for (std::size_t i = 0; i < out.pids.size(); ++i) {
      if (!running[i]) continue;
      int status = 0;
      const pid_t r = ::waitpid(out.pids[i], &status, block ? 0 : WNOHANG);
      if (r == out.pids[i]) {
        running[i] = false;
        const int code = status_code(status);
        if (code != 0 && out.failed_rank < 0) {
          out.failed_rank = static_cast<int>(i);
          out.exit_code = code;
        }
      }
    }
  };
  auto any_running = [&] {
    return std::any_of(running.begin(), running.end(), [](bool r) { return r; });
  };

  // This process's environment without the variables each rank gets its own value of.
  std::vector<std::string> inherited;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name != "RANK" && name != "WORLD_SIZE" && name != "LOCAL_RANK" &&
        name != "LOCAL_WORLD_SIZE" && name != "WANRT_STORE_FILE" && name != "MASTER_ADDR" &&
        name != "MASTER_PORT") {
      inherited.push_back(entry);
    }
  }
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  for (int rank = 0; rank < options.ranks; ++rank) {
    std::vector<std::string> env = inherited;
    env.push_back(fmt::format("RANK={}", rank));
    env.push_back(fmt::format("LOCAL_RANK={}", rank));
    env.push_back(fmt::format("WORLD_SIZE={}", options.ranks));
    env.push_back(fmt::format("LOCAL_WORLD_SIZE={}", options.ranks));
    env.push_back("WANRT_STORE_FILE=" + store);
    for (const std::string& extra : options.env) env.push_back(extra);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::execve(argv[0], argv.data(), envp.data());
      // Only async-signal-safe calls between fork and exec (the parent has threads).
      const char message[] = "wanrun: a rank could not start its program\n";
      (void)!::write(2, message, sizeof(message) - 1);
      std::_Exit(127);
    }
    if (pid < 0) {
      const std::string reason = std::strerror(errno);
      signal_all(SIGKILL);
      reap(true);
      throw Error(ErrorCategory::kResources,
                  fmt::format("cannot start rank {}: {}", rank, reason),
                  "lower --ranks or free process slots");
    }
    ::setpgid(pid, pid);  // also here: no signal may reach the rank before it has its group
    out.pids.push_back(pid);
    running.push_back(true);
  }

  // Wait; the first failure (or a cancel) stops the others: SIGTERM, then SIGKILL after the
  // grace period.
  bool stopping = false;
  Clock::time_point kill_at{};
  while (any_running()) {
    reap(false);
    if (!any_running()) break;
    const bool cancel = options.cancelled && options.cancelled();
    if (!stopping && (out.failed_rank >= 0 || cancel)) {
      stopping = true;
      signal_all(SIGTERM);
      kill_at = Clock::now() + options.grace;
    } else if (stopping && Clock::now() >= kill_at) {
      signal_all(SIGKILL);
      reap(true);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (stopping) {
    // What the stopped ranks had started and left behind.
    for (int pid : out.pids) ::kill(-pid, SIGKILL);
  }
  return out;
}

}  // namespace wanrt::dist
