#include "runtime/yaml_file.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace wanrt {

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

void YamlFile::fail(const YAML::Node& node, const std::string& key, const std::string& message,
                    const std::string& hint) const {
  throw Error(category, fmt::format("{}: key '{}': {}", where(node), key, message), hint);
}

}  // namespace wanrt
