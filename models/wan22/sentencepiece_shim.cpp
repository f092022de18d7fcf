// libwanrt_spm.so: libsentencepiece behind the C interface of sentencepiece_shim.h.
#include "models/wan22/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#define WANRT_SPM_EXPORT __attribute__((visibility("default")))

namespace {

void set_error(char* error, size_t size, const std::string& message) {
  if (error == nullptr || size == 0) return;
  const size_t n = std::min(size - 1, message.size());
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

const sentencepiece::SentencePieceProcessor* as_model(const void* model) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(model);
}

}  // namespace

extern "C" {

WANRT_SPM_EXPORT int wanrt_spm_abi_version(void) { return WANRT_SPM_ABI_VERSION; }

WANRT_SPM_EXPORT void* wanrt_spm_load(const char* path, char* error, size_t error_size) {
  try {
    auto model = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = model->Load(std::string_view(path));
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    return model.release();
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown exception");
  }
  return nullptr;
}

WANRT_SPM_EXPORT void wanrt_spm_free(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

WANRT_SPM_EXPORT int wanrt_spm_piece_size(const void* model) {
  return as_model(model)->GetPieceSize();
}

WANRT_SPM_EXPORT size_t wanrt_spm_id_to_piece(const void* model, int id, char* out,
                                              size_t out_size) {
  try {
    const std::string& piece = as_model(model)->IdToPiece(id);
    set_error(out, out_size, piece);
    return piece.size();
  } catch (...) {
    set_error(out, out_size, "");
    return 0;
  }
}

WANRT_SPM_EXPORT int wanrt_spm_encode(const void* model, const char* text, size_t length,
                                      wanrt_spm_ids_sink sink, void* context, char* error,
                                      size_t error_size) {
  try {
    std::vector<int> ids;
    const auto status = as_model(model)->Encode(std::string_view(text, length), &ids);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return -1;
    }
    sink(context, ids.data(), ids.size());
    return 0;
  } catch (const std::exception& e) {
    set_error(error, error_size, e.what());
  } catch (...) {
    set_error(error, error_size, "unknown exception");
  }
  return -1;
}

}  // extern "C"
