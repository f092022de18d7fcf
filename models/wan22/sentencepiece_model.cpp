#include "models/wan22/sentencepiece_model.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "models/wan22/sentencepiece_shim.h"
#include "runtime/error.h"

namespace wanrt::wan22 {
namespace {

constexpr const char* kShimName = "libwanrt_spm.so";

// The entry points of libwanrt_spm.so, resolved once per process.
struct ShimApi {
  decltype(&wanrt_spm_abi_version) abi_version = nullptr;
  decltype(&wanrt_spm_load) load = nullptr;
  decltype(&wanrt_spm_free) free = nullptr;
  decltype(&wanrt_spm_piece_size) piece_size = nullptr;
  decltype(&wanrt_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&wanrt_spm_encode) encode = nullptr;
};

// Where the module may be: $WANRT_SPM_MODULE alone if set; else the build tree, the install
// tree, then beside the binary that holds this code, in its wanrt/ and in its ../lib/wanrt/
// (an install moved to another prefix).
std::vector<std::string> shim_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("WANRT_SPM_MODULE"); env != nullptr && *env != '\0') {
    out.emplace_back(env);
    return out;
  }
#ifdef WANRT_SPM_MODULE_BUILD_PATH
  out.emplace_back(WANRT_SPM_MODULE_BUILD_PATH);
#endif
#ifdef WANRT_SPM_MODULE_INSTALL_PATH
  out.emplace_back(WANRT_SPM_MODULE_INSTALL_PATH);
#endif
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&shim_candidates), &info) != 0 && info.dli_fname != nullptr) {
    const std::filesystem::path dir = std::filesystem::path(info.dli_fname).parent_path();
    out.push_back((dir / kShimName).string());
    out.push_back((dir / "wanrt" / kShimName).string());
    out.push_back((dir / ".." / "lib" / "wanrt" / kShimName).string());
  }
  return out;
}

template <typename F>
void resolve(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  if (out == nullptr) {
    throw Error(ErrorCategory::kResources,
                fmt::format("{}: symbol {} missing ({})", kShimName, name, dlerror()),
                "the SentencePiece module does not match this wanrt; reinstall wanrt");
  }
}

// libsentencepiece must bind to its own definitions, not to the same names already in the
// process: Debian's carries protobuf-lite 3.14 (Debian's LibTorch 1.13 loads libprotobuf 3.21)
// and an absl flag FLAGS_minloglevel (libc10 exports an int of that name, which the flag's
// constructor would overwrite). RTLD_DEEPBIND gives it that; RTLD_LOCAL keeps its copies from
// interposing on LibTorch's.
constexpr int kShimFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;

using DlopenFn = void* (*)(const char*, int);

// AddressSanitizer's dlopen interceptor aborts on RTLD_DEEPBIND, because a deep-bound library
// could reach libc's malloc instead of ASan's. Here it cannot: in an ASan build the module is
// instrumented and libasan is its first dependency, so the deep-bound lookup, which searches
// the module's dependencies first, finds ASan's malloc for libsentencepiece too. An ASan build
// therefore calls libc's dlopen directly.
DlopenFn shim_dlopen() {
#if defined(__SANITIZE_ADDRESS__)
  static const DlopenFn libc_dlopen = [] {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void* fn = libc != nullptr ? dlsym(libc, "dlopen") : nullptr;
    return fn != nullptr ? reinterpret_cast<DlopenFn>(fn) : &dlopen;
  }();
  return libc_dlopen;
#else
  return &dlopen;
#endif
}

ShimApi load_shim() {
  std::string tried;
  for (const std::string& path : shim_candidates()) {
    if (!std::filesystem::exists(path)) {
      tried += fmt::format("\n  {} (missing)", path);
      continue;
    }
    void* lib = shim_dlopen()(path.c_str(), kShimFlags);
    if (lib == nullptr) {
      tried += fmt::format("\n  {} ({})", path, dlerror());
      continue;
    }
    ShimApi api;
    resolve(lib, "wanrt_spm_abi_version", api.abi_version);
    if (api.abi_version() != WANRT_SPM_ABI_VERSION) {
      throw Error(ErrorCategory::kResources,
                  fmt::format("{}: interface version {}, expected {}", path, api.abi_version(),
                              WANRT_SPM_ABI_VERSION),
                  "the SentencePiece module does not match this wanrt; reinstall wanrt");
    }
    resolve(lib, "wanrt_spm_load", api.load);
    resolve(lib, "wanrt_spm_free", api.free);
    resolve(lib, "wanrt_spm_piece_size", api.piece_size);
    resolve(lib, "wanrt_spm_id_to_piece", api.id_to_piece);
    resolve(lib, "wanrt_spm_encode", api.encode);
    return api;  // the module stays loaded for the life of the process
  }
  throw Error(ErrorCategory::kResources,
              fmt::format("cannot load the SentencePiece module {}; tried:{}", kShimName, tried),
              "reinstall wanrt, or point WANRT_SPM_MODULE at libwanrt_spm.so");
}

const ShimApi& shim() {
  static std::once_flag once;
  static ShimApi api;
  std::call_once(once, [] { api = load_shim(); });  // retried after a failure
  return api;
}

}  // namespace

struct SentencePieceModel::Handle {
  void* model = nullptr;
  ~Handle() {
    if (model != nullptr) shim().free(model);
  }
};

SentencePieceModel::SentencePieceModel(const std::string& path)
    : handle_(std::make_unique<Handle>()), path_(path) {
  if (!std::ifstream(path, std::ios::binary).good()) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: tokenizer model not found or not readable", path),
                "check the bundle path, or re-export the bundle");
  }
  char error[512] = {};
  handle_->model = shim().load(path.c_str(), error, sizeof error);
  if (handle_->model == nullptr) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: not a valid SentencePiece model ({})", path, error),
                "the file is corrupt or of another format; re-export the bundle");
  }
}

SentencePieceModel::~SentencePieceModel() = default;
SentencePieceModel::SentencePieceModel(SentencePieceModel&&) noexcept = default;
SentencePieceModel& SentencePieceModel::operator=(SentencePieceModel&&) noexcept = default;

int SentencePieceModel::piece_size() const { return shim().piece_size(handle_->model); }

std::string SentencePieceModel::id_to_piece(int id) const {
  std::string piece(64, '\0');
  std::size_t n = shim().id_to_piece(handle_->model, id, piece.data(), piece.size() + 1);
  if (n > piece.size()) {
    piece.assign(n, '\0');
    n = shim().id_to_piece(handle_->model, id, piece.data(), piece.size() + 1);
  }
  piece.resize(n);
  return piece;
}

std::vector<int> SentencePieceModel::encode(const std::string& text) const {
  std::vector<int> ids;
  char error[512] = {};
  const auto sink = [](void* context, const int* data, std::size_t count) {
    static_cast<std::vector<int>*>(context)->assign(data, data + count);
  };
  if (shim().encode(handle_->model, text.data(), text.size(), sink, &ids, error, sizeof error) !=
      0) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("{}: SentencePiece failed to encode a prompt ({})", path_, error));
  }
  return ids;
}

}  // namespace wanrt::wan22
