#include "models/wan22/tokenizer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <utility>

#include "models/wan22/sentencepiece_model.h"
#include "models/wan22/text_clean.h"
#include "runtime/error.h"

namespace wanrt::wan22 {

Tokenizer::Tokenizer(const std::string& spiece_model_path, int text_len) : text_len_(text_len) {
  if (text_len < 1) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: text_len must be >= 1, got {}", spiece_model_path, text_len),
                "the bundle's text encoder config is inconsistent; re-export the bundle");
  }
  sp_ = std::make_unique<SentencePieceModel>(spiece_model_path);
  vocab_size_ = sp_->piece_size();
  const std::pair<int, const char*> layout[] = {
      {kPadId, "<pad>"}, {kEosId, "</s>"}, {kUnkId, "<unk>"}};
  for (const auto& [id, piece] : layout) {
    const std::string got = id < vocab_size_ ? sp_->id_to_piece(id) : std::string("(none)");
    if (got != piece) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: id {} is '{}', expected '{}' (umT5 layout pad=0, eos=1, "
                              "unk=2)",
                              spiece_model_path, id, got, piece),
                  "use the umT5 spiece.model shipped with Wan 2.2");
    }
  }
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int> Tokenizer::encode_ids(const std::string& text) const {
  std::vector<int> ids = sp_->encode(clean_text(text));
  if (ids.size() > static_cast<std::size_t>(text_len_ - 1)) ids.resize(text_len_ - 1);
  ids.push_back(kEosId);
  return ids;
}

Tokenizer::Encoded Tokenizer::encode(const std::string& text) const {
  const std::vector<int> row = encode_ids(text);
  Encoded out;
  out.ids = at::full({1, text_len_}, kPadId, at::kLong);
  out.mask = at::zeros({1, text_len_}, at::kLong);
  auto ids = out.ids.accessor<std::int64_t, 2>();
  auto mask = out.mask.accessor<std::int64_t, 2>();
  for (std::size_t i = 0; i < row.size(); ++i) {
    ids[0][static_cast<std::int64_t>(i)] = row[i];
    mask[0][static_cast<std::int64_t>(i)] = 1;
  }
  out.length = static_cast<int>(row.size());
  return out;
}

}  // namespace wanrt::wan22
