// Prompt cleaning: Python parity (html.unescape + clean_text on thousands of strings, every
// HTML5 entity among them), hand-checked cases, UTF-8 handling.
#include "support/catch.h"
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "models/wan22/text_clean.h"
#include "models/wan22_reference.h"
#include "runtime/error.h"

namespace w = wanrt::wan22;

namespace {

// Bytes outside printable ASCII as \xHH, so failures are readable.
std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("clean_text and html_unescape match Python on the reference strings", "[models]") {
  WANRT_REQUIRE_WAN22_REFERENCE();
  const auto ref = wanrt_test::load_wan22_reference("clean.pt");
  const auto inputs = wanrt_test::reference_strings(ref, "inputs");
  const auto unescaped = wanrt_test::reference_strings(ref, "unescaped");
  const auto cleaned = wanrt_test::reference_strings(ref, "cleaned");
  REQUIRE(inputs.size() > 7000);  // tricky strings, prompts, fuzz, 3 per HTML5 entity
  REQUIRE(unescaped.size() == inputs.size());
  REQUIRE(cleaned.size() == inputs.size());
  int bad = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string u = w::html_unescape(inputs[i]);
    const std::string c = w::clean_text(inputs[i]);
    if (u == unescaped[i] && c == cleaned[i]) continue;
    if (++bad <= 10) {
      INFO("input    " << escaped(inputs[i]));
      CHECK(escaped(u) == escaped(unescaped[i]));
      CHECK(escaped(c) == escaped(cleaned[i]));
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("clean_text: the Python test table, written out by hand", "[models]") {
  // models/export/tests/test_tokenizer.py::test_clean_text, plus entity rules of html.unescape.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"&amp;amp;", "&"},          // unescaped twice
      {"&amp;amp;amp;", "&amp;"},  // ... and only twice
      {"&amp;lt;b&amp;gt; &quot;hi&quot;", "<b> \"hi\""},
      {"a\t\tb\n\nc\r\nd", "a b c d"},
      {"   lead and trail \r\n", "lead and trail"},
      {"a&nbsp;&nbsp;b", "a b"},  // entity becomes U+00A0, then collapses
      {"\u3000\u732b\u2003\u2003cat\u00a0", "\u732b cat"},
      {"x\x1cy", "x\x1cy"},  // not collapsed inside ...
      {"\x1f x \x1c", "x"},  // ... but stripped at the ends
      {"", ""},
      {" \t\n ", ""},
      {"&ampx &lt3", "&x <3"},                    // legacy names match without ';' as a prefix
      {"&notit; &notin;", "\u00acit; \u2209"},    // longest prefix, else the full name
      {"&bigstar &bigstar;", "&bigstar \u2605"},  // HTML5-only names need their ';'
      {"&eacute;t&eacute", "\u00e9t\u00e9"},
      {"&#65;&#x42;&#X43;&#0068", "ABCD"},
      {"&#0;|&#128;|&#x9F;|&#xD800;|&#1114112;", "\ufffd|\u20ac|\u0178|\ufffd|\ufffd"},
      {"a&#1;b&#xFFFE;c&#x7f;d", "abcd"},  // dropped code points
      {"&#; &# &#x; &; & amp;", "&#; &# &#x; &; & amp;"},
      {"&nGt;", "\u226b\u20d2"},                // two code points
      {"&#x3000;x&#12288;", "x"},               // decoded ideographic spaces are stripped
      {"\u3001\u3000\u3001", "\u3001 \u3001"},  // U+3001 shares U+3000's lead bytes
      {"a\u0085\u0085b\u0086c", "a b\u0086c"},  // NEL is White_Space, U+0086 is not
  };
  for (const auto& [raw, want] : cases) {
    INFO("input " << escaped(raw));
    CHECK(escaped(w::clean_text(raw)) == escaped(want));
  }
  CHECK(w::html_unescape("&amp;amp;") == "&amp;");  // one pass only
  CHECK(w::html_unescape("no entities \u3000 ") == "no entities \u3000 ");
}

TEST_CASE("clean_text rejects invalid UTF-8 with a usage error", "[models]") {
  for (const std::string bad : {"\xff", "ok \xc3", "\xc3\x28", "\xed\xa0\x80", "\xc0\xaf",
                                "\xf4\x90\x80\x80", "\xe3\x80"}) {
    INFO("input " << escaped(bad));
    try {
      w::clean_text(bad);
      FAIL("expected an error");
    } catch (const wanrt::Error& e) {
      CHECK(e.category() == wanrt::ErrorCategory::kUsage);
      CHECK_THAT(e.what(), Catch::Contains("UTF-8"));
    }
  }
  CHECK(w::clean_text("\xf0\x9f\x90\x88 \xe4\xb8\xad") == "\xf0\x9f\x90\x88 \xe4\xb8\xad");
}
