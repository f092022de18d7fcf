#include "runtime/lora_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <map>
#include <utility>

#include <ATen/ATen.h>

#include "runtime/error.h"
#include "runtime/lora_text.h"

namespace wanrt {
namespace {

enum class Part { kDown, kUp, kAlpha, kDiff, kDiffBias };

struct Suffix {
  const char* text;
  Part part;
  const char* layout;
};

// Longest first where one suffix ends another (".diff_b" before ".diff").
constexpr std::array<Suffix, 9> kSuffixes{{
    {".lora_down.weight", Part::kDown, "lora_down/lora_up"},
    {".lora_up.weight", Part::kUp, "lora_down/lora_up"},
    {".lora_A.default.weight", Part::kDown, "lora_A/lora_B"},
    {".lora_B.default.weight", Part::kUp, "lora_A/lora_B"},
    {".lora_A.weight", Part::kDown, "lora_A/lora_B"},
    {".lora_B.weight", Part::kUp, "lora_A/lora_B"},
    {".alpha", Part::kAlpha, nullptr},
    {".diff_b", Part::kDiffBias, "diff"},
    {".diff", Part::kDiff, "diff"},
}};

constexpr std::array<const char*, 4> kPrefixes{
    {"model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer."}};

bool ends_with(const std::string& s, const char* suffix) {
  const std::size_t n = std::char_traits<char>::length(suffix);
  return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

using lora_text::shape;

}  // namespace

std::int64_t LoraDelta::rank() const { return down && !down->shape.empty() ? down->shape[0] : 0; }

double LoraDelta::scale() const {
  const std::int64_t r = rank();
  if (r == 0) return 0.0;
  return alpha ? *alpha / static_cast<double>(r) : 1.0;
}

std::int64_t LoraFile::tensor_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& e : file->header().entries) bytes += e.end - e.begin;
  return bytes;
}

at::Tensor LoraFile::tensor(const SafetensorsEntry& entry) const {
  return file->tensor(entry).to(at::kFloat);
}

std::shared_ptr<const LoraFile> read_lora_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCategory::kUsage, fmt::format("LoRA file {} not found", path),
                "give the path of a .safetensors LoRA file");
  }
  auto lora = std::make_shared<LoraFile>();
  lora->path = path;
  try {
    lora->file = MappedSafetensors::open(path);
  } catch (const Error& e) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("LoRA file {} is not a readable safetensors file: {}", path, e.what()),
                "LoRAs are read from .safetensors files (convert .ckpt/.pt LoRAs first)");
  }
  const std::string where = fmt::format("LoRA file {}", path);
  const auto& entries = lora->file->header().entries;

  // The prefix: the first known one every key starts with (mixed prefixes are kept as they
  // are, and then simply match nothing).
  for (const char* prefix : kPrefixes) {
    const std::string p = prefix;
    const auto has_prefix = [&](const SafetensorsEntry& e) {
      return e.name.compare(0, p.size(), p) == 0;
    };
    const bool all =
        !entries.empty() && std::all_of(entries.begin(), entries.end(), has_prefix);
    if (all) {
      lora->prefix = p;
      break;
    }
  }

  std::map<std::string, std::size_t> index;  // module -> position in deltas
  std::vector<std::string> unknown;
  for (const SafetensorsEntry& e : entries) {
    const std::string key = e.name.substr(lora->prefix.size());
    const Suffix* found = nullptr;
    for (const Suffix& s : kSuffixes) {
      if (ends_with(key, s.text)) {
        found = &s;
        break;
      }
    }
    if (!found) {
      unknown.push_back(e.name);
      continue;
    }
    const std::size_t suffix = std::char_traits<char>::length(found->text);
    const std::string module = key.substr(0, key.size() - suffix);
    auto [it, inserted] = index.emplace(module, lora->deltas.size());
    if (inserted) {
      lora->deltas.emplace_back();
      lora->deltas.back().module = module;
    }
    LoraDelta& d = lora->deltas[it->second];
    d.keys.push_back(e.name);
    auto& layouts = lora->layouts;
    if (found->layout &&
        std::find(layouts.begin(), layouts.end(), found->layout) == layouts.end()) {
      lora->layouts.emplace_back(found->layout);
    }
    const SafetensorsEntry** slot = nullptr;
    switch (found->part) {
      case Part::kDown: slot = &d.down; break;
      case Part::kUp: slot = &d.up; break;
      case Part::kDiff: slot = &d.diff; break;
      case Part::kDiffBias: slot = &d.diff_b; break;
      case Part::kAlpha: {
        std::int64_t n = 1;
        for (std::int64_t s : e.shape) n *= s;
        const double value =
            n == 1 ? lora->file->tensor(e).to(at::kDouble).reshape({}).item<double>() : NAN;
        if (!std::isfinite(value)) {
          throw Error(ErrorCategory::kBundle,
                      fmt::format("{}: '{}' is not one finite number (shape {})", where, e.name,
                                  shape(e.shape)),
                      "alpha is the scalar numerator of the LoRA scale alpha / rank");
        }
        d.alpha = value;
        lora->has_alpha = true;
        continue;
      }
    }
    if (*slot) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: module '{}' has two tensors for the same part: '{}' and '{}'",
                              where, module, (*slot)->name, e.name),
                  "a file mixing the lora_down/lora_up and lora_A/lora_B names for one module is "
                  "ambiguous; keep one of them");
    }
    *slot = &e;
  }
  if (!unknown.empty()) {
    throw Error(ErrorCategory::kBundle,
                fmt::format("{}: {} key(s) of no known LoRA layout: {}", where, unknown.size(),
                            lora_text::some(unknown, 5)),
                "wanrt reads lora_down/lora_up, lora_A/lora_B (with alpha), diff and diff_b keys "
                "(docs/lora.md)");
  }
  for (LoraDelta& d : lora->deltas) {
    if (static_cast<bool>(d.down) != static_cast<bool>(d.up)) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: module '{}' has {} but no {}", where, d.module,
                              d.down ? d.down->name : d.up->name,
                              d.down ? "up factor" : "down factor"),
                  "the file is incomplete or damaged; re-download or re-export it");
    }
    if (!d.down && d.alpha) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: module '{}' has an alpha but no low-rank factors", where,
                              d.module),
                  "the file is incomplete or damaged; re-download or re-export it");
    }
    if (!d.down) continue;
    if (d.down->shape.size() < 2 || d.up->shape.size() < 2 || d.up->shape[1] != d.down->shape[0] ||
        d.down->shape[0] < 1) {
      throw Error(ErrorCategory::kBundle,
                  fmt::format("{}: module '{}': factors {} {} and {} {} do not multiply (up is "
                              "[out, rank, ...], down [rank, in, ...])",
                              where, d.module, d.up->name, shape(d.up->shape), d.down->name,
                              shape(d.down->shape)),
                  "the file is damaged or of a layout wanrt does not read (docs/lora.md)");
    }
    const std::int64_t r = d.rank();
    lora->min_rank = lora->min_rank == 0 ? r : std::min(lora->min_rank, r);
    lora->max_rank = std::max(lora->max_rank, r);
  }
  if (lora->deltas.empty()) {
    throw Error(ErrorCategory::kBundle, fmt::format("{} holds no tensor", where),
                "the file is empty; re-download or re-export it");
  }
  return lora;
}

}  // namespace wanrt
