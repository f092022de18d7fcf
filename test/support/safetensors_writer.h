// Safetensors files written by hand for tests, independently of the code under test: an
// 8-byte little-endian header length, the JSON header padded with spaces, then the data.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace wanrt_test {

/// The bytes of a safetensors file with `header` (padded so the data start at a multiple of
/// `pad_to`) and `data`.
inline std::string safetensors_bytes(const nlohmann::json& header, const std::string& data,
                                     std::size_t pad_to = 8) {
  std::string h = header.dump();
  while ((8 + h.size()) % pad_to != 0) h += ' ';
  std::string out(8, '\0');
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + h + data;
}

/// Writes `tensors` (float32, bfloat16 or float16, any shape) in order to `path`.
inline void write_safetensors(const std::string& path,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.contiguous();
    const char* dtype = t.scalar_type() == at::kFloat      ? "F32"
                        : t.scalar_type() == at::kBFloat16 ? "BF16"
                                                           : "F16";
    const std::size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::ofstream(path, std::ios::binary) << safetensors_bytes(header, data);
}

}  // namespace wanrt_test
