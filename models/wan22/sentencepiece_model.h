// A SentencePiece model, used through libwanrt_spm.so (see sentencepiece_shim.h for why the
// library is loaded in its own symbol scope rather than linked).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace wanrt::wan22 {

class SentencePieceModel {
 public:
  /// Loads `path`. Throws Error(kBundle) naming the file when it is missing or not a
  /// SentencePiece model, Error(kResources) when libwanrt_spm.so cannot be loaded.
  explicit SentencePieceModel(const std::string& path);
  ~SentencePieceModel();
  SentencePieceModel(SentencePieceModel&&) noexcept;
  SentencePieceModel& operator=(SentencePieceModel&&) noexcept;

  /// Number of pieces.
  int piece_size() const;
  /// The piece of `id` (0 <= id < piece_size()).
  std::string id_to_piece(int id) const;
  /// SentencePiece ids of UTF-8 `text` (no BOS/EOS added).
  std::vector<int> encode(const std::string& text) const;

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::string path_;
};

}  // namespace wanrt::wan22
