// Temporaries a killed writer left behind. An atomic writer removes its temporary on any error
// and on SIGINT/SIGTERM, but nothing runs after SIGKILL (or a power cut). Each temporary's name
// carries the host and process that made it, so the next writer to the same destination can
// tell which ones belong to a process that no longer exists and remove them.
#pragma once

#include <string>

namespace wanrt {

/// "HOST.PID" of this process: the part of a temporary's name that says who made it.
std::string temporary_owner_tag();

/// Removes the temporaries `.NAME.tmp.HOST.PID.RANDOM` in `dir` whose HOST is this host and
/// whose PID no longer runs; returns how many it removed. Temporaries of other hosts (a shared
/// filesystem), of running processes, and a previous output set aside while a directory was
/// being replaced (`.NAME.old.…`) stay. Best effort: errors are ignored.
int remove_stale_temporaries(const std::string& dir, const std::string& name);

}  // namespace wanrt
