// YAML files with errors that name the file, the line and the key.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "runtime/error.h"

namespace wanrt {

/// A parsed YAML document and where it came from.
struct YamlFile {
  std::string path;        ///< the file, as given
  YAML::Node root;         ///< the document's root node
  ErrorCategory category;  ///< category of errors about this file (kUsage, kBundle, ...)

  /// Reads and parses `path`; a missing file or a syntax error throws Error(category)
  /// naming the file (and line and column for syntax errors).
  static YamlFile load(const std::string& path, ErrorCategory category);
  /// Parses text held in memory; `path` only names it in messages.
  static YamlFile parse(const std::string& text, const std::string& path, ErrorCategory category);

  /// "path:line" of a node (1-based line), or just the path when the node has no mark.
  std::string where(const YAML::Node& node) const;

  /// Throws Error(category) "path:line: key 'key': message" with a hint.
  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& message,
                         const std::string& hint = {}) const;

  /// Refuses a key of mapping `map` that is not in `known`: "path:line: key 'prefix.key':
  /// unknown key", with the nearest known key as the hint when one is close (a misspelling)
  /// and the list of known keys otherwise. `prefix` ("" at the top level) names the mapping.
  void check_keys(const YAML::Node& map, const std::string& prefix,
                  const std::vector<std::string>& known) const;

  /// Converts node[key] to T; a value of the wrong type is an error naming file, line and key.
  template <typename T>
  T get(const YAML::Node& map, const std::string& key) const {
    const YAML::Node value = map[key];
    try {
      return value.as<T>();
    } catch (const YAML::Exception&) {
      fail(value.IsDefined() ? value : map, key,
           std::string("expected a value of type ") + type_name<T>() + ", got '" +
               (value.IsScalar() ? value.Scalar() : std::string("<non-scalar>")) + "'");
    }
  }

 private:
  template <typename T>
  static const char* type_name();
};

template <> inline const char* YamlFile::type_name<bool>() { return "bool (true/false)"; }
template <> inline const char* YamlFile::type_name<int>() { return "integer"; }
template <> inline const char* YamlFile::type_name<long>() { return "integer"; }
template <> inline const char* YamlFile::type_name<long long>() { return "integer"; }
template <> inline const char* YamlFile::type_name<double>() { return "number"; }
template <> inline const char* YamlFile::type_name<std::string>() { return "string"; }

}  // namespace wanrt
