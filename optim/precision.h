// Casting a component to its planned precision: every floating-point tensor of the module to
// fp16/bf16 except those matching the manifest's keep-fp32 patterns (norms, time embedding,
// modulation, patch embedding), in place. The exported modules cast their inputs to each
// layer's weight dtype, so a cast module runs as is. Which dtype a device can compute in is
// machine.h's choose_precision / check_dtype_supported.
#pragma once

#include <ATen/ATen.h>
#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "optim/optim_types.h"
#include "runtime/safetensors_file.h"

namespace wanrt {

/// What a cast changed.
struct CastReport {
  int cast_tensors = 0;             ///< floating tensors converted to the target dtype
  int kept_fp32_tensors = 0;        ///< floating tensors a keep-fp32 pattern kept
  std::int64_t cast_elements = 0;   ///< elements of the converted tensors
  std::int64_t kept_elements = 0;   ///< elements of the kept tensors
  std::int64_t bytes_before = 0;    ///< bytes of all floating tensors before
  std::int64_t bytes_after = 0;     ///< and after
};

/// The ATen scalar type of a Dtype.
at::ScalarType to_scalar_type(Dtype dtype) noexcept;

/// Casts the floating-point tensor attributes (parameters, buffers, plain tensor attributes)
/// of `module` and its submodules to `dtype`, except those whose dotted name from the module's
/// root ("blocks.0.norm3.weight") matches a `keep_fp32` glob (keep_fp32_match); those are made
/// fp32. Integer and bool tensors are untouched. `dtype` fp32 casts everything to fp32.
/// `replaced`, when given, sees each tensor that a converted copy replaced, once converted (the
/// residency manager drops the pages of a mapped weights file it came from).
CastReport cast_module(torch::jit::Module& module, Dtype dtype,
                       const std::vector<std::string>& keep_fp32,
                       const std::function<void(const at::Tensor&)>& replaced = {});

/// Whether this LibTorch can decode the Wan VAE in bfloat16 on the CPU. Its decoder upsamples
/// with nearest-exact interpolation, which has a bfloat16 CPU kernel in LibTorch 2.x but not in
/// 1.13; probed once by running that operation on a tiny tensor.
bool cpu_vae_bf16_supported();

/// cast_module for a module whose tensors may be used in place from the mapped weights `file`
/// (null: none). A cast reads each tensor once; the pages it read would stay in this process's
/// resident set for as long as the file is mapped. They are dropped as each tensor is
/// converted, and once more at the end (each page fault maps neighbouring pages in too), so a
/// cast costs the converted copy, not the copy and the whole file.
CastReport cast_module_from(torch::jit::Module& module, Dtype dtype,
                            const std::vector<std::string>& keep_fp32,
                            const MappedSafetensors* file);

/// The dtype weights held in half precision are cast to when brought to the device: fp32 when
/// a component stores fp16/bf16 but computes in fp32 (e.g. fp16 storage on the CPU, which has
/// no fp16 matmul), none otherwise.
std::optional<at::ScalarType> upcast_on_acquire(const ComponentPlan& plan) noexcept;

}  // namespace wanrt
