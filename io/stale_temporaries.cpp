#include "io/stale_temporaries.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace wanrt {
namespace {

std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof(buffer) - 1) != 0 || buffer[0] == '\0') return "localhost";
  return buffer;
}

// Whether process `pid` of this host is gone (kill with signal 0 checks without sending).
bool process_gone(long pid) {
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

std::string temporary_owner_tag() { return fmt::format("{}.{}", host_name(), ::getpid()); }

int remove_stale_temporaries(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  // Only KIND "tmp": an "old" entry may be the previous output a killed writer had set aside.
  const std::string prefix = "." + name + ".tmp.";
  const std::string host = host_name();
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry.rfind(prefix, 0) != 0) continue;
    // HOST.PID.RANDOM after the prefix; the host may hold dots, so read from the right.
    const std::string rest = entry.substr(prefix.size());
    const std::size_t random_dot = rest.rfind('.');
    if (random_dot == std::string::npos || random_dot == 0) continue;
    const std::size_t pid_dot = rest.rfind('.', random_dot - 1);
    if (pid_dot == std::string::npos) continue;
    const std::string pid_text = rest.substr(pid_dot + 1, random_dot - pid_dot - 1);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    if (rest.substr(0, pid_dot) != host) continue;
    if (!process_gone(std::strtol(pid_text.c_str(), nullptr, 10))) continue;
    std::error_code ignored;
    if (fs::remove_all(it->path(), ignored) > 0) ++removed;
  }
  return removed;
}

}  // namespace wanrt
