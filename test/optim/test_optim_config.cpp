#include "support/catch.h"

#include "optim/optim_config.h"
#include "runtime/error.h"

using wanrt::parse_optimization_config;
using wanrt::PerformancePriority;

TEST_CASE("an empty config gives the specification's defaults", "[optim]") {
  const auto c = parse_optimization_config("", "empty.yaml");
  CHECK(c.vram_safety_margin_mb == 1024);
  CHECK(c.max_chunk_size == 8);
  CHECK(c.mixed_precision_threshold_mb == 8192);
  CHECK(c.cpu_offload_threshold_mb == 6144);
  CHECK(c.performance_priority == PerformancePriority::kBalanced);
  CHECK_FALSE(c.enable_aggressive_optimization);
}

TEST_CASE("values in the file override only their own keys", "[optim]") {
  const auto c = parse_optimization_config(
      "vram_safety_margin_mb: 512\nperformance_priority: memory\n"
      "enable_aggressive_optimization: true\n",
      "c.yaml");
  CHECK(c.vram_safety_margin_mb == 512);
  CHECK(c.performance_priority == PerformancePriority::kMemory);
  CHECK(c.enable_aggressive_optimization);
  CHECK(c.max_chunk_size == 8);
}

TEST_CASE("bad config files are errors naming file, line and key", "[optim]") {
  struct Case {
    const char* text;
    const char* expected_prefix;
  };
  const Case cases[] = {
      {"max_chunk_size: 4\nvram_margin: 3\n", "bad.yaml:2: key 'vram_margin': unknown key"},
      {"max_chunk_size: four\n", "bad.yaml:1: key 'max_chunk_size': expected a value of type"},
      {"\n\nmax_chunk_size: 0\n", "bad.yaml:3: key 'max_chunk_size': must be >= 1"},
      {"performance_priority: fast\n", "bad.yaml:1: key 'performance_priority': unknown value"},
      {"cpu_offload_threshold_mb: -1\n", "bad.yaml:1: key 'cpu_offload_threshold_mb': must be"},
      {"enable_aggressive_optimization: maybe\n",
       "bad.yaml:1: key 'enable_aggressive_optimization'"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    try {
      parse_optimization_config(c.text, "bad.yaml");
      FAIL("expected an error");
    } catch (const wanrt::Error& e) {
      CHECK(e.category() == wanrt::ErrorCategory::kUsage);
      CHECK_THAT(e.what(), Catch::StartsWith(c.expected_prefix));
    }
  }
}
