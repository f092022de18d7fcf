#include "bindings/cli/lora_inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "bindings/cli/cli_common.h"
#include "models/wan22/lora.h"
#include "models/wan22/model_spec.h"
#include "runtime/component.h"
#include "runtime/lora_file.h"
#include "runtime/lora_merge.h"
#include "runtime/parameter_slots.h"

namespace wanrt::cli {
namespace {

// "blocks.12.self_attn.q" -> "blocks.*.self_attn.q": the targets grouped over the blocks.
std::string pattern_of(const std::string& module) {
  static const std::regex block(R"(^blocks\.[0-9]+\.)");
  return std::regex_replace(module, block, "blocks.*.");
}

std::map<std::string, std::vector<std::int64_t>> dit_shapes(const BundleManifest& m,
                                                            const ComponentEntry& entry) {
  if (m.format_version >= 2) return wan22::weights_file_shapes(m, entry);
  Component c = Component::load(m, entry.name);
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const ParameterSlot& s : parameter_slots(c.module())) {
    shapes.emplace(s.name, s.tensor.sizes().vec());
  }
  return shapes;
}

}  // namespace

nlohmann::json lora_report(const std::string& path, const BundleManifest* bundle) {
  const auto lora = read_lora_file(path);
  std::map<std::string, int> targets;
  std::set<double> scales;
  int renamed = 0, low_rank = 0, full = 0;
  for (const LoraDelta& d : lora->deltas) {
    const std::string name = wan22::wan_module_name(d.module);
    renamed += name != d.module ? 1 : 0;
    ++targets[pattern_of(name)];
    if (d.down) {
      ++low_rank;
      scales.insert(d.scale());
    }
    full += (d.diff ? 1 : 0) + (d.diff_b ? 1 : 0);
  }
  nlohmann::json doc = {
      {"path", path},
      {"bytes", lora->file->file_bytes()},
      {"keys", lora->file->header().entries.size()},
      {"layouts", lora->layouts},
      {"prefix", lora->prefix},
      {"names", renamed > 0 ? "diffusers" : "official"},
      {"modules", lora->deltas.size()},
      {"low_rank_modules", low_rank},
      {"full_deltas", full},
      {"rank", {{"min", lora->min_rank}, {"max", lora->max_rank}}},
      {"alpha", lora->has_alpha},
      // strength x alpha / rank at strength 1: what the factors are multiplied by.
      {"effective_scale",
       scales.empty() ? nlohmann::json(nullptr)
                      : nlohmann::json{{"min", *scales.begin()}, {"max", *scales.rbegin()}}},
      {"targets", targets},
  };
  if (bundle) {
    const wan22::WanSpec spec = wan22::read_wan_spec(*bundle);
    nlohmann::json matches = nlohmann::json::object();
    wanrt::LoraMergeOptions options;
    options.map_name = wan22::wan_module_name;
    options.allow_partial = true;
    for (const std::string& dit : spec.experts) {
      const LoraMergePlan plan =
          plan_lora_merge(dit_shapes(*bundle, bundle->component(dit)), {{lora, 1.0}}, options,
                          fmt::format("{} of {}", dit, bundle->model_id));
      matches[dit] = {{"matched_modules", plan.matched_modules[0]},
                      {"unmatched_keys", plan.unmatched_keys[0]},
                      {"parameters_rewritten", plan.items.size()},
                      {"elements_rewritten", plan.merged_elements}};
    }
    doc["bundle"] = {{"path", bundle->root}, {"model_id", bundle->model_id}, {"dits", matches}};
  }
  return doc;
}

void print_lora_report(const nlohmann::json& r) {
  fmt::print("LoRA     {} ({}, {} keys)\n", r["path"].get<std::string>(),
             format_bytes(r["bytes"].get<long long>()), r["keys"].get<int>());
  const std::string prefix = r["prefix"].get<std::string>();
  const bool diffusers = r["names"].get<std::string>() == "diffusers";
  fmt::print("layout   {}{}; {} module names\n",
             fmt::join(r["layouts"].get<std::vector<std::string>>(), " + "),
             prefix.empty() ? "" : fmt::format(", prefix '{}'", prefix),
             diffusers ? "diffusers' (mapped onto the official ones)" : "official");
  fmt::print("modules  {}: {} low-rank, {} full delta(s)\n", r["modules"].get<int>(),
             r["low_rank_modules"].get<int>(), r["full_deltas"].get<int>());
  const auto rank = r["rank"];
  if (rank["max"].get<int>() > 0) {
    const int lo = rank["min"].get<int>(), hi = rank["max"].get<int>();
    fmt::print("rank     {}{}\n", lo == hi ? fmt::format("{}", lo) : fmt::format("{}..{}", lo, hi),
               r["alpha"].get<bool>() ? ", alpha given" : ", no alpha (alpha = rank)");
    const double s_lo = r["effective_scale"]["min"].get<double>();
    const double s_hi = r["effective_scale"]["max"].get<double>();
    fmt::print("scale    alpha / rank = {} at strength 1 (the factors are multiplied by strength x "
               "this)\n",
               s_lo == s_hi ? fmt::format("{:g}", s_lo) : fmt::format("{:g}..{:g}", s_lo, s_hi));
  }
  fmt::print("targets ");
  int shown = 0;
  for (const auto& [pattern, count] : r["targets"].items()) {
    if (shown++ == 12) {
      fmt::print(" ...");
      break;
    }
    fmt::print(" {}{}", pattern, count.get<int>() > 1 ? fmt::format(" x{}", count.get<int>()) : "");
  }
  fmt::print("\n");
  if (!r.contains("bundle")) return;
  fmt::print("\nagainst {} ({}):\n", r["bundle"]["model_id"].get<std::string>(),
             r["bundle"]["path"].get<std::string>());
  for (const auto& [dit, m] : r["bundle"]["dits"].items()) {
    const auto unmatched = m["unmatched_keys"].get<std::vector<std::string>>();
    fmt::print("  {:<16} {} of {} modules match, {} parameters rewritten, {} keys unmatched{}\n",
               dit, m["matched_modules"].get<int>(), r["modules"].get<int>(),
               m["parameters_rewritten"].get<int>(), unmatched.size(),
               unmatched.empty() ? ""
                                 : fmt::format(" ({}{})", unmatched.front(),
                                               unmatched.size() > 1 ? ", ..." : ""));
  }
}

}  // namespace wanrt::cli
