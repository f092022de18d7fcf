// Pieces shared by wanrun's subcommands.
#pragma once

#include <atomic>
#include <string>
#include <utility>
#include <vector>

namespace wanrt::cli {

/// Parses "WxH" (also "W*H", Wan's own notation); Error(kUsage) otherwise.
std::pair<int, int> parse_size(const std::string& text);

/// The demo bundle the build installs beside wanrun (<bindir>/../share/wanrt/demo-bundle);
/// empty when it does not exist.
std::string default_bundle_dir();

/// Installs a SIGINT/SIGTERM handler that sets the flag returned by cancel_requested(); a
/// second signal removes the temporary outputs (io/temp_registry.h) and exits at once with
/// 128 + its number (130 for Ctrl-C). Also ignores SIGXFSZ, so that a file size limit is a
/// write error rather than a kill.
void install_interrupt_handler();

/// Test hook for interrupted runs (docs/development.md): with WANRT_TEST_SIGNAL_AT set to
/// "STAGE:STEP[:COUNT[:INT|TERM|KILL[:RANK]]]", the first progress event of STAGE at STEP raises
/// the signal COUNT times in this process, as if it came from outside (with RANK: only in the
/// rank whose RANK variable says so). Does nothing otherwise.
void test_signal_hook(const std::string& stage, int step);

/// Keeps the command line wanrun was started with (main calls it), for relaunching itself.
void set_command_line(int argc, char** argv);
/// The command line set_command_line kept.
const std::vector<std::string>& command_line();

/// True once SIGINT or SIGTERM arrived.
bool cancel_requested();

/// The last SIGINT/SIGTERM received (0: none); a cancelled run exits with 128 + it.
int interrupt_signal();

/// Human-readable byte count ("1.5 GiB").
std::string format_bytes(long long bytes);

}  // namespace wanrt::cli
