// Merging LoRAs into one component at load: wall time and memory (bench/README.md, "LoRAs").
//
//   lora_merge_bench BUNDLE --lora FILE[:STRENGTH]... [--component NAME] [--threads N]
//
// Loads the component (default "dit"), then merges the LoRAs as Model::component does (official
// or diffusers names, W + s alpha/rank up@down in float32, stored in W's dtype). Prints one JSON
// object: load and merge seconds, tensors rewritten, merged bytes, and RSS (anon/file) after
// load and after the merge, with the peak RSS (VmHWM) of the process. Memory figures are bytes.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "models/wan22/lora.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/error.h"
#include "runtime/lora_merge.h"
#include "runtime/proc_fields.h"
#include "runtime/threads.h"

namespace {

using wanrt::internal::read_proc_kib_field;

std::string memory(const std::string& prefix) {
  return fmt::format("\"{0}rss\": {1}, \"{0}anon\": {2}, \"{0}file\": {3}", prefix,
                     read_proc_kib_field("/proc/self/status", "VmRSS"),
                     read_proc_kib_field("/proc/self/status", "RssAnon"),
                     read_proc_kib_field("/proc/self/status", "RssFile"));
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: lora_merge_bench BUNDLE --lora FILE[:S]... [--component NAME] "
                       "[--threads N]\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::string component = "dit";
  std::vector<std::string> loras;
  int threads = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--lora" && i + 1 < argc) {
      loras.push_back(argv[++i]);
    } else if (a == "--component" && i + 1 < argc) {
      component = argv[++i];
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "lora_merge_bench: unknown argument '{}'\n", a);
      return 2;
    }
  }
  try {
    const int used_threads = wanrt::configure_threads(threads);
    wanrt::BundleOptions options;
    options.verify = false;
    const wanrt::BundleManifest m = wanrt::read_bundle(dir, options);
    wanrt::InferenceScope inference;
    std::vector<wanrt::LoraApplication> applications;
    std::int64_t lora_bytes = 0;
    for (const std::string& text : loras) {
      const wanrt::wan22::LoraSpec spec = wanrt::wan22::parse_lora_spec(text);
      applications.push_back({wanrt::read_lora_file(spec.path), spec.strength});
      lora_bytes += applications.back().lora->tensor_bytes();
    }
    auto start = std::chrono::steady_clock::now();
    wanrt::Component c = wanrt::Component::load(m, component);
    const double load_s = since(start);
    const std::string loaded = memory("loaded_");
    wanrt::LoraMergeOptions merge;
    merge.map_name = wanrt::wan22::wan_module_name;
    start = std::chrono::steady_clock::now();
    const wanrt::LoraMergeReport r = wanrt::merge_loras(
        c.module(), applications, merge, component, c.weights() ? c.weights()->file.get() : nullptr);
    const double merge_s = since(start);
    fmt::print(
        "{{\"component\": \"{}\", \"bytes\": {}, \"lora_bytes\": {}, \"threads\": {}, "
        "\"load_s\": {:.3f}, \"merge_s\": {:.3f}, \"tensors\": {}, \"merged_bytes\": {}, {}, {}, "
        "\"peak_rss\": {}}}\n",
        component, m.component(component).bytes, lora_bytes, used_threads, load_s,
        merge_s, r.tensors, r.merged_bytes, loaded, memory("merged_"),
        read_proc_kib_field("/proc/self/status", "VmHWM"));
  } catch (const wanrt::Error& e) {
    fmt::print(stderr, "{}\n", wanrt::format_error(e));
    return 3;
  }
  return 0;
}
