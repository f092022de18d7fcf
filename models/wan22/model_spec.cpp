#include "models/wan22/model_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "models/wan22/scheduler.h"

namespace wanrt::wan22 {
namespace {

const YAML::Node section(const YamlFile& file, const YAML::Node& parent, const std::string& key) {
  const YAML::Node node = parent[key];
  if (!node || !node.IsMap()) file.fail(parent, key, "missing or not a mapping");
  return node;
}

template <size_t N>
std::array<int, N> int_array(const YamlFile& file, const YAML::Node& map, const std::string& key) {
  const YAML::Node node = map[key];
  if (!node || !node.IsSequence() || node.size() != N) {
    file.fail(node ? node : map, key, fmt::format("expected a list of {} integers", N));
  }
  std::array<int, N> out{};
  for (size_t i = 0; i < N; ++i) {
    try {
      out[i] = node[i].as<int>();
    } catch (const YAML::Exception&) {
      file.fail(node[i], key, fmt::format("element {} is not an integer", i));
    }
  }
  return out;
}

}  // namespace

const std::vector<ComponentSlot>& component_table() {
  static const std::vector<ComponentSlot> table = {
      {component::kTextEncoder, ComponentRole::kTextEncoder},
      {component::kDit, ComponentRole::kDenoiser},
      {component::kDitHighNoise, ComponentRole::kDenoiser},
      {component::kDitLowNoise, ComponentRole::kDenoiser},
      {component::kVae, ComponentRole::kVae},
  };
  return table;
}

ComponentRole component_role(const std::string& name) {
  for (const ComponentSlot& slot : component_table()) {
    if (name == slot.name) return slot.role;
  }
  return ComponentRole::kOther;
}

std::vector<std::string> WanSpec::components() const {
  std::vector<std::string> out{component::kTextEncoder};
  out.insert(out.end(), experts.begin(), experts.end());
  out.emplace_back(component::kVae);
  return out;
}

const std::string& WanSpec::expert_at(double t) const {
  if (!is_moe()) return experts.at(0);
  const bool high = sampling.boundary && t >= *sampling.boundary * sampling.num_train_timesteps;
  return high ? experts[0] : experts[1];
}

WanSpec read_wan_spec(const BundleManifest& manifest) {
  const YamlFile& file = manifest.yaml;
  const YAML::Node& root = file.root;
  WanSpec spec;
  spec.model_id = manifest.model_id;
  spec.task = manifest.task;
  if (spec.task != "t2v" && spec.task != "i2v" && spec.task != "ti2v") {
    file.fail(root["task"], "task", fmt::format("unknown task '{}'", spec.task),
              "wanrt runs the Wan 2.2 tasks t2v, i2v and ti2v");
  }
  const YAML::Node arch = section(file, root, "architecture");
  const YAML::Node dit = section(file, arch, "dit");
  const YAML::Node vae = section(file, arch, "vae");
  // The keys the exporter writes (models/export/wanrt_export/manifest.py), and no others.
  file.check_keys(arch, "architecture", {"text_encoder", "dit", "vae"});
  file.check_keys(arch["text_encoder"], "architecture.text_encoder",
                  {"vocab_size", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers",
                   "num_buckets", "max_dist", "eps"});
  file.check_keys(dit, "architecture.dit",
                  {"model_type", "in_dim", "out_dim", "dim", "ffn_dim", "num_heads", "num_layers",
                   "freq_dim", "text_dim", "text_len", "patch_size", "eps", "head_dim"});
  file.check_keys(vae, "architecture.vae",
                  {"version", "z_dim", "dim", "dec_dim", "dim_mult", "num_res_blocks",
                   "temporal_downsample", "stride", "patch", "mean", "std"});
  spec.z_dim = file.get<int>(vae, "z_dim");
  spec.vae_stride = int_array<3>(file, vae, "stride");
  spec.patch = int_array<3>(file, dit, "patch_size");
  spec.dit_in_dim = file.get<int>(dit, "in_dim");
  spec.dit_heads = file.get<int>(dit, "num_heads");
  spec.text_len = file.get<int>(dit, "text_len");

  for (const auto& c : manifest.components) {
    if (c.name.rfind("dit", 0) == 0) spec.experts.push_back(c.name);
  }
  const bool single = spec.experts.size() == 1 && spec.experts[0] == component::kDit;
  const bool moe = spec.experts.size() == 2 && manifest.has_component(component::kDitHighNoise) &&
                   manifest.has_component(component::kDitLowNoise);
  if (!single && !moe) {
    file.fail(root["components"], "components",
              "expected one DiT component 'dit' or the two experts 'dit_high_noise' and "
              "'dit_low_noise'");
  }
  if (moe) spec.experts = {component::kDitHighNoise, component::kDitLowNoise};

  const YAML::Node s = section(file, root, "sampling");
  file.check_keys(s, "sampling",
                  {"steps", "shift", "guide_scale", "boundary", "frames", "size", "fps", "sampler",
                   "num_train_timesteps", "negative_prompt"});
  SamplingDefaults& d = spec.sampling;
  d.steps = file.get<int>(s, "steps");
  d.shift = file.get<double>(s, "shift");
  const YAML::Node guide = s["guide_scale"];
  if (!guide || !guide.IsSequence() || guide.size() != 2) {
    file.fail(guide ? guide : s, "guide_scale", "expected [low_noise, high_noise]");
  }
  d.guide_low = guide[0].as<double>();
  d.guide_high = guide[1].as<double>();
  if (s["boundary"] && !s["boundary"].IsNull()) d.boundary = file.get<double>(s, "boundary");
  if (moe && !d.boundary) {
    file.fail(s, "boundary", "a two-expert model needs the switching boundary");
  }
  d.frames = file.get<int>(s, "frames");
  const auto size = int_array<2>(file, s, "size");
  d.width = size[0];
  d.height = size[1];
  d.fps = file.get<int>(s, "fps");
  if (s["sampler"]) {
    d.sampler = file.get<std::string>(s, "sampler");
    const auto& known = sampler_names();
    if (std::find(known.begin(), known.end(), d.sampler) == known.end()) {
      file.fail(s["sampler"], "sampler", fmt::format("unknown sampler '{}'", d.sampler),
                fmt::format("wanrt knows {}", fmt::join(known, ", ")));
    }
  }
  if (s["num_train_timesteps"]) d.num_train_timesteps = file.get<int>(s, "num_train_timesteps");
  if (s["negative_prompt"]) d.negative_prompt = file.get<std::string>(s, "negative_prompt");
  return spec;
}

}  // namespace wanrt::wan22
