//! Element-wise and per-channel operators: Add (broadcasting), inference BatchNormalization, Softmax.

use ndarray::{ArrayD, Axis, IxDyn};

use crate::graph::broadcast_shapes;

/// `a + b` with numpy broadcasting.
pub fn add(a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>, String> {
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    let a = a.broadcast(IxDyn(&shape)).ok_or("cannot broadcast the first operand")?;
    let b = b.broadcast(IxDyn(&shape)).ok_or("cannot broadcast the second operand")?;
    Ok(&a + &b)
}

/// `scale * (x - mean) / sqrt(var + epsilon) + bias`, per channel (axis 1).
pub fn batch_norm(
    x: &ArrayD<f32>,
    scale: &ArrayD<f32>,
    bias: &ArrayD<f32>,
    mean: &ArrayD<f32>,
    var: &ArrayD<f32>,
    epsilon: f32,
) -> Result<ArrayD<f32>, String> {
    let c = *x.shape().get(1).ok_or("input has no channel axis")?;
    if [scale, bias, mean, var].iter().any(|p| p.len() != c) {
        return Err(format!("parameters do not have {c} elements"));
    }
    let (scale, bias, mean, var): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) = (
        scale.iter().copied().collect(),
        bias.iter().copied().collect(),
        mean.iter().copied().collect(),
        var.iter().copied().collect(),
    );
    let mut y = x.to_owned();
    for mut sample in y.outer_iter_mut() {
        for (ch, mut plane) in sample.outer_iter_mut().enumerate() {
            let denom = (var[ch] + epsilon).sqrt();
            plane.mapv_inplace(|v| scale[ch] * (v - mean[ch]) / denom + bias[ch]);
        }
    }
    Ok(y)
}

/// Softmax along `axis`; with `coerce_2d` (opset < 13) over all axes from `axis` on as one row.
pub fn softmax(x: &ArrayD<f32>, axis: usize, coerce_2d: bool) -> Result<ArrayD<f32>, String> {
    if axis >= x.ndim() {
        return Err(format!("axis {axis} out of range"));
    }
    let shape = x.shape().to_vec();
    let mut y = if coerce_2d {
        let rows: usize = shape[..axis].iter().product();
        let cols: usize = shape[axis..].iter().product();
        ArrayD::from_shape_vec(IxDyn(&[rows, cols]), x.iter().copied().collect()).map_err(|e| e.to_string())?
    } else {
        x.to_owned()
    };
    let ax = if coerce_2d { 1 } else { axis };
    for mut lane in y.lanes_mut(Axis(ax)) {
        let max = lane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        lane.mapv_inplace(|v| (v - max).exp());
        let sum: f32 = lane.sum();
        lane.mapv_inplace(|v| v / sum);
    }
    if coerce_2d {
        y = ArrayD::from_shape_vec(IxDyn(&shape), y.iter().copied().collect()).map_err(|e| e.to_string())?;
    }
    Ok(y)
}
