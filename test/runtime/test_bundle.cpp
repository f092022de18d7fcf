#include <unistd.h>

#include "support/catch.h"
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/version.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;
using wanrt::BundleOptions;
using wanrt::ErrorCategory;
using wanrt_test::BundleCopy;

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

// Index of the first line starting with `prefix + ":"` after the line "  <component>:" under
// "components:" (from the top when component is empty).
std::size_t find_key_line(const std::vector<std::string>& lines, const std::string& component,
                          const std::string& prefix) {
  std::size_t i = 0;
  if (!component.empty()) {
    while (i < lines.size() && lines[i] != "components:") ++i;
    while (i < lines.size() && lines[i] != "  " + component + ":") ++i;
    REQUIRE(i < lines.size());
  }
  for (; i < lines.size(); ++i) {
    if (lines[i].compare(0, prefix.size() + 1, prefix + ":") == 0) return i;
  }
  FAIL("no line '" << prefix << ":' in the manifest");
  return 0;
}

// Sets the value of a manifest line and returns its 1-based line number.
int set_value(const BundleCopy& b, const std::string& component, const std::string& prefix,
              const std::string& value) {
  auto lines = split_lines(b.yaml());
  const std::size_t i = find_key_line(lines, component, prefix);
  lines[i] = prefix + ": " + value;
  b.set_yaml(join_lines(lines));
  return static_cast<int>(i) + 1;
}

std::string get_value(const BundleCopy& b, const std::string& component,
                      const std::string& prefix) {
  const auto lines = split_lines(b.yaml());
  return lines[find_key_line(lines, component, prefix)].substr(prefix.size() + 2);
}

// The Error read_bundle throws (or a test failure when it does not throw).
wanrt::Error bundle_error(const std::string& dir, BundleOptions options = {}) {
  try {
    wanrt::read_bundle(dir, options);
  } catch (const wanrt::Error& e) {
    return e;
  }
  FAIL("read_bundle(" << dir << ") did not throw");
  return wanrt::Error(ErrorCategory::kInternal, "unreachable");
}

std::string where(const BundleCopy& b, int line) {
  return (fs::canonical(b.dir()) / "wanrt.yaml").string() + ":" + std::to_string(line) + ":";
}

// sha256 by coreutils, an implementation independent of ours.
std::string sha256sum(const fs::path& path) {
  const std::string command = "sha256sum '" + path.string() + "'";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[128] = {};
  const std::size_t got = fread(buffer, 1, 64, pipe);
  pclose(pipe);
  REQUIRE(got == 64);
  return std::string(buffer, 64);
}

}  // namespace

TEST_CASE("sha256_file matches the FIPS 180-2 test vectors and sha256sum", "[runtime]") {
  wanrt_test::TempDir tmp;
  const fs::path abc = tmp.path() / "abc";
  BundleCopy::write(abc, "abc");
  CHECK(wanrt::sha256_file(abc.string()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const fs::path empty = tmp.path() / "empty";
  BundleCopy::write(empty, "");
  CHECK(wanrt::sha256_file(empty.string()) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  // More than one 8 MiB chunk: progress per chunk, ending at the file size.
  const std::int64_t size = (std::int64_t{8} << 20) + 12345;
  std::string data(static_cast<std::size_t>(size), '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) % 251);
  const fs::path big = tmp.path() / "big";
  BundleCopy::write(big, data);
  std::vector<std::int64_t> done;
  const std::string hash =
      wanrt::sha256_file(big.string(), [&](std::int64_t d, std::int64_t total) {
        CHECK(total == size);
        done.push_back(d);
      });
  CHECK(hash == sha256sum(big));
  REQUIRE(done.size() == 2);
  CHECK(done[0] == (std::int64_t{8} << 20));
  CHECK(done[1] == size);

  CHECK_THROWS_WITH(wanrt::sha256_file((tmp.path() / "missing").string()),
                    Catch::Contains("missing"));
}

TEST_CASE("a tiny bundle is read with its components in file order", "[runtime]") {
  const std::string dir = wanrt_test::tiny_bundle("tiny-t2v-moe");
  std::set<std::string> hashed;
  BundleOptions options;
  options.hash_progress = [&](const std::string& file, std::int64_t done, std::int64_t total) {
    CHECK(done <= total);
    if (done == total) hashed.insert(file);
  };
  const auto m = wanrt::read_bundle(dir, options);
  CHECK(m.root == fs::canonical(dir).string());
  CHECK(m.format_version == 2);
  CHECK_FALSE(m.profile);
  CHECK(m.task == "t2v");
  CHECK(m.config_name == "tiny-t2v-moe");
  // The fixture exports with the PyTorch this build's LibTorch comes from: SDPA from 2.1 on.
  CHECK(m.attention == (wanrt::libtorch_has_sdpa() ? "sdpa" : "math"));
  REQUIRE(m.components.size() == 4);
  CHECK(m.components[0].name == "text_encoder");
  CHECK(m.components[1].name == "dit_high_noise");
  CHECK(m.components[2].name == "dit_low_noise");
  CHECK(m.components[3].name == "vae");
  CHECK(m.component("dit_high_noise").expert == "high_noise");
  CHECK(m.component("dit_low_noise").expert == "low_noise");
  CHECK(m.component("text_encoder").expert.empty());
  CHECK(m.has_component("vae"));
  CHECK_FALSE(m.has_component("dit"));
  CHECK(m.architecture.IsMap());
  CHECK(m.sampling.IsMap());
  CHECK(m.tokenizer_path == (fs::canonical(dir) / "tokenizer" / "spiece.model").string());

  for (const auto& c : m.components) {
    INFO(c.name);
    // The recorded hash is the file's (checked with coreutils, not with our sha256).
    CHECK(c.sha256 == sha256sum(m.path_of(c)));
    CHECK(m.path_of(c) == (fs::canonical(dir) / (c.name + ".pt")).string());
    CHECK(hashed.count(c.file) == 1);
    std::int64_t sum = c.non_block_bytes;
    for (auto b : c.block_bytes) sum += b;
    CHECK(sum == c.bytes);
    CHECK(c.dtype == "fp32");
    CHECK_FALSE(c.contract.methods.empty());
  }
  CHECK(hashed.count("tokenizer/spiece.model") == 1);
  const auto& te = m.component("text_encoder");
  CHECK(te.staged());
  CHECK(te.contract.blocks_attr == "blocks");
  CHECK(te.contract.num_blocks == static_cast<int>(te.block_bytes.size()));
  CHECK(te.contract.inputs == std::vector<std::string>{"ids", "mask"});
  CHECK(m.component("dit_low_noise").contract.inputs ==
        std::vector<std::string>{"x", "t", "context"});
  const auto& vae = m.component("vae");
  CHECK(vae.contract.kind == "vae");
  CHECK(vae.block_bytes.empty());
  CHECK(vae.bytes == vae.non_block_bytes);

  try {
    m.component("dit");
    FAIL("expected an error");
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("'dit'") && Catch::Contains("dit_high_noise") &&
                             Catch::Contains("dit_low_noise"));
  }
}

TEST_CASE("a directory without wanrt.yaml says what it holds", "[runtime]") {
  BundleCopy b;
  fs::remove(b.file("wanrt.yaml"));
  auto e = bundle_error(b.dir());
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::Contains("no wanrt.yaml") && Catch::Contains("dit.pt") &&
                           Catch::Contains("tokenizer/"));
  CHECK_THAT(e.hint(), Catch::Contains("wanrt_export"));

  // The parent of several bundles: the hint names them.
  e = bundle_error(wanrt_test::tiny_bundles_dir());
  CHECK_THAT(e.hint(), Catch::Contains("tiny-ti2v") && Catch::Contains("tiny-i2v-moe"));

  e = bundle_error("/nonexistent/bundle");
  CHECK_THAT(e.what(), Catch::Contains("/nonexistent/bundle") && Catch::Contains("does not exist"));
  e = bundle_error(b.file("dit.pt").string());
  CHECK_THAT(e.what(), Catch::Contains("not a directory"));
}

TEST_CASE("manifest schema errors name the file, line and key", "[runtime]") {
  BundleCopy b;
  BundleOptions no_verify;
  no_verify.verify = false;

  SECTION("attention: sdpa is read, an unknown kind is refused, absent means math") {
    const int sdpa_line = set_value(b, "", "attention", "sdpa");
    if (wanrt::libtorch_has_sdpa()) {
      CHECK(wanrt::read_bundle(b.dir(), no_verify).attention == "sdpa");
    } else {  // a LibTorch without SDPA could not even load the components: say so up front
      const auto e = bundle_error(b.dir(), no_verify);
      CHECK_THAT(e.what(), Catch::StartsWith(where(b, sdpa_line) + " key 'attention'") &&
                               Catch::Contains("LibTorch 2.1 or later"));
      CHECK_THAT(e.hint(), Catch::Contains("--attention math"));
    }
    const int line = set_value(b, "", "attention", "flash");
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::StartsWith(where(b, line) + " key 'attention'") &&
                   Catch::Contains("expected math or sdpa"));
    auto lines = split_lines(b.yaml());
    lines.erase(lines.begin() + static_cast<long>(find_key_line(lines, "", "attention")));
    b.set_yaml(join_lines(lines));
    CHECK(wanrt::read_bundle(b.dir(), no_verify).attention == "math");
  }
  SECTION("a newer format_version names the versions; an older one is unsupported") {
    int line = set_value(b, "", "format_version", "3");
    auto e = bundle_error(b.dir(), no_verify);
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'format_version'") &&
                             Catch::Contains("format_version 3 comes from a newer exporter") &&
                             Catch::Contains(std::string("wanrt ") + wanrt::version() +
                                             " reads format_version 1 to 2"));
    line = set_value(b, "", "format_version", "0");
    e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'format_version'") &&
                             Catch::Contains("unsupported format_version 0"));
  }
  SECTION("an unknown key anywhere is refused, with the nearest valid key") {
    // (manifest line prefix, component, misspelt key, what the error names, what it suggests)
    struct Case {
      std::string prefix, component, misspelt, full, nearest;
    };
    const Case cases[] = {
        {"attention", "", "atention", "atention", "attention"},
        {"  text_len", "", "  txt_len", "tokenizer.txt_len", "text_len"},
        {"    block_bytes", "dit", "    blok_bytes", "components.dit.blok_bytes", "block_bytes"},
        {"      num_blocks", "dit", "      num_blokcs", "components.dit.contract.num_blokcs",
         "num_blocks"},
    };
    for (const Case& c : cases) {
      INFO(c.full);
      const std::string original = b.yaml();
      auto lines = split_lines(original);
      const std::size_t i = find_key_line(lines, c.component, c.prefix);
      lines[i] = c.misspelt + lines[i].substr(c.prefix.size());
      b.set_yaml(join_lines(lines));
      const auto e = bundle_error(b.dir(), no_verify);
      CHECK(e.category() == ErrorCategory::kBundle);
      CHECK_THAT(e.what(), Catch::StartsWith(where(b, static_cast<int>(i) + 1) + " key '" +
                                             c.full + "': unknown key"));
      CHECK_THAT(e.hint(), Catch::StartsWith("did you mean '" + c.nearest + "'?"));
      b.set_yaml(original);
    }
    // Nothing close: the hint lists the keys instead of guessing.
    b.set_yaml(b.yaml() + "colour_scheme: dark\n");
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::EndsWith("key 'colour_scheme': unknown key"));
    CHECK_THAT(e.hint(), Catch::StartsWith("known keys: format_version, profile, model_id"));
    b.set_yaml(b.yaml().substr(0, b.yaml().size() - std::string("colour_scheme: dark\n").size()));
    CHECK_NOTHROW(wanrt::read_bundle(b.dir(), no_verify));
  }
  SECTION("missing required key") {
    auto lines = split_lines(b.yaml());
    lines.erase(lines.begin() + static_cast<long>(find_key_line(lines, "", "model_id")));
    b.set_yaml(join_lines(lines));
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::Contains("wanrt.yaml:") && Catch::Contains("key 'model_id'") &&
                             Catch::Contains("missing required key"));
  }
  SECTION("format 2 components name their weights; format 1 ones cannot") {
    auto lines = split_lines(b.yaml());
    lines.erase(lines.begin() + static_cast<long>(find_key_line(lines, "dit", "    weights")));
    b.set_yaml(join_lines(lines));
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::Contains("key 'components.dit.weights'") && Catch::Contains("missing"));
    b.set_yaml(join_lines(split_lines(BundleCopy::read(
        fs::path(wanrt_test::tiny_bundle("tiny-ti2v")) / "wanrt.yaml"))));
    set_value(b, "", "format_version", "1");
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::Contains("key 'components.text_encoder.weights'") &&
                             Catch::Contains("unknown key"));
  }
  SECTION("missing component key") {
    auto lines = split_lines(b.yaml());
    lines.erase(lines.begin() + static_cast<long>(find_key_line(lines, "dit", "    dtype")));
    b.set_yaml(join_lines(lines));
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::Contains("key 'components.dit.dtype'") && Catch::Contains("missing"));
  }
  SECTION("wrong type") {
    const int line = set_value(b, "text_encoder", "    parameters", "many");
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(),
               Catch::StartsWith(where(b, line) + " key 'components.text_encoder.parameters'") &&
                   Catch::Contains("'many'"));
  }
  SECTION("a list where a list is due") {
    const int line = set_value(b, "dit", "    block_bytes", "12");
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::StartsWith(where(b, line) + " key 'components.dit.block_bytes'") &&
                   Catch::Contains("list"));
  }
  SECTION("bytes differ from non_block_bytes + sum(block_bytes)") {
    const long bytes = std::stol(get_value(b, "dit", "    bytes"));
    const int line = set_value(b, "dit", "    bytes", std::to_string(bytes + 1));
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'components.dit.bytes'") &&
                             Catch::Contains(std::to_string(bytes + 1)) &&
                             Catch::Contains(std::to_string(bytes)));
  }
  SECTION("num_blocks differs from the block_bytes list") {
    const int line = set_value(b, "text_encoder", "      num_blocks", "3");
    CHECK_THAT(
        bundle_error(b.dir(), no_verify).what(),
        Catch::StartsWith(where(b, line) + " key 'components.text_encoder.contract.num_blocks'") &&
            Catch::Contains("3 blocks") && Catch::Contains("lists 2"));
  }
  SECTION("a staged contract needs its blocks attribute") {
    auto lines = split_lines(b.yaml());
    lines.erase(lines.begin() + static_cast<long>(find_key_line(lines, "dit", "      blocks")));
    b.set_yaml(join_lines(lines));
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::Contains("key 'components.dit.contract.blocks'"));
  }
  SECTION("a malformed sha256") {
    const int line = set_value(b, "vae", "    sha256", "abc");
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::StartsWith(where(b, line) + " key 'components.vae.sha256'"));
  }
  SECTION("a profile is not a bundle") {
    auto text = b.yaml();
    b.set_yaml("profile: true\n" + text);
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, 1) + " key 'profile'") &&
                             Catch::Contains("planning profile"));
  }
  SECTION("YAML syntax errors") {
    b.set_yaml(b.yaml() + "  broken: [1, 2\n");
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(), Catch::Contains("YAML syntax error"));
  }
}

TEST_CASE("paths must stay inside the bundle", "[runtime]") {
  BundleCopy b;
  BundleOptions no_verify;
  no_verify.verify = false;

  SECTION("a '..' component") {
    const int line = set_value(b, "dit", "    file", "../dit.pt");
    // The file exists there, so only the path rule can reject it.
    fs::copy_file(b.file("dit.pt"), b.file("../dit.pt"));
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'components.dit.file'") &&
                             Catch::Contains(".."));
  }
  SECTION("an absolute path, even to the bundle's own file") {
    const int line = set_value(b, "dit", "    file", fs::canonical(b.file("dit.pt")).string());
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::StartsWith(where(b, line) + " key 'components.dit.file'") &&
                   Catch::Contains("absolute"));
  }
  SECTION("a symlink leading out of the bundle") {
    fs::remove(b.file("vae.pt"));
    fs::create_symlink("/etc/passwd", b.file("vae.pt"));
    const int line = static_cast<int>(find_key_line(split_lines(b.yaml()), "vae", "    file")) + 1;
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'components.vae.file'") &&
                             Catch::Contains("outside the bundle") &&
                             Catch::Contains("/etc/passwd"));
  }
  SECTION("a symlinked tokenizer directory leading out of the bundle") {
    wanrt_test::TempDir outside;
    fs::copy(b.file("tokenizer"), outside.path() / "tokenizer", fs::copy_options::recursive);
    fs::remove_all(b.file("tokenizer"));
    fs::create_directory_symlink(outside.path() / "tokenizer", b.file("tokenizer"));
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::Contains("key 'tokenizer.file'") && Catch::Contains("outside the bundle"));
  }
  SECTION("a symlink inside the bundle is fine") {
    fs::create_directory(b.file("weights"));
    fs::rename(b.file("dit.pt"), b.file("weights/dit.pt"));
    fs::create_symlink("weights/dit.pt", b.file("dit.pt"));
    const auto m = wanrt::read_bundle(b.dir());
    CHECK(m.path_of(m.component("dit")) == (fs::canonical(b.dir()) / "weights/dit.pt").string());
  }
  SECTION("a missing component file") {
    fs::remove(b.file("vae.pt"));
    const int line = static_cast<int>(find_key_line(split_lines(b.yaml()), "vae", "    file")) + 1;
    const auto e = bundle_error(b.dir(), no_verify);
    CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'components.vae.file'") &&
                             Catch::Contains("vae.pt") && Catch::Contains("missing"));
    CHECK_THAT(e.hint(), Catch::Contains("re-export"));
  }
  SECTION("a missing tokenizer") {
    fs::remove(b.file("tokenizer/spiece.model"));
    CHECK_THAT(bundle_error(b.dir(), no_verify).what(),
               Catch::Contains("key 'tokenizer.file'") && Catch::Contains("spiece.model"));
  }
  SECTION("resolve applies the same rules") {
    const auto m = wanrt::read_bundle(b.dir(), no_verify);
    CHECK(m.resolve("dit.pt", "x") == (fs::canonical(b.dir()) / "dit.pt").string());
    CHECK_THROWS_WITH(m.resolve("../etc/passwd", "my.key"),
                      Catch::Contains("key 'my.key'") && Catch::Contains(".."));
    CHECK_THROWS_WITH(m.resolve("/etc/passwd", "my.key"), Catch::Contains("absolute"));
    CHECK_THROWS_WITH(m.resolve("tokenizer", "my.key"), Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(m.resolve("nothing.pt", "my.key"), Catch::Contains("missing"));
  }
}

TEST_CASE("sha256 mismatches name the file and both hashes", "[runtime]") {
  BundleCopy b;
  const std::string expected = get_value(b, "dit", "    sha256");
  {
    // Flip one byte in the middle of the archive.
    std::fstream f(b.file("dit.pt"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(b.file("dit.pt")) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(b.file("dit.pt")) / 2));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  const std::string actual = sha256sum(b.file("dit.pt"));
  REQUIRE(actual != expected);
  const int line = static_cast<int>(find_key_line(split_lines(b.yaml()), "dit", "    sha256")) + 1;
  const auto e = bundle_error(b.dir());
  CHECK(e.category() == ErrorCategory::kBundle);
  CHECK_THAT(e.what(), Catch::StartsWith(where(b, line) + " key 'components.dit.sha256'") &&
                           Catch::Contains("dit.pt") && Catch::Contains(expected) &&
                           Catch::Contains(actual));
  CHECK_THAT(e.hint(), Catch::Contains("re-export") && Catch::Contains("--no-verify"));

  BundleOptions no_verify;
  no_verify.verify = false;
  CHECK(wanrt::read_bundle(b.dir(), no_verify).components.size() == 3);

  SECTION("the tokenizer is verified too") {
    std::ofstream(b.file("tokenizer/spiece.model"), std::ios::app) << "x";
    set_value(b, "dit", "    sha256", actual);
    CHECK_THAT(bundle_error(b.dir()).what(),
               Catch::Contains("key 'tokenizer.sha256'") && Catch::Contains("spiece.model"));
  }
}

TEST_CASE("the real models' profiles are read without files", "[runtime]") {
  const fs::path profiles = fs::path(WANRT_SOURCE_DIR) / "models" / "profiles";
  // Expected sizes: the official checkpoints' parameter counts (docs/exporter.md) and layer
  // counts (umT5-xxl 24, TI2V-5B 30, A14B 40).
  struct Expect {
    const char* file;
    const char* task;
    std::vector<std::string> components;
    std::int64_t dit_parameters;
    int dit_blocks;
  };
  const std::vector<Expect> expected = {
      {"wan2.2-ti2v-5b.yaml", "ti2v", {"text_encoder", "dit", "vae"}, 4999787712, 30},
      {"wan2.2-t2v-a14b.yaml",
       "t2v",
       {"text_encoder", "dit_high_noise", "dit_low_noise", "vae"},
       14288491584,
       40},
      {"wan2.2-i2v-a14b.yaml",
       "i2v",
       {"text_encoder", "dit_high_noise", "dit_low_noise", "vae"},
       14288901184,
       40},
  };
  for (const auto& x : expected) {
    INFO(x.file);
    const auto m = wanrt::read_profile((profiles / x.file).string());
    CHECK(m.profile);
    CHECK(m.root.empty());
    CHECK(m.tokenizer_path.empty());
    CHECK(m.task == x.task);
    std::vector<std::string> names;
    for (const auto& c : m.components) {
      names.push_back(c.name);
      CHECK(c.file.empty());
      CHECK(c.sha256.empty());
    }
    CHECK(names == x.components);
    const auto& te = m.component("text_encoder");
    CHECK(te.parameters == 5680910336);
    CHECK(te.contract.num_blocks == 24);
    CHECK(te.dtype == "bf16");
    const auto& dit = m.component(x.components[1]);
    CHECK(dit.parameters == x.dit_parameters);
    CHECK(dit.contract.num_blocks == x.dit_blocks);
    CHECK(static_cast<int>(dit.block_bytes.size()) == x.dit_blocks);
    CHECK_THROWS_WITH(m.path_of(te), Catch::Contains("profile has no files"));
  }
}

TEST_CASE("keep_fp32_match follows Python's fnmatch.fnmatchcase", "[runtime]") {
  // Expected values computed with Python's fnmatch.fnmatchcase (the exporter's matcher).
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"blocks.*.modulation", "blocks.12.modulation", true},
      {"blocks.*.modulation", "blocks.1.x.modulation", true},
      {"blocks.*.modulation", "blocks.12.modulation.weight", false},
      {"*norm*", "blocks.0.norm1.weight", true},
      {"*norm*", "blocks.0.ffn.0.weight", false},
      {"patch_embedding.*", "patch_embedding.weight", true},
      {"patch_embedding.*", "patch_embedding", false},
      {"block?", "blocks", true},
      {"block?", "block", false},
      {"blocks?0", "blocks.0", true},
      {"[ab]x", "ax", true},
      {"[ab]x", "cx", false},
      {"[!a]x", "bx", true},
      {"[!a]x", "ax", false},
      {"[a-c]", "b", true},
      {"[a-c]", "d", false},
      {"a[b", "a[b", true},
      {"[]]", "]", true},
      {"[!]]", "a", true},
      {"[!]]", "]", false},
      {"", "", true},
      {"", "a", false},
      {"**", "any.thing", true},
      {"*.weight", ".weight", true},
      {"a*b*c", "aXbYbZc", true},
      {"a*b*c", "aXbYbZ", false},
      {"[a-]", "-", true},
      {"[-a]", "-", true},
      {"head.modulation", "head.modulation", true},
      {"head.modulation", "headXmodulation", false},
      {"*[0-9]", "blocks.7", true},
      {"[z-a]", "m", false},
  };
  for (const auto& c : cases) {
    INFO("pattern '" << c.pattern << "', name '" << c.name << "'");
    CHECK(wanrt::keep_fp32_match(c.pattern, c.name) == c.match);
  }
  const std::vector<std::string> patterns = {"time_embedding.*", "blocks.*.norm3.*"};
  CHECK(wanrt::keep_fp32_match_any(patterns, "blocks.3.norm3.bias"));
  CHECK_FALSE(wanrt::keep_fp32_match_any(patterns, "blocks.3.norm2.bias"));
  CHECK_FALSE(wanrt::keep_fp32_match_any({}, "x"));
}
