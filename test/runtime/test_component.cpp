#include "support/catch.h"
#include <filesystem>
#include <fstream>
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
