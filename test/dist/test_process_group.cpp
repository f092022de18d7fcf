// The process group on loopback: several ranks as threads of this process (support/rank_threads.h),
// meeting at a FileStore in a fresh folder. Expected values are built independently of the
// collectives.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include <c10/core/InferenceMode.h>

#include "dist/dist_env.h"
#include "dist/parallel_layout.h"
#include "dist/process_group.h"
#include "runtime/error.h"
#include "support/catch.h"
#include "support/rank_threads.h"
#include "support/tiny_bundles.h"

using namespace wanrt;
using namespace wanrt::dist;
using wanrt_test::env_for;
using wanrt_test::run_ranks;

namespace {

using Env = std::map<std::string, std::string>;
DistEnv parse(const Env& vars) {
  return dist_env_from([&](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

}  // namespace

TEST_CASE("the torchrun variables make the rank's place in the run", "[dist]") {
  SECTION("nothing set is one process") {
    const DistEnv env = parse({});
    CHECK_FALSE(env.distributed());
    CHECK(env.rank == 0);
    CHECK(env.world_size == 1);
  }
  SECTION("torchrun's set") {
    const DistEnv env = parse({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                               {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node0"},
                               {"MASTER_PORT", "29500"}, {"WANRT_DIST_TIMEOUT", "5"}});
    CHECK(env.distributed());
    CHECK(env.rank == 3);
    CHECK(env.local_rank == 1);
    CHECK(env.local_world_size == 2);
    CHECK(env.master_addr == "node0");
    CHECK(env.master_port == 29500);
    CHECK(env.timeout == std::chrono::seconds(5));
  }
  SECTION("errors name the variable") {
    CHECK_THROWS_WITH(parse({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"WANRT_STORE_FILE", "/x"}}),
                      Catch::Contains("RANK=2 but WORLD_SIZE=2"));
    CHECK_THROWS_WITH(parse({{"WORLD_SIZE", "two"}}), Catch::Contains("WORLD_SIZE='two'"));
    CHECK_THROWS_WITH(parse({{"WORLD_SIZE", "2"}, {"RANK", "0"}}),
                      Catch::Contains("no rendezvous"));
    CHECK_THROWS_WITH(parse({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}}),
                      Catch::Contains("MASTER_PORT"));
  }
}

TEST_CASE("a group of one hands collectives their input back", "[dist]") {
  const auto group = ProcessGroup::single();
  const at::Tensor x = at::arange(6, at::kFloat).view({1, 2, 3});
  CHECK(group->size() == 1);
  CHECK(group->all_gather(x).size() == 1);
  CHECK(at::equal(group->all_to_all(x, 2, 1), x));
}

TEST_CASE("two ranks gather and exchange tensors exactly", "[dist]") {
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  // Rank r's tokens: [1, 4 tokens, 6 heads, 2] with values naming (rank, token, head, i).
  auto local = [](int r) {
    return (at::arange(48, at::kFloat).view({1, 4, 6, 2}) + 1000.0 * r);
  };
  const at::Tensor full = at::cat({local(0), local(1)}, 1);  // the whole sequence
  struct Seen {
    int rank = -1, size = 0;
    std::vector<at::Tensor> gathered, gathered_bf16, inference_gather;
    at::Tensor heads, back, inference_heads;
    std::string bad_split;
    std::int64_t collectives = 0;
    double seconds = 0;
  };
  std::vector<Seen> seen(2);
  run_ranks(2, [&](int r) {
    Seen& s = seen[static_cast<std::size_t>(r)];
    const auto group = ProcessGroup::connect(env_for(store, r, 2));
    s.rank = group->rank();
    s.size = group->size();
    s.gathered = group->all_gather(local(r));
    s.heads = group->all_to_all(local(r), 2, 1);
    s.back = group->all_to_all(s.heads, 1, 2);
    s.gathered_bf16 = group->all_gather(local(r).to(at::kBFloat16));
    {
      // As in a run (generate() is in inference mode): the buffers must still be writable.
      c10::InferenceMode inference;
      s.inference_gather = group->all_gather(local(r));
      s.inference_heads = group->all_to_all(local(r), 2, 1);
    }
    try {
      group->all_to_all(at::zeros({1, 3}), 1, 0);
    } catch (const Error& e) {
      s.bad_split = e.what();
    }
    group->barrier();
    s.collectives = group->collectives();
    s.seconds = group->comm_seconds();
  });
  for (int r = 0; r < 2; ++r) {
    const Seen& s = seen[static_cast<std::size_t>(r)];
    INFO("rank " << r);
    CHECK(s.rank == r);
    CHECK(s.size == 2);
    REQUIRE(s.gathered.size() == 2);
    CHECK(at::equal(s.gathered[0], local(0)));
    CHECK(at::equal(s.gathered[1], local(1)));
    // Ulysses: heads scattered, tokens gathered: rank r holds every token of heads 3r..3r+2.
    CHECK(s.heads.sizes() == at::IntArrayRef({1, 8, 3, 2}));
    CHECK(at::equal(s.heads, full.slice(2, 3 * r, 3 * r + 3)));
    CHECK(at::equal(s.back, local(r)));  // and back
    // 16-bit floats keep their bits.
    REQUIRE(s.gathered_bf16.size() == 2);
    CHECK(s.gathered_bf16[1].scalar_type() == at::kBFloat16);
    CHECK(at::equal(s.gathered_bf16[1], local(1).to(at::kBFloat16)));
    REQUIRE(s.inference_gather.size() == 2);
    CHECK(at::equal(s.inference_gather[1], local(1)));
    CHECK(at::equal(s.inference_heads, s.heads));
    CHECK_THAT(s.bad_split, Catch::Contains("does not split over 2 ranks"));
    CHECK(s.collectives == 7);
    CHECK(s.seconds > 0);
  }
}

TEST_CASE("two ranks meet at a TCPStore that rank 0 serves", "[dist]") {
  // A port the kernel had free a moment ago.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  std::vector<float> seen(2, -1.0f);
  run_ranks(2, [&](int r) {
    DistEnv env = env_for("", r, 2);
    env.master_addr = "127.0.0.1";
    env.master_port = port;
    const auto group = ProcessGroup::connect(env);
    seen[static_cast<std::size_t>(r)] =
        group->all_gather(at::full({1}, 10.0f + r))[static_cast<std::size_t>(1 - r)].item<float>();
  });
  CHECK(seen[0] == 11.0f);
  CHECK(seen[1] == 10.0f);
}

TEST_CASE("four ranks split into CFG pairs and sequence groups", "[dist]") {
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  const ParallelLayout layout = choose_layout(4, /*guidance=*/true);
  REQUIRE(layout.cfg == 2);
  REQUIRE(layout.seq == 2);
  struct Seen {
    int cfg_rank = -1, seq_rank = -1;
    std::vector<at::Tensor> cfg, seq;
    bool leader = false;
  };
  std::vector<Seen> seen(4);
  run_ranks(4, [&](int r) {
    Seen& s = seen[static_cast<std::size_t>(r)];
    const Parallelism p = make_parallelism(ProcessGroup::connect(env_for(store, r, 4)), layout);
    s.cfg_rank = p.cfg->rank();
    s.seq_rank = p.seq->rank();
    const at::Tensor me = at::full({1}, static_cast<float>(r));
    s.cfg = p.cfg->all_gather(me);
    s.seq = p.seq->all_gather(me);
    s.leader = p.leader();
  });
  for (int r = 0; r < 4; ++r) {
    const Seen& s = seen[static_cast<std::size_t>(r)];
    INFO("rank " << r);
    // Rank r: CFG index r / 2, sequence index r % 2; a CFG pair shares the sequence index.
    CHECK(s.cfg_rank == r / 2);
    CHECK(s.seq_rank == r % 2);
    REQUIRE(s.cfg.size() == 2);
    CHECK(s.cfg[0].item<float>() == static_cast<float>(r % 2));
    CHECK(s.cfg[1].item<float>() == static_cast<float>(r % 2 + 2));
    REQUIRE(s.seq.size() == 2);
    CHECK(s.seq[0].item<float>() == static_cast<float>((r / 2) * 2));
    CHECK(s.seq[1].item<float>() == static_cast<float>((r / 2) * 2 + 1));
    CHECK(s.leader == (r == 0));
  }
}

TEST_CASE("layouts: CFG pairs only with guidance and an even rank count", "[dist]") {
  CHECK(choose_layout(2, true).cfg == 2);
  CHECK(choose_layout(2, false).seq == 2);
  CHECK(choose_layout(3, true).seq == 3);
  CHECK(choose_layout(4, true, 1).seq == 4);
  CHECK(choose_layout(4, true).describe() == "4 ranks: 2 CFG x 2 sequence");
  CHECK(choose_layout(1, true).describe() == "1 rank");
  CHECK_THROWS_WITH(choose_layout(3, true, 2), Catch::Contains("does not divide --ranks 3"));
  CHECK_THROWS_WITH(choose_layout(2, false, 2), Catch::Contains("no unconditional pass"));
  CHECK_THROWS_AS(make_parallelism(ProcessGroup::single(), choose_layout(2, true)), Error);
}

TEST_CASE("a rank that never comes fails the rendezvous after the timeout", "[dist]") {
  wanrt_test::TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  try {
    ProcessGroup::connect(env_for((dir.path() / "store").string(), 0, 2, /*timeout_s=*/2));
    FAIL("connect returned without the second rank");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kResources);
    CHECK_THAT(e.what(), Catch::Contains("rank 0 of 2"));
  }
  // Bounded: the timeout is 2 s; a hang would run to ctest's limit.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

TEST_CASE("a rank that leaves makes the other's next collective fail, not hang", "[dist]") {
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  std::atomic<bool> left{false};
  std::string error, hint;
  ErrorCategory category = ErrorCategory::kInternal;
  bool succeeded = false;
  run_ranks(2, [&](int r) {
    auto group = ProcessGroup::connect(env_for(store, r, 2, /*timeout_s=*/5));
    group->barrier();
    if (r == 1) {
      group.reset();  // closes its connections
      left = true;
      return;
    }
    while (!left) std::this_thread::yield();
    try {
      group->all_gather(at::ones({4}));
      succeeded = true;
    } catch (const Error& e) {
      error = e.what();
      hint = e.hint();
      category = e.category();
    }
  });
  CHECK_FALSE(succeeded);
  CHECK(category == ErrorCategory::kResources);
  CHECK_THAT(error, Catch::Contains("all_gather failed"));
  CHECK_THAT(hint, Catch::Contains("another rank"));
}
