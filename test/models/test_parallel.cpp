// Runs of several ranks (CFG parallel, sequence parallel, both) against the one-process run:
// the ranks are threads of this process, each with its own Session on one shared Model, joined
// through a FileStore on loopback. The reference is the same model run in one process.
#include "support/catch.h"

#include <ATen/Parallel.h>

#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "dist/parallel_layout.h"
#include "dist/process_group.h"
#include "models/wan22/model.h"
#include "models/wan22/sequence_parallel.h"
#include "models/wan22/session.h"
#include "runtime/error.h"
#include "support/tiny_bundles.h"

using namespace wanrt;
using wanrt::wan22::GenerateRequest;
using wanrt::wan22::GenerateResult;
using wanrt::wan22::Model;
using wanrt::wan22::Session;
using wanrt::wan22::SessionOptions;

namespace {

std::shared_ptr<const Model> load(const std::string& bundle) {
  wan22::ModelOptions options;
  options.threads = 1;  // one thread per rank, and the reference alike: the same GEMM blocking
  return Model::load(wanrt_test::tiny_bundle(bundle), options);
}

GenerateRequest request() {
  GenerateRequest r;
  r.prompt = "a red fox runs through snow";
  r.seed = 7;
  r.frames = 5;
  r.steps = 3;
  r.guidance = 4.0;
  return r;
}

// The results of every rank, run as threads; rethrows the first rank's failure.
std::vector<GenerateResult> run_ranks(const std::shared_ptr<const Model>& model,
                                      const dist::ParallelLayout& layout,
                                      const GenerateRequest& r) {
  wanrt_test::TempDir dir;
  const int world = layout.world();
  std::vector<GenerateResult> results(static_cast<std::size_t>(world));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        dist::DistEnv env;
        env.rank = env.local_rank = rank;
        env.world_size = env.local_world_size = world;
        env.store_file = (dir.path() / "store").string();
        env.timeout = std::chrono::seconds(60);
        SessionOptions options;
        options.parallel = std::make_shared<dist::Parallelism>(
            dist::make_parallelism(dist::ProcessGroup::connect(env), layout));
        Session session(model, options);
        results[static_cast<std::size_t>(rank)] = session.generate(r);
      } catch (...) {
        errors[static_cast<std::size_t>(rank)] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return results;
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

}  // namespace

TEST_CASE("CFG parallel on two ranks equals the one-process run", "[models][dist]") {
  at::set_num_threads(1);
  const auto model = load("tiny-ti2v");
  const GenerateResult want = Session(model, {}).generate(request());
  const auto got = run_ranks(model, dist::choose_layout(2, true, 2), request());
  for (const GenerateResult& g : got) {
    INFO("relative error " << relative_error(g.latent, want.latent));
    // The same passes on the same tensors, one per rank: equal to 1e-6 (in fact bitwise).
    CHECK(relative_error(g.latent, want.latent) <= 1e-6);
    CHECK(g.parallel == "2 ranks: 2 CFG");
    CHECK(g.dit_calls * 2 == want.dit_calls);
    CHECK(g.comm_seconds > 0);
  }
  // Only the leader decodes; its video is the one-process video.
  REQUIRE(got[0].decoded);
  CHECK_FALSE(got[1].decoded);
  CHECK(got[1].frame_count == 0);
  CHECK(at::equal(got[0].frames, want.frames));
}

TEST_CASE("sequence parallel on two ranks matches the one-process run", "[models][dist]") {
  at::set_num_threads(1);
  for (const char* bundle : {"tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe"}) {
    INFO(bundle);
    const auto model = load(bundle);
    GenerateRequest r = request();
    if (model->spec().task == "i2v" || model->spec().task == "ti2v") {
      r.image = at::rand({64, 64, 3}, at::kFloat).mul(255).to(at::kByte);
    }
    const GenerateResult want = Session(model, {}).generate(r);
    const auto got = run_ranks(model, dist::choose_layout(2, true, 1), r);
    for (const GenerateResult& g : got) {
      const double err = relative_error(g.latent, want.latent);
      INFO("relative error " << err);
      // Products over half the rows may round otherwise; the rest is the same arithmetic.
      CHECK(err <= 1e-5);
      CHECK(g.parallel == "2 ranks: 2 sequence");
    }
  }
}

TEST_CASE("CFG x sequence on four ranks matches the one-process run", "[models][dist]") {
  at::set_num_threads(1);
  const auto model = load("tiny-ti2v");
  const GenerateResult want = Session(model, {}).generate(request());
  const auto got = run_ranks(model, dist::choose_layout(4, true), request());
  for (const GenerateResult& g : got) {
    CHECK(relative_error(g.latent, want.latent) <= 1e-5);
    CHECK(g.parallel == "4 ranks: 2 CFG x 2 sequence");
  }
}

TEST_CASE("sequence parallel refuses a head count it cannot split", "[models][dist]") {
  const auto group = dist::ProcessGroup::single();
  CHECK(wan22::rank_counts_dividing(12) == "1, 2, 3, 4, 6 or 12");
  CHECK(wan22::rank_counts_dividing(1) == "1");
  // The tiny models have 2 heads: 3 sequence ranks cannot split them.
  const auto model = load("tiny-ti2v");
  REQUIRE(model->spec().dit_heads == 2);
  try {
    run_ranks(model, dist::choose_layout(3, true, 1), request());
    FAIL("three sequence ranks ran a model with two heads");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kUsage);
    CHECK_THAT(e.what(), Catch::Contains("2 attention heads do not split evenly"));
    CHECK_THAT(e.hint(), Catch::Contains("1 or 2"));
  }
}
