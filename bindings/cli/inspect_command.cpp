#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "bindings/cli/cli_common.h"
#include "bindings/common/json_reports.h"
#include "bindings/cli/commands.h"
#include "bindings/cli/lora_inspect.h"
#include "models/wan22/model_spec.h"
#include "runtime/bundle.h"
#include "runtime/error.h"

namespace wanrt::cli {
namespace {

struct InspectOptions {
  std::string bundle, lora;
  bool verify = false, json = false;
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

int run_lora_inspect(const InspectOptions& o) {
  std::optional<BundleManifest> m;
  if (!o.bundle.empty()) {
    BundleOptions options;
    options.verify = o.verify;
    m = read_bundle(o.bundle, options);
  }
  const nlohmann::json report = lora_report(o.lora, m ? &*m : nullptr);
  if (o.json) {
    fmt::print("{}\n", report.dump(2));
  } else {
    print_lora_report(report);
  }
  return 0;
}

int run_inspect(const InspectOptions& o) {
  if (!o.lora.empty()) return run_lora_inspect(o);
  if (o.bundle.empty()) {
    throw Error(ErrorCategory::kUsage, "wanrun inspect needs a bundle directory or --lora FILE",
                "e.g. wanrun inspect BUNDLE, or wanrun inspect --lora FILE [BUNDLE]");
  }
  BundleOptions options;
  options.verify = o.verify;
  const BundleManifest m = read_bundle(o.bundle, options);
  const wan22::WanSpec spec = wan22::read_wan_spec(m);
  const auto& d = spec.sampling;

  const nlohmann::json doc = bindings::inspect_json(m, spec, o.verify);
  std::int64_t total_params = 0, total_bytes = 0;
  for (const auto& c : m.components) {
    total_params += c.parameters;
    total_bytes += c.bytes;
  }
  if (o.json) {
    fmt::print("{}\n", doc.dump(2));
    return 0;
  }
  fmt::print("bundle   {}\nmodel    {} (task {}, attention {})\n", m.root, m.model_id, m.task,
             m.attention);
  fmt::print("format   {} ({})\n", m.format_version,
             m.format_version >= 2
                 ? "weights in safetensors files beside the TorchScript code, memory-mapped"
                 : "weights inside the TorchScript files, read into memory at load");
  fmt::print("latent   z={} stride {}x{}x{}, DiT patch {}x{}x{}, text_len {}\n", spec.z_dim,
             spec.vae_stride[0], spec.vae_stride[1], spec.vae_stride[2], spec.patch[0],
             spec.patch[1], spec.patch[2], spec.text_len);
  fmt::print("defaults {} steps, shift {}, guidance {}/{} (low/high){}, {} frames, {}x{}, {} fps, {}\n",
             d.steps, d.shift, d.guide_low, d.guide_high,
             d.boundary ? fmt::format(", boundary {}", *d.boundary) : std::string(), d.frames,
             d.width, d.height, d.fps, d.sampler);
  // Format 2 names both files of a component: code + weights.
  const auto files = [](const ComponentEntry& c) {
    return c.weights.empty() ? c.file : c.file + " + " + c.weights;
  };
  std::size_t width = 20;
  for (const auto& c : m.components) width = std::max(width, files(c).size());
  fmt::print("\n{:<16} {:<{}} {:<6} {:>14} {:>11} {:>7}  {}\n", "component", "files", width,
             "dtype", "parameters", "bytes", "blocks", "contract");
  for (const auto& c : m.components) {
    fmt::print("{:<16} {:<{}} {:<6} {:>14} {:>11} {:>7}  {} ({})\n", c.name, files(c), width,
               c.dtype, c.parameters, format_bytes(c.bytes), c.block_bytes.size(),
               c.contract.kind, join(c.contract.methods));
  }
  fmt::print("{:<16} {:<{}} {:<6} {:>14} {:>11}\n", "total", "", width, "", total_params,
             format_bytes(total_bytes));
  fmt::print("\nsha256 {}\n", o.verify ? "verified" : "not checked (pass --verify)");
  return 0;
}

}  // namespace

CommandAction add_inspect_command(CLI::App& app) {
  auto opts = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a bundle's components, parameters, bytes, dtypes and contract, or a LoRA "
                 "file's layout and targets");
  cmd->add_option("bundle", opts->bundle, "Bundle directory (with --lora: optional, to match the "
                  "LoRA against its DiTs)");
  cmd->add_option("--lora", opts->lora,
                  "Show a LoRA file instead: layout, rank, alpha and effective scale, targets, and "
                  "with a bundle how many of its modules match each DiT");
  cmd->add_flag("--verify", opts->verify, "Also check every file's sha256");
  cmd->add_flag("--json", opts->json, "Print JSON instead of a table");
  return [opts] { return run_inspect(*opts); };
}

}  // namespace wanrt::cli
