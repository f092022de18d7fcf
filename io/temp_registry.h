// Temporaries that must not outlive the process. The atomic writers (video_writer.h) remove
// their temporary when they fail or are destroyed; a process that exits at once from a signal
// handler (a second Ctrl-C) runs no destructor, so the handler calls
// remove_registered_temporaries() first, which only uses async-signal-safe calls.
#pragma once

namespace wanrt {

/// Records `path` (a file, or with `directory` a directory of files) as a temporary; returns
/// a slot for unregister_temporary(), or -1 when the fixed table (16 entries) is full or the
/// path is too long (the temporary is then simply not covered).
int register_temporary(const char* path, bool directory) noexcept;

/// Forgets slot `slot` (published or removed); -1 is ignored.
void unregister_temporary(int slot) noexcept;

/// Removes every registered temporary (a directory's files, then the directory).
/// Async-signal-safe: meant for signal handlers about to _exit().
void remove_registered_temporaries() noexcept;

}  // namespace wanrt
