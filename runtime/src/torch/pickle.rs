//! A small, strict interpreter of the pickle opcodes that PyTorch state dicts use.
//!
//! It understands exactly what `torch.save(model.state_dict())` writes with pickle protocol 2 (the default of
//! `torch.save`), in both the zip format and the legacy format: containers (tuples, lists, dicts), small
//! integers, strings, booleans, `None`, the memo, persistent ids (storages) and `REDUCE` of three kinds of
//! allow-listed globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the typed storage
//! classes (`torch.FloatStorage`, …). No Python code is ever run: a global is only a tag, and any global
//! outside the allow-list, any other opcode and any malformed or truncated stream is an error.

use std::collections::HashMap;

/// Element type of a storage, from its class name (`torch.FloatStorage` → [`DType::F32`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `torch.FloatStorage`: f32.
    F32,
    /// `torch.DoubleStorage`: f64.
    F64,
    /// `torch.HalfStorage`: IEEE f16.
    F16,
    /// `torch.BFloat16Storage`: bfloat16.
    BF16,
    /// `torch.LongStorage`: i64.
    I64,
    /// `torch.IntStorage`: i32.
    I32,
    /// `torch.ShortStorage`: i16.
    I16,
    /// `torch.CharStorage`: i8.
    I8,
    /// `torch.ByteStorage`: u8.
    U8,
    /// `torch.BoolStorage`: bool (one byte).
    Bool,
}

impl DType {
    /// The dtype of a storage class name of module `torch`, if it is one.
    pub fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// The allow-listed globals: the only callables a pickle may name.
#[derive(Debug, Clone, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict` (builds a dict).
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2` (builds a [`TensorRef`]).
    RebuildTensorV2,
    /// A typed storage class such as `torch.FloatStorage` (only used inside persistent ids).
    Storage(DType),
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// The storage's key (`archive/data/<key>` in the zip format).
    pub key: String,
    /// Its element type.
    pub dtype: DType,
    /// Its device (`cpu`, `cuda:0`, …; the data is read the same way).
    pub location: String,
    /// Its number of elements.
    pub numel: usize,
}

/// A tensor rebuilt by `_rebuild_tensor_v2(storage, offset, size, stride, …)`: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage holding the data.
    pub storage: StorageRef,
    /// Offset of the first element in the storage, in elements.
    pub offset: usize,
    /// The shape.
    pub size: Vec<usize>,
    /// The strides, in elements.
    pub stride: Vec<usize>,
}

/// A value of the pickle machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer (LONG1 of up to 16 bytes fits).
    Int(i128),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict or `OrderedDict`, items in insertion order (a repeated key appears twice; the last one wins).
    Dict(Vec<(Value, Value)>),
    /// An allow-listed global.
    Global(Global),
    /// A storage (the result of a persistent id).
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
}

impl Value {
    /// Nesting depth (0 for scalars) and number of nodes.
    fn measure(&self) -> (usize, usize) {
        let children: &mut dyn Iterator<Item = &Value> = match self {
            Value::Tuple(v) | Value::List(v) => &mut v.iter(),
            Value::Dict(d) => &mut d.iter().flat_map(|(k, v)| [k, v]),
            _ => return (0, 1),
        };
        children.fold((1, 1), |(d, n), c| {
            let (cd, cn) = c.measure();
            (d.max(cd + 1), n.saturating_add(cn))
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// Why a pickle stream was refused: the byte offset of the offending opcode and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Offset of the opcode (or of the end of data) in the stream.
    pub offset: usize,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.detail)
    }
}

impl std::error::Error for PickleError {}

/// Interprets one pickle from the start of `data` (which may continue after its `STOP`).
///
/// Returns the value and the number of bytes the pickle occupied.
pub fn unpickle(data: &[u8]) -> Result<(Value, usize), PickleError> {
    let budget = data.len().saturating_mul(16).saturating_add(1 << 20);
    Machine { data, pos: 0, op_pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), budget }.run()
}

/// Deepest container nesting accepted (state dicts nest about four levels); bounds recursion.
pub const MAX_DEPTH: usize = 64;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Nodes that memo look-ups may still copy (bounds "billion laughs" expansion).
    budget: usize,
}

impl Machine<'_> {
    fn err<T>(&self, detail: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError { offset: self.op_pos, detail: detail.into() })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(PickleError { offset: self.data.len(), detail: "truncated pickle".into() }),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(PickleError { offset: self.data.len(), detail: "truncated pickle (unterminated line)".into() });
        };
        let line = String::from_utf8(rest[..n].to_vec());
        self.pos += n + 1;
        match line {
            Ok(l) => Ok(l),
            Err(_) => self.err("GLOBAL name is not UTF-8"),
        }
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return self.err("stack underflow (pop across a MARK)");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        match self.marks.pop() {
            Some(m) => Ok(self.stack.split_off(m)),
            None => self.err("no MARK on the stack"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) || self.stack.is_empty() {
            return self.err("stack underflow");
        }
        let op_pos = self.op_pos;
        self.stack.last_mut().ok_or(PickleError { offset: op_pos, detail: "stack underflow".into() })
    }

    /// Refuses to put values nested [`MAX_DEPTH`] deep into a container.
    fn nest(&self, items: &[Value]) -> Result<(), PickleError> {
        if items.iter().any(|v| v.measure().0 + 1 > MAX_DEPTH) {
            return self.err(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    fn tuple(&mut self, n: usize) -> Result<(), PickleError> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        self.nest(&items)?;
        self.stack.push(Value::Tuple(items));
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                let nodes = v.measure().1;
                if nodes > self.budget {
                    return self.err("the memo expands the pickle too much");
                }
                self.budget -= nodes;
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.err(format!("memo key {key} is not defined")),
        }
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of items");
        }
        self.nest(&items)?;
        let op_pos = self.op_pos;
        let Value::Dict(d) = self.top()? else {
            return Err(PickleError { offset: op_pos, detail: "SETITEM(S) on a value that is not a dict".into() });
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        self.nest(&items)?;
        let op_pos = self.op_pos;
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(PickleError { offset: op_pos, detail: format!("APPEND(S) on a {}", other.kind()) }),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<Global, PickleError> {
        match (module, name) {
            ("collections", "OrderedDict") => Ok(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
            ("torch", n) if DType::from_storage_class(n).is_some() => {
                Ok(Global::Storage(DType::from_storage_class(n).unwrap_or(DType::F32)))
            }
            _ => self.err(format!("global {module}.{name} is not allowed (only state-dict globals are)")),
        }
    }

    fn persistent_load(&self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(t) = pid else { return self.err(format!("persistent id is a {}, not a tuple", pid.kind())) };
        match t.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(location), Value::Int(numel), rest @ ..]
                if tag == "storage" && rest.iter().all(|v| *v == Value::None) && rest.len() <= 1 =>
            {
                let Ok(numel) = usize::try_from(*numel) else {
                    return self.err(format!("storage '{key}' has a negative size {numel}"));
                };
                Ok(Value::Storage(StorageRef { key: key.clone(), dtype: *dtype, location: location.clone(), numel }))
            }
            _ => self.err(format!("unsupported persistent id {t:?} (expected a typed storage without a view)")),
        }
    }

    fn dims(&self, v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
        let Value::Tuple(t) = v else { return self.err(format!("tensor {what} is a {}, not a tuple", v.kind())) };
        t.iter()
            .map(|d| match d {
                Value::Int(i) => usize::try_from(*i).or_else(|_| self.err(format!("tensor {what} has entry {i}"))),
                other => self.err(format!("tensor {what} has a {} entry", other.kind())),
            })
            .collect()
    }

    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else { return self.err(format!("REDUCE arguments are a {}", args.kind())) };
        match callable {
            Value::Global(Global::OrderedDict) => match args.as_slice() {
                [] => Ok(Value::Dict(Vec::new())),
                [Value::List(items)] if items.is_empty() => Ok(Value::Dict(Vec::new())),
                _ => self.err("OrderedDict called with arguments (only OrderedDict() is supported)"),
            },
            Value::Global(Global::RebuildTensorV2) => {
                if args.len() < 4 {
                    return self.err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
                }
                let Value::Storage(storage) = &args[0] else {
                    return self.err(format!("_rebuild_tensor_v2 of a {}, not a storage", args[0].kind()));
                };
                let offset = match args[1] {
                    Value::Int(o) => usize::try_from(o).or_else(|_| self.err(format!("storage offset {o}")))?,
                    ref other => return self.err(format!("storage offset is a {}", other.kind())),
                };
                let size = self.dims(&args[2], "size")?;
                let stride = self.dims(&args[3], "stride")?;
                if size.len() != stride.len() {
                    return self.err(format!("tensor size {size:?} and stride {stride:?} differ in rank"));
                }
                Ok(Value::Tensor(TensorRef { storage: storage.clone(), offset, size, stride }))
            }
            other => self.err(format!("REDUCE of a {} (only allow-listed globals can be called)", other.kind())),
        }
    }

    fn run(mut self) -> Result<(Value, usize), PickleError> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return self.err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return self.err("STOP with values left on the stack");
                    }
                    return Ok((v, self.pos));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    self.stack.push(Value::Global(g));
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'(' => self.marks.push(self.stack.len()),
                b't' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    self.stack.push(Value::Tuple(items));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                0x85 => self.tuple(1)?,
                0x86 => self.tuple(2)?,
                0x87 => self.tuple(3)?,
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    self.stack.push(Value::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    if n > 16 {
                        return self.err(format!("LONG1 of {n} bytes is too large"));
                    }
                    let bytes = self.take(n)?;
                    let mut buf = [0u8; 16];
                    buf[..n].copy_from_slice(bytes);
                    if n > 0 && bytes[n - 1] & 0x80 != 0 {
                        buf[n..].fill(0xff);
                    }
                    self.stack.push(Value::Int(i128::from_le_bytes(buf)));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut buf = [0u8; 8];
                    buf.copy_from_slice(b);
                    self.stack.push(Value::Float(f64::from_be_bytes(buf)));
                }
                b'X' | 0x8c => {
                    let n = if op == b'X' { self.u32()? as usize } else { self.u8()? as usize };
                    let s = String::from_utf8(self.take(n)?.to_vec());
                    match s {
                        Ok(s) => self.stack.push(Value::Str(s)),
                        Err(_) => return self.err("string is not UTF-8"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD sets an object's state. A state dict's OrderedDict carries `_metadata` (module
                    // versions) this way; it does not affect the tensors and is dropped.
                    let state = self.pop()?;
                    let op_pos = self.op_pos;
                    match (self.top()?, state) {
                        (Value::Dict(_), Value::Dict(_) | Value::None) => {}
                        (target, state) => {
                            return Err(PickleError {
                                offset: op_pos,
                                detail: format!("BUILD of a {} with a {} state", target.kind(), state.kind()),
                            })
                        }
                    }
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                other => return self.err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values() {
        // {'a': (1, True, None), 'b': [300, -2]} as protocol 2.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01\x88N\x87X\x01\x00\x00\x00b]q\x01(M,\x01J\xfe\xff\xff\xffeu.";
        let (v, n) = unpickle(p).expect("valid pickle");
        assert_eq!(n, p.len());
        assert_eq!(
            v,
            Value::Dict(vec![
                (Value::Str("a".into()), Value::Tuple(vec![Value::Int(1), Value::Bool(true), Value::None])),
                (Value::Str("b".into()), Value::List(vec![Value::Int(300), Value::Int(-2)])),
            ])
        );
    }

    #[test]
    fn long1_and_trailing_data() {
        // The legacy magic number 0x1950a86a20f9469cfc6c, followed by the next pickle.
        let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
        let p = [&b"\x80\x02\x8a\x0a"[..], &magic, b".", b"\x80\x02M\xe9\x03."].concat();
        let (v, n) = unpickle(&p).expect("valid");
        assert_eq!(v, Value::Int(0x1950a86a20f9469cfc6c));
        assert_eq!(n, 15);
        assert_eq!(unpickle(&p[n..]).expect("second").0, Value::Int(1001));
        let (v, _) = unpickle(b"\x80\x02\x8a\x01\xff.").expect("valid");
        assert_eq!(v, Value::Int(-1));
    }

    #[test]
    fn tensor_with_persistent_storage() {
        let p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00((X\x07\x00\x00\x00storageq\x01ctorch\nFloatStorage\nq\x02X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtR.";
        let (v, _) = unpickle(p).expect("valid");
        let Value::Tensor(t) = v else { panic!("not a tensor: {v:?}") };
        assert_eq!(t.storage.key, "0");
        assert_eq!(t.storage.dtype, DType::F32);
        assert_eq!(t.storage.numel, 6);
        assert_eq!((t.offset, t.size, t.stride), (0, vec![2, 3], vec![3, 1]));
    }

    #[test]
    fn rejects_globals_outside_the_allow_list() {
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.";
        let e = unpickle(p).expect_err("must refuse os.system");
        assert!(e.detail.contains("os.system is not allowed"), "{e}");
        assert_eq!(e.offset, 2);
        let p = b"\x80\x02cbuiltins\neval\n.";
        assert!(unpickle(p).is_err());
    }

    #[test]
    fn bounds_nesting_and_memo_expansion() {
        // 100 nested one-tuples.
        let mut p = b"\x80\x02)".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 100));
        p.push(b'.');
        let e = unpickle(&p).expect_err("too deep");
        assert!(e.detail.contains("nested more than"), "{e}");
        // Doubling a list through the memo 40 times.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            p.extend_from_slice(b"h\x00\x86q\x00");
        }
        p.push(b'.');
        let e = unpickle(&p).expect_err("exponential");
        assert!(e.detail.contains("expands the pickle too much"), "{e}");
    }

    #[test]
    fn rejects_malformed_streams() {
        for (p, what) in [
            (&b"\x80\x02}q\x00(X\x05\x00\x00\x00ab"[..], "truncated"),
            (b"\x80\x02K\x01", "truncated"),
            (b"\x80\x02h\x07.", "memo key 7"),
            (b"\x80\x02t.", "no MARK"),
            (b"\x80\x02.", "underflow"),
            (b"\x80\x02K\x01K\x02.", "values left"),
            (b"\x80\x02S'x'\n.", "opcode 0x53"),
            (b"\x80\x02K\x00K\x01K\x02s.", "not a dict"),
            (b"\x80\x02K\x01)R.", "REDUCE of a int"),
            (b"\x80\x09N.", "protocol 9"),
            (b"\x80\x02X\x01\x00\x00\x00xQ.", "persistent id is a str"),
        ] {
            let e = unpickle(p).expect_err(what);
            assert!(e.detail.contains(what), "{what}: {e}");
        }
    }
}
