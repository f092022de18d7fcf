#include "support/catch.h"

#include "optim/machine.h"
#include "optim/optim_types.h"
#include "runtime/error.h"

using namespace wanrt;

namespace {
constexpr std::int64_t kGiB = 1LL << 30;
}

TEST_CASE("byte sizes parse with binary and decimal units", "[optim]") {
  CHECK(parse_byte_size("24GiB", "--vram") == 24 * kGiB);
  CHECK(parse_byte_size("24 GiB", "--vram") == 24 * kGiB);
  CHECK(parse_byte_size("8G", "--vram") == 8 * kGiB);
  CHECK(parse_byte_size("80GB", "--vram") == 80'000'000'000LL);
  CHECK(parse_byte_size("512MiB", "--vram") == 512LL * 1024 * 1024);
  CHECK(parse_byte_size("1.5TiB", "--ram") == 3 * 512 * kGiB);
  CHECK(parse_byte_size("4096", "--ram") == 4096);
  for (const char* bad : {"", "GiB", "24XB", "-3GiB", "1e30TB"}) {
    try {
      parse_byte_size(bad, "--vram");
      FAIL("accepted '" << bad << "'");
    } catch (const Error& e) {
      CHECK(e.category() == ErrorCategory::kUsage);
      CHECK(std::string(e.what()).find("--vram") != std::string::npos);
    }
  }
}

TEST_CASE("enum names round-trip and unknown names list the choices", "[optim]") {
  for (Dtype d : {Dtype::kFp32, Dtype::kBf16, Dtype::kFp16}) {
    CHECK(parse_dtype(dtype_name(d), "--dtype") == d);
  }
  for (OffloadPolicy p : {OffloadPolicy::kNone, OffloadPolicy::kModel, OffloadPolicy::kSequential,
                          OffloadPolicy::kFull}) {
    CHECK(parse_offload(offload_name(p), "--offload") == p);
  }
  CHECK(parse_text_encoder_placement("cpu", "--text-encoder") == TextEncoderPlacement::kCpu);
  CHECK(parse_attention("sdpa", "--attention") == AttentionKind::kSdpa);
  CHECK(dtype_size(Dtype::kFp32) == 4);
  CHECK(dtype_size(Dtype::kBf16) == 2);
  try {
    parse_offload("partial", "--offload");
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.hint() == "use one of: none, model, sequential, full");
  }
}

TEST_CASE("plan settings report the names of the fields the user set", "[optim]") {
  PlanSettings s;
  CHECK(s.names().empty());
  s.offload = OffloadPolicy::kModel;
  s.prefetch = 0;
  CHECK(s.names() == std::vector<std::string>{"offload", "prefetch"});
}

TEST_CASE("a simulated machine replaces the probed GPUs and RAM", "[optim]") {
  SystemResources real;
  real.cpu_cores = 2;
  real.ram_total = 16 * kGiB;
  real.ram_available = 10 * kGiB;
  MachineOverrides o;
  o.vram = 24 * kGiB;
  o.ram = 64 * kGiB;
  o.gpu_cc = 8.9;
  o.gpu_count = 2;
  const SystemResources r = simulate_resources(real, o);
  REQUIRE(r.gpus.size() == 2);
  CHECK(r.gpus[1].index == 1);
  CHECK(r.gpus[0].cc_major == 8);
  CHECK(r.gpus[0].cc_minor == 9);
  CHECK(r.gpus[0].free_bytes == 24 * kGiB);
  CHECK(r.gpus[0].bf16);
  CHECK(r.ram_total == 64 * kGiB);
  CHECK(r.ram_available == 64 * kGiB);
  CHECK(r.cpu_cores == 2);

  MachineOverrides turing;
  turing.vram = 16 * kGiB;
  turing.gpu_cc = 7.5;
  const auto t = simulate_resources(real, turing);
  CHECK_FALSE(t.gpus[0].bf16);
  CHECK(t.gpus[0].fp16);
  CHECK(t.ram_available == 10 * kGiB);  // not simulated: the probed value

  MachineOverrides none;
  none.gpu_count = 0;
  CHECK(simulate_resources(t, none).gpus.empty());

  MachineOverrides cc_only;
  cc_only.gpu_cc = 8.0;
  CHECK_THROWS_AS(simulate_resources(real, cc_only), Error);  // no memory to simulate
  MachineOverrides bad_cc;
  bad_cc.vram = kGiB;
  bad_cc.gpu_cc = 42.0;
  CHECK_THROWS_AS(simulate_resources(real, bad_cc), Error);
}

TEST_CASE("budgets: free device memory, the configured reserve, available RAM", "[optim]") {
  SystemResources r;
  r.ram_total = 64 * kGiB;
  r.ram_available = 60 * kGiB;
  GpuInfo g;
  g.index = 0;
  g.total_bytes = 24 * kGiB;
  g.free_bytes = 23 * kGiB;
  g.cc_major = 8;
  r.gpus.push_back(g);
  OptimizationConfig cfg;
  cfg.vram_safety_margin_mb = 512;
  const Budget b = compute_budget(r, "cuda:0", cfg);
  CHECK(b.device_capacity == 23 * kGiB);
  CHECK(b.device_reserve == 512LL << 20);
  CHECK(b.host_capacity == 60 * kGiB);
  CHECK(b.host_reserve == 4 * kGiB);  // 10% of 64 GiB capped at 4 GiB
  CHECK(host_reserve_bytes(16 * kGiB) == 16 * kGiB / 10);
  CHECK(host_reserve_bytes(4 * kGiB) == kGiB);
  const Budget cpu = compute_budget(r, "cpu", cfg);
  CHECK(cpu.device_capacity == 0);
  CHECK_THROWS_AS(compute_budget(r, "cuda:3", cfg), Error);
  CHECK(preferred_gpu(r) == 0);
}

TEST_CASE("precision follows the compute capability and the CPU flags", "[optim]") {
  SystemResources r;
  r.ram_total = r.ram_available = 32 * kGiB;
  for (const auto& [cc, want] : std::vector<std::pair<double, Dtype>>{{9.0, Dtype::kBf16},
                                                                      {8.0, Dtype::kBf16},
                                                                      {7.5, Dtype::kFp16},
                                                                      {7.0, Dtype::kFp16},
                                                                      {6.1, Dtype::kFp32}}) {
    MachineOverrides o;
    o.vram = 16 * kGiB;
    o.gpu_cc = cc;
    CAPTURE(cc);
    CHECK(choose_precision(simulate_resources(r, o), "cuda:0").compute == want);
  }
  r.cpu_avx512_bf16 = false;
  r.cpu_amx = false;
  CHECK(choose_precision(r, "cpu").compute == Dtype::kFp32);
  CHECK(choose_precision(r, "cpu").half_saves_memory_only);
  r.cpu_amx = true;
  CHECK(choose_precision(r, "cpu").compute == Dtype::kBf16);

  // fp16 cannot compute on the CPU; bf16 needs cc >= 8.0.
  try {
    check_dtype_supported(r, "cpu", Dtype::kFp16, "--dtype");
    FAIL("fp16 accepted on the CPU");
  } catch (const Error& e) {
    CHECK(e.category() == ErrorCategory::kResources);
    CHECK(std::string(e.what()).find("fp16") != std::string::npos);
  }
  MachineOverrides t4;
  t4.vram = 16 * kGiB;
  t4.gpu_cc = 7.5;
  CHECK_THROWS_AS(
      check_dtype_supported(simulate_resources(r, t4), "cuda:0", Dtype::kBf16, "--dtype"), Error);
  CHECK_NOTHROW(
      check_dtype_supported(simulate_resources(r, t4), "cuda:0", Dtype::kFp16, "--dtype"));
}
