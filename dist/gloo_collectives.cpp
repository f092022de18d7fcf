#include <fmt/format.h>

#include "dist/collectives.h"

// c10d declares the Gloo process group only under this macro (LibTorch's own build sets it).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace wanrt::dist {
namespace {

class GlooCollectives final : public C10dCollectives<c10d::ProcessGroupGloo> {
 public:
  using C10dCollectives::C10dCollectives;
  std::string name() const override { return "gloo"; }
  at::Device device() const override { return at::kCPU; }
  bool bf16_as_half() const override { return true; }
};

}  // namespace

std::unique_ptr<Collectives> make_gloo_collectives(const c10::intrusive_ptr<c10d::Store>& store,
                                                   int rank, int size,
                                                   std::chrono::milliseconds timeout,
                                                   bool loopback) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // One machine (the local launcher, or every rank local): loopback, which needs no hostname
  // resolution. Several machines: the address the hostname resolves to (GLOO_SOCKET_IFNAME
  // overrides it where LibTorch supports that).
  options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                      : c10d::ProcessGroupGloo::createDefaultDevice());
  options->threads = 1;  // collectives here are few and large; the cores compute
  return std::make_unique<GlooCollectives>(
      c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options));
}

}  // namespace wanrt::dist
