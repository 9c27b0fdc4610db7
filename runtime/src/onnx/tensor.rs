//! Constant tensors as the importer sees them, and their conversion from ONNX `TensorProto`s.
//!
//! The runtime computes in f32; integer tensors (int64, int32) only appear as shape arithmetic, pads,
//! slice bounds and indices, which the importer folds away. Other element types are refused.

use ndarray::{ArrayD, IxDyn};

use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;
use crate::error::ImportError;

/// A constant known at import time: an initializer, a `Constant` node or the result of constant folding.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstTensor {
    /// Float data (weights, biases, constant activations).
    F32(ArrayD<f32>),
    /// Integer data (shapes, pads, slice bounds, indices); int32 tensors are widened to this.
    I64(ArrayD<i64>),
}

impl ConstTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            ConstTensor::F32(a) => a.shape(),
            ConstTensor::I64(a) => a.shape(),
        }
    }

    /// The ONNX name of the element type, for messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ConstTensor::F32(_) => "FLOAT",
            ConstTensor::I64(_) => "INT64",
        }
    }
}

/// Name of an ONNX data type code, for error messages (`"DOUBLE"`, `"UINT8"`, …).
pub fn dtype_name(code: i32) -> String {
    DataType::try_from(code).map(|d| d.as_str_name().to_string()).unwrap_or_else(|_| format!("unknown type {code}"))
}

/// Converts a `TensorProto` (initializer, `Constant` value or backend-test `.pb` file) to a [`ConstTensor`].
///
/// Handles both `raw_data` (little-endian bytes) and the typed repeated fields; checks that the element
/// count matches the dimensions. `context` names the tensor in error messages.
pub fn tensor_from_proto(t: &TensorProto, context: &str) -> Result<ConstTensor, ImportError> {
    let invalid = |msg: String| ImportError::Invalid(format!("{context}: {msg}"));
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(invalid("external data files are not supported".into()));
    }
    if t.segment.is_some() {
        return Err(invalid("segmented tensors are not supported".into()));
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| invalid(format!("negative dimension {d}")))?;
        count = count.checked_mul(d).ok_or_else(|| invalid("dimensions overflow".into()))?;
        shape.push(d);
    }
    let dtype = t.data_type.unwrap_or(0);
    let raw = t.raw_data.as_deref();
    let check = |n: usize| {
        if n == count {
            Ok(())
        } else {
            Err(invalid(format!("{n} elements for shape {shape:?} ({count} expected)")))
        }
    };
    let raw_elems = |raw: &[u8], size: usize| {
        if raw.len() == count * size {
            Ok(())
        } else {
            Err(invalid(format!("raw_data has {} bytes, shape {shape:?} needs {}", raw.len(), count * size)))
        }
    };
    let to_array =
        |data| ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| invalid(format!("shape {shape:?}: {e}")));
    if dtype == DataType::Float as i32 {
        let data: Vec<f32> = match raw {
            Some(raw) => {
                raw_elems(raw, 4)?;
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            }
            None => {
                check(t.float_data.len())?;
                t.float_data.clone()
            }
        };
        Ok(ConstTensor::F32(to_array(data)?))
    } else if dtype == DataType::Int64 as i32 {
        let data: Vec<i64> = match raw {
            Some(raw) => {
                raw_elems(raw, 8)?;
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            }
            None => {
                check(t.int64_data.len())?;
                t.int64_data.clone()
            }
        };
        Ok(ConstTensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| invalid(e.to_string()))?))
    } else if dtype == DataType::Int32 as i32 {
        let data: Vec<i64> = match raw {
            Some(raw) => {
                raw_elems(raw, 4)?;
                raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
            }
            None => {
                check(t.int32_data.len())?;
                t.int32_data.iter().map(|&v| i64::from(v)).collect()
            }
        };
        Ok(ConstTensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| invalid(e.to_string()))?))
    } else {
        Err(ImportError::UnsupportedDataType { context: context.to_string(), dtype: dtype_name(dtype) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dims: Vec<i64>, dtype: DataType) -> TensorProto {
        TensorProto { dims, data_type: Some(dtype as i32), ..Default::default() }
    }

    #[test]
    fn raw_and_typed_floats_agree() {
        let mut a = proto(vec![2], DataType::Float);
        a.float_data = vec![1.5, -2.0];
        let mut b = proto(vec![2], DataType::Float);
        b.raw_data = Some([1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        assert_eq!(tensor_from_proto(&a, "a").unwrap(), tensor_from_proto(&b, "b").unwrap());
    }

    #[test]
    fn int_types_and_errors() {
        let mut a = proto(vec![3], DataType::Int32);
        a.int32_data = vec![1, -2, 3];
        assert_eq!(tensor_from_proto(&a, "a").unwrap(), ConstTensor::I64(ndarray::arr1(&[1, -2, 3]).into_dyn()));
        let mut short = proto(vec![2, 2], DataType::Int64);
        short.int64_data = vec![1, 2, 3];
        assert!(matches!(tensor_from_proto(&short, "s"), Err(ImportError::Invalid(_))));
        let mut bad_raw = proto(vec![2], DataType::Float);
        bad_raw.raw_data = Some(vec![0; 7]);
        assert!(matches!(tensor_from_proto(&bad_raw, "r"), Err(ImportError::Invalid(_))));
        let double = proto(vec![1], DataType::Double);
        let err = tensor_from_proto(&double, "d").unwrap_err();
        assert!(err.to_string().contains("DOUBLE"), "{err}");
    }
}
