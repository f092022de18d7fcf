#include "support/catch.h"
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "support/error_category.h"
#include "runtime/bundle.h"
#include "runtime/component.h"
#include "runtime/device_transfer.h"
#include "runtime/error.h"
#include "runtime/module_weights.h"
#include "runtime/staged_executor.h"
#include "support/tiny_bundles.h"

using wanrt::ErrorCategory;
using wanrt::ModuleWeights;

namespace {

// Parameters and buffers of `module` (recursively), each distinct tensor once, through the
// LibTorch module API rather than the attribute slots ModuleWeights walks.
std::vector<at::Tensor> params_and_buffers(const torch::jit::Module& module) {
  std::vector<at::Tensor> out;
  std::set<const c10::TensorImpl*> seen;
  for (const auto& p : module.named_parameters()) {
    if (seen.insert(p.value.unsafeGetTensorImpl()).second) out.push_back(p.value);
  }
  for (const auto& b : module.named_buffers()) {
    if (seen.insert(b.value.unsafeGetTensorImpl()).second) out.push_back(b.value);
  }
  return out;
}

std::int64_t bytes_of(const torch::jit::Module& module) {
  std::int64_t total = 0;
  for (const auto& t : params_and_buffers(module)) total += t.numel() * t.element_size();
  return total;
}

// Every floating parameter and buffer of `module` converted to `dtype`, by name.
void cast_floating(torch::jit::Module& module, at::ScalarType dtype) {
  for (auto m : module.modules()) {
    for (const auto& p : m.named_parameters(false)) {
      if (p.value.is_floating_point()) m.setattr(p.name, p.value.to(dtype));
    }
    for (const auto& b : m.named_buffers(false)) {
      if (b.value.is_floating_point()) m.setattr(b.name, b.value.to(dtype));
    }
  }
}

std::set<at::ScalarType> dtypes_of(const torch::jit::Module& module) {
  std::set<at::ScalarType> out;
  for (const auto& t : params_and_buffers(module)) {
    if (t.is_floating_point()) out.insert(t.scalar_type());
  }
  return out;
}

std::vector<at::Tensor> dit_inputs(const wanrt::BundleManifest& m) {
  at::manual_seed(1);
  const int text_len = m.architecture["dit"]["text_len"].as<int>();
  const int text_dim = m.architecture["dit"]["text_dim"].as<int>();
  const int in_dim = m.architecture["dit"]["in_dim"].as<int>();
  return {at::randn({1, in_dim, 2, 4, 4}), at::full({1}, 700.0),
          at::randn({1, text_len, text_dim})};
}

// Acquires each block just before it runs and releases it right after.
class BlockByBlock : public wanrt::StageHooks {
 public:
  explicit BlockByBlock(ModuleWeights& w) : w_(w) {}
  void before_stage(const wanrt::StageInfo& info) override {
    if (info.kind == wanrt::StageKind::kBlock) w_.acquire(w_.block_unit(info.block));
  }
  void after_stage(const wanrt::StageInfo& info) override {
    if (info.kind == wanrt::StageKind::kBlock) w_.release(w_.block_unit(info.block));
  }

 private:
  ModuleWeights& w_;
};

using wanrt_test::category_of;

}  // namespace

TEST_CASE("module weights split a staged module into the shell and one unit per block",
          "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  auto transfer = wanrt::make_cpu_transfer();
  for (const std::string name : {"dit", "text_encoder"}) {
    INFO(name);
    const auto c = wanrt::Component::load(m, name);
    const auto& blocks = c.blocks();
    const int n = static_cast<int>(blocks.size());
    REQUIRE(n >= 2);
    ModuleWeights w(c.module(), blocks, *transfer);
    REQUIRE(w.num_units() == n + 1);
    CHECK(w.unit_name(0) == "shell");
    std::int64_t block_total = 0;
    int tensors = w.num_tensors(0);
    for (int i = 0; i < n; ++i) {
      CHECK(w.block_unit(i) == i + 1);
      CHECK(w.unit_name(i + 1) == "block " + std::to_string(i));
      // Independent count through the block module's own parameters and buffers, and the
      // exporter's (Python) count in the manifest.
      CHECK(w.device_bytes(i + 1) == bytes_of(blocks[static_cast<std::size_t>(i)]));
      CHECK(w.device_bytes(i + 1) == c.entry().block_bytes[static_cast<std::size_t>(i)]);
      CHECK(w.host_bytes(i + 1) == w.device_bytes(i + 1));
      block_total += w.device_bytes(i + 1);
      tensors += w.num_tensors(i + 1);
    }
    CHECK(w.device_bytes(0) + block_total == bytes_of(c.module()));
    CHECK(w.device_bytes(0) == c.entry().non_block_bytes);
    CHECK(tensors == static_cast<int>(params_and_buffers(c.module()).size()));
    CHECK(category_of([&] { w.block_unit(n); }) == ErrorCategory::kInternal);
    CHECK(category_of([&] { w.block_unit(-1); }) == ErrorCategory::kInternal);
    CHECK(category_of([&] { w.unit_name(n + 1); }) == ErrorCategory::kInternal);
    for (int u = 0; u < w.num_units(); ++u) CHECK_FALSE(w.resident(u));
  }

  // Without blocks: one unit "all" holding everything.
  const auto vae = wanrt::Component::load(m, "vae");
  ModuleWeights all(vae.module(), {}, *transfer);
  REQUIRE(all.num_units() == 1);
  CHECK(all.unit_name(0) == "all");
  CHECK(all.device_bytes(0) == bytes_of(vae.module()));
  CHECK(all.device_bytes(0) == vae.entry().bytes);
  CHECK(category_of([&] { all.block_unit(0); }) == ErrorCategory::kInternal);

  // A "block" that is not part of the module is a caller bug.
  const auto dit = wanrt::Component::load(m, "dit");
  const auto te = wanrt::Component::load(m, "text_encoder");
  CHECK(category_of([&] { ModuleWeights bad(dit.module(), {te.blocks()[0]}, *transfer); }) ==
        ErrorCategory::kInternal);
}

TEST_CASE("acquiring and releasing units keeps outputs bit-identical", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  const auto inputs = dit_inputs(m);
  const auto untouched = wanrt::Component::load(m, "dit");
  const at::Tensor expected = wanrt::StagedExecutor(untouched).run(inputs)[0];

  const auto c = wanrt::Component::load(m, "dit");
  const std::vector<at::Tensor> before = params_and_buffers(c.module());
  auto transfer = wanrt::make_cpu_transfer();
  ModuleWeights w(c.module(), c.blocks(), *transfer);
  wanrt::StagedExecutor executor(c);
  BlockByBlock hooks(w);

  w.acquire(0);
  CHECK(w.resident(0));
  w.acquire(0);  // no-op
  const at::Tensor streamed = executor.run(inputs, &hooks)[0];
  CHECK(at::equal(streamed, expected));
  for (int i = 0; i < executor.num_blocks(); ++i) CHECK_FALSE(w.resident(w.block_unit(i)));

  // Prefetch, then acquire; and a prefetch dropped by a release.
  const int b1 = w.block_unit(1);
  w.prefetch(b1);
  CHECK(w.in_flight(b1));
  CHECK_FALSE(w.resident(b1));
  w.acquire(b1);
  CHECK(w.resident(b1));
  CHECK_FALSE(w.in_flight(b1));
  w.prefetch(b1);  // resident: no-op
  CHECK_FALSE(w.in_flight(b1));
  w.release(b1);
  CHECK_FALSE(w.resident(b1));
  w.prefetch(b1);
  w.release(b1);
  CHECK_FALSE(w.in_flight(b1));
  CHECK_FALSE(w.resident(b1));
  w.release(b1);  // not resident: no-op

  for (int u = 0; u < w.num_units(); ++u) w.acquire(u);
  CHECK(at::equal(executor.run(inputs)[0], expected));
  for (int u = 0; u < w.num_units(); ++u) w.release(u);
  CHECK(at::equal(executor.run(inputs)[0], expected));

  // The module holds the very tensors it was loaded with again.
  const std::vector<at::Tensor> after = params_and_buffers(c.module());
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i].is_same(before[i]));
}

TEST_CASE("half weights are upcast on acquire and restored on release", "[runtime]") {
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::InferenceScope scope;
  const auto inputs = dit_inputs(m);
  // Reference: the weights rounded to bf16, computed in fp32.
  auto reference = wanrt::Component::load(m, "dit");
  cast_floating(reference.module(), at::kBFloat16);
  cast_floating(reference.module(), at::kFloat);
  const at::Tensor expected = wanrt::StagedExecutor(reference).run(inputs)[0];

  auto c = wanrt::Component::load(m, "dit");
  cast_floating(c.module(), at::kBFloat16);
  REQUIRE(dtypes_of(c.module()) == std::set<at::ScalarType>{at::kBFloat16});
  const std::vector<at::Tensor> before = params_and_buffers(c.module());
  auto transfer = wanrt::make_cpu_transfer();
  ModuleWeights w(c.module(), c.blocks(), *transfer, at::kFloat);

  // Device bytes: twice the host bytes of the half tensors, the others unchanged.
  auto expected_bytes = [](const torch::jit::Module& module, bool device) {
    std::int64_t total = 0;
    for (const auto& t : params_and_buffers(module)) {
      const bool half = t.scalar_type() == at::kBFloat16;
      total += t.numel() * t.element_size() * (device && half ? 2 : 1);
    }
    return total;
  };
  std::int64_t shell_host = expected_bytes(c.module(), false);
  std::int64_t shell_device = expected_bytes(c.module(), true);
  for (int i = 0; i < static_cast<int>(c.blocks().size()); ++i) {
    const auto& block = c.blocks()[static_cast<std::size_t>(i)];
    CHECK(w.host_bytes(w.block_unit(i)) == expected_bytes(block, false));
    CHECK(w.device_bytes(w.block_unit(i)) == expected_bytes(block, true));
    CHECK(w.device_bytes(w.block_unit(i)) == 2 * w.host_bytes(w.block_unit(i)));
    shell_host -= expected_bytes(block, false);
    shell_device -= expected_bytes(block, true);
  }
  CHECK(w.host_bytes(0) == shell_host);
  CHECK(w.device_bytes(0) == shell_device);

  // Only the acquired unit changes dtype.
  w.acquire(w.block_unit(0));
  CHECK(dtypes_of(c.blocks()[0]) == std::set<at::ScalarType>{at::kFloat});
  CHECK(dtypes_of(c.blocks()[1]) == std::set<at::ScalarType>{at::kBFloat16});
  CHECK(dtypes_of(c.module()) == std::set<at::ScalarType>{at::kFloat, at::kBFloat16});

  for (int u = 0; u < w.num_units(); ++u) w.acquire(u);
  CHECK(dtypes_of(c.module()) == std::set<at::ScalarType>{at::kFloat});
  wanrt::StagedExecutor executor(c);
  CHECK(at::equal(executor.run(inputs)[0], expected));

  for (int u = 0; u < w.num_units(); ++u) w.release(u);
  CHECK(dtypes_of(c.module()) == std::set<at::ScalarType>{at::kBFloat16});
  const std::vector<at::Tensor> after = params_and_buffers(c.module());
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i].is_same(before[i]));

  // Streaming block by block upcasts each block while it runs.
  w.acquire(0);
  BlockByBlock hooks(w);
  CHECK(at::equal(executor.run(inputs, &hooks)[0], expected));
}

TEST_CASE("paged units keep their weights over the mapping and drop their pages at release",
          "[runtime]") {
  // Host residency "disk": a format 2 component's units are paged from its weights file.
  const auto m = wanrt::read_bundle(wanrt_test::tiny_bundle("tiny-ti2v"));
  wanrt::Component c = wanrt::Component::load(m, "dit");
  REQUIRE(c.weights() != nullptr);
  const std::shared_ptr<wanrt::MappedSafetensors> file = c.weights()->file;
  auto transfer = wanrt::make_cpu_transfer();
  ModuleWeights w(c.module(), c.blocks(), *transfer, {}, file);

  // Each block's paged bytes are its parameters' bytes, counted through the module API.
  const int b0 = w.block_unit(0);
  std::int64_t params = 0;
  for (const auto& p : c.blocks()[0].parameters()) params += p.numel() * p.element_size();
  CHECK(w.paged_bytes(b0) == params);
  REQUIRE(w.paged_ranges(b0).size() == 1);  // the exporter writes a block as one range
  const auto [begin, end] = w.paged_ranges(b0).front();
  CHECK(end - begin == params);

  const at::Tensor first = *c.blocks()[0].parameters().begin();
  const at::Tensor before = first.clone();
  const void* address = first.data_ptr();
  CHECK(file->range_of(address, 1).has_value());  // over the mapping: no host copy was made
  w.acquire(b0);
  for (const auto& p : c.blocks()[0].parameters()) (void)p.sum().item<double>();  // touch
  const std::int64_t touched = file->resident_bytes(begin, end);
  if (touched < 0) WARN("WANRT_SKIP: /proc/self/pagemap is not readable here");
  REQUIRE(touched >= 0);
  CHECK(touched >= params);
  w.release(b0);
  // Whole pages are dropped: at most the pages the range shares with its neighbours remain
  // mapped (none, as nothing else touched them).
  CHECK(file->resident_bytes(begin, end) == 0);
  // The installed host tensor is still the mapping's and reads back the same values.
  const at::Tensor after = *c.blocks()[0].parameters().begin();
  CHECK(after.data_ptr() == address);
  CHECK(at::equal(after, before));

  // Without a paged file nothing is paged.
  wanrt::Component plain = wanrt::Component::load(m, "dit");
  ModuleWeights v(plain.module(), plain.blocks(), *transfer);
  for (int u = 0; u < v.num_units(); ++u) CHECK(v.paged_bytes(u) == 0);
}
