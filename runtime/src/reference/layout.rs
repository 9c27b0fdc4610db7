//! Data-movement operators: Reshape, Transpose, Pad (constant), Slice, Concat.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use crate::graph::SliceRange;

/// The same elements in row-major order with a new shape.
pub fn reshape(x: &ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>, String> {
    ArrayD::from_shape_vec(IxDyn(shape), x.iter().copied().collect()).map_err(|e| e.to_string())
}

/// Output axis `i` is input axis `perm[i]`.
pub fn transpose(x: &ArrayD<f32>, perm: &[usize]) -> ArrayD<f32> {
    x.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()
}

/// Surrounds `x` with `value`: `pads_begin[i]` elements before and `pads_end[i]` after axis `i`.
pub fn pad(x: &ArrayD<f32>, pads_begin: &[usize], pads_end: &[usize], value: f32) -> Result<ArrayD<f32>, String> {
    if pads_begin.len() != x.ndim() || pads_end.len() != x.ndim() {
        return Err("pads do not match the input's rank".into());
    }
    let shape: Vec<usize> = (0..x.ndim()).map(|i| x.shape()[i] + pads_begin[i] + pads_end[i]).collect();
    let mut out = ArrayD::from_elem(IxDyn(&shape), value);
    out.slice_each_axis_mut(|ax| {
        let b = pads_begin[ax.axis.index()];
        Slice::from(b..b + x.shape()[ax.axis.index()])
    })
    .assign(x);
    Ok(out)
}

/// Strided selection of every axis.
pub fn slice(x: &ArrayD<f32>, ranges: &[SliceRange]) -> ArrayD<f32> {
    let mut out = x.to_owned();
    for (ax, r) in ranges.iter().enumerate() {
        if r.start == 0 && r.step == 1 && r.len == out.shape()[ax] {
            continue;
        }
        let idx: Vec<usize> = (0..r.len).map(|i| (r.start as isize + i as isize * r.step) as usize).collect();
        out = out.select(Axis(ax), &idx);
    }
    out
}

/// Concatenation along `axis`.
pub fn concat(xs: &[&ArrayD<f32>], axis: usize) -> Result<ArrayD<f32>, String> {
    let views: Vec<_> = xs.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string())
}
