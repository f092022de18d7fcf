#include "runtime/yaml_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace wanrt {
namespace {

// Edit distance (insertions, deletions, substitutions, adjacent swaps) between two keys.
std::size_t key_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

YamlFile YamlFile::parse(const std::string& text, const std::string& path, ErrorCategory category) {
  try {
    return YamlFile{path, YAML::Load(text), category};
  } catch (const YAML::ParserException& e) {
    throw Error(category,
                fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1,
                            e.mark.column + 1, e.msg),
                "fix the YAML syntax at that position");
  }
}

YamlFile YamlFile::load(const std::string& path, ErrorCategory category) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(category, fmt::format("{}: cannot open file", path),
                "check that the path exists and is readable");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, category);
}

std::string YamlFile::where(const YAML::Node& node) const {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return path;
  return fmt::format("{}:{}", path, mark.line + 1);
}

void YamlFile::check_keys(const YAML::Node& map, const std::string& prefix,
                          const std::vector<std::string>& known) const {
  if (!map.IsMap()) return;
  for (const auto& item : map) {
    const std::string key = item.first.IsScalar() ? item.first.Scalar() : std::string("<non-scalar>");
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    // The known keys at the smallest distance (ties all named).
    std::vector<std::string> nearest;
    std::size_t best = 0;
    for (const std::string& k : known) {
      const std::size_t dist = key_distance(key, k);
      if (nearest.empty() || dist < best) {
        nearest = {k};
        best = dist;
      } else if (dist == best) {
        nearest.push_back(k);
      }
    }
    std::string list, guess;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    for (const std::string& k : nearest) guess += (guess.empty() ? "'" : "' or '") + k;
    // A misspelling: at most a third of the key's letters wrong (and at least one allowed).
    const bool close = !nearest.empty() && best <= std::max<std::size_t>(1, key.size() / 3);
    fail(item.first, prefix.empty() ? key : prefix + "." + key, "unknown key",
         close ? fmt::format("did you mean {}'? (known keys: {})", guess, list)
               : "known keys: " + list);
  }
}

void YamlFile::fail(const YAML::Node& node, const std::string& key, const std::string& message,
                    const std::string& hint) const {
  throw Error(category, fmt::format("{}: key '{}': {}", where(node), key, message), hint);
}

}  // namespace wanrt
