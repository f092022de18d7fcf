// Pieces shared by wanrun's subcommands.
#pragma once

#include <atomic>
#include <string>
#include <utility>

namespace wanrt::cli {

/// Parses "WxH" (also "W*H", Wan's own notation); Error(kUsage) otherwise.
std::pair<int, int> parse_size(const std::string& text);

/// The demo bundle the build installs beside wanrun (<bindir>/../share/wanrt/demo-bundle);
/// empty when it does not exist.
std::string default_bundle_dir();

/// Installs a SIGINT/SIGTERM handler that sets the flag returned by cancel_requested(); a
/// second Ctrl-C exits at once with code 130.
void install_interrupt_handler();

/// True once the user pressed Ctrl-C.
bool cancel_requested();

/// Human-readable byte count ("1.5 GiB").
std::string format_bytes(long long bytes);

}  // namespace wanrt::cli
