// Reading an input image (the first frame of image-to-video requests) with FFmpeg's decoders.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace wanrt {

/// Decodes the image file at `path` into a uint8 RGB tensor [H, W, 3] (contiguous, CPU).
///
/// The format is recognised from the file's content, not its extension: PNG (8- and 16-bit,
/// RGB, RGBA, gray, gray+alpha, palette), JPEG, BMP, WebP, and whatever else this FFmpeg
/// decodes (TIFF, GIF, ...); of an animated image or a video, the first frame is read.
/// - Alpha is dropped, not composited: RGBA pixels keep their colour values whatever their
///   opacity (a fully transparent pixel yields its stored RGB, often black).
/// - Gray images are replicated to three channels; 16-bit samples are reduced to 8 bits.
/// - YUV images (JPEG, WebP) use the range and matrix the file declares; JPEG is full range,
///   BT.601 unless tagged otherwise.
/// - EXIF orientation and ICC colour profiles are ignored: pixels come out as stored.
/// Errors: Error(kUsage) for a missing file ("<path>: no such file"), a directory, an empty
/// file, an image of more than 8192 x 8192 pixels (refused before it is decoded), and a file
/// FFmpeg cannot open, recognise or decode (the message names the file and FFmpeg's error
/// text); Error(kOutOfMemory) when an allocation fails.
at::Tensor read_image(const std::string& path);

}  // namespace wanrt
