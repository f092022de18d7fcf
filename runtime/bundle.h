// The model bundle on disk: reading and validating `wanrt.yaml` (format_version 1 or 2) and
// the files it names. Format 2 keeps each component's parameters in a safetensors file beside
// its TorchScript file (`weights`); format 1 inside it. Only the generic parts are parsed here (components, their sizes and
// contracts, file checks); the model-specific sections (architecture, sampling, tokenizer
// settings) are handed to the models layer as YAML nodes. Schema: docs/exporter.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/keep_fp32.h"
#include "runtime/yaml_file.h"

namespace wanrt {

/// The method contract a component's TorchScript module implements.
struct ComponentContract {
  std::string kind;                  ///< "staged" (prologue / blocks / epilogue) or e.g. "vae"
  std::vector<std::string> methods;  ///< methods the module must expose ("forward", ...)
  std::string blocks_attr;           ///< staged: the ModuleList attribute holding the blocks
  int num_blocks = 0;                ///< staged: number of blocks
  std::vector<std::string> inputs;   ///< staged: names of the prologue's input tensors
};

/// One entry of `components:`.
struct ComponentEntry {
  std::string name;    ///< key under `components:` ("text_encoder", "dit", ...)
  std::string file;    ///< path relative to the bundle (empty in a profile)
  std::string sha256;  ///< lower-case hex digest of the file (empty in a profile)
  std::string weights;         ///< format 2: the safetensors file of the parameters (else empty)
  std::string weights_sha256;  ///< format 2: its digest
  std::string dtype;   ///< stored dtype ("fp32", "bf16", "fp16")
  std::string expert;  ///< optional role among alternatives (e.g. "high_noise"); may be empty
  std::int64_t parameters = 0;            ///< parameter elements
  std::int64_t bytes = 0;                 ///< stored bytes of all tensors = non_block + sum(block)
  std::int64_t non_block_bytes = 0;       ///< bytes outside the streamable blocks
  std::vector<std::int64_t> block_bytes;  ///< bytes of each streamable block
  std::vector<std::string> keep_fp32;     ///< fnmatch globs of parameters that stay fp32
  ComponentContract contract;

  /// Whether the component follows the staged contract.
  bool staged() const { return contract.kind == "staged"; }
};

/// A validated manifest (of a bundle directory, or of a planning profile).
struct BundleManifest {
  std::string root;  ///< bundle directory (absolute, canonical); empty for a profile
  YamlFile yaml;     ///< the parsed wanrt.yaml (for file:line errors in higher layers)
  int format_version = 0;
  bool profile = false;  ///< `profile: true`: sizes only, no files
  std::string model_id, config_name, task;
  /// The attention the components bake in: "math" (explicit query-chunked softmax, PyTorch
  /// 1.13 exports; also bundles from before the key existed) or "sdpa" (PyTorch's
  /// scaled_dot_product_attention). Empty for a profile.
  std::string attention;
  YAML::Node architecture;     ///< model-specific; parsed by the models layer
  YAML::Node sampling;         ///< model-specific; parsed by the models layer
  YAML::Node tokenizer;        ///< model-specific settings; `file`/`sha256` are checked here
  std::string tokenizer_path;  ///< absolute, checked path of tokenizer.file; empty for a profile
  std::vector<ComponentEntry> components;  ///< in file order

  /// The component called `name`; Error(kBundle) listing the known ones when absent.
  const ComponentEntry& component(const std::string& name) const;
  /// Whether a component called `name` exists.
  bool has_component(const std::string& name) const;
  /// Absolute, checked path of a component's file; Error(kBundle) for a profile.
  std::string path_of(const ComponentEntry& entry) const;
  /// Absolute, checked path of a format 2 component's weights file; Error(kBundle) for a
  /// profile.
  std::string weights_path_of(const ComponentEntry& entry) const;
  /// Absolute path of `relative` inside the bundle. Error(kBundle) naming the manifest and `key`
  /// when the path is empty or absolute, has a `..` component, resolves (through symlinks)
  /// outside the bundle, or is not an existing regular file.
  std::string resolve(const std::string& relative, const std::string& key) const;
};

/// How read_bundle checks the files.
struct BundleOptions {
  bool verify = true;  ///< compare each file's SHA-256 with the manifest (reads every byte)
  /// Called while hashing: the file as named in the manifest, bytes hashed so far, its size.
  std::function<void(const std::string& file, std::int64_t done, std::int64_t total)> hash_progress;
};

/// Reads and validates the bundle in directory `dir`: the manifest's schema and sizes, that
/// every file exists inside the bundle and (with options.verify) matches its SHA-256.
/// Every problem is an Error(kBundle) naming the file, line and key.
BundleManifest read_bundle(const std::string& dir, const BundleOptions& options = {});

/// Reads a manifest without touching any file it names: a planning profile
/// (models/profiles/*.yaml, `profile: true`) or a bundle's wanrt.yaml used for sizes only.
/// The result has an empty root, so path_of/resolve throw.
BundleManifest read_profile(const std::string& yaml_path);

/// Lower-case hex SHA-256 of a file, read in 8 MiB chunks; `progress(done, total)` is called
/// after each chunk. Error(kBundle) when the file cannot be read.
std::string sha256_file(
    const std::string& path,
    const std::function<void(std::int64_t done, std::int64_t total)>& progress = {});

}  // namespace wanrt
