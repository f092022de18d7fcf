#include <ATen/ATen.h>
#include <c10/util/intrusive_ptr.h>
#include "support/catch.h"

#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "chunking/chunked_processor.h"
#include "runtime/error.h"

using wanrt::Chunk;
using wanrt::ChunkedProcessor;
using wanrt::ChunkedRunOptions;
using wanrt::Error;
using wanrt::ErrorCategory;

namespace {

// 21 latent frames in chunks of 9 with overlap 2: [0, 9), [7, 16), [12, 21).
constexpr std::int64_t kFrames = 21;

at::Tensor input_frames() {
  at::manual_seed(31);
  return at::randn({2, kFrames, 3, 4}, at::kDouble);
}

}  // namespace

TEST_CASE("the chunked processor blends every chunk and reports progress in order", "[chunking]") {
  const at::Tensor x = input_frames();
  const ChunkedProcessor processor(9, 2, false);
  REQUIRE(processor.plan(kFrames).chunks.size() == 3);
  std::vector<std::pair<std::size_t, std::size_t>> progress;
  std::vector<std::int64_t> starts;
  ChunkedRunOptions options;
  options.blend = wanrt::BlendKind::kCosine;
  options.progress = [&](std::size_t done, std::size_t total) {
    progress.emplace_back(done, total);
  };
  at::Tensor out = at::full_like(x, 7.0);  // zeroed by the processor
  const at::Tensor result = processor.process_chunked_generation(
      out, 1,
      [&](const Chunk& c) {
        starts.push_back(c.start);
        return x.narrow(1, c.start, c.size()) * 3.0;
      },
      options);
  CHECK(result.data_ptr() == out.data_ptr());
  CHECK(at::allclose(result, x * 3.0, 1e-12, 1e-12));
  CHECK(starts == std::vector<std::int64_t>{0, 7, 12});
  using P = std::vector<std::pair<std::size_t, std::size_t>>;
  CHECK(progress == P{{1, 3}, {2, 3}, {3, 3}});
}

TEST_CASE("cancelling before chunk 2 stops the run with a cancelled error", "[chunking]") {
  const at::Tensor x = input_frames();
  const ChunkedProcessor processor(9, 2, true);
  int computed = 0;
  int polls = 0;
  ChunkedRunOptions options;
  options.cancelled = [&] { return ++polls == 2; };  // the poll before chunk 2
  try {
    processor.process_chunked_generation(
        at::empty_like(x), 1,
        [&](const Chunk& c) {
          ++computed;
          return x.narrow(1, c.start, c.size());
        },
        options);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kCancelled);
    CHECK_THAT(e.what(), Catch::Contains("chunk 2/3"));
  }
  CHECK(computed == 1);
  CHECK(polls == 2);
}

TEST_CASE("an error in chunk 2 names the chunk and keeps its category", "[chunking]") {
  const at::Tensor x = input_frames();
  const ChunkedProcessor processor(9, 2, false);
  ChunkedRunOptions options;
  options.label = "denoise window";
  const auto failing_in_chunk_2 = [&](auto thrower) {
    return [&x, thrower](const Chunk& c) {
      if (c.start == 7) thrower();
      return x.narrow(1, c.start, c.size());
    };
  };
  try {
    processor.process_chunked_generation(
        at::empty_like(x), 1, failing_in_chunk_2([] {
          throw Error(ErrorCategory::kOutOfMemory, "CUDA out of memory", "lower the chunk size");
        }),
        options);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kOutOfMemory);
    CHECK_THAT(e.what(), Catch::StartsWith("denoise window 2/3 (range 7-16): CUDA out of memory"));
    CHECK(e.hint() == "lower the chunk size");
  }
  // Other exceptions: bad_alloc is out-of-memory, anything else internal; both name the chunk.
  try {
    processor.process_chunked_generation(at::empty_like(x), 1,
                                         failing_in_chunk_2([] { throw std::bad_alloc(); }));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kOutOfMemory);
    CHECK_THAT(e.what(), Catch::StartsWith("chunk 2/3 (range 7-16): "));
  }
  try {
    processor.process_chunked_generation(
        at::empty_like(x), 1, failing_in_chunk_2([] { throw std::runtime_error("bad frame"); }));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kInternal);
    CHECK(std::string(e.what()) == "chunk 2/3 (range 7-16): bad frame");
  }
  // A wrongly shaped chunk result is the blender's usage error, named the same way.
  try {
    processor.process_chunked_generation(at::empty_like(x), 1, [&](const Chunk&) {
      return at::zeros({2, 1, 3, 4});
    });
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kUsage);
    CHECK_THAT(e.what(), Catch::StartsWith("chunk 1/3 (range 0-9): "));
  }
}

TEST_CASE("memory is released between chunks only with memory_cleanup", "[chunking]") {
  const at::Tensor x = input_frames();
  for (bool cleanup : {true, false}) {
    INFO("memory_cleanup " << cleanup);
    const ChunkedProcessor processor(9, 2, cleanup);
    std::vector<std::string> events;
    // The previous chunk's result must be gone (no owner left) when the next chunk starts.
    std::optional<c10::weak_intrusive_ptr<c10::TensorImpl>> previous;
    bool previous_alive = false;
    ChunkedRunOptions options;
    options.release_memory = [&] { events.push_back("release"); };
    processor.process_chunked_generation(
        at::empty_like(x), 1,
        [&](const Chunk& c) {
          previous_alive = previous_alive || (previous && !previous->expired());
          events.push_back("compute " + std::to_string(c.start));
          at::Tensor result = x.narrow(1, c.start, c.size()).clone();
          previous.emplace(result.getIntrusivePtr());
          return result;
        },
        options);
    if (cleanup) {
      CHECK(events ==
            std::vector<std::string>{"compute 0", "release", "compute 7", "release", "compute 12"});
      CHECK_FALSE(previous_alive);
    } else {
      CHECK(events == std::vector<std::string>{"compute 0", "compute 7", "compute 12"});
    }
  }
}

TEST_CASE("impossible processor sizes are usage errors", "[chunking]") {
  CHECK_THROWS_AS(ChunkedProcessor(0, 0, false), Error);
  CHECK_THROWS_AS(ChunkedProcessor(8, 8, false), Error);
  CHECK_THROWS_AS(ChunkedProcessor(8, -1, false), Error);
  const ChunkedProcessor processor(8, 2, true);
  CHECK(processor.chunk_size() == 8);
  CHECK(processor.overlap() == 2);
  CHECK(processor.memory_cleanup());
  CHECK_THROWS_AS(processor.process_chunked_generation(at::zeros({3, 4}), 2,
                                                       [](const Chunk&) { return at::Tensor(); }),
                  Error);
}
