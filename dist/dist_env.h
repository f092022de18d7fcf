// Where this process stands in a multi-process run, read from the environment in the torchrun
// convention (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), which
// torchrun, Slurm wrappers and mpirun scripts all set, plus wanrt's own WANRT_STORE_FILE
// (a FileStore on a shared path, as `wanrun generate --ranks N` uses), WANRT_DIST_TIMEOUT and
// WANRT_DIST_BACKEND.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace wanrt::dist {

/// One process's place in the run and how the ranks meet.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        ///< index among the ranks of this machine
  int local_world_size = 1;  ///< ranks on this machine (threads per rank default from it)
  /// Rendezvous: a FileStore at `store_file` when set, else a TCPStore at master_addr:port
  /// (rank 0 serves it).
  std::string store_file;
  std::string master_addr;
  int master_port = 0;
  /// How long a collective or the rendezvous may wait for the other ranks before the run fails.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  /// The transport of the work's collectives (WANRT_DIST_BACKEND): "auto" (NCCL when the ranks
  /// compute on GPUs and LibTorch has it, else Gloo), "gloo" or "nccl".
  std::string backend = "auto";

  /// True when more than one rank takes part.
  bool distributed() const { return world_size > 1; }
};

/// Reads the variables through `get` (nullopt: unset). Without WORLD_SIZE (or with 1) the result
/// is a single process. Error(kUsage) names the variable on a malformed or inconsistent value
/// (RANK outside [0, WORLD_SIZE), WORLD_SIZE > 1 without a rendezvous, a bad port, timeout or
/// backend).
DistEnv dist_env_from(const std::function<std::optional<std::string>(const std::string&)>& get);

/// dist_env_from the process environment.
DistEnv dist_env_from_environment();

}  // namespace wanrt::dist
