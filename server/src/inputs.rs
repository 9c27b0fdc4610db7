//! Request tensors to model inputs, shared by every protocol: string tensors of image files, f32 tensors of
//! preprocessed images, and the limits on both.

use std::time::Duration;

use bytes::Bytes;
use ndarray::{ArrayD, IxDyn};

use crate::model::Input;
use crate::ServeError;

/// Limits on what one request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most bytes in one request message (gRPC message or REST body).
    pub max_message_bytes: usize,
    /// Most images (rows) in one request.
    pub max_images: usize,
    /// Largest image width or height in pixels, checked in the file's header before decoding.
    pub max_image_side: u32,
}

impl Default for RequestLimits {
    /// 64 MiB messages, 64 images, 8192-pixel sides.
    fn default() -> Self {
        RequestLimits { max_message_bytes: 64 << 20, max_images: 64, max_image_side: 8192 }
    }
}

impl RequestLimits {
    /// The image decoder's limits: the side limit, and room for one decoded image of that size.
    pub fn decode_limits(&self) -> runtime::preprocess::DecodeLimits {
        let side = self.max_image_side as u64;
        runtime::preprocess::DecodeLimits {
            max_width: self.max_image_side,
            max_height: self.max_image_side,
            max_alloc_bytes: (side * side * 4).max(64 << 20),
        }
    }

    /// Refuses a request of more than [`max_images`](Self::max_images) rows.
    pub fn check_count(&self, n: usize) -> Result<(), ServeError> {
        if n > self.max_images {
            return Err(ServeError::InvalidArgument(format!(
                "the request has {n} images; at most {} are accepted per request",
                self.max_images
            )));
        }
        Ok(())
    }
}

/// The rows of a tensor of shape `shape` holding one string per image: `[N]` or `[N, 1]`.
pub fn images(elements: Vec<Bytes>, shape: &[i64], limits: &RequestLimits) -> Result<Vec<Input>, ServeError> {
    let n = match shape {
        [n] | [n, 1] => *n,
        [] => 1,
        _ => {
            return Err(ServeError::InvalidArgument(format!(
                "a string tensor of images has shape [N] or [N, 1], not {shape:?}"
            )))
        }
    };
    if n < 0 || n as usize != elements.len() {
        return Err(ServeError::InvalidArgument(format!(
            "the shape {shape:?} says {n} images and the tensor holds {}",
            elements.len()
        )));
    }
    if elements.is_empty() {
        return Err(ServeError::InvalidArgument("the tensor holds no images (an empty tensor)".into()));
    }
    limits.check_count(elements.len())?;
    Ok(elements.into_iter().map(Input::Image).collect())
}

/// The rows of an f32 tensor of preprocessed images: `[N, 3, H, W]` (NCHW), `[N, H, W, 3]` (NHWC, as
/// TensorFlow clients send; transposed here), or `[3, H, W]` for one image. `input` is the model's `[1, 3, H,
/// W]`.
pub fn tensors(
    values: Vec<f32>,
    shape: &[i64],
    input: [usize; 4],
    limits: &RequestLimits,
) -> Result<Vec<Input>, ServeError> {
    let bad = |why: String| Err(ServeError::InvalidArgument(why));
    if shape.iter().any(|&d| d < 0) {
        return bad(format!("the shape {shape:?} has a negative dimension"));
    }
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let dims = if dims.len() == 3 { [&[1], dims.as_slice()].concat() } else { dims };
    let count: usize = dims.iter().product();
    if count != values.len() {
        return bad(format!("the shape {shape:?} has {count} values and the tensor holds {}", values.len()));
    }
    let [_, c, h, w] = input;
    let nhwc = dims.len() == 4 && dims[1..] == [h, w, c] && dims[1..] != [c, h, w];
    if dims.len() != 4 || (dims[1..] != [c, h, w] && !nhwc) {
        return bad(format!(
            "a float tensor of images has shape [N, {c}, {h}, {w}] or [N, {h}, {w}, {c}] for this model, not {shape:?}"
        ));
    }
    if dims[0] == 0 {
        return bad("the tensor holds no images (an empty tensor)".into());
    }
    limits.check_count(dims[0])?;
    let all = ArrayD::from_shape_vec(IxDyn(&dims), values).expect("the count was checked");
    let all = if nhwc { all.permuted_axes(IxDyn(&[0, 3, 1, 2])) } else { all };
    Ok(all.outer_iter().map(|row| Input::Tensor(row.as_standard_layout().into_owned())).collect())
}

/// Little-endian f32 values from raw bytes (TensorFlow's `tensor_content`, KServe's raw contents).
pub fn f32_from_le_bytes(raw: &[u8]) -> Result<Vec<f32>, ServeError> {
    if !raw.len().is_multiple_of(4) {
        return Err(ServeError::InvalidArgument(format!("{} bytes are not a whole number of f32 values", raw.len())));
    }
    Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The elements of a KServe BYTES tensor in raw form: each a 4-byte little-endian length, then its bytes.
pub fn split_length_prefixed(raw: &Bytes) -> Result<Vec<Bytes>, ServeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let Some(len) = raw.get(at..at + 4) else {
            return Err(ServeError::InvalidArgument(format!(
                "BYTES contents end inside an element's 4-byte length at byte {at}"
            )));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = at + 4;
        if raw.len() - start < len {
            return Err(ServeError::InvalidArgument(format!(
                "a BYTES element at byte {at} claims {len} bytes and {} remain",
                raw.len() - start
            )));
        }
        out.push(raw.slice(start..start + len));
        at = start + len;
    }
    Ok(out)
}

/// A gRPC `grpc-timeout` header value (`<digits><unit>`, unit one of H M S m u n) as a duration.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_grpc_defines_them() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("1234567890S"), None);
    }

    #[test]
    fn length_prefixed_elements_split_and_truncation_is_an_error() {
        let raw = Bytes::from_static(b"\x03\0\0\0abc\0\0\0\0\x01\0\0\0z");
        let parts = split_length_prefixed(&raw).unwrap();
        assert_eq!(parts, vec![Bytes::from_static(b"abc"), Bytes::new(), Bytes::from_static(b"z")]);
        assert!(split_length_prefixed(&Bytes::from_static(b"\x05\0\0\0abc")).is_err());
        assert!(split_length_prefixed(&Bytes::from_static(b"\x01\0")).is_err());
    }

    #[test]
    fn float_tensors_take_nchw_and_nhwc_and_refuse_other_shapes() {
        let limits = RequestLimits::default();
        let input = [1, 3, 2, 2];
        let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let nchw = tensors(values.clone(), &[2, 3, 2, 2], input, &limits).unwrap();
        assert_eq!(nchw.len(), 2);
        let Input::Tensor(first) = &nchw[1] else { panic!() };
        assert_eq!(first.shape(), &[3, 2, 2]);
        assert_eq!(first[[0, 0, 0]], 12.0);
        let nhwc = tensors(values.clone(), &[2, 2, 2, 3], input, &limits).unwrap();
        let Input::Tensor(t) = &nhwc[0] else { panic!() };
        assert_eq!((t[[0, 0, 1]], t[[1, 0, 0]]), (3.0, 1.0));
        assert!(tensors(values.clone(), &[2, 3, 4], input, &limits).is_err());
        assert!(tensors(values, &[4, 3, 2, 2], input, &limits).is_err());
        assert!(tensors(vec![], &[0, 3, 2, 2], input, &limits).is_err());
    }

    #[test]
    fn string_tensors_need_matching_counts_and_respect_the_limit() {
        let limits = RequestLimits { max_images: 2, ..RequestLimits::default() };
        let one = vec![Bytes::from_static(b"x")];
        assert_eq!(images(one.clone(), &[1], &limits).unwrap().len(), 1);
        assert!(images(one.clone(), &[2], &limits).is_err());
        assert!(images(vec![], &[0], &limits).is_err());
        assert!(images(vec![one[0].clone(); 3], &[3], &limits).unwrap_err().to_string().contains("at most 2"));
    }
}
