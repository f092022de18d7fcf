// Wan's prompt cleaning ("whitespace" clean, minus ftfy), ported from the Python reference
// models/export/wanrt_export/tokenizer.py `clean_text`.
#pragma once

#include <string>

namespace wanrt::wan22 {

/// Cleans a UTF-8 prompt exactly like the Python `clean_text`:
///  1. HTML unescape twice (so "&amp;amp;" becomes "&"), with Python 3.11's `html.unescape`
///     rules: numeric references "&#NN" / "&#xHH" with or without ';' (0 and the C1 range map
///     through the Windows-1252 table, surrogates and values > U+10FFFF become U+FFFD,
///     noncharacters and most C0/C1 controls are dropped); all 2231 HTML5 named references
///     of `html.entities.html5` (html_entities.inc), where the 106 legacy names such as "amp"
///     or "eacute" also match without ';' and as a prefix ("&ampx" -> "&x").
///  2. Every run of Unicode White_Space characters (TAB, LF, VT, FF, CR, SPACE, U+0085,
///     U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) becomes one
///     space.
///  3. Strip those characters plus U+001C..U+001F (what Python's str.strip() removes) at both
///     ends.
/// Work is done on decoded code points, so multi-byte spaces such as U+3000 are handled.
/// Difference from Python: Python's str cannot hold invalid UTF-8; here such input throws
/// Error(kUsage) naming the byte offset. Official Wan also runs ftfy first (not done here
/// nor in the Python reference).
std::string clean_text(const std::string& utf8);

/// Python's `html.unescape` applied once to a UTF-8 string (step 1 above, single pass).
std::string html_unescape(const std::string& utf8);

}  // namespace wanrt::wan22
