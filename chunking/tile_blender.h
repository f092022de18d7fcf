// Accumulates weighted 2-D tiles (e.g. spatial VAE tiles) into one preallocated output.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "chunking/blend_weights.h"
#include "chunking/chunk_plan.h"

namespace wanrt {

/// The 2-D OverlapBlender: tiles are the cells of a grid `rows` x `cols` over dimensions
/// `dim_h` and `dim_w` of `output` (zeroed on construction; any floating dtype, any device).
/// add() does output[tile] += tile * (w_rows ⊗ w_cols) in one fused pass, with w_rows and
/// w_cols from chunk_weights() of each plan: the product of two partitions of unity is one,
/// so the output is the blend once every tile is in; tiles may come in any order. Precision
/// and dtype/device conversion as for OverlapBlender.
class TileBlender {
 public:
  /// `rows` must plan over output.size(dim_h), `cols` over output.size(dim_w), and the two
  /// dimensions must differ (negative ones count from the end); Error(kUsage) otherwise.
  TileBlender(at::Tensor output, std::int64_t dim_h, std::int64_t dim_w, ChunkPlan rows,
              ChunkPlan cols, BlendKind kind);

  /// Adds the tile at grid cell (row, col): it must match the output except along dim_h and
  /// dim_w, where its sizes are the row's and the column's chunk sizes. Throws Error(kUsage)
  /// naming the tile on a shape mismatch, an out-of-range or an already added cell.
  void add(std::size_t row, std::size_t col, const at::Tensor& tile);

  /// The output tensor (complete once every tile has been added).
  const at::Tensor& output() const { return output_; }
  /// The plan along dim_h.
  const ChunkPlan& rows() const { return rows_; }
  /// The plan along dim_w.
  const ChunkPlan& cols() const { return cols_; }
  /// How many tiles have been added.
  std::size_t added() const { return added_; }

 private:
  at::Tensor output_;
  std::int64_t dim_h_;
  std::int64_t dim_w_;
  ChunkPlan rows_;
  ChunkPlan cols_;
  std::vector<std::vector<double>> row_weights_;
  std::vector<std::vector<double>> col_weights_;
  std::vector<bool> seen_;  // row-major over the grid
  std::size_t added_ = 0;
};

}  // namespace wanrt
