// Which transport a run's collectives take (Gloo, NCCL), and what the ranks agree on before
// planning. Ranks are threads of this process (support/rank_threads.h).
#include <map>
#include <optional>

#include "dist/agreed_resources.h"
#include "dist/dist_env.h"
#include "dist/process_group.h"
#include "runtime/device_backend.h"
#include "runtime/error.h"
#include "support/catch.h"
#include "support/rank_threads.h"
#include "support/tiny_bundles.h"

using namespace wanrt;
using namespace wanrt::dist;
using wanrt_test::env_for;
using wanrt_test::run_ranks;

TEST_CASE("the backend: NCCL between GPUs where the build has it, Gloo otherwise", "[dist]") {
  CHECK(choose_backend("auto", "cpu", true) == "gloo");
  CHECK(choose_backend("auto", "cuda:1", true) == "nccl");
  CHECK(choose_backend("auto", "cuda:1", false) == "gloo");
  CHECK(choose_backend("gloo", "cuda:0", true) == "gloo");
  CHECK(choose_backend("nccl", "cuda:0", true) == "nccl");
  CHECK_THROWS_WITH(choose_backend("nccl", "cuda:0", false), Catch::Contains("has no NCCL"));
  CHECK_THROWS_WITH(choose_backend("nccl", "cpu", true), Catch::Contains("compute on 'cpu'"));
  CHECK_THROWS_AS(choose_backend("mpi", "cpu", true), Error);

  const auto env = [](std::optional<std::string> backend) {
    return dist_env_from([&](const std::string& name) -> std::optional<std::string> {
      if (name == "WANRT_DIST_BACKEND") return backend;
      return std::nullopt;
    });
  };
  CHECK(env(std::nullopt).backend == "auto");
  CHECK(env(std::string("gloo")).backend == "gloo");
  CHECK_THROWS_WITH(env(std::string("NCCL")), Catch::Contains("WANRT_DIST_BACKEND='NCCL'"));
}

TEST_CASE("ranks on the CPU keep their Gloo group, and a group of one has none", "[dist]") {
  CHECK(ProcessGroup::single()->backend() == "none");
  CHECK(ProcessGroup::single()->for_device("cuda:0")->backend() == "none");
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  std::vector<std::string> backends(2);
  std::vector<bool> same(2, false);
  run_ranks(2, [&](int r) {
    const auto world = ProcessGroup::connect(env_for(store, r, 2));
    const auto on_cpu = world->for_device("cpu");
    backends[static_cast<std::size_t>(r)] = on_cpu->backend();
    same[static_cast<std::size_t>(r)] = on_cpu == world;
  });
  CHECK(backends == std::vector<std::string>{"gloo", "gloo"});
  CHECK(same == std::vector<bool>{true, true});
}

TEST_CASE("every rank plans with the tightest rank's resources", "[dist]") {
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  // Rank 0 has more free RAM and a GPU with less free memory; rank 1 lacks AMX.
  auto resources = [](int r) {
    SystemResources s;
    s.cpu_cores = 8;
    s.cpu_model = r == 0 ? "cpu zero" : "cpu one";
    s.cpu_avx512_bf16 = true;
    s.cpu_amx = r == 0;
    s.ram_total = 64LL << 30;
    s.ram_available = r == 0 ? 60LL << 30 : 41LL << 30;
    for (int i = 0; i < 2; ++i) {
      GpuInfo g;
      g.index = i;
      g.name = "gpu";
      g.cc_major = 9;
      g.total_bytes = 80LL << 30;
      // Rank r computes on GPU r (its LOCAL_RANK); the other GPU's figures must not count.
      g.free_bytes = (i == r) ? (r == 0 ? 70LL << 30 : 75LL << 30) : (1LL << 30);
      g.bf16 = g.fp16 = true;
      s.gpus.push_back(g);
    }
    return s;
  };
  std::vector<SystemResources> agreed(2);
  run_ranks(2, [&](int r) {
    const auto world = ProcessGroup::connect(env_for(store, r, 2));
    agreed[static_cast<std::size_t>(r)] = agree_on_resources(*world, resources(r), r);
  });
  for (int r = 0; r < 2; ++r) {
    const SystemResources& a = agreed[static_cast<std::size_t>(r)];
    INFO("rank " << r);
    CHECK(a.ram_available == 41LL << 30);
    CHECK(a.ram_total == 64LL << 30);
    CHECK(a.cpu_cores == 8);
    CHECK(a.cpu_avx512_bf16);
    CHECK_FALSE(a.cpu_amx);
    CHECK(a.cpu_model == (r == 0 ? "cpu zero" : "cpu one"));
    REQUIRE(a.gpus.size() == 1);
    CHECK(a.gpus[0].index == 0);
    CHECK(a.gpus[0].free_bytes == 70LL << 30);
    CHECK(a.gpus[0].total_bytes == 80LL << 30);
    CHECK(a.gpus[0].cc_major == 9);
    CHECK(a.gpus[0].bf16);
  }

  // A rank without a GPU: nobody plans for one.
  std::vector<SystemResources> no_gpu(2);
  const std::string store2 = (dir.path() / "store2").string();
  run_ranks(2, [&](int r) {
    const auto world = ProcessGroup::connect(env_for(store2, r, 2));
    SystemResources mine = resources(r);
    if (r == 1) mine.gpus.clear();
    no_gpu[static_cast<std::size_t>(r)] = agree_on_resources(*world, mine, r);
  });
  CHECK(no_gpu[0].gpus.empty());
  CHECK(no_gpu[1].gpus.empty());

  // One process: unchanged, every GPU kept with its own index.
  const SystemResources alone = agree_on_resources(*ProcessGroup::single(), resources(0), 0);
  CHECK(alone.gpus.size() == 2);
  CHECK(alone.ram_available == 60LL << 30);
}

TEST_CASE("two ranks on two GPUs exchange through NCCL", "[dist][gpu]") {
  if (!ProcessGroup::nccl_available() || cuda_device_count() < 2) {
    WARN("WANRT_SKIP: needs a build with NCCL and two CUDA devices");
    return;
  }
  wanrt_test::TempDir dir;
  const std::string store = (dir.path() / "store").string();
  auto local = [](int r) { return at::arange(48, at::kFloat).view({1, 4, 6, 2}) + 1000.0 * r; };
  const at::Tensor full = at::cat({local(0), local(1)}, 1);
  struct Seen {
    std::string backend;
    std::vector<at::Tensor> gathered;
    at::Tensor heads, bf16;
  };
  std::vector<Seen> seen(2);
  run_ranks(2, [&](int r) {
    Seen& s = seen[static_cast<std::size_t>(r)];
    const std::string device = "cuda:" + std::to_string(r);
    const auto group = ProcessGroup::connect(env_for(store, r, 2))->for_device(device);
    s.backend = group->backend();
    for (const at::Tensor& t : group->all_gather(local(r).to(device))) {
      s.gathered.push_back(t.cpu());
    }
    s.heads = group->all_to_all(local(r).to(device), 2, 1).cpu();
    s.bf16 = group->all_gather(local(r).to(device).to(at::kBFloat16))[1].cpu();
    group->barrier();
  });
  for (int r = 0; r < 2; ++r) {
    const Seen& s = seen[static_cast<std::size_t>(r)];
    INFO("rank " << r);
    CHECK(s.backend == "nccl");
    REQUIRE(s.gathered.size() == 2);
    CHECK(at::equal(s.gathered[0], local(0)));
    CHECK(at::equal(s.gathered[1], local(1)));
    CHECK(at::equal(s.heads, full.slice(2, 3 * r, 3 * r + 3)));
    CHECK(at::equal(s.bf16, local(1).to(at::kBFloat16)));
  }
}
