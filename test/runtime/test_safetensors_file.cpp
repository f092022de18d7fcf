#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/script.h>

#include "support/catch.h"
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/error.h"
#include "runtime/safetensors_file.h"
#include "support/safetensors_writer.h"
#include "support/tiny_bundles.h"

using wanrt::ErrorCategory;
using wanrt::MappedSafetensors;
using wanrt_test::safetensors_bytes;
using wanrt_test::TempDir;

namespace {

std::string write_file(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = (dir.path() / name).string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string floats(std::initializer_list<float> values) {
  std::string s(values.size() * sizeof(float), '\0');
  std::memcpy(s.data(), values.begin(), s.size());  // x86-64: little-endian like the format
  return s;
}

wanrt::Error parse_error(const std::string& bytes) {
  try {
    wanrt::parse_safetensors_header(bytes.data(), bytes.size(),
                                    static_cast<std::int64_t>(bytes.size()), "f.safetensors");
  } catch (const wanrt::Error& e) {
    return e;
  }
  FAIL("no error for a bad header");
  return wanrt::Error(ErrorCategory::kInternal, "unreachable");
}

const nlohmann::json kTwo = {
    {"a", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}},
    {"b", {{"dtype", "BF16"}, {"shape", {3}}, {"data_offsets", {16, 22}}}},
    {"__metadata__", {{"wanrt_component", "dit"}}}};

}  // namespace

TEST_CASE("a safetensors header is parsed into entries in data order", "[runtime]") {
  const std::string bytes = safetensors_bytes(kTwo, std::string(22, '\0'));
  const auto h = wanrt::parse_safetensors_header(bytes.data(), bytes.size(),
                                                 static_cast<std::int64_t>(bytes.size()), "f");
  REQUIRE(h.entries.size() == 2);
  CHECK(h.entries[0].name == "a");
  CHECK(h.entries[0].scalar_type == at::kFloat);
  CHECK(h.entries[0].shape == std::vector<std::int64_t>{2, 2});
  CHECK(h.entries[1].name == "b");
  CHECK(h.entries[1].scalar_type == at::kBFloat16);
  CHECK((h.entries[1].begin == 16 && h.entries[1].end == 22));
  CHECK(h.metadata.at("wanrt_component") == "dit");
  CHECK(h.data_start % 8 == 0);
  CHECK(static_cast<std::size_t>(h.data_start) == bytes.size() - 22);
}

TEST_CASE("bad safetensors headers are bundle errors naming the file and tensor", "[runtime]") {
  const std::string good_data(22, '\0');
  SECTION("too short") {
    const auto e = parse_error("abc");
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("f.safetensors") && Catch::Contains("too short"));
  }
  SECTION("header length beyond the file") {
    std::string bytes = safetensors_bytes(kTwo, good_data);
    bytes[0] = '\xff';
    bytes[1] = '\xff';
    CHECK_THAT(parse_error(bytes).what(), Catch::Contains("does not fit"));
  }
  SECTION("not JSON") {
    CHECK_THAT(parse_error(std::string("\x04\0\0\0\0\0\0\0{{{{", 12)).what(),
               Catch::Contains("not valid JSON"));
  }
  SECTION("truncated data") {
    const std::string bytes = safetensors_bytes(kTwo, std::string(20, '\0'));
    CHECK_THAT(parse_error(bytes).what(),
               Catch::Contains("tensor 'b'") && Catch::Contains("truncated"));
  }
  SECTION("unknown dtype") {
    nlohmann::json h = kTwo;
    h["a"]["dtype"] = "F8";
    CHECK_THAT(parse_error(safetensors_bytes(h, good_data)).what(),
               Catch::Contains("tensor 'a'") && Catch::Contains("unsupported dtype"));
  }
  SECTION("offsets that disagree with dtype and shape") {
    nlohmann::json h = kTwo;
    h["a"]["shape"] = {2, 3};
    CHECK_THAT(parse_error(safetensors_bytes(h, good_data)).what(),
               Catch::Contains("tensor 'a'") && Catch::Contains("needs 24"));
  }
  SECTION("overlapping tensors") {
    nlohmann::json h = kTwo;
    h["b"]["data_offsets"] = {10, 16};
    CHECK_THAT(parse_error(safetensors_bytes(h, good_data)).what(), Catch::Contains("overlap"));
  }
  SECTION("extra keys in an entry") {
    nlohmann::json h = kTwo;
    h["a"]["offset"] = 0;
    CHECK_THAT(parse_error(safetensors_bytes(h, good_data)).what(),
               Catch::Contains("exactly dtype, shape and data_offsets"));
  }
  SECTION("a shape whose size overflows") {
    nlohmann::json h = kTwo;
    h["a"]["shape"] = {std::int64_t{1} << 40, std::int64_t{1} << 40};
    CHECK_THAT(parse_error(safetensors_bytes(h, good_data)).what(),
               Catch::Contains("more than the file"));
  }
}

TEST_CASE("mapped tensors read the file's bytes in place", "[runtime]") {
  TempDir dir;
  const std::string data = floats({1.5f, -2.0f, 3.25f, 4.0f}) + std::string("\x80\x3f\x00\x40\x40\x40", 6);
  const std::string path = write_file(dir, "w.safetensors", safetensors_bytes(kTwo, data, 64));
  auto file = MappedSafetensors::open(path);
  bool copied = true;
  const at::Tensor a = file->tensor(*file->find("a"), &copied);
  CHECK_FALSE(copied);
  CHECK(a.sizes() == c10::IntArrayRef({2, 2}));
  CHECK(a.flatten()[2].item<float>() == 3.25f);
  // bf16 0x3f80 = 1, 0x4000 = 2, 0x4040 = 3.
  const at::Tensor b = file->tensor(*file->find("b"));
  CHECK(b.to(at::kFloat).sum().item<float>() == 6.0f);
  // In place: the tensor's bytes are the mapping's.
  const auto* begin = static_cast<const char*>(a.data_ptr());
  CHECK(std::string(begin, 16) == data.substr(0, 16));
  CHECK(file->file_begin(*file->find("a")) % 64 == 0);
  CHECK(file->find("missing") == nullptr);
  // The tensor keeps the mapping alive after the last other reference goes.
  file.reset();
  CHECK(a.sum().item<float>() == 6.75f);
}

TEST_CASE("a tensor whose data is not aligned to its element size is copied", "[runtime]") {
  TempDir dir;
  const nlohmann::json h = {
      {"x", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}},
      {"y", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {1, 5}}}}};
  const std::string path =
      write_file(dir, "u.safetensors", safetensors_bytes(h, std::string("\x07", 1) + floats({9.0f}), 64));
  auto file = MappedSafetensors::open(path);
  bool copied = false;
  const at::Tensor y = file->tensor(*file->find("y"), &copied);
  CHECK(copied);
  CHECK(y.item<float>() == 9.0f);
}

TEST_CASE("dont_need drops a range from the resident set and it reads back the same",
          "[runtime]") {
  TempDir dir;
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::int64_t n = 64 * page / 4;  // 64 pages of floats
  const at::Tensor values = at::arange(n, at::kFloat);
  std::string data(static_cast<std::size_t>(n * 4), '\0');
  std::memcpy(data.data(), values.data_ptr(), data.size());
  const nlohmann::json h = {{"v", {{"dtype", "F32"}, {"shape", {n}}, {"data_offsets", {0, n * 4}}}}};
  auto file = MappedSafetensors::open(write_file(dir, "big.safetensors", safetensors_bytes(h, data, 64)));
  const auto& e = *file->find("v");
  const at::Tensor v = file->tensor(e);
  const std::int64_t begin = file->file_begin(e), end = file->file_end(e);
  REQUIRE(v.sum().item<double>() == values.sum().item<double>());  // touches every page
  const std::int64_t touched = file->resident_bytes(begin, end);
  if (touched < 0) WARN("WANRT_SKIP: /proc/self/pagemap is not readable here");
  REQUIRE(touched >= 0);
  CHECK(touched >= n * 4);  // every page of the range, in whole pages
  file->dont_need(begin, end);
  CHECK(file->resident_bytes(begin, end) == 0);
  CHECK(at::equal(v, values));  // read again from the page cache
  CHECK(file->resident_bytes(begin, end) >= n * 4);
}

TEST_CASE("a file that cannot be opened is a bundle error naming it", "[runtime]") {
  try {
    MappedSafetensors::open("/nonexistent/w.safetensors");
    FAIL("no error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/w.safetensors"));
  }
}

namespace {

// Rss and Pss (bytes) of the mapping of this process that contains `address`, from
// /proc/self/smaps; {-1, -1} when not found.
std::pair<std::int64_t, std::int64_t> smaps_of(const void* address) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  std::int64_t rss = -1, pss = -1;
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  while (std::getline(in, line)) {
    unsigned long long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
      if (inside) break;
      inside = a >= lo && a < hi;
      continue;
    }
    if (!inside) continue;
    long long kib = 0;
    if (std::sscanf(line.c_str(), "Rss: %lld kB", &kib) == 1) rss = kib * 1024;
    if (std::sscanf(line.c_str(), "Pss: %lld kB", &kib) == 1) pss = kib * 1024;
  }
  return {rss, pss};
}

}  // namespace

TEST_CASE("two processes mapping one weights file share its pages", "[runtime]") {
  TempDir dir;
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::int64_t n = 256 * page / 4;
  const nlohmann::json h = {{"v", {{"dtype", "F32"}, {"shape", {n}}, {"data_offsets", {0, n * 4}}}}};
  const std::string path =
      write_file(dir, "shared.safetensors", safetensors_bytes(h, std::string(static_cast<std::size_t>(n * 4), '\x01'), 64));
  auto file = MappedSafetensors::open(path);
  const at::Tensor v = file->tensor(*file->find("v"));
  const auto touch = [](const at::Tensor& t) {
    // Plain reads (no LibTorch call: the forked child below must not use its thread pools).
    const auto* p = static_cast<const volatile unsigned char*>(t.data_ptr());
    unsigned sum = 0;
    for (std::size_t i = 0; i < t.nbytes(); i += 512) sum += p[i];
    return sum;
  };
  REQUIRE(touch(v) > 0);
  const auto [rss_alone, pss_alone] = smaps_of(v.data_ptr());
  if (rss_alone < 0) WARN("WANRT_SKIP: /proc/self/smaps is not readable here");
  REQUIRE(rss_alone >= n * 4);

  int ready[2], done[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(done) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A second process: its own mapping of the file, every page touched, then wait.
    auto mine = MappedSafetensors::open(path);
    const at::Tensor w = mine->tensor(*mine->find("v"));
    const unsigned sum = touch(w);
    char c = sum > 0 ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  CHECK(c == 'y');
  const auto [rss, pss] = smaps_of(v.data_ptr());
  (void)!::write(done[1], &c, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
  INFO("alone: Rss " << rss_alone << " Pss " << pss_alone << "; shared: Rss " << rss << " Pss "
                     << pss);
  CHECK(rss == rss_alone);
  // Each page is counted half to each process: the pages are one copy, shared.
  CHECK(pss <= rss * 6 / 10);
  CHECK(pss >= rss * 4 / 10);
}
