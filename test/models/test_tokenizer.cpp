// umT5 tokenizer: Python parity on the tiny SentencePiece model (fixture.wan22_reference),
// the EOS/truncation/padding layout, and bundle errors.
#include <ATen/ATen.h>
#include <dlfcn.h>
#include <unistd.h>

#include "support/catch.h"
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "models/wan22/tokenizer.h"
#include "models/wan22_reference.h"
#include "runtime/error.h"

namespace fs = std::filesystem;
namespace w = wanrt::wan22;

namespace {

std::string model_path() { return wanrt_test::wan22_reference_dir() + "/spiece.model"; }

// A scratch file unique to this process (ctest runs test cases in parallel processes).
fs::path scratch(const std::string& name) {
  return fs::temp_directory_path() / ("wanrt_tok_" + std::to_string(::getpid()) + "_" + name);
}

void check_bundle_error(const std::string& path, int text_len, const std::string& needle) {
  try {
    w::Tokenizer tok(path, text_len);
    FAIL("expected an error for " << path);
  } catch (const wanrt::Error& e) {
    CHECK(e.category() == wanrt::ErrorCategory::kBundle);
    CHECK_THAT(e.what(), Catch::Contains(path));
    CHECK_THAT(e.what(), Catch::Contains(needle));
  }
}

}  // namespace

TEST_CASE("tokenizer ids and masks equal Python's for every prompt and length", "[models]") {
  WANRT_REQUIRE_WAN22_REFERENCE();
  const auto ref = wanrt_test::load_wan22_reference("tokenizer.pt");
  const auto prompts = wanrt_test::reference_strings(ref, "prompts");
  const at::Tensor text_lens = ref.at("text_lens").toTensor();
  REQUIRE(prompts.size() >= 10);
  REQUIRE(text_lens.numel() == 4);
  for (std::int64_t k = 0; k < text_lens.numel(); ++k) {
    const int text_len = static_cast<int>(text_lens[k].item<std::int64_t>());
    const w::Tokenizer tok(model_path(), text_len);
    CHECK(tok.text_len() == text_len);
    CHECK(tok.vocab_size() == ref.at("vocab_size").toInt());
    const at::Tensor ids = ref.at("ids/" + std::to_string(text_len)).toTensor();
    const at::Tensor mask = ref.at("mask/" + std::to_string(text_len)).toTensor();
    for (std::size_t b = 0; b < prompts.size(); ++b) {
      INFO("text_len " << text_len << ", prompt #" << b << ": " << prompts[b].substr(0, 60));
      const auto enc = tok.encode(prompts[b]);
      REQUIRE(enc.ids.sizes() == at::IntArrayRef({1, text_len}));
      CHECK(enc.ids.scalar_type() == at::kLong);
      CHECK(enc.mask.scalar_type() == at::kLong);
      const auto row = static_cast<std::int64_t>(b);
      CHECK(at::equal(enc.ids[0], ids[row]));
      CHECK(at::equal(enc.mask[0], mask[row]));
      CHECK(enc.length == mask[row].sum().item<std::int64_t>());
    }
  }
}

// libsentencepiece defines an absl flag named FLAGS_minloglevel; libc10 exports an int of that
// name. Loaded without RTLD_DEEPBIND, the flag's constructor wrote over libc10's int and the
// mutex beside it, and the next TorchScript call deadlocked (found under ASan).
TEST_CASE("loading the tokenizer leaves LibTorch's globals of the same name alone", "[models]") {
  WANRT_REQUIRE_WAN22_REFERENCE();
  const auto* flag = static_cast<const int*>(dlsym(RTLD_DEFAULT, "FLAGS_minloglevel"));
  if (flag == nullptr) {  // LibTorch 2.11's libc10 exports it; Debian's 1.13 uses glog's
    WARN("WANRT_SKIP: this LibTorch exports no FLAGS_minloglevel");
    return;
  }
  // Debian's libsentencepiece's flag object is 32 bytes; compare that much of libc10's memory.
  std::array<unsigned char, 32> before{};
  std::memcpy(before.data(), flag, before.size());
  const w::Tokenizer tok(model_path(), 16);  // the first load in this process
  CHECK(tok.encode("a heron over a lake").length > 1);
  CHECK(std::memcmp(before.data(), flag, before.size()) == 0);
}

TEST_CASE("tokenizer layout: body, EOS, padding, truncation", "[models]") {
  WANRT_REQUIRE_WAN22_REFERENCE();
  const w::Tokenizer tok(model_path(), 40);
  CHECK(tok.vocab_size() == 384);  // train_tiny_tokenizer's vocab_size

  const auto empty = tok.encode("   ");
  CHECK(empty.length == 1);
  CHECK(empty.ids[0][0].item<std::int64_t>() == w::kEosId);
  CHECK(empty.ids.sum().item<std::int64_t>() == w::kEosId);  // everything else is pad (0)
  CHECK(empty.mask.sum().item<std::int64_t>() == 1);

  const std::string text = "A red fox runs across the snowy forest at dawn, 24 fps!";
  const auto enc = tok.encode(text);
  const std::vector<int> row = tok.encode_ids(text);
  REQUIRE(enc.length == static_cast<int>(row.size()));
  REQUIRE(enc.length > 12);
  CHECK(row.back() == w::kEosId);
  for (int i = 0; i < 40; ++i) {
    const bool real = i < enc.length;
    CHECK(enc.mask[0][i].item<std::int64_t>() == (real ? 1 : 0));
    CHECK(enc.ids[0][i].item<std::int64_t>() == (real ? row[i] : w::kPadId));
  }
  // Truncation keeps the first text_len - 1 body ids and puts EOS last.
  const w::Tokenizer short_tok(model_path(), 12);
  const auto cut = short_tok.encode(text);
  CHECK(cut.length == 12);
  CHECK(cut.mask.sum().item<std::int64_t>() == 12);
  for (int i = 0; i < 11; ++i) CHECK(cut.ids[0][i].item<std::int64_t>() == row[i]);
  CHECK(cut.ids[0][11].item<std::int64_t>() == w::kEosId);
  // The prompt is cleaned before encoding.
  CHECK(at::equal(short_tok.encode("two\t\tcats &amp;amp; a  fox").ids,
                  short_tok.encode("two cats & a fox").ids));
  // Unknown characters map to <unk> (the tiny model knows English only).
  const auto unk = tok.encode("\xe7\x8c\xab cat");
  CHECK((unk.ids == w::kUnkId).any().item<bool>());
}

TEST_CASE("tokenizer: missing, corrupt or foreign models are bundle errors", "[models]") {
  check_bundle_error("/nonexistent/dir/spiece.model", 512, "not found");

  const fs::path corrupt = scratch("corrupt.model");
  {
    std::ofstream out(corrupt, std::ios::binary);
    out << "this is not a protobuf \x01\x02\x03\xff\xff\xff\xff";
  }
  check_bundle_error(corrupt.string(), 512, "SentencePiece");
  fs::remove(corrupt);

  const fs::path empty = scratch("empty.model");
  { std::ofstream out(empty, std::ios::binary); }
  check_bundle_error(empty.string(), 512, "");
  fs::remove(empty);

  if (!wanrt_test::wan22_reference_dir().empty()) {
    check_bundle_error(wanrt_test::wan22_reference_dir() + "/bad_layout.model", 512,
                       "expected '<pad>'");
    check_bundle_error(model_path(), 0, "text_len");
  }
}
