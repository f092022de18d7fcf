#include "runtime/keep_fp32.h"

#include <algorithm>

namespace wanrt {
namespace {

// One pattern element of an fnmatch glob.
struct GlobToken {
  enum Kind { kLiteral, kAny, kStar, kClass };
  explicit GlobToken(Kind k, char c = 0) : kind(k), literal(c) {}
  Kind kind;
  char literal;
  std::string set;  // kClass: the class body without brackets and leading '!'
  bool negate = false;

  bool matches(char c) const {
    switch (kind) {
      case kLiteral:
        return c == literal;
      case kAny:
        return true;
      case kStar:
        return true;
      case kClass:
        break;
    }
    bool in = false;
    for (std::size_t k = 0; k < set.size() && !in; ++k) {
      if (k + 2 < set.size() && set[k + 1] == '-') {
        in = set[k] <= c && c <= set[k + 2];
        k += 2;
      } else {
        in = set[k] == c;
      }
    }
    return in != negate;
  }
};

// Tokenizes like Python's fnmatch.translate: a '[' without a closing ']' is a literal, and a
// ']' right after '[' or '[!' belongs to the class.
std::vector<GlobToken> tokenize_glob(const std::string& p) {
  std::vector<GlobToken> out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '*') {
      if (out.empty() || out.back().kind != GlobToken::kStar) out.emplace_back(GlobToken::kStar);
    } else if (c == '?') {
      out.emplace_back(GlobToken::kAny);
    } else if (c == '[') {
      std::size_t j = i + 1;
      if (j < p.size() && p[j] == '!') ++j;
      if (j < p.size() && p[j] == ']') ++j;
      while (j < p.size() && p[j] != ']') ++j;
      if (j >= p.size()) {
        out.emplace_back(GlobToken::kLiteral, '[');
        continue;
      }
      GlobToken t(GlobToken::kClass);
      std::size_t body = i + 1;
      if (p[body] == '!') {
        t.negate = true;
        ++body;
      }
      t.set = p.substr(body, j - body);
      out.push_back(t);
      i = j;
    } else {
      out.emplace_back(GlobToken::kLiteral, c);
    }
  }
  return out;
}

}  // namespace

bool keep_fp32_match(const std::string& pattern, const std::string& name) {
  const std::vector<GlobToken> tokens = tokenize_glob(pattern);
  // Greedy matching that backtracks to the last '*' (each other token eats one character).
  std::size_t t = 0, n = 0;
  std::size_t star = std::string::npos, star_n = 0;
  while (n < name.size()) {
    if (t < tokens.size() && tokens[t].kind == GlobToken::kStar) {
      star = t++;
      star_n = n;
    } else if (t < tokens.size() && tokens[t].matches(name[n])) {
      ++t;
      ++n;
    } else if (star != std::string::npos) {
      t = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (t < tokens.size() && tokens[t].kind == GlobToken::kStar) ++t;
  return t == tokens.size();
}

bool keep_fp32_match_any(const std::vector<std::string>& patterns, const std::string& name) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return keep_fp32_match(p, name); });
}

}  // namespace wanrt
