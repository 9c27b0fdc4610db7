//! Import-time helpers shared by constant folding and by the construction of runtime operators: resolving
//! ONNX's index conventions (negative axes, clamped slice bounds, `0`/`-1` in reshape) to static values,
//! and the data-movement operations applied to constants (reshape, transpose, slice, concat, gather).

use ndarray::{ArrayD, Axis, IxDyn};

use crate::graph::SliceRange;

/// Normalises a possibly negative axis for a tensor of rank `rank`.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if (0..r).contains(&n) {
        Ok(n as usize)
    } else {
        Err(format!("axis {a} out of range for rank {rank}"))
    }
}

/// The output shape of ONNX Reshape: `0` copies the input dimension (unless `allowzero`), `-1` is inferred.
pub fn reshape_shape(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| format!("0 at axis {i} beyond rank"))?),
            s if s >= 0 => out.push(s as usize),
            _ => return Err(format!("invalid shape {spec:?}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot infer -1 in {spec:?} for input {input:?}"));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(format!("cannot reshape {input:?} to {spec:?}"));
    }
    Ok(out)
}

/// Resolves ONNX Slice parameters (with negative and out-of-range bounds clamped as ONNX specifies) to one
/// [`SliceRange`] per axis of `shape`.
pub fn slice_ranges(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<SliceRange>, String> {
    if starts.len() != ends.len() {
        return Err(format!("starts {starts:?} and ends {ends:?} differ in length"));
    }
    let mut ranges: Vec<SliceRange> = shape.iter().map(|&d| SliceRange { start: 0, step: 1, len: d }).collect();
    let default_axes: Vec<i64> = (0..starts.len() as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    if axes.len() != starts.len() || steps.is_some_and(|s| s.len() != starts.len()) {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut seen = vec![false; shape.len()];
    for i in 0..starts.len() {
        let ax = axis(axes[i], shape.len())?;
        if std::mem::replace(&mut seen[ax], true) {
            return Err(format!("axis {ax} sliced twice"));
        }
        let dim = shape[ax] as i64;
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            return Err("step 0".into());
        }
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = if step > 0 {
            (norm(starts[i]).clamp(0, dim), norm(ends[i]).clamp(0, dim))
        } else {
            (norm(starts[i]).clamp(0, dim - 1), norm(ends[i]).clamp(-1, dim - 1))
        };
        let len = if step > 0 {
            if end > start {
                (end - start + step - 1) / step
            } else {
                0
            }
        } else if start > end {
            (start - end + (-step) - 1) / (-step)
        } else {
            0
        };
        let start = if len == 0 { 0 } else { start };
        ranges[ax] = SliceRange { start: start as usize, step: step as isize, len: len as usize };
    }
    Ok(ranges)
}

/// Applies slice ranges to an array (any element type).
pub fn slice<T: Clone>(a: &ArrayD<T>, ranges: &[SliceRange]) -> ArrayD<T> {
    let mut out = a.clone();
    for (ax, r) in ranges.iter().enumerate() {
        let idx: Vec<usize> = (0..r.len).map(|i| (r.start as isize + i as isize * r.step) as usize).collect();
        out = out.select(Axis(ax), &idx);
    }
    out
}

/// Reshapes an array in row-major order (any element type); the caller has checked the element count.
pub fn reshape<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().cloned().collect()).map_err(|e| e.to_string())
}

/// Permutes the axes of an array into a new standard-layout array.
pub fn transpose<T: Clone>(a: &ArrayD<T>, perm: &[usize]) -> ArrayD<T> {
    a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()
}

/// Concatenates arrays along an axis.
pub fn concat<T: Clone>(arrays: &[&ArrayD<T>], axis: usize) -> Result<ArrayD<T>, String> {
    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string())
}

/// ONNX Gather: picks `indices` (negative counts from the end) along `axis`.
pub fn gather<T: Clone>(data: &ArrayD<T>, indices: &ArrayD<i64>, axis: usize) -> Result<ArrayD<T>, String> {
    let dim = data.shape()[axis] as i64;
    let idx = indices
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            if (0..dim).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("index {i} out of range for size {dim}"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let picked = data.select(Axis(axis), &idx);
    let mut shape = data.shape()[..axis].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&data.shape()[axis + 1..]);
    reshape(&picked, &shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_bounds_follow_onnx() {
        // x[2:1000] on 10 -> 8 elements; x[-3:] -> 3; x[::-1] -> 10 reversed; x[::2] of 32 -> 16.
        assert_eq!(
            slice_ranges(&[10], &[2], &[1000], None, None).unwrap()[0],
            SliceRange { start: 2, step: 1, len: 8 }
        );
        assert_eq!(slice_ranges(&[10], &[-3], &[i64::MAX], None, None).unwrap()[0].len, 3);
        assert_eq!(
            slice_ranges(&[10], &[-1], &[i64::MIN], None, Some(&[-1])).unwrap()[0],
            SliceRange { start: 9, step: -1, len: 10 }
        );
        assert_eq!(slice_ranges(&[4, 32], &[0], &[i64::MAX], Some(&[1]), Some(&[2])).unwrap()[1].len, 16);
    }

    #[test]
    fn reshape_rules() {
        assert_eq!(reshape_shape(&[2, 3, 4], &[0, -1], false).unwrap(), vec![2, 12]);
        assert_eq!(reshape_shape(&[2, 3, 4], &[-1], false).unwrap(), vec![24]);
        assert!(reshape_shape(&[2, 3, 4], &[5, -1], false).is_err());
    }
}
