// libFuzzer target: the parsers of command-line and API values: WIDTHxHEIGHT sizes, byte sizes
// ("6GiB"), dtype / offload / text-encoder / attention names. Each input is split at its first
// NUL byte into a selector and the text; every parser must return or throw wanrt::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "bindings/cli/cli_common.h"
#include "optim/optim_types.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 6) {
      case 0: {
        const auto [w, h] = wanrt::cli::parse_size(text);
        if (w <= 0 || h <= 0) __builtin_trap();
        break;
      }
      case 1:
        if (wanrt::parse_byte_size(text, "--vram-budget") < 0) __builtin_trap();
        break;
      case 2:
        (void)wanrt::parse_dtype(text, "--dtype");
        break;
      case 3:
        (void)wanrt::parse_offload(text, "--offload");
        break;
      case 4:
        (void)wanrt::parse_text_encoder_placement(text, "--text-encoder");
        break;
      default:
        (void)wanrt::parse_attention(text, "--attention");
        break;
    }
  } catch (const wanrt::Error&) {
  }
  return 0;
}
