// Where the ctest fixtures put generated test data: $<env_name> when set, else the
// sub-directory of the build tree the fixture writes (WANRT_TEST_DATA_DIR, a compile
// definition of every test executable). Running a test binary by hand therefore works after
// one `ctest` run has created the data.
#pragma once

#include <cstdlib>
#include <string>

namespace wanrt_test {

inline std::string test_data_dir(const char* env_name, const char* subdir) {
  const char* value = std::getenv(env_name);
  if (value != nullptr && *value != '\0') return value;
  return std::string(WANRT_TEST_DATA_DIR) + "/" + subdir;
}

}  // namespace wanrt_test
