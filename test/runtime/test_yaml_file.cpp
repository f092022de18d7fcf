#include "support/catch.h"

#include "runtime/yaml_file.h"

using wanrt::ErrorCategory;
using wanrt::YamlFile;

TEST_CASE("YAML syntax errors name the file, line and column", "[runtime]") {
  try {
    YamlFile::parse("a: 1\nb: [1, 2\nc: 3\n", "cfg.yaml", ErrorCategory::kUsage);
    FAIL("expected a syntax error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kUsage);
    CHECK_THAT(e.what(), Catch::StartsWith("cfg.yaml:"));
    CHECK_THAT(e.what(), Catch::Contains("YAML syntax error"));
  }
}

TEST_CASE("typed access names file, line and key", "[runtime]") {
  const auto file = YamlFile::parse("x: 1\ny: hello\n", "m.yaml", ErrorCategory::kBundle);
  CHECK(file.get<int>(file.root, "x") == 1);
  try {
    file.get<int>(file.root, "y");
    FAIL("expected a type error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::StartsWith("m.yaml:2: key 'y'"));
    CHECK_THAT(e.what(), Catch::Contains("hello"));
  }
}

TEST_CASE("a missing file is an error naming it", "[runtime]") {
  CHECK_THROWS_WITH(YamlFile::load("/nonexistent/wanrt.yaml", ErrorCategory::kBundle),
                    Catch::Contains("/nonexistent/wanrt.yaml"));
}
