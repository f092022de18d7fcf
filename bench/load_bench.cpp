// Loading a bundle's components: wall time and resident memory after load, after touching
// every weight, and (with --hold) while a second process does the same, for the Pss/Rss
// comparison in bench/README.md ("Loading: format 1 against format 2").
//
//   load_bench BUNDLE [--component NAME]... [--touch] [--hold SECONDS] [--quick]
//
// Prints one JSON object per line: component, load_s, rss/anon/file bytes after load (and
// after touching: a sum over every parameter, which faults every mapped page in), then with
// --hold the Pss/Rss of the process from /proc/self/smaps_rollup after SECONDS (another
// process started meanwhile shares the mapped pages), then SECONDS more before it exits.
// --quick: the first component only. Memory figures are bytes.
#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/proc_fields.h"

namespace {

using wanrt::internal::read_proc_kib_field;

struct Memory {
  std::int64_t rss, anon, file;
};

Memory memory() {
  return {read_proc_kib_field("/proc/self/status", "VmRSS"),
          read_proc_kib_field("/proc/self/status", "RssAnon"),
          read_proc_kib_field("/proc/self/status", "RssFile")};
}

std::string json(const Memory& m, const std::string& prefix) {
  return fmt::format("\"{0}rss\": {1}, \"{0}anon\": {2}, \"{0}file\": {3}", prefix, m.rss, m.anon,
                     m.file);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr,
               "usage: load_bench BUNDLE [--component NAME]... [--touch] [--hold SECONDS] "
               "[--quick]\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::string> names;
  bool touch = false, quick = false;
  int hold = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--component" && i + 1 < argc) {
      names.push_back(argv[++i]);
    } else if (a == "--touch") {
      touch = true;
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--hold" && i + 1 < argc) {
      hold = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "load_bench: unknown argument '{}'\n", a);
      return 2;
    }
  }
  try {
    wanrt::BundleOptions options;
    options.verify = false;
    const wanrt::BundleManifest m = wanrt::read_bundle(dir, options);
    if (names.empty()) {
      for (const auto& c : m.components) names.push_back(c.name);
    }
    if (quick) names.resize(1);
    wanrt::InferenceScope inference;
    std::vector<wanrt::Component> held;
    for (const auto& name : names) {
      const Memory before = memory();
      const auto start = std::chrono::steady_clock::now();
      held.push_back(wanrt::Component::load(m, name));
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const Memory loaded = memory();
      std::string line = fmt::format(
          "{{\"component\": \"{}\", \"format\": {}, \"bytes\": {}, \"load_s\": {:.3f}, {}, {}", name,
          m.format_version, m.component(name).bytes, seconds, json(before, "before_"),
          json(loaded, "loaded_"));
      if (touch) {
        const auto t0 = std::chrono::steady_clock::now();
        double sum = 0;
        for (const auto& p : held.back().module().parameters()) sum += p.sum().item<double>();
        const double touch_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        line += fmt::format(", \"touch_s\": {:.3f}, {}, \"checksum\": {}", touch_s,
                            json(memory(), "touched_"), sum);
      }
      fmt::print("{}}}\n", line);
      std::fflush(stdout);
    }
    if (hold > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(hold));
      fmt::print("{{\"pid\": {}, \"rss\": {}, \"pss\": {}, \"pss_file\": {}, \"pss_anon\": {}}}\n",
                 static_cast<long>(::getpid()),
                 read_proc_kib_field("/proc/self/smaps_rollup", "Rss"),
                 read_proc_kib_field("/proc/self/smaps_rollup", "Pss"),
                 read_proc_kib_field("/proc/self/smaps_rollup", "Pss_File"),
                 read_proc_kib_field("/proc/self/smaps_rollup", "Pss_Anon"));
      std::fflush(stdout);
      // Stay as long again, so that a process started up to SECONDS later measures while this
      // one still holds the bundle.
      std::this_thread::sleep_for(std::chrono::seconds(hold));
    }
  } catch (const wanrt::Error& e) {
    fmt::print(stderr, "{}\n", wanrt::format_error(e));
    return 3;
  }
  return 0;
}
