// Several ranks as threads of one test process, meeting at a FileStore. Catch2's assertions are
// not thread-safe: the rank threads only record, the test thread checks.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "dist/dist_env.h"

namespace wanrt_test {

/// Rank `rank` of `world`, all local, meeting at the FileStore `store`.
inline wanrt::dist::DistEnv env_for(const std::string& store, int rank, int world,
                                    int timeout_s = 30) {
  wanrt::dist::DistEnv env;
  env.rank = rank;
  env.world_size = world;
  env.local_rank = rank;
  env.local_world_size = world;
  env.store_file = store;
  env.timeout = std::chrono::seconds(timeout_s);
  return env;
}

/// Runs body(rank) on `world` threads; rethrows the first failure after all have ended.
inline void run_ranks(int world, const std::function<void(int)>& body) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace wanrt_test
