#include "runtime/bundle.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>

#include "runtime/error.h"
#include "runtime/version.h"

namespace wanrt {
namespace fs = std::filesystem;

namespace {

// The newest format this wanrt reads, and the oldest: format 2 keeps parameters in a
// safetensors file beside each TorchScript file, format 1 inside it.
constexpr int kFormatVersion = 2;
constexpr int kOldestFormatVersion = 1;
constexpr std::size_t kHashChunkBytes = std::size_t{8} << 20;
const char* const kManifestName = "wanrt.yaml";
const char* const kReexportHint =
    "re-export the bundle with the exporter (cd models/export && python3 -m wanrt_export export "
    "... --force)";

// Typed access with full dotted keys ("components.dit.bytes") in the messages. All lookups go
// through const nodes: operator[] on a non-const yaml-cpp map would insert the key.
class Reader {
 public:
  explicit Reader(const YamlFile& yaml) : y_(yaml) {}

  YAML::Node required(const YAML::Node& map, const std::string& key,
                      const std::string& full) const {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) {
      y_.fail(map, full, "missing required key", kReexportHint);
    }
    return value;
  }

  YAML::Node mapping(const YAML::Node& map, const std::string& key, const std::string& full) const {
    const YAML::Node value = required(map, key, full);
    if (!value.IsMap()) y_.fail(value, full, "expected a mapping (key: value lines)");
    return value;
  }

  std::string string(const YAML::Node& map, const std::string& key, const std::string& full) const {
    const YAML::Node value = required(map, key, full);
    if (!value.IsScalar() || value.Scalar().empty()) {
      y_.fail(value, full, "expected a non-empty string");
    }
    return value.Scalar();
  }

  std::string optional_string(const YAML::Node& map, const std::string& key,
                              const std::string& full) const {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return {};
    return string(map, key, full);
  }

  std::int64_t integer(const YAML::Node& value, const std::string& full) const {
    std::int64_t out = 0;
    try {
      out = value.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      y_.fail(value, full, fmt::format("expected a non-negative integer, got '{}'", scalar(value)));
    }
    if (out < 0) y_.fail(value, full, fmt::format("expected a non-negative integer, got {}", out));
    return out;
  }

  std::int64_t integer(const YAML::Node& map, const std::string& key,
                       const std::string& full) const {
    return integer(required(map, key, full), full);
  }

  YAML::Node sequence(const YAML::Node& map, const std::string& key, const std::string& full,
                      bool optional) const {
    const YAML::Node value = map[key];
    if (optional && (!value.IsDefined() || value.IsNull()))
      return YAML::Node(YAML::NodeType::Sequence);
    required(map, key, full);
    if (!value.IsSequence()) y_.fail(value, full, "expected a list ([a, b, ...])");
    return value;
  }

  std::vector<std::string> strings(const YAML::Node& map, const std::string& key,
                                   const std::string& full, bool optional = false) const {
    std::vector<std::string> out;
    const YAML::Node list = sequence(map, key, full, optional);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      if (!item.IsScalar() || item.Scalar().empty()) {
        y_.fail(item, fmt::format("{}[{}]", full, i), "expected a non-empty string");
      }
      out.push_back(item.Scalar());
    }
    return out;
  }

  std::vector<std::int64_t> integers(const YAML::Node& map, const std::string& key,
                                     const std::string& full) const {
    std::vector<std::int64_t> out;
    const YAML::Node list = sequence(map, key, full, false);
    for (std::size_t i = 0; i < list.size(); ++i) {
      out.push_back(integer(list[i], fmt::format("{}[{}]", full, i)));
    }
    return out;
  }

  bool boolean(const YAML::Node& map, const std::string& key, const std::string& full) const {
    const YAML::Node value = map[key];
    if (!value.IsDefined() || value.IsNull()) return false;
    try {
      return value.as<bool>();
    } catch (const YAML::Exception&) {
      y_.fail(value, full, fmt::format("expected true or false, got '{}'", scalar(value)));
    }
  }

 private:
  static std::string scalar(const YAML::Node& node) {
    return node.IsScalar() ? node.Scalar() : std::string("<non-scalar>");
  }
  const YamlFile& y_;
};

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

ComponentContract parse_contract(const Reader& r, const YamlFile& y, const YAML::Node& node,
                                 const std::string& full) {
  y.check_keys(node, full, {"kind", "methods", "inputs", "blocks", "num_blocks"});
  ComponentContract c;
  c.kind = r.string(node, "kind", full + ".kind");
  c.methods = r.strings(node, "methods", full + ".methods");
  c.inputs = r.strings(node, "inputs", full + ".inputs", /*optional=*/true);
  if (c.kind == "staged") {
    c.blocks_attr = r.string(node, "blocks", full + ".blocks");
    const std::int64_t n = r.integer(node, "num_blocks", full + ".num_blocks");
    if (n > 1000000) y.fail(node["num_blocks"], full + ".num_blocks", "implausibly large");
    c.num_blocks = static_cast<int>(n);
  } else {
    c.blocks_attr = r.optional_string(node, "blocks", full + ".blocks");
  }
  return c;
}

ComponentEntry parse_component(const Reader& r, const YamlFile& y, const std::string& name,
                               const YAML::Node& node, bool profile, int format_version) {
  const std::string full = "components." + name;
  if (!node.IsMap()) y.fail(node, full, "expected a mapping (key: value lines)");
  if (format_version >= 2) {
    y.check_keys(node, full,
                 {"file", "sha256", "weights", "weights_sha256", "expert", "dtype", "parameters",
                  "bytes", "non_block_bytes", "block_bytes", "keep_fp32", "contract"});
  } else {
    y.check_keys(node, full,
                 {"file", "sha256", "expert", "dtype", "parameters", "bytes", "non_block_bytes",
                  "block_bytes", "keep_fp32", "contract"});
  }
  ComponentEntry e;
  e.name = name;
  if (profile) {
    e.file = r.optional_string(node, "file", full + ".file");
    e.sha256 = r.optional_string(node, "sha256", full + ".sha256");
  } else {
    e.file = r.string(node, "file", full + ".file");
    e.sha256 = r.string(node, "sha256", full + ".sha256");
  }
  if (!e.sha256.empty() && !is_sha256_hex(e.sha256)) {
    y.fail(node["sha256"], full + ".sha256",
           fmt::format("expected 64 lower-case hex digits, got '{}'", e.sha256), kReexportHint);
  }
  if (format_version >= 2 && !profile) {
    e.weights = r.string(node, "weights", full + ".weights");
    e.weights_sha256 = r.string(node, "weights_sha256", full + ".weights_sha256");
    if (!is_sha256_hex(e.weights_sha256)) {
      y.fail(node["weights_sha256"], full + ".weights_sha256",
             fmt::format("expected 64 lower-case hex digits, got '{}'", e.weights_sha256),
             kReexportHint);
    }
  }
  e.dtype = r.string(node, "dtype", full + ".dtype");
  e.expert = r.optional_string(node, "expert", full + ".expert");
  e.parameters = r.integer(node, "parameters", full + ".parameters");
  e.bytes = r.integer(node, "bytes", full + ".bytes");
  e.non_block_bytes = r.integer(node, "non_block_bytes", full + ".non_block_bytes");
  e.block_bytes = r.integers(node, "block_bytes", full + ".block_bytes");
  e.keep_fp32 = r.strings(node, "keep_fp32", full + ".keep_fp32", /*optional=*/true);
  e.contract =
      parse_contract(r, y, r.mapping(node, "contract", full + ".contract"), full + ".contract");

  const std::int64_t sum =
      std::accumulate(e.block_bytes.begin(), e.block_bytes.end(), e.non_block_bytes);
  if (sum != e.bytes) {
    y.fail(node["bytes"], full + ".bytes",
           fmt::format("{} bytes, but non_block_bytes + sum(block_bytes) = {} + {} = {}", e.bytes,
                       e.non_block_bytes, sum - e.non_block_bytes, sum),
           kReexportHint);
  }
  if (e.staged() && static_cast<std::size_t>(e.contract.num_blocks) != e.block_bytes.size()) {
    y.fail(node["contract"]["num_blocks"], full + ".contract.num_blocks",
           fmt::format("{} blocks, but block_bytes lists {}", e.contract.num_blocks,
                       e.block_bytes.size()),
           kReexportHint);
  }
  return e;
}

// Parses the schema shared by bundles and profiles; checks no file.
BundleManifest parse_manifest(YamlFile yaml, bool bundle) {
  BundleManifest m{};
  m.yaml = std::move(yaml);
  const YamlFile& y = m.yaml;
  const Reader r(y);
  const YAML::Node& root = y.root;
  if (!root.IsMap()) {
    y.fail(root, "<document>", "expected a mapping of keys at the top level",
           "is this a wanrt.yaml written by the exporter?");
  }
  const YAML::Node version = r.required(root, "format_version", "format_version");
  m.format_version =
      static_cast<int>(std::min<std::int64_t>(r.integer(version, "format_version"), 1 << 30));
  if (m.format_version > kFormatVersion) {
    y.fail(version, "format_version",
           fmt::format("format_version {} comes from a newer exporter; wanrt {} reads "
                       "format_version {} to {}",
                       m.format_version, wanrt::version(), kOldestFormatVersion, kFormatVersion),
           "use the wanrt version that came with the exporter that wrote it, or export the "
           "bundle with the exporter of this wanrt version (models/export)");
  }
  if (m.format_version < kOldestFormatVersion) {
    y.fail(version, "format_version",
           fmt::format("unsupported format_version {}; this wanrt reads format_version {} to {}",
                       m.format_version, kOldestFormatVersion, kFormatVersion),
           "export the bundle with the exporter of this wanrt version (models/export)");
  }
  // Every key the exporter writes, and nothing else: a misspelt key would otherwise be
  // ignored silently (the sections below check their own).
  y.check_keys(root, "",
               {"format_version", "profile", "model_id", "config_name", "task", "attention",
                "architecture", "sampling", "tokenizer", "components"});
  m.profile = r.boolean(root, "profile", "profile");
  if (bundle && m.profile) {
    y.fail(root["profile"], "profile",
           "this is a planning profile (sizes only, no weights), not a bundle",
           "use it where a profile is expected (e.g. wanrun plan --profile), or export a bundle");
  }
  m.model_id = r.string(root, "model_id", "model_id");
  m.config_name = r.string(root, "config_name", "config_name");
  m.task = r.string(root, "task", "task");
  if (!m.profile) {
    m.attention = r.optional_string(root, "attention", "attention");
    if (m.attention.empty()) m.attention = "math";
    if (m.attention != "math" && m.attention != "sdpa") {
      y.fail(root["attention"], "attention",
             fmt::format("unknown attention '{}'; expected math or sdpa", m.attention),
             kReexportHint);
    }
    if (bundle && m.attention == "sdpa" && !libtorch_has_sdpa()) {
      y.fail(root["attention"], "attention",
             fmt::format("the bundle's components call scaled_dot_product_attention, which this "
                         "wanrt's LibTorch {} lacks (it needs LibTorch 2.1 or later)",
                         libtorch_version()),
             "re-export the bundle with --attention math (python3 -m wanrt_export export ... "
             "--attention math), or use a wanrt built against LibTorch 2.1 or later");
    }
  }
  m.architecture = r.mapping(root, "architecture", "architecture");
  m.sampling = r.mapping(root, "sampling", "sampling");
  m.tokenizer = r.mapping(root, "tokenizer", "tokenizer");
  y.check_keys(m.tokenizer, "tokenizer",
               {"type", "file", "sha256", "text_len", "pad_id", "eos_id", "unk_id", "clean"});
  if (bundle) {
    r.string(m.tokenizer, "file", "tokenizer.file");
    const std::string sha = r.string(m.tokenizer, "sha256", "tokenizer.sha256");
    if (!is_sha256_hex(sha)) {
      y.fail(static_cast<const YAML::Node&>(m.tokenizer)["sha256"], "tokenizer.sha256",
             fmt::format("expected 64 lower-case hex digits, got '{}'", sha), kReexportHint);
    }
  }
  const YAML::Node components = r.mapping(root, "components", "components");
  if (components.size() == 0) y.fail(components, "components", "no components listed");
  for (auto it = components.begin(); it != components.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar() || key.Scalar().empty()) {
      y.fail(key, "components", "component names must be non-empty strings");
    }
    m.components.push_back(
        parse_component(r, y, key.Scalar(), it->second, !bundle, m.format_version));
  }
  return m;
}

// The node at a dotted key ("components.dit.file") for its line number; the document root
// when some part is missing.
YAML::Node node_at(const YAML::Node& root, const std::string& key) {
  YAML::Node node = root;
  std::size_t start = 0;
  while (start <= key.size()) {
    const std::size_t dot = std::min(key.find('.', start), key.size());
    const std::string part = key.substr(start, dot - start);
    if (!node.IsMap()) return root;
    const YAML::Node child = static_cast<const YAML::Node&>(node)[part];
    if (!child.IsDefined()) return root;
    node.reset(child);
    start = dot + 1;
  }
  return node;
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return i != inner.end();
}

std::string resolve_in(const std::string& root, const YamlFile& y, const YAML::Node& where,
                       const std::string& relative, const std::string& key) {
  if (root.empty()) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: key '{}': a profile has no files", y.path, key),
                "pass a bundle directory (with weights) instead of a profile");
  }
  const std::string hint = "paths in a bundle are relative to its directory and stay inside it; " +
                           std::string(kReexportHint);
  if (relative.empty()) y.fail(where, key, "empty path", hint);
  const fs::path rel(relative);
  if (rel.is_absolute()) {
    y.fail(where, key, fmt::format("'{}' is an absolute path", relative), hint);
  }
  for (const auto& part : rel) {
    if (part == "..") {
      y.fail(where, key, fmt::format("'{}' has a '..' component", relative), hint);
    }
  }
  const fs::path joined = fs::path(root) / rel;
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(joined, ec);
  if (ec) {
    y.fail(where, key, fmt::format("cannot resolve '{}': {}", joined.string(), ec.message()), hint);
  }
  if (!is_within(canonical, fs::path(root))) {
    y.fail(where, key,
           fmt::format("'{}' resolves to '{}', outside the bundle '{}' (a symlink?)", relative,
                       canonical.string(), root),
           "a bundle must hold its files itself; replace the symlink with the file");
  }
  if (!fs::exists(canonical, ec)) {
    y.fail(where, key, fmt::format("file '{}' is missing", joined.string()),
           "the bundle is incomplete; " + std::string(kReexportHint));
  }
  if (!fs::is_regular_file(canonical, ec)) {
    y.fail(where, key, fmt::format("'{}' is not a regular file", joined.string()), hint);
  }
  return canonical.string();
}

// What a directory without wanrt.yaml holds, for the error message.
std::string describe_directory(const fs::path& dir, std::vector<std::string>* bundles_below) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_directory(ec)) {
      if (fs::exists(entry.path() / kManifestName, ec)) bundles_below->push_back(name);
      name += "/";
    }
    names.push_back(name);
  }
  if (names.empty()) return "the directory is empty";
  std::sort(names.begin(), names.end());
  const std::size_t shown = std::min<std::size_t>(names.size(), 12);
  std::string list;
  for (std::size_t i = 0; i < shown; ++i) list += (i ? ", " : "") + names[i];
  if (shown < names.size()) list += fmt::format(", ... ({} entries)", names.size());
  return "the directory holds: " + list;
}

fs::path bundle_root(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw Error(ErrorCategory::kBundle, fmt::format("bundle directory '{}' does not exist", dir),
                "pass the directory written by the exporter (python3 -m wanrt_export export "
                "--out DIR)");
  }
  if (!fs::is_directory(dir, ec)) {
    const bool manifest = fs::path(dir).filename() == kManifestName;
    throw Error(ErrorCategory::kBundle, fmt::format("bundle '{}' is not a directory", dir),
                manifest ? fmt::format("pass the directory that holds it: '{}'",
                                       fs::path(dir).parent_path().string())
                         : "a bundle is a directory with wanrt.yaml and the .pt files");
  }
  const fs::path root = fs::canonical(dir, ec);
  if (ec) {
    throw Error(ErrorCategory::kBundle, fmt::format("cannot resolve '{}': {}", dir, ec.message()));
  }
  if (!fs::exists(root / kManifestName, ec)) {
    std::vector<std::string> below;
    const std::string contents = describe_directory(root, &below);
    std::string hint =
        "a bundle is written by the exporter: cd models/export && python3 -m wanrt_export "
        "export --out DIR (or tiny-bundles --out DIR)";
    if (!below.empty()) {
      std::sort(below.begin(), below.end());
      std::string list;
      for (const auto& b : below) list += (list.empty() ? "" : ", ") + (root / b).string();
      hint = "bundles were found one level down; pass one of: " + list;
    }
    throw Error(ErrorCategory::kBundle,
                fmt::format("'{}' has no {}; it is not a wanrt bundle ({})", root.string(),
                            kManifestName, contents),
                hint);
  }
  return root;
}

void verify_hash(const YamlFile& y, const YAML::Node& where, const std::string& key,
                 const std::string& relative, const std::string& path, const std::string& expected,
                 const BundleOptions& options) {
  std::function<void(std::int64_t, std::int64_t)> progress;
  if (options.hash_progress) {
    progress = [&](std::int64_t done, std::int64_t total) {
      options.hash_progress(relative, done, total);
    };
  }
  const std::string actual = sha256_file(path, progress);
  if (actual != expected) {
    y.fail(where, key,
           fmt::format("sha256 mismatch for '{}': expected {}, actual {}", path, expected, actual),
           "the file is damaged or was changed after export; re-export the bundle, or skip the "
           "check with --no-verify if you changed it on purpose");
  }
}

}  // namespace

const ComponentEntry& BundleManifest::component(const std::string& name) const {
  for (const auto& c : components) {
    if (c.name == name) return c;
  }
  std::string known;
  for (const auto& c : components) known += (known.empty() ? "" : ", ") + c.name;
  throw Error(ErrorCategory::kBundle,
              fmt::format("{}: no component '{}' (the manifest has: {})", yaml.path, name, known),
              "is this a bundle of the right model? check model_id and task in wanrt.yaml");
}

bool BundleManifest::has_component(const std::string& name) const {
  return std::any_of(components.begin(), components.end(),
                     [&](const ComponentEntry& c) { return c.name == name; });
}

std::string BundleManifest::path_of(const ComponentEntry& entry) const {
  return resolve(entry.file, "components." + entry.name + ".file");
}

std::string BundleManifest::weights_path_of(const ComponentEntry& entry) const {
  return resolve(entry.weights, "components." + entry.name + ".weights");
}

std::string BundleManifest::resolve(const std::string& relative, const std::string& key) const {
  return resolve_in(root, yaml, node_at(yaml.root, key), relative, key);
}

BundleManifest read_bundle(const std::string& dir, const BundleOptions& options) {
  const fs::path root = bundle_root(dir);
  BundleManifest m = parse_manifest(
      YamlFile::load((root / kManifestName).string(), ErrorCategory::kBundle), /*bundle=*/true);
  m.root = root.string();
  const YamlFile& y = m.yaml;

  // Every path first, so a missing file is reported before minutes of hashing.
  std::vector<std::string> paths, weights;
  for (const auto& c : m.components) {
    paths.push_back(m.path_of(c));
    weights.push_back(c.weights.empty() ? std::string() : m.weights_path_of(c));
  }
  const YAML::Node& tokenizer = m.tokenizer;
  const std::string tokenizer_file = tokenizer["file"].Scalar();
  m.tokenizer_path = m.resolve(tokenizer_file, "tokenizer.file");

  if (options.verify) {
    for (std::size_t i = 0; i < m.components.size(); ++i) {
      const auto& c = m.components[i];
      const std::string key = "components." + c.name + ".sha256";
      verify_hash(y, node_at(y.root, key), key, c.file, paths[i], c.sha256, options);
      if (!c.weights.empty()) {
        const std::string wkey = "components." + c.name + ".weights_sha256";
        verify_hash(y, node_at(y.root, wkey), wkey, c.weights, weights[i], c.weights_sha256,
                    options);
      }
    }
    verify_hash(y, tokenizer["sha256"], "tokenizer.sha256", tokenizer_file, m.tokenizer_path,
                tokenizer["sha256"].Scalar(), options);
  }
  return m;
}

BundleManifest read_profile(const std::string& yaml_path) {
  return parse_manifest(YamlFile::load(yaml_path, ErrorCategory::kBundle), /*bundle=*/false);
}

std::string sha256_file(const std::string& path,
                        const std::function<void(std::int64_t, std::int64_t)>& progress) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!in || ec) {
    throw Error(ErrorCategory::kBundle, fmt::format("cannot read '{}' to hash it", path),
                "check that the file exists and is readable");
  }
  const std::int64_t total = static_cast<std::int64_t>(size);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCategory::kInternal, "OpenSSL SHA-256 initialisation failed");
  }
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::int64_t>(
      static_cast<std::int64_t>(kHashChunkBytes), std::max<std::int64_t>(total, 1))));
  std::int64_t done = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(got));
    done += got;
    if (progress) progress(done, total);
  }
  if (in.bad()) {
    throw Error(ErrorCategory::kBundle, fmt::format("read error while hashing '{}'", path));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace wanrt
