//! Convolution as im2col plus a matrix product per (image, group).
//!
//! 1-D convolutions run as 2-D ones with a height of 1. A 1×1 convolution with stride 1 and no padding
//! skips im2col: the input plane already is the column matrix.

use ndarray::{s, Array2, ArrayD, ArrayView2, IxDyn};

use crate::graph::{window_count, ConvAttrs};

/// The 2-D form of a window: (height, width) pairs.
pub(crate) struct Window2 {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub pad_begin: [usize; 2],
    pub pad_end: [usize; 2],
}

impl Window2 {
    /// Lifts 1-D attributes to 2-D (height 1) and checks the rank.
    pub(crate) fn new(
        kernel: &[usize],
        stride: &[usize],
        dilation: &[usize],
        pad_begin: &[usize],
        pad_end: &[usize],
    ) -> Result<Self, String> {
        let lift = |v: &[usize], one: usize| -> Result<[usize; 2], String> {
            match v {
                [w] => Ok([one, *w]),
                [h, w] => Ok([*h, *w]),
                _ => Err(format!("{} spatial axes are not supported", v.len())),
            }
        };
        Ok(Window2 {
            kernel: lift(kernel, 1)?,
            stride: lift(stride, 1)?,
            dilation: lift(dilation, 1)?,
            pad_begin: lift(pad_begin, 0)?,
            pad_end: lift(pad_end, 0)?,
        })
    }
}

/// Views an `[N, C, (H,) W]` array as `[N, C, H, W]` (adding H = 1 for 1-D).
pub(crate) fn as_4d(x: &ArrayD<f32>) -> Result<ndarray::Array4<f32>, String> {
    let s = x.shape();
    let shape = match s.len() {
        3 => [s[0], s[1], 1, s[2]],
        4 => [s[0], s[1], s[2], s[3]],
        r => return Err(format!("input of rank {r}; 1-D and 2-D spatial inputs are supported")),
    };
    ndarray::Array4::from_shape_vec(shape, x.iter().copied().collect()).map_err(|e| e.to_string())
}

/// ONNX Conv: `x [N, C, spatial…]`, `w [M, C/group, kernel…]`, optional `bias [M]`.
pub fn conv(
    x: &ArrayD<f32>,
    w: &ArrayD<f32>,
    bias: Option<&ArrayD<f32>>,
    a: &ConvAttrs,
) -> Result<ArrayD<f32>, String> {
    let win = Window2::new(&a.kernel, &a.strides, &a.dilations, &a.pads_begin, &a.pads_end)?;
    let x4 = as_4d(x)?;
    let (n, c, h, wd) = x4.dim();
    let m = w.shape()[0];
    let g = a.group;
    if g == 0 || !c.is_multiple_of(g) || !m.is_multiple_of(g) {
        return Err(format!("group {g} does not divide {c} input and {m} output channels"));
    }
    let (cg, mg) = (c / g, m / g);
    let [kh, kw] = win.kernel;
    let k = cg * kh * kw;
    if w.len() != m * k {
        return Err(format!("weight {:?} does not match {cg} channels per group and kernel {kh}x{kw}", w.shape()));
    }
    let oh = window_count(h, kh, win.stride[0], win.dilation[0], win.pad_begin[0], win.pad_end[0], false)?;
    let ow = window_count(wd, kw, win.stride[1], win.dilation[1], win.pad_begin[1], win.pad_end[1], false)?;
    let w2 = Array2::from_shape_vec((m, k), w.iter().copied().collect()).map_err(|e| e.to_string())?;
    let pointwise = kh == 1 && kw == 1 && win.stride == [1, 1] && win.pad_begin == [0, 0] && win.pad_end == [0, 0];
    let xs = x4.as_slice().ok_or("input not contiguous")?;
    let mut out = ndarray::Array4::<f32>::zeros((n, m, oh, ow));
    let mut cols = Array2::<f32>::zeros((k, oh * ow));
    for img in 0..n {
        for grp in 0..g {
            let base = (img * c + grp * cg) * h * wd;
            let plane = &xs[base..base + cg * h * wd];
            let product = if pointwise {
                let cols = ArrayView2::from_shape((cg, h * wd), plane).map_err(|e| e.to_string())?;
                w2.slice(s![grp * mg..(grp + 1) * mg, ..]).dot(&cols)
            } else {
                im2col(plane, cg, h, wd, &win, oh, ow, &mut cols);
                w2.slice(s![grp * mg..(grp + 1) * mg, ..]).dot(&cols)
            };
            let mut dst = out.slice_mut(s![img, grp * mg..(grp + 1) * mg, .., ..]);
            let dst_flat = dst.as_slice_mut().ok_or("output not contiguous")?;
            dst_flat.copy_from_slice(product.as_standard_layout().as_slice().ok_or("product not contiguous")?);
        }
    }
    if let Some(b) = bias {
        if b.len() != m {
            return Err(format!("bias of {} elements for {m} channels", b.len()));
        }
        for (ch, &bv) in b.iter().enumerate() {
            out.slice_mut(s![.., ch, .., ..]).mapv_inplace(|v| v + bv);
        }
    }
    let mut shape = vec![n, m];
    if x.ndim() == 3 {
        shape.push(ow);
    } else {
        shape.extend([oh, ow]);
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out.into_raw_vec_and_offset().0).map_err(|e| e.to_string())
}

/// Fills `cols [cg*kh*kw, oh*ow]` with the input windows of one group (zero where the window is in the
/// padding).
#[allow(clippy::too_many_arguments)]
fn im2col(plane: &[f32], cg: usize, h: usize, w: usize, win: &Window2, oh: usize, ow: usize, cols: &mut Array2<f32>) {
    let [kh, kw] = win.kernel;
    let dst = cols.as_slice_mut().unwrap_or_default();
    for ch in 0..cg {
        let src = &plane[ch * h * w..(ch + 1) * h * w];
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (ch * kh + ki) * kw + kj;
                let out_row = &mut dst[row * oh * ow..(row + 1) * oh * ow];
                for oy in 0..oh {
                    let iy = (oy * win.stride[0] + ki * win.dilation[0]) as isize - win.pad_begin[0] as isize;
                    let line = &mut out_row[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        line.fill(0.0);
                        continue;
                    }
                    let src_line = &src[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, d) in line.iter_mut().enumerate() {
                        let ix = (ox * win.stride[1] + kj * win.dilation[1]) as isize - win.pad_begin[1] as isize;
                        *d = if ix < 0 || ix >= w as isize { 0.0 } else { src_line[ix as usize] };
                    }
                }
            }
        }
    }
}
