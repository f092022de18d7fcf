// umT5 tokenization as Wan does it, ported from models/export/wanrt_export/tokenizer.py:
// clean the prompt, SentencePiece-encode, append EOS, truncate and pad to a fixed length.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace wanrt::wan22 {

class SentencePieceModel;

/// umT5 special ids (no BOS).
inline constexpr int kPadId = 0;
inline constexpr int kEosId = 1;
inline constexpr int kUnkId = 2;

/// SentencePiece umT5 tokenizer producing fixed-length ids and attention masks.
class Tokenizer {
 public:
  /// Loads `spiece_model_path`. Throws Error(kBundle) naming the file when it is missing or not
  /// a SentencePiece model, or when its ids 0/1/2 are not <pad>/</s>/<unk> (umT5 layout), and
  /// when `text_len` < 1; Error(kResources) when the SentencePiece module (libwanrt_spm.so)
  /// cannot be loaded.
  Tokenizer(const std::string& spiece_model_path, int text_len);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// One tokenized prompt: ids and mask are [1, text_len] int64 (mask 1 = real token);
  /// length counts the real tokens, EOS included (1..text_len).
  struct Encoded {
    at::Tensor ids, mask;
    int length = 0;
  };

  /// clean_text(text), SentencePiece ids truncated to text_len - 1, then EOS, then pad.
  /// Throws Error(kUsage) for invalid UTF-8.
  Encoded encode(const std::string& text) const;

  /// The unpadded ids of encode(): body (at most text_len - 1 ids) followed by EOS.
  std::vector<int> encode_ids(const std::string& text) const;

  /// Fixed sequence length of encode().
  int text_len() const noexcept { return text_len_; }
  /// Number of pieces in the SentencePiece model.
  int vocab_size() const noexcept { return vocab_size_; }

 private:
  std::unique_ptr<SentencePieceModel> sp_;
  int text_len_ = 0;
  int vocab_size_ = 0;
};

}  // namespace wanrt::wan22
