#include "models/wan22/text_clean.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>

#include "runtime/error.h"

namespace wanrt::wan22 {
namespace {

struct HtmlEntity {
  const char* name;  // ASCII, with the trailing ';' where the HTML5 table has one
  char32_t first;    // replacement: one or two code points
  char32_t second;   // 0 when the replacement is a single code point
};

const HtmlEntity kEntities[] = {
#include "models/wan22/html_entities.inc"
};

constexpr char32_t kReplacement = 0xFFFD;

// Python's _invalid_charrefs: &#0; and the C1 range are read as Windows-1252 (HTML5 spec).
constexpr char32_t kWindows1252[32] = {
    0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,  // 0x80..0x87
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,    // 0x88..0x8F
    0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,  // 0x90..0x97
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178,  // 0x98..0x9F
};

// `\s` of the `regex` module (Unicode White_Space); tokenizer.py's WHITESPACE.
bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// tokenizer.py's STRIP_CHARS: WHITESPACE plus the information separators U+001C..U+001F.
bool is_strip_char(char32_t c) { return is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string decode_utf8(const std::string& text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char b = s[i];
    int extra = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      extra = 1, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      extra = 2, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      extra = 3, cp = b & 0x07, min = 0x10000;
    } else {
      extra = -1;
    }
    bool ok = extra > 0 && i + static_cast<std::size_t>(extra) < n;
    for (int k = 1; ok && k <= extra; ++k) {
      ok = (s[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      throw Error(ErrorCategory::kUsage,
                  fmt::format("prompt is not valid UTF-8 (bad byte 0x{:02X} at offset {})", b, i),
                  "pass the prompt as UTF-8 text");
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

// Python's _invalid_codepoints: dropped when written as a numeric reference.
bool is_dropped_codepoint(char32_t c) {
  return (c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) ||
         (c >= 0x7F && c <= 0x9F) || (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

// The replacement of "&#<num>": Python's numeric branch of _replace_charref.
void append_numeric(std::u32string& out, char32_t num) {
  if (num == 0x00) {
    out.push_back(kReplacement);
  } else if (num == 0x0D) {
    out.push_back(0x0D);
  } else if (num >= 0x80 && num <= 0x9F) {
    out.push_back(kWindows1252[num - 0x80]);
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(kReplacement);
  } else if (!is_dropped_codepoint(num)) {
    out.push_back(num);
  }
}

const HtmlEntity* find_entity(const std::u32string& text, std::size_t begin, std::size_t end) {
  std::string name;
  for (std::size_t i = begin; i < end; ++i) {
    if (text[i] >= 0x80) return nullptr;  // every entity name is ASCII
    name.push_back(static_cast<char>(text[i]));
  }
  const auto* first = std::begin(kEntities);
  const auto* last = std::end(kEntities);
  const auto* it = std::lower_bound(
      first, last, name,
      [](const HtmlEntity& e, const std::string& n) { return std::strcmp(e.name, n.c_str()) < 0; });
  return (it != last && name == it->name) ? it : nullptr;
}

void append_entity(std::u32string& out, const HtmlEntity& entity) {
  out.push_back(entity.first);
  if (entity.second != 0) out.push_back(entity.second);
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char32_t c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char32_t c) {
  if (is_digit(c)) return static_cast<int>(c - '0');
  return static_cast<int>((c | 0x20) - 'a') + 10;
}

// Characters that end a named reference: Python's [^\t\n\f <&#;].
bool ends_name(char32_t c) {
  return c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
         c == ';';
}

// Parses digits [begin, end) in `base`, saturating above U+10FFFF (Python's int is unbounded;
// every value above the Unicode range gives the same U+FFFD).
char32_t parse_number(const std::u32string& s, std::size_t begin, std::size_t end, int base) {
  std::uint32_t value = 0;
  for (std::size_t i = begin; i < end; ++i) {
    value = value * static_cast<std::uint32_t>(base) + static_cast<std::uint32_t>(hex_value(s[i]));
    if (value > 0x10FFFF) return 0x110000;
  }
  return value;
}

// One pass of Python's html.unescape: the regex
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// scanned left to right, each match replaced as _replace_charref does.
std::u32string unescape_once(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    const std::size_t j = i + 1;
    if (j < n && s[j] == '#') {
      std::size_t k = j + 1;
      int base = 10;
      std::size_t digits = k;
      while (k < n && is_digit(s[k])) ++k;
      if (k == digits && k < n && (s[k] == 'x' || s[k] == 'X')) {
        base = 16;
        digits = ++k;
        while (k < n && is_hex_digit(s[k])) ++k;
      }
      if (k == digits) {  // "&#" without digits matches no alternative
        out.push_back(s[i++]);
        continue;
      }
      append_numeric(out, parse_number(s, digits, k, base));
      if (k < n && s[k] == ';') ++k;
      i = k;
      continue;
    }
    std::size_t k = j;
    while (k < n && k - j < 32 && !ends_name(s[k])) ++k;
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == ';') ++k;
    if (const HtmlEntity* e = find_entity(s, j, k)) {
      append_entity(out, *e);
    } else {
      // Longest prefix of at least 2 characters that is a name (only the legacy names
      // without ';' can match here), then the rest verbatim; else the text unchanged.
      std::size_t x = k - j;
      const HtmlEntity* prefix = nullptr;
      while (--x >= 2 && (prefix = find_entity(s, j, j + x)) == nullptr) {
      }
      if (prefix != nullptr) {
        append_entity(out, *prefix);
        out.append(s, j + x, k - (j + x));
      } else {
        out.append(s, i, k - i);
      }
    }
    i = k;
  }
  return out;
}

}  // namespace

std::string html_unescape(const std::string& utf8) {
  if (utf8.find('&') == std::string::npos) {
    decode_utf8(utf8);  // still reject invalid UTF-8, like every other entry point
    return utf8;
  }
  return encode_utf8(unescape_once(decode_utf8(utf8)));
}

std::string clean_text(const std::string& utf8) {
  const std::u32string text = unescape_once(unescape_once(decode_utf8(utf8)));
  std::u32string collapsed;
  collapsed.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (is_whitespace(text[i])) {
      collapsed.push_back(' ');
      while (i < text.size() && is_whitespace(text[i])) ++i;
    } else {
      collapsed.push_back(text[i++]);
    }
  }
  std::size_t begin = 0;
  std::size_t end = collapsed.size();
  while (begin < end && is_strip_char(collapsed[begin])) ++begin;
  while (end > begin && is_strip_char(collapsed[end - 1])) --end;
  return encode_utf8(collapsed.substr(begin, end - begin));
}

}  // namespace wanrt::wan22
