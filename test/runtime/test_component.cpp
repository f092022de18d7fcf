#include "support/catch.h"
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/bundle.h"
#include "runtime/component.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;
using wanrt::Component;
using wanrt::ErrorCategory;
using wanrt_test::BundleCopy;

namespace {

wanrt::BundleManifest unverified(const std::string& dir) {
  wanrt::BundleOptions options;
  options.verify = false;
  return wanrt::read_bundle(dir, options);
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

wanrt::Error load_error(const wanrt::BundleManifest& m, const std::string& name) {
  try {
    Component::load(m, name);
  } catch (const wanrt::Error& e) {
    return e;
  }
  FAIL("Component::load(" << name << ") did not throw");
  return wanrt::Error(ErrorCategory::kInternal, "unreachable");
}

}  // namespace

TEST_CASE("components load with the sizes the manifest records", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  for (const auto& entry : m.components) {
    INFO(entry.name);
    const Component c = Component::load(m, entry.name);
    CHECK(c.entry().name == entry.name);
    CHECK(c.path() == m.path_of(entry));
    CHECK(c.load_seconds() > 0.0);
    CHECK_FALSE(c.module().is_training());
    for (const auto& method : entry.contract.methods) CHECK(c.module().find_method(method));

    // Sizes counted from the loaded tensors, independently of the manifest's numbers.
    std::int64_t parameters = 0;
    for (const auto& p : c.module().parameters()) parameters += p.numel();
    CHECK(parameters == entry.parameters);
    std::int64_t bytes = 0;
    std::vector<std::int64_t> block_bytes(static_cast<std::size_t>(entry.contract.num_blocks), 0);
    const std::string prefix = entry.contract.blocks_attr + ".";
    auto count = [&](const std::string& name, const at::Tensor& t) {
      const std::int64_t n = t.numel() * static_cast<std::int64_t>(t.element_size());
      bytes += n;
      if (entry.staged() && name.compare(0, prefix.size(), prefix) == 0) {
        block_bytes.at(std::stoul(name.substr(prefix.size()))) += n;
      }
    };
    for (const auto& p : c.module().named_parameters()) count(p.name, p.value);
    for (const auto& b : c.module().named_buffers()) count(b.name, b.value);
    CHECK(bytes == entry.bytes);
    if (entry.staged()) {
      CHECK(block_bytes == entry.block_bytes);
      REQUIRE(static_cast<int>(c.blocks().size()) == entry.contract.num_blocks);
      // blocks()[i] is the module's own submodule blocks.i: same parameter storage.
      for (std::size_t i = 0; i < c.blocks().size(); ++i) {
        const auto own = c.module().attr("blocks").toModule().attr(std::to_string(i)).toModule();
        const auto a = *c.blocks()[i].parameters().begin();
        const auto b = *own.parameters().begin();
        CHECK(a.data_ptr() == b.data_ptr());
      }
    } else {
      CHECK(c.blocks().empty());
    }
  }
}

TEST_CASE("component load failures name the component and file", "[runtime]") {
  BundleCopy b;
  SECTION("a damaged TorchScript archive") {
    fs::resize_file(b.file("dit.pt"), fs::file_size(b.file("dit.pt")) / 2);
    const auto m = unverified(b.dir());
    const auto e = load_error(m, "dit");
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("component 'dit'") && Catch::Contains("dit.pt") &&
                             Catch::Contains("cannot load TorchScript"));
    // Only the first line of LibTorch's message (no C++ stack trace).
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
  SECTION("a method of the contract is missing") {
    // The vae entry pointed at the text encoder's file: it lacks encode/decode.
    b.set_yaml(replace_once(b.yaml(), "file: vae.pt", "file: text_encoder.pt"));
    const auto e = load_error(unverified(b.dir()), "vae");
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("component 'vae'") && Catch::Contains("text_encoder.pt") &&
                             Catch::Contains("'encode'"));
  }
  SECTION("the number of blocks differs from the manifest") {
    // Three blocks claimed (a zero-byte third keeps the sizes consistent); the file has two.
    std::string text = b.yaml();
    const auto at = text.find("  text_encoder:\n", text.find("\ncomponents:\n"));
    REQUIRE(at != std::string::npos);
    const auto list = text.find("block_bytes: [", at);
    const auto end = text.find(']', list);
    text.insert(end, ", 0");
    const auto blocks = text.find("num_blocks: 2", at);
    text.replace(blocks, 13, "num_blocks: 3");
    b.set_yaml(text);
    const auto e = load_error(unverified(b.dir()), "text_encoder");
    CHECK_THAT(e.what(), Catch::Contains("component 'text_encoder'") &&
                             Catch::Contains("holds 2 blocks") && Catch::Contains("says 3"));
  }
  SECTION("a profile has no files to load") {
    const auto m = wanrt::read_profile(
        (fs::path(WANRT_SOURCE_DIR) / "models/profiles/wan2.2-ti2v-5b.yaml").string());
    CHECK_THROWS_WITH(Component::load(m, "dit"), Catch::Contains("profile has no files"));
  }
  SECTION("an unknown component") {
    CHECK_THROWS_WITH(Component::load(unverified(b.dir()), "dit_high_noise"),
                      Catch::Contains("no component 'dit_high_noise'"));
  }
}

TEST_CASE("InferenceScope turns on inference mode and off gradients for its lifetime",
          "[runtime]") {
  REQUIRE_FALSE(c10::InferenceMode::is_enabled());
  {
    wanrt::InferenceScope scope;
    CHECK(c10::InferenceMode::is_enabled());
    CHECK_FALSE(c10::GradMode::is_enabled());
    const at::Tensor w = at::ones({2}).requires_grad_(false);
    CHECK((w * 2).is_inference());
  }
  CHECK_FALSE(c10::InferenceMode::is_enabled());
  CHECK(c10::GradMode::is_enabled());
}

namespace {

// Rewrites the JSON header of a safetensors file, keeping its data section byte for byte
// (offsets are relative to the data section, so the header may change length).
void edit_header(const fs::path& path, const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = BundleCopy::read(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  edit(header);
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  }
  BundleCopy::write(path, out + h + bytes.substr(8 + n));
}

// The name of the first 2-D tensor with two different dimensions in a header.
std::string first_matrix(const nlohmann::json& header) {
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& shape = it.value()["shape"];
    if (shape.size() == 2 && shape[0] != shape[1]) return it.key();
  }
  FAIL("no matrix in the header");
  return {};
}

}  // namespace

TEST_CASE("format 2 components use their weights file in place", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  REQUIRE(m.format_version == 2);
  for (const auto& entry : m.components) {
    INFO(entry.name);
    REQUIRE_FALSE(entry.weights.empty());
    const Component c = Component::load(m, entry.name);
    const wanrt::BoundWeights* w = c.weights();
    REQUIRE(w != nullptr);
    CHECK(w->copied_bytes == 0);
    std::int64_t bytes = 0;
    for (const auto& p : c.module().named_parameters()) {
      INFO(p.name);
      bytes += p.value.numel() * static_cast<std::int64_t>(p.value.element_size());
      const wanrt::SafetensorsEntry* e = w->file->find(p.name);
      REQUIRE(e != nullptr);
      // The same address as a fresh tensor over the mapping: no copy was made.
      CHECK(p.value.data_ptr() == w->file->tensor(*e).data_ptr());
      CHECK(p.value.is_contiguous());
    }
    CHECK(w->mapped_bytes == bytes);
    CHECK(w->tensors == static_cast<int>(w->file->header().entries.size()));
  }
}

TEST_CASE("format 1 and format 2 of one bundle load the same tensors", "[runtime]") {
  const auto v2 = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-t2v-moe"));
  const auto v1 = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-t2v-moe-v1"));
  REQUIRE(v1.format_version == 1);
  for (const auto& entry : v1.components) {
    INFO(entry.name);
    CHECK(entry.weights.empty());
    const Component a = Component::load(v1, entry.name);
    const Component b = Component::load(v2, entry.name);
    CHECK(a.weights() == nullptr);
    std::map<std::string, at::Tensor> mine;
    for (const auto& p : b.module().named_parameters()) mine[p.name] = p.value;
    for (const auto& p : b.module().named_buffers()) mine[p.name] = p.value;
    std::size_t count = 0;
    auto same = [&](const std::string& name, const at::Tensor& t) {
      INFO(name);
      REQUIRE(mine.count(name) == 1);
      CHECK(at::equal(mine[name], t));
      ++count;
    };
    for (const auto& p : a.module().named_parameters()) same(p.name, p.value);
    for (const auto& p : a.module().named_buffers()) same(p.name, p.value);
    CHECK(count == mine.size());
  }
}

TEST_CASE("bad weights files are bundle errors naming the file and tensor", "[runtime]") {
  BundleCopy b;
  const fs::path dit = b.file("dit.safetensors");
  auto check = [&](const std::vector<std::string>& parts) {
    const auto e = load_error(unverified(b.dir()), "dit");
    CHECK(e.category() == ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains("component 'dit'") && Catch::Contains("dit.safetensors"));
    for (const auto& part : parts) CHECK_THAT(e.what(), Catch::Contains(part));
  };
  SECTION("truncated") {
    fs::resize_file(dit, fs::file_size(dit) - 100);
    check({"truncated"});
  }
  SECTION("swapped with another component's") {
    fs::copy_file(b.file("text_encoder.safetensors"), dit, fs::copy_options::overwrite_existing);
    check({"weights of component 'text_encoder'"});
  }
  SECTION("a parameter missing") {
    std::string name;
    edit_header(dit, [&](nlohmann::json& h) {
      name = first_matrix(h);
      h.erase(name);
    });
    check({"no tensor '" + name + "'"});
  }
  SECTION("a shape that disagrees with the module") {
    std::string name;
    edit_header(dit, [&](nlohmann::json& h) {
      name = first_matrix(h);
      auto& shape = h[name]["shape"];
      shape = {shape[1], shape[0]};  // same bytes, transposed
    });
    check({"tensor '" + name + "'", "module's parameter"});
  }
  SECTION("a dtype that disagrees with the module") {
    std::string name;
    edit_header(dit, [&](nlohmann::json& h) {
      name = first_matrix(h);
      h[name]["dtype"] = "I32";  // same size as the F32 it replaces
    });
    check({"tensor '" + name + "'", "Int"});
  }
  SECTION("a tensor that is no parameter") {
    edit_header(dit, [&](nlohmann::json& h) {
      h["blocks.0.extra"] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
    });
    check({"blocks.0.extra", "no parameter of the module"});
  }
  SECTION("missing") {
    fs::remove(dit);
    CHECK_THROWS_WITH(unverified(b.dir()), Catch::Contains("dit.safetensors") &&
                                               Catch::Contains("missing"));
  }
  SECTION("changed, with verification") {
    edit_header(dit, [&](nlohmann::json& h) { h["__metadata__"]["note"] = "edited"; });
    CHECK_THROWS_WITH(wanrt::read_bundle(b.dir()),
                      Catch::Contains("components.dit.weights_sha256") &&
                          Catch::Contains("sha256 mismatch"));
  }
}
