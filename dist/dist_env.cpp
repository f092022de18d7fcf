#include "dist/dist_env.h"

#include <fmt/format.h>

#include <cstdlib>
#include <limits>

#include "runtime/error.h"

namespace wanrt::dist {
namespace {

using Getter = std::function<std::optional<std::string>(const std::string&)>;

long long read_int(const Getter& get, const std::string& name, long long fallback, long long low,
                   long long high) {
  const std::optional<std::string> text = get(name);
  if (!text || text->empty()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0' || value < low || value > high) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("environment variable {}='{}' is not an integer in [{}, {}]", name,
                            *text, low, high),
                "set it as torchrun does, or unset it for a single-process run");
  }
  return value;
}

}  // namespace

DistEnv dist_env_from(const Getter& get) {
  constexpr long long kMax = std::numeric_limits<int>::max();
  DistEnv env;
  env.world_size = static_cast<int>(read_int(get, "WORLD_SIZE", 1, 1, kMax));
  env.rank = static_cast<int>(read_int(get, "RANK", 0, 0, kMax));
  if (env.rank >= env.world_size) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("RANK={} but WORLD_SIZE={}: a rank must be below the world size",
                            env.rank, env.world_size),
                "set RANK to 0 .. WORLD_SIZE-1 on each process");
  }
  env.local_world_size =
      static_cast<int>(read_int(get, "LOCAL_WORLD_SIZE", env.world_size, 1, env.world_size));
  env.local_rank = static_cast<int>(read_int(get, "LOCAL_RANK", env.rank % env.local_world_size,
                                             0, env.local_world_size - 1));
  env.store_file = get("WANRT_STORE_FILE").value_or("");
  env.master_addr = get("MASTER_ADDR").value_or("");
  env.master_port = static_cast<int>(read_int(get, "MASTER_PORT", 0, 0, 65535));
  const long long timeout_s = read_int(get, "WANRT_DIST_TIMEOUT", 600, 1, 7 * 24 * 3600);
  env.timeout = std::chrono::seconds(timeout_s);
  env.backend = get("WANRT_DIST_BACKEND").value_or("auto");
  if (env.backend.empty()) env.backend = "auto";
  if (env.backend != "auto" && env.backend != "gloo" && env.backend != "nccl") {
    throw Error(ErrorCategory::kUsage,
                fmt::format(
                    "environment variable WANRT_DIST_BACKEND='{}' is not auto, gloo or nccl",
                    env.backend),
                "unset it to let wanrt choose (NCCL between GPUs where LibTorch has it)");
  }
  if (env.distributed() && env.store_file.empty() &&
      (env.master_addr.empty() || env.master_port == 0)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("WORLD_SIZE={} but no rendezvous: neither WANRT_STORE_FILE nor "
                            "MASTER_ADDR and MASTER_PORT are set",
                            env.world_size),
                "launch with `wanrun generate --ranks N` on one machine, or set MASTER_ADDR and "
                "MASTER_PORT (torchrun does) on every rank");
  }
  return env;
}

DistEnv dist_env_from_environment() {
  return dist_env_from([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace wanrt::dist
