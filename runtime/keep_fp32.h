// Keep-fp32 patterns of a component: fnmatch globs over parameter names (docs/exporter.md).
#pragma once

#include <string>
#include <vector>

namespace wanrt {

/// Whether parameter `name` matches keep-fp32 glob `pattern` with fnmatch semantics (`*` any
/// run of characters, dots included; `?` one character; `[abc]`, `[a-z]`, `[!x]` classes),
/// case-sensitive, as Python's fnmatch.fnmatchcase.
bool keep_fp32_match(const std::string& pattern, const std::string& name);

/// Whether `name` matches any of `patterns` (see keep_fp32_match).
bool keep_fp32_match_any(const std::vector<std::string>& patterns, const std::string& name);

}  // namespace wanrt
