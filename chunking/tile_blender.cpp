#include "chunking/tile_blender.h"

#include <fmt/format.h>

#include <utility>

#include "chunking/blend_kernel.h"
#include "runtime/error.h"

namespace wanrt {

TileBlender::TileBlender(at::Tensor output, std::int64_t dim_h, std::int64_t dim_w, ChunkPlan rows,
                         ChunkPlan cols, BlendKind kind)
    : output_(std::move(output)), rows_(std::move(rows)), cols_(std::move(cols)) {
  dim_h_ = checked_blend_dim(output_, dim_h, "tile blender");
  dim_w_ = checked_blend_dim(output_, dim_w, "tile blender");
  if (dim_h_ == dim_w_) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("tile blender: the row and column dimensions are both {}", dim_h_),
                "blend along one dimension with OverlapBlender, or pick two different ones");
  }
  check_plan_fits(output_, dim_h_, rows_, "tile blender", "row");
  check_plan_fits(output_, dim_w_, cols_, "tile blender", "column");
  row_weights_ = chunk_weights(rows_, kind);
  col_weights_ = chunk_weights(cols_, kind);
  seen_.assign(rows_.chunks.size() * cols_.chunks.size(), false);
  output_.zero_();
}

void TileBlender::add(std::size_t row, std::size_t col, const at::Tensor& tile) {
  if (row >= rows_.chunks.size() || col >= cols_.chunks.size()) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("tile blender: tile ({}, {}) is outside the {}x{} grid", row, col,
                            rows_.chunks.size(), cols_.chunks.size()),
                fmt::format("use a row below {} and a column below {}", rows_.chunks.size(),
                            cols_.chunks.size()));
  }
  const Chunk& r = rows_.chunks[row];
  const Chunk& c = cols_.chunks[col];
  const std::string name = fmt::format("tile ({}, {}) (rows {}-{}, columns {}-{})", row, col,
                                       r.start, r.end, c.start, c.end);
  const std::size_t cell = row * cols_.chunks.size() + col;
  if (seen_[cell]) {
    throw Error(ErrorCategory::kUsage, fmt::format("tile blender: {} was already added", name),
                "add each tile once; make a new blender for a new output");
  }
  std::vector<std::int64_t> expected = output_.sizes().vec();
  expected[static_cast<std::size_t>(dim_h_)] = r.size();
  expected[static_cast<std::size_t>(dim_w_)] = c.size();
  if (!tile.defined() || tile.sizes() != at::IntArrayRef(expected)) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("tile blender: {} has shape {}, expected {}", name,
                            tile.defined() ? shape_string(tile.sizes()) : "undefined",
                            shape_string(expected)),
                "return a tensor of the output's shape with the tile's sizes along the two "
                "tiled dimensions");
  }
  const at::Tensor src = to_output_options(tile, output_);
  if (blend_cpu_kernel_applies(output_, src)) {
    // The earlier of the two dimensions is the layout's "rows", the later its "cols".
    const bool h_first = dim_h_ < dim_w_;
    const std::int64_t d0 = h_first ? dim_h_ : dim_w_;
    const std::int64_t d1 = h_first ? dim_w_ : dim_h_;
    const Chunk& c0 = h_first ? r : c;
    const Chunk& c1 = h_first ? c : r;
    BlendLayout l;
    for (std::int64_t d = 0; d < d0; ++d) l.outer *= output_.size(d);
    for (std::int64_t d = d0 + 1; d < d1; ++d) l.mid *= output_.size(d);
    for (std::int64_t d = d1 + 1; d < output_.dim(); ++d) l.inner *= output_.size(d);
    l.rows = c0.size();
    l.rows_total = output_.size(d0);
    l.row_start = c0.start;
    l.cols = c1.size();
    l.cols_total = output_.size(d1);
    l.col_start = c1.start;
    blend_accumulate_cpu(output_, src, l, h_first ? row_weights_[row] : col_weights_[col],
                         h_first ? col_weights_[col] : row_weights_[row]);
  } else {
    // Separable weights multiplied in fp64 and stored in the output's dtype: one small
    // tensor per tile, then one fused addcmul_ pass.
    const auto fp64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor wr = weight_tensor(row_weights_[row], fp64, output_.dim(), dim_h_);
    const at::Tensor wc = weight_tensor(col_weights_[col], fp64, output_.dim(), dim_w_);
    const at::Tensor w = (wr * wc).to(output_.options());
    blend_accumulate_aten(
        output_.narrow(dim_h_, r.start, r.size()).narrow(dim_w_, c.start, c.size()), src, w);
  }
  seen_[cell] = true;
  ++added_;
}

}  // namespace wanrt
