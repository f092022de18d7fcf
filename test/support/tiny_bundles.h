// Test helpers for the tiny bundles exported by the ctest fixture `tiny_bundles`
// (test/CMakeLists.txt sets WANRT_TINY_BUNDLES for executables added with TINY_BUNDLES), and
// scratch copies of them that a test may corrupt.
#pragma once

#include <stdlib.h>

#include "support/catch.h"
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/test_data.h"

namespace wanrt_test {

/// The directory holding tiny-ti2v, tiny-t2v-moe and tiny-i2v-moe ($WANRT_TINY_BUNDLES, else
/// the build tree's tiny-bundles/ written by the ctest fixture); fails the test when absent.
inline std::string tiny_bundles_dir() {
  const std::string dir = test_data_dir("WANRT_TINY_BUNDLES", "tiny-bundles");
  if (!std::filesystem::exists(std::filesystem::path(dir) / "tiny-ti2v" / "wanrt.yaml")) {
    FAIL("WANRT_TINY_BUNDLES=" << dir << " holds no tiny-ti2v bundle");
  }
  return dir;
}

/// The path of one tiny bundle ("tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe").
inline std::string tiny_bundle(const std::string& name) {
  return (std::filesystem::path(tiny_bundles_dir()) / name).string();
}

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "wanrt-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) FAIL("mkdtemp failed for " << pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A private copy of a tiny bundle in a temp directory.
class BundleCopy {
 public:
  explicit BundleCopy(const std::string& name = "tiny-ti2v") : dir_(tmp_.path() / name) {
    std::filesystem::copy(tiny_bundle(name), dir_, std::filesystem::copy_options::recursive);
  }
  /// The bundle directory.
  std::string dir() const { return dir_.string(); }
  /// A file inside the bundle.
  std::filesystem::path file(const std::string& relative) const { return dir_ / relative; }

  /// The manifest's text.
  std::string yaml() const { return read(file("wanrt.yaml")); }
  /// Replaces the manifest's text.
  void set_yaml(const std::string& text) const { write(file("wanrt.yaml"), text); }

  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }

 private:
  TempDir tmp_;
  std::filesystem::path dir_;
};

}  // namespace wanrt_test
