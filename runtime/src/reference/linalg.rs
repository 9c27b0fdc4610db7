//! Matrix products: Gemm and numpy-style MatMul.

use ndarray::{ArrayD, Ix2, IxDyn};

use crate::graph::{broadcast_shapes, matmul_shape};

/// `alpha * op(a) · op(b) + beta * c`.
pub fn gemm(
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    c: Option<&ArrayD<f32>>,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> Result<ArrayD<f32>, String> {
    let a = a.view().into_dimensionality::<Ix2>().map_err(|e| format!("A: {e}"))?;
    let b = b.view().into_dimensionality::<Ix2>().map_err(|e| format!("B: {e}"))?;
    let a = if trans_a { a.reversed_axes() } else { a };
    let b = if trans_b { b.reversed_axes() } else { b };
    if a.ncols() != b.nrows() {
        return Err(format!("inner sizes {} and {} differ", a.ncols(), b.nrows()));
    }
    let mut y = a.dot(&b);
    if alpha != 1.0 {
        y.mapv_inplace(|v| v * alpha);
    }
    if let Some(c) = c {
        let c = c
            .broadcast(y.raw_dim())
            .ok_or_else(|| format!("C {:?} does not broadcast to {:?}", c.shape(), y.shape()))?;
        y.zip_mut_with(&c, |y, &c| *y += beta * c);
    }
    Ok(y.into_dyn())
}

/// numpy `matmul`: batched over leading axes with broadcasting; 1-D operands are promoted and the added
/// axis removed again.
pub fn matmul(a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>, String> {
    let out_shape = matmul_shape(a.shape(), b.shape())?;
    let a2: Vec<usize> = if a.ndim() == 1 { vec![1, a.len()] } else { a.shape().to_vec() };
    let b2: Vec<usize> = if b.ndim() == 1 { vec![b.len(), 1] } else { b.shape().to_vec() };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let batch = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let count: usize = batch.iter().product();
    let expand = |x: &ArrayD<f32>, s: &[usize], rows: usize, cols: usize| -> Result<ArrayD<f32>, String> {
        let x = x.view().into_shape_with_order(IxDyn(s)).map_err(|e| e.to_string())?;
        let full: Vec<usize> = batch.iter().copied().chain([rows, cols]).collect();
        let x = x.broadcast(IxDyn(&full)).ok_or("cannot broadcast batch axes")?;
        ArrayD::from_shape_vec(IxDyn(&[count, rows, cols]), x.iter().copied().collect()).map_err(|e| e.to_string())
    };
    let a3 = expand(&a.as_standard_layout().into_owned(), &a2, m, k)?;
    let b3 = expand(&b.as_standard_layout().into_owned(), &b2, k, n)?;
    let mut out = Vec::with_capacity(count * m * n);
    for i in 0..count {
        let x = a3.index_axis(ndarray::Axis(0), i).into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
        let y = b3.index_axis(ndarray::Axis(0), i).into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
        out.extend(x.dot(&y).iter().copied());
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}
