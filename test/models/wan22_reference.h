// Access to the Python reference outputs written by make_wan22_reference.py (the ctest fixture
// `fixture.wan22_reference`), found through $WANRT_WAN22_REFERENCE.
#pragma once

#include "support/test_data.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include "support/catch.h"
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace wanrt_test {

/// The reference folder, or "" when the tests run outside ctest.
inline std::string wan22_reference_dir() {
  return wanrt_test::test_data_dir("WANRT_WAN22_REFERENCE", "wan22-reference");
}

/// A dict saved with torch.save by the reference script.
inline c10::Dict<c10::IValue, c10::IValue> load_wan22_reference(const std::string& file) {
  const std::string path = wan22_reference_dir() + "/" + file;
  std::ifstream in(path, std::ios::binary);
  INFO("reference file " << path << " (written by fixture.wan22_reference)");
  REQUIRE(in.good());
  const std::vector<char> data((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(data).toGenericDict();
}

/// A list of strings from a reference dict.
inline std::vector<std::string> reference_strings(const c10::Dict<c10::IValue, c10::IValue>& d,
                                                  const std::string& key) {
  std::vector<std::string> out;
  for (const c10::IValue& v : d.at(key).toListRef()) out.push_back(v.toStringRef());
  return out;
}

}  // namespace wanrt_test

/// Skips (ctest reports "skipped") when $WANRT_WAN22_REFERENCE is not set.
#define WANRT_REQUIRE_WAN22_REFERENCE()                                               \
  do {                                                                                \
    if (wanrt_test::wan22_reference_dir().empty()) {                                  \
      WARN(                                                                           \
          "WANRT_SKIP: WANRT_WAN22_REFERENCE not set (run through ctest, which runs " \
          "fixture.wan22_reference first)");                                          \
      return;                                                                         \
    }                                                                                 \
  } while (0)
