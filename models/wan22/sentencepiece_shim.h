// C interface of libwanrt_spm.so, the module that wraps libsentencepiece. Debian's
// libsentencepiece exports its bundled protobuf-lite 3.14 under the same symbol names as the
// libprotobuf 3.21 that LibTorch loads; linked into one process they interpose each other and
// crash at start-up. The module is therefore dlopen'ed with RTLD_LOCAL | RTLD_DEEPBIND
// (sentencepiece_model.cpp), which binds libsentencepiece to its own copy. Only C types cross
// this boundary; no exception escapes it.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bumped whenever a signature below changes; checked after dlopen.
#define WANRT_SPM_ABI_VERSION 1

typedef void (*wanrt_spm_ids_sink)(void* context, const int* ids, size_t count);

int wanrt_spm_abi_version(void);
/// Loads a SentencePiece model; null on failure with the reason in `error` (NUL-terminated).
void* wanrt_spm_load(const char* path, char* error, size_t error_size);
void wanrt_spm_free(void* model);
int wanrt_spm_piece_size(const void* model);
/// Copies piece `id` into `out` (truncated, NUL-terminated); returns its full length.
size_t wanrt_spm_id_to_piece(const void* model, int id, char* out, size_t out_size);
/// Encodes UTF-8 `text` to ids and hands them to `sink` once; 0 on success, else -1 with
/// the reason in `error`.
int wanrt_spm_encode(const void* model, const char* text, size_t length, wanrt_spm_ids_sink sink,
                     void* context, char* error, size_t error_size);

#ifdef __cplusplus
}
#endif
