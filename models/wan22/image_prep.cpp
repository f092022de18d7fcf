#include "models/wan22/image_prep.h"

#include <ATen/CPUGeneratorImpl.h>

namespace wanrt::wan22 {

at::Tensor initial_noise(std::int64_t seed, const std::vector<std::int64_t>& shape) {
  at::Generator generator = at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed));
  return at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor prepare_image(const at::Tensor& image, int width, int height) {
  at::Tensor img = image.to(at::kCPU);
  const std::int64_t ih = img.size(0), iw = img.size(1);
  if (iw * height > ih * width) {  // too wide: crop the width
    const std::int64_t cw = ih * width / height;
    img = img.slice(1, (iw - cw) / 2, (iw - cw) / 2 + cw);
  } else if (iw * height < ih * width) {  // too tall: crop the height
    const std::int64_t ch = iw * height / width;
    img = img.slice(0, (ih - ch) / 2, (ih - ch) / 2 + ch);
  }
  at::Tensor x = img.permute({2, 0, 1}).contiguous().to(at::kFloat).div(255);
  x = x.sub(0.5).div(0.5);
  if (x.size(1) != height || x.size(2) != width) {
    x = at::upsample_bicubic2d(x.unsqueeze(0), {height, width}, /*align_corners=*/false)[0];
  }
  return x;
}

at::Tensor i2v_mask(int frames, std::int64_t lat_h, std::int64_t lat_w, int stride_t) {
  // Pixel mask [1, F, h, w] with frame 0 set, frame 0 repeated stride_t times, then folded
  // into stride_t channels per latent frame; the result is 1 exactly on latent frame 0.
  const std::int64_t lat_f = (frames - 1) / stride_t + 1;
  at::Tensor mask = at::zeros({stride_t, lat_f, lat_h, lat_w}, at::kFloat);
  mask.select(1, 0).fill_(1.0);
  return mask;
}

at::Tensor frames_to_uint8(const at::Tensor& video) {
  at::Tensor u8 = ((video.clamp(-1, 1) + 1) / 2 * 255).to(at::kByte);
  return u8.permute({1, 2, 3, 0}).contiguous();
}

}  // namespace wanrt::wan22
