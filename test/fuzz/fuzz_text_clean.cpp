// libFuzzer target: prompt cleaning (models/wan22/text_clean.h) on arbitrary bytes. Valid UTF-8
// must come out cleaned (no white space at either end, no run of two spaces); invalid UTF-8
// must be rejected with wanrt::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "models/wan22/text_clean.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::string out = wanrt::wan22::clean_text(text);
    if (!out.empty() && (out.front() == ' ' || out.back() == ' ')) __builtin_trap();
    if (out.find("  ") != std::string::npos) __builtin_trap();
    (void)wanrt::wan22::html_unescape(text);
  } catch (const wanrt::Error&) {
  }
  return 0;
}
