//! Pooling: MaxPool, AveragePool (1-D and 2-D windows) and GlobalAveragePool.

use ndarray::{ArrayD, Axis, IxDyn};

use super::conv::{as_4d, Window2};
use crate::graph::{window_count, PoolAttrs};

/// Shared window walk: calls `reduce(values_in_input, positions_in_padded_input)` for each output element.
fn pool(x: &ArrayD<f32>, p: &PoolAttrs, reduce: impl Fn(&[f32], usize) -> f32) -> Result<ArrayD<f32>, String> {
    let win = Window2::new(&p.kernel, &p.strides, &p.dilations, &p.pads_begin, &p.pads_end)?;
    let x4 = as_4d(x)?;
    let (n, c, h, w) = x4.dim();
    let oh =
        window_count(h, win.kernel[0], win.stride[0], win.dilation[0], win.pad_begin[0], win.pad_end[0], p.ceil_mode)?;
    let ow =
        window_count(w, win.kernel[1], win.stride[1], win.dilation[1], win.pad_begin[1], win.pad_end[1], p.ceil_mode)?;
    let xs = x4.as_slice().ok_or("input not contiguous")?;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    let mut vals = Vec::with_capacity(win.kernel[0] * win.kernel[1]);
    // Padded extent: positions in [-pad_begin, size + pad_end) count as "inside the padded input".
    let (ph_lo, ph_hi) = (-(win.pad_begin[0] as isize), (h + win.pad_end[0]) as isize);
    let (pw_lo, pw_hi) = (-(win.pad_begin[1] as isize), (w + win.pad_end[1]) as isize);
    for plane in xs.chunks_exact(h * w) {
        for oy in 0..oh {
            for ox in 0..ow {
                vals.clear();
                let mut padded = 0;
                for ki in 0..win.kernel[0] {
                    let iy = (oy * win.stride[0] + ki * win.dilation[0]) as isize - win.pad_begin[0] as isize;
                    for kj in 0..win.kernel[1] {
                        let ix = (ox * win.stride[1] + kj * win.dilation[1]) as isize - win.pad_begin[1] as isize;
                        if (ph_lo..ph_hi).contains(&iy) && (pw_lo..pw_hi).contains(&ix) {
                            padded += 1;
                        }
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            vals.push(plane[iy as usize * w + ix as usize]);
                        }
                    }
                }
                out.push(reduce(&vals, padded));
            }
        }
    }
    let mut shape = vec![n, c];
    if x.ndim() == 3 {
        shape.push(ow);
    } else {
        shape.extend([oh, ow]);
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// Maximum over each window (padding never wins).
pub fn max_pool(x: &ArrayD<f32>, p: &PoolAttrs) -> Result<ArrayD<f32>, String> {
    pool(x, p, |v, _| v.iter().copied().fold(f32::NEG_INFINITY, f32::max))
}

/// Mean over each window: divided by the number of input elements, or with `count_include_pad` by the
/// number of positions inside the padded input.
pub fn average_pool(x: &ArrayD<f32>, p: &PoolAttrs, count_include_pad: bool) -> Result<ArrayD<f32>, String> {
    pool(x, p, |v, padded| {
        let sum: f32 = v.iter().sum();
        let count = if count_include_pad { padded } else { v.len() };
        if count == 0 {
            0.0
        } else {
            sum / count as f32
        }
    })
}

/// Mean over all spatial axes, kept as size-1 axes.
pub fn global_average_pool(x: &ArrayD<f32>) -> Result<ArrayD<f32>, String> {
    if x.ndim() < 3 {
        return Err("input has no spatial axes".into());
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let spatial: usize = x.shape()[2..].iter().product();
    let flat = x.as_standard_layout();
    let flat = flat.view().into_shape_with_order(IxDyn(&[n, c, spatial])).map_err(|e| e.to_string())?;
    let mean = flat.sum_axis(Axis(2)) / spatial as f32;
    let mut shape = vec![n, c];
    shape.extend(std::iter::repeat_n(1, x.ndim() - 2));
    ArrayD::from_shape_vec(IxDyn(&shape), mean.iter().copied().collect()).map_err(|e| e.to_string())
}
