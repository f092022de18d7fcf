#include "optim/optim_types.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>

#include "runtime/error.h"

namespace wanrt {
namespace {

template <typename Enum, std::size_t N>
Enum parse_choice(const std::string& text, const std::string& what,
                  const std::pair<const char*, Enum> (&choices)[N]) {
  std::string known;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    known += (known.empty() ? "" : ", ") + std::string(name);
  }
  throw Error(ErrorCategory::kUsage, fmt::format("{} '{}' is not a known value", what, text),
              "use one of: " + known);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

const char* dtype_name(Dtype dtype) noexcept {
  switch (dtype) {
    case Dtype::kFp32:
      return "fp32";
    case Dtype::kBf16:
      return "bf16";
    case Dtype::kFp16:
      return "fp16";
  }
  return "fp32";
}

const char* offload_name(OffloadPolicy policy) noexcept {
  switch (policy) {
    case OffloadPolicy::kNone:
      return "none";
    case OffloadPolicy::kModel:
      return "model";
    case OffloadPolicy::kSequential:
      return "sequential";
    case OffloadPolicy::kFull:
      return "full";
  }
  return "none";
}

const char* text_encoder_placement_name(TextEncoderPlacement placement) noexcept {
  switch (placement) {
    case TextEncoderPlacement::kDevice:
      return "device";
    case TextEncoderPlacement::kOffloadAfterUse:
      return "offload";
    case TextEncoderPlacement::kCpu:
      return "cpu";
  }
  return "device";
}

const char* host_residency_name(HostResidency residency) noexcept {
  switch (residency) {
    case HostResidency::kAll:
      return "all";
    case HostResidency::kOnDemand:
      return "on_demand";
    case HostResidency::kDisk:
      return "disk";
  }
  return "all";
}

const char* attention_name(AttentionKind kind) noexcept {
  return kind == AttentionKind::kSdpa ? "sdpa" : "math";
}

const char* residency_name(Residency residency) noexcept {
  switch (residency) {
    case Residency::kWholeRun:
      return "whole_run";
    case Residency::kFromFirstUse:
      return "from_first_use";
    case Residency::kDuringUse:
      return "during_use";
    case Residency::kStreamed:
      return "streamed";
  }
  return "whole_run";
}

int dtype_size(Dtype dtype) noexcept { return dtype == Dtype::kFp32 ? 4 : 2; }

bool is_half(Dtype dtype) noexcept { return dtype != Dtype::kFp32; }

Dtype parse_dtype(const std::string& text, const std::string& what) {
  static const std::pair<const char*, Dtype> choices[] = {
      {"fp32", Dtype::kFp32}, {"bf16", Dtype::kBf16}, {"fp16", Dtype::kFp16}};
  return parse_choice(text, what, choices);
}

OffloadPolicy parse_offload(const std::string& text, const std::string& what) {
  static const std::pair<const char*, OffloadPolicy> choices[] = {
      {"none", OffloadPolicy::kNone},
      {"model", OffloadPolicy::kModel},
      {"sequential", OffloadPolicy::kSequential},
      {"full", OffloadPolicy::kFull}};
  return parse_choice(text, what, choices);
}

TextEncoderPlacement parse_text_encoder_placement(const std::string& text,
                                                  const std::string& what) {
  static const std::pair<const char*, TextEncoderPlacement> choices[] = {
      {"device", TextEncoderPlacement::kDevice},
      {"offload", TextEncoderPlacement::kOffloadAfterUse},
      {"cpu", TextEncoderPlacement::kCpu}};
  return parse_choice(text, what, choices);
}

AttentionKind parse_attention(const std::string& text, const std::string& what) {
  static const std::pair<const char*, AttentionKind> choices[] = {{"sdpa", AttentionKind::kSdpa},
                                                                  {"math", AttentionKind::kMath}};
  return parse_choice(text, what, choices);
}

HostResidency parse_host_residency(const std::string& text, const std::string& what) {
  static const std::pair<const char*, HostResidency> choices[] = {
      {"all", HostResidency::kAll},
      {"on_demand", HostResidency::kOnDemand},
      {"disk", HostResidency::kDisk}};
  return parse_choice(text, what, choices);
}

std::int64_t parse_byte_size(const std::string& text, const std::string& what) {
  const auto bad = [&]() {
    return Error(ErrorCategory::kUsage, fmt::format("{} '{}' is not a byte size", what, text),
                 "for example 24GiB, 80GB, 512MiB or a number of bytes");
  };
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  std::string unit = lower(text.substr(used));
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  static const std::pair<const char*, double> units[] = {{"", 1.0},
                                                         {"b", 1.0},
                                                         {"k", 1024.0},
                                                         {"kib", 1024.0},
                                                         {"kb", 1e3},
                                                         {"m", 1048576.0},
                                                         {"mib", 1048576.0},
                                                         {"mb", 1e6},
                                                         {"g", 1073741824.0},
                                                         {"gib", 1073741824.0},
                                                         {"gb", 1e9},
                                                         {"t", 1099511627776.0},
                                                         {"tib", 1099511627776.0},
                                                         {"tb", 1e12}};
  for (const auto& [name, factor] : units) {
    if (unit == name) {
      const double bytes = value * factor;
      if (!(bytes >= 0) || bytes > 9.0e18) throw bad();
      return static_cast<std::int64_t>(std::llround(bytes));
    }
  }
  throw bad();
}

int cuda_device_index(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0) return -1;
  try {
    return std::stoi(device.substr(5));
  } catch (const std::exception&) {
    return -1;
  }
}

std::string format_gib(std::int64_t bytes) {
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / 1073741824.0);
}

const char* setting_name(Setting setting) noexcept {
  switch (setting) {
    case Setting::kDevice: return "device";
    case Setting::kDtype: return "dtype";
    case Setting::kOffload: return "offload";
    case Setting::kBlocksResident: return "blocks_resident";
    case Setting::kPrefetch: return "prefetch";
    case Setting::kTextEncoder: return "text_encoder";
    case Setting::kAttention: return "attention";
    case Setting::kHostResidency: return "host_residency";
    case Setting::kFrameChunk: return "frame_chunk";
    case Setting::kVaeTile: return "vae_tile";
    case Setting::kVaeDtype: return "vae_dtype";
  }
  return "unknown";
}

namespace {
constexpr int kSettings = static_cast<int>(Setting::kVaeDtype) + 1;
}  // namespace

SettingSet::SettingSet(std::initializer_list<Setting> settings) {
  for (Setting s : settings) insert(s);
}

SettingSet SettingSet::of(const PlanSettings& s) {
  SettingSet out;
  if (s.device) out.insert(Setting::kDevice);
  if (s.dtype) out.insert(Setting::kDtype);
  if (s.offload) out.insert(Setting::kOffload);
  if (s.blocks_resident) out.insert(Setting::kBlocksResident);
  if (s.prefetch) out.insert(Setting::kPrefetch);
  if (s.text_encoder) out.insert(Setting::kTextEncoder);
  if (s.attention) out.insert(Setting::kAttention);
  if (s.host_residency) out.insert(Setting::kHostResidency);
  if (s.frame_chunk) out.insert(Setting::kFrameChunk);
  if (s.vae_tile) out.insert(Setting::kVaeTile);
  if (s.vae_dtype) out.insert(Setting::kVaeDtype);
  return out;
}

int SettingSet::size() const noexcept {
  int n = 0;
  for (int i = 0; i < kSettings; ++i) n += contains(static_cast<Setting>(i)) ? 1 : 0;
  return n;
}

std::vector<std::string> SettingSet::names() const {
  std::vector<std::string> out;
  for (int i = 0; i < kSettings; ++i) {
    if (contains(static_cast<Setting>(i))) out.emplace_back(setting_name(static_cast<Setting>(i)));
  }
  return out;
}

const ComponentPlan& OptimizationPlan::component(const std::string& name) const {
  for (const auto& c : components) {
    if (c.name == name) return c;
  }
  throw Error(ErrorCategory::kInternal, fmt::format("plan has no component '{}'", name));
}

ComponentPlan& OptimizationPlan::component(const std::string& name) {
  const auto& self = *this;
  return const_cast<ComponentPlan&>(self.component(name));
}

}  // namespace wanrt
