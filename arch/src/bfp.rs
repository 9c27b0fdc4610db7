//! Block floating point (BFP): the number formats of the engine.
//!
//! A BFP *block* is `block_size` consecutive values along a matrix's reduction axis that share one power-of-two
//! scale. Each element keeps a small two's-complement integer mantissa; the block keeps one exponent. This is
//! the family of Microsoft's MSFP formats (Brainwave) and of the OCP Microscaling (MX) integer format.
//!
//! # The rules, exactly
//! For a format with `m = mantissa_bits` (sign included) and `k = exponent_bits`:
//!
//! * **Value of an element**: `x = mantissa · 2^(E − (m − 2))`, where `E` is the block's shared exponent and
//!   `mantissa` is a signed integer. So `mantissa / 2^(m−2)` is a fixed-point number in `[−2, 2)`: for
//!   `m = 8` this is exactly MX INT8 (implicit scale `2^−6`).
//! * **Shared exponent** (the MX rule): `E = floor(log2(max_i |x_i|)) − emax_elem` with `emax_elem = 0` for
//!   these integer elements, clamped to `[E_min, E_max]`. `floor(log2)` is taken exactly, subnormal inputs
//!   included.
//! * **Exponent range and encoding**: `bias = 2^(k−1) − 1`, `E_min = −bias`, `E_max = bias`, stored as the
//!   unsigned code `E + bias` in `0 ..= 2^k − 2`. The all-ones code is reserved (it is NaN in MX's E8M0) and is
//!   never produced; decoding it is an error. With `k = 8` this is exactly E8M0.
//! * **Mantissa**: `round(x · 2^((m−2) − E))`, then clamped (saturated) to `±(2^(m−1) − 1)`. The range is
//!   symmetric, as in the MX reference library, so sign-magnitude hardware (MSFP) and two's-complement hardware
//!   read the same numbers. The code `−2^(m−1)` is never produced by quantization, but it is a valid code that
//!   hardware and the golden model accept as input.
//! * **Rounding**: [`Rounding::NearestEven`] (IEEE round-half-to-even, the default) or
//!   [`Rounding::NearestAway`] (round half away from zero, the MX reference library's `"nearest"`).
//! * **Saturation**: only the block's largest elements can round up to `2^(m−1)`; they saturate to
//!   `2^(m−1) − 1`. With `k < 8`, a block whose exponent exceeds `E_max` saturates too.
//! * **All-zero blocks** (including `−0.0`) get `E = E_min` (code 0) and zero mantissas. This differs from the
//!   MX library, which derives the exponent of a zero block from `FP32_MIN_NORMAL`; a fixed code is simpler for
//!   hardware and changes no value.
//! * **Tiny values**: blocks whose `floor(log2 max)` is below `E_min` use `E_min`; their mantissas round
//!   towards zero as the rule above says (f32 subnormals are handled exactly, not flushed).
//! * **NaN and ±Inf** inputs are rejected with [`BfpError::NonFinite`], naming the offending index: a block
//!   has no way to carry them, and silent garbage is worse than an error.
//!
//! Decoding is exact: for every supported format every element value is an exactly representable `f32`.
//!
//! # Memory layout
//! A BFP tensor in host memory is two planes (see `docs/architecture.md`): the *mantissa plane* packs each
//! block's mantissas into [`BfpFormat::mantissa_bytes`] bytes (elements in order, each in a container of
//! [`BfpFormat::container_bits`] bits, two's complement, least significant bits first) and the *exponent
//! plane* holds one exponent code byte per block.

use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};
use thiserror::Error;

/// Block sizes the engine supports along the reduction axis.
pub const BLOCK_SIZES: [usize; 4] = [8, 16, 32, 64];
/// The smallest supported mantissa width in bits, sign included.
pub const MIN_MANTISSA_BITS: u32 = 2;
/// The largest supported mantissa width in bits, sign included.
pub const MAX_MANTISSA_BITS: u32 = 8;
/// The smallest supported shared-exponent width in bits.
pub const MIN_EXPONENT_BITS: u32 = 4;
/// The largest supported shared-exponent width in bits (E8M0).
pub const MAX_EXPONENT_BITS: u32 = 8;

/// How a scaled value is rounded to an integer mantissa.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to nearest, ties to even (IEEE 754 default). The engine's default.
    #[default]
    NearestEven,
    /// Round to nearest, ties away from zero (the MX reference library's `"nearest"`).
    NearestAway,
}

impl Rounding {
    /// Rounds `v` to an integer-valued `f64` by this rule. `v` must be finite.
    #[inline]
    pub fn round(self, v: f64) -> f64 {
        match self {
            Rounding::NearestEven => v.round_ties_even(),
            Rounding::NearestAway => v.round(),
        }
    }
}

/// [`Rounding::round`] for `|v| < 2^51`, without a library call: this is the quantizer's inner loop, and
/// `round_ties_even` is a call into libm on CPUs without SSE4.1 (5× slower here). Adding and subtracting
/// `1.5·2^52` leaves an integer rounded to nearest-even by the FPU's own rounding; ties away from zero
/// compares the exact fraction left by a truncating conversion with one half. Both equal [`Rounding::round`] as values (tested below; only the sign of a zero may differ).
#[inline]
fn round_small(rounding: Rounding, v: f64) -> f64 {
    debug_assert!(v.abs() < (1u64 << 51) as f64);
    match rounding {
        Rounding::NearestEven => {
            const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
            (v + MAGIC) - MAGIC
        }
        Rounding::NearestAway => {
            let a = v.abs();
            let t = a as i64 as f64; // truncation; `a − t` is exact
            (if a - t >= 0.5 { t + 1.0 } else { t }).copysign(v)
        }
    }
}

/// Errors of BFP formats and conversions.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BfpError {
    /// The format's parameters are outside what the engine supports.
    #[error("unsupported BFP format: {0}")]
    InvalidFormat(String),
    /// An input value is NaN or infinite; BFP cannot represent it.
    #[error("cannot quantize non-finite value {value} at index {index} to BFP")]
    NonFinite {
        /// Index of the value in the input slice.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// The input length is not a whole number of blocks.
    #[error("input of {len} values is not a multiple of the block size {block_size}")]
    RaggedInput {
        /// Number of input values.
        len: usize,
        /// The format's block size.
        block_size: usize,
    },
    /// An exponent code is the reserved all-ones value (NaN in E8M0) or does not fit the format.
    #[error("exponent code {code:#x} is reserved or out of range for {exponent_bits}-bit exponents")]
    InvalidExponentCode {
        /// The code read.
        code: u8,
        /// The format's exponent width.
        exponent_bits: u32,
    },
    /// A mantissa does not fit the format's width.
    #[error("mantissa {value} does not fit in {mantissa_bits} bits")]
    MantissaOutOfRange {
        /// The mantissa read.
        value: i32,
        /// The format's mantissa width.
        mantissa_bits: u32,
    },
    /// A packed buffer has the wrong length.
    #[error("packed BFP data has {got} bytes, expected {expected}")]
    PackedLength {
        /// Bytes given.
        got: usize,
        /// Bytes the format needs.
        expected: usize,
    },
}

/// A block-floating-point format: block size, mantissa width and shared-exponent width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BfpFormat {
    block_size: usize,
    mantissa_bits: u32,
    exponent_bits: u32,
}

impl BfpFormat {
    /// Microsoft MSFP12: block 16, 8-bit shared exponent, sign + 3 mantissa bits.
    pub const MSFP12: BfpFormat = BfpFormat { block_size: 16, mantissa_bits: 4, exponent_bits: 8 };
    /// Microsoft MSFP16: block 16, 8-bit shared exponent, sign + 7 mantissa bits.
    pub const MSFP16: BfpFormat = BfpFormat { block_size: 16, mantissa_bits: 8, exponent_bits: 8 };
    /// OCP Microscaling MXINT8 (MX v1.0): block 32, E8M0 scale, 8-bit two's-complement elements.
    pub const MXINT8: BfpFormat = BfpFormat { block_size: 32, mantissa_bits: 8, exponent_bits: 8 };

    /// The named presets, with the names [`FromStr`] accepts.
    pub const PRESETS: [(&'static str, BfpFormat); 3] =
        [("msfp12", Self::MSFP12), ("msfp16", Self::MSFP16), ("mxint8", Self::MXINT8)];

    /// Makes a format, checking it is one the engine supports: block size in [`BLOCK_SIZES`], mantissa width
    /// in `2..=8` bits (sign included) and exponent width in `4..=8` bits.
    pub fn new(block_size: usize, mantissa_bits: u32, exponent_bits: u32) -> Result<Self, BfpError> {
        if !BLOCK_SIZES.contains(&block_size) {
            return Err(BfpError::InvalidFormat(format!("block size {block_size} (supported: {BLOCK_SIZES:?})")));
        }
        if !(MIN_MANTISSA_BITS..=MAX_MANTISSA_BITS).contains(&mantissa_bits) {
            return Err(BfpError::InvalidFormat(format!(
                "mantissa width {mantissa_bits} bits (supported: {MIN_MANTISSA_BITS}..={MAX_MANTISSA_BITS}, sign included)"
            )));
        }
        if !(MIN_EXPONENT_BITS..=MAX_EXPONENT_BITS).contains(&exponent_bits) {
            return Err(BfpError::InvalidFormat(format!(
                "exponent width {exponent_bits} bits (supported: {MIN_EXPONENT_BITS}..={MAX_EXPONENT_BITS})"
            )));
        }
        Ok(BfpFormat { block_size, mantissa_bits, exponent_bits })
    }

    /// Number of elements sharing one exponent.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Mantissa width in bits, sign included.
    pub fn mantissa_bits(&self) -> u32 {
        self.mantissa_bits
    }

    /// Shared-exponent width in bits.
    pub fn exponent_bits(&self) -> u32 {
        self.exponent_bits
    }

    /// The exponent bias `2^(k−1) − 1`; also `E_max` and `−E_min`.
    pub fn exponent_bias(&self) -> i32 {
        (1 << (self.exponent_bits - 1)) - 1
    }

    /// The smallest shared exponent, `−bias`.
    pub fn min_exponent(&self) -> i32 {
        -self.exponent_bias()
    }

    /// The largest shared exponent, `bias`.
    pub fn max_exponent(&self) -> i32 {
        self.exponent_bias()
    }

    /// The largest mantissa quantization produces, `2^(m−1) − 1` (the range is symmetric).
    pub fn max_mantissa(&self) -> i32 {
        (1 << (self.mantissa_bits - 1)) - 1
    }

    /// The smallest mantissa code the format can hold, `−2^(m−1)` (accepted, never produced).
    pub fn min_mantissa_code(&self) -> i32 {
        -(1 << (self.mantissa_bits - 1))
    }

    /// Number of fraction bits of the fixed-point mantissa, `m − 2`: an element is
    /// `mantissa · 2^(E − fraction_bits)`.
    pub fn fraction_bits(&self) -> i32 {
        self.mantissa_bits as i32 - 2
    }

    /// Bits of the container one mantissa occupies in memory: 2, 4 or 8 (the next power of two ≥ width).
    pub fn container_bits(&self) -> u32 {
        self.mantissa_bits.next_power_of_two().max(2)
    }

    /// Bytes of one block's packed mantissas in the mantissa plane.
    pub fn mantissa_bytes(&self) -> usize {
        self.block_size * self.container_bits() as usize / 8
    }

    /// Decodes an exponent code to the shared exponent `E`.
    pub fn decode_exponent(&self, code: u8) -> Result<i32, BfpError> {
        let e = code as i32 - self.exponent_bias();
        if e > self.max_exponent() {
            return Err(BfpError::InvalidExponentCode { code, exponent_bits: self.exponent_bits });
        }
        Ok(e)
    }

    /// Encodes a shared exponent (which must lie in `[E_min, E_max]`) as its code.
    pub fn encode_exponent(&self, exponent: i32) -> u8 {
        debug_assert!((self.min_exponent()..=self.max_exponent()).contains(&exponent));
        (exponent + self.exponent_bias()) as u8
    }
}

impl fmt::Display for BfpFormat {
    /// Preset formats print as their name; others as `bfp<block>m<mantissa>e<exponent>`, which parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::PRESETS.iter().find(|(_, p)| p == self) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "bfp{}m{}e{}", self.block_size, self.mantissa_bits, self.exponent_bits),
        }
    }
}

impl FromStr for BfpFormat {
    type Err = BfpError;

    /// Parses a preset name (`msfp12`, `msfp16`, `mxint8`) or `bfp<block>m<mantissa>[e<exponent>]`
    /// (exponent width 8 when omitted), e.g. `bfp32m6` or `bfp16m4e8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some((_, f)) = Self::PRESETS.iter().find(|(name, _)| *name == lower) {
            return Ok(*f);
        }
        let bad = || {
            BfpError::InvalidFormat(format!(
                "{s:?}: expected msfp12, msfp16, mxint8 or bfp<block>m<mantissa bits>[e<exponent bits>]"
            ))
        };
        let rest = lower.strip_prefix("bfp").ok_or_else(bad)?;
        let (block, rest) = rest.split_once('m').ok_or_else(bad)?;
        let (mant, exp) = match rest.split_once('e') {
            Some((m, e)) => (m, e),
            None => (rest, "8"),
        };
        let parse = |t: &str| t.parse::<u32>().map_err(|_| bad());
        BfpFormat::new(parse(block)? as usize, parse(mant)?, parse(exp)?)
    }
}

/// One quantized block: a shared exponent code and `block_size` mantissas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BfpBlock {
    /// The biased exponent code (`E + bias`).
    pub exponent_code: u8,
    /// The signed integer mantissas, one per element.
    pub mantissas: Vec<i8>,
}

/// `floor(log2(|x|))` for a finite non-zero `f32`, exact for subnormals too.
pub fn floor_log2(x: f32) -> i32 {
    debug_assert!(x.is_finite() && x != 0.0);
    let bits = x.to_bits() & 0x7fff_ffff;
    let biased = (bits >> 23) as i32;
    if biased == 0 {
        // Subnormal: value = frac · 2^−149, so floor(log2) = −149 + index of the top set bit.
        -149 + (31 - bits.leading_zeros() as i32)
    } else {
        biased - 127
    }
}

/// `2^e` as an `f64`, exact for the exponents BFP uses (|e| < 1022).
#[inline]
pub fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Quantizes one block of `f32` values (exactly `format.block_size()` of them) into `mantissas`, returning
/// the exponent code. This is *the* quantizer: every path in systole that makes BFP calls it.
pub fn quantize_block_into(
    format: &BfpFormat,
    rounding: Rounding,
    values: &[f32],
    mantissas: &mut [i8],
) -> Result<u8, BfpError> {
    debug_assert_eq!(values.len(), format.block_size);
    debug_assert_eq!(mantissas.len(), format.block_size);
    let mut amax = 0.0f32;
    for (index, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(BfpError::NonFinite { index, value });
        }
        amax = amax.max(value.abs());
    }
    if amax == 0.0 {
        mantissas.fill(0);
        return Ok(format.encode_exponent(format.min_exponent()));
    }
    let exponent = floor_log2(amax).clamp(format.min_exponent(), format.max_exponent());
    let scale = pow2(format.fraction_bits() - exponent);
    let limit = format.max_mantissa() as f64;
    for (m, &v) in mantissas.iter_mut().zip(values) {
        // Exact: an f32 times a power of two stays well inside f64's range and precision. Clamping to one past
        // the limit first changes no result (rounding is monotonic) and keeps the fast rounding below in range.
        let scaled = (v as f64 * scale).clamp(-limit - 1.0, limit + 1.0);
        *m = round_small(rounding, scaled).clamp(-limit, limit) as i8;
    }
    Ok(format.encode_exponent(exponent))
}

/// The value of one element: `mantissa · 2^(E − fraction_bits)`, exact in `f32` for every supported format.
#[inline]
pub fn element_value(format: &BfpFormat, exponent: i32, mantissa: i8) -> f32 {
    (mantissa as f64 * pow2(exponent - format.fraction_bits())) as f32
}

/// A tensor of BFP blocks: the in-memory (unpacked) form used by software.
///
/// Values are grouped into consecutive blocks of `format.block_size()`; block `b` holds elements
/// `b·block_size .. (b+1)·block_size` and its exponent code is `exponents[b]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfpTensor {
    format: BfpFormat,
    exponents: Vec<u8>,
    mantissas: Vec<i8>,
}

impl BfpTensor {
    /// Quantizes `values` (a whole number of blocks) with the given rounding.
    pub fn quantize(format: BfpFormat, rounding: Rounding, values: &[f32]) -> Result<Self, BfpError> {
        let bs = format.block_size;
        if !values.len().is_multiple_of(bs) {
            return Err(BfpError::RaggedInput { len: values.len(), block_size: bs });
        }
        let mut mantissas = vec![0i8; values.len()];
        let mut exponents = Vec::with_capacity(values.len() / bs);
        for (b, (block, out)) in values.chunks_exact(bs).zip(mantissas.chunks_exact_mut(bs)).enumerate() {
            let code = quantize_block_into(&format, rounding, block, out).map_err(|e| match e {
                BfpError::NonFinite { index, value } => BfpError::NonFinite { index: b * bs + index, value },
                other => other,
            })?;
            exponents.push(code);
        }
        Ok(BfpTensor { format, exponents, mantissas })
    }

    /// Quantizes IEEE half-precision values (converted exactly to `f32` first).
    pub fn quantize_f16(format: BfpFormat, rounding: Rounding, values: &[f16]) -> Result<Self, BfpError> {
        let v: Vec<f32> = values.iter().map(|x| x.to_f32()).collect();
        Self::quantize(format, rounding, &v)
    }

    /// Quantizes bfloat16 values (converted exactly to `f32` first).
    pub fn quantize_bf16(format: BfpFormat, rounding: Rounding, values: &[bf16]) -> Result<Self, BfpError> {
        let v: Vec<f32> = values.iter().map(|x| x.to_f32()).collect();
        Self::quantize(format, rounding, &v)
    }

    /// Builds a tensor from raw parts, checking every exponent code and mantissa fits the format.
    pub fn from_parts(format: BfpFormat, exponents: Vec<u8>, mantissas: Vec<i8>) -> Result<Self, BfpError> {
        if mantissas.len() != exponents.len() * format.block_size {
            return Err(BfpError::PackedLength { got: mantissas.len(), expected: exponents.len() * format.block_size });
        }
        for &code in &exponents {
            format.decode_exponent(code)?;
        }
        for &m in &mantissas {
            if (m as i32) < format.min_mantissa_code() || (m as i32) > format.max_mantissa() {
                return Err(BfpError::MantissaOutOfRange { value: m as i32, mantissa_bits: format.mantissa_bits });
            }
        }
        Ok(BfpTensor { format, exponents, mantissas })
    }

    /// The format of every block.
    pub fn format(&self) -> BfpFormat {
        self.format
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.exponents.len()
    }

    /// Number of elements (`num_blocks · block_size`).
    pub fn len(&self) -> usize {
        self.mantissas.len()
    }

    /// True when the tensor holds no blocks.
    pub fn is_empty(&self) -> bool {
        self.mantissas.is_empty()
    }

    /// The exponent codes, one per block.
    pub fn exponent_codes(&self) -> &[u8] {
        &self.exponents
    }

    /// All mantissas, block after block.
    pub fn mantissas(&self) -> &[i8] {
        &self.mantissas
    }

    /// Block `b` as an owned [`BfpBlock`].
    pub fn block(&self, b: usize) -> BfpBlock {
        let bs = self.format.block_size;
        BfpBlock { exponent_code: self.exponents[b], mantissas: self.mantissas[b * bs..(b + 1) * bs].to_vec() }
    }

    /// The shared exponent `E` of block `b`.
    pub fn exponent(&self, b: usize) -> i32 {
        // Codes were validated on construction.
        self.exponents[b] as i32 - self.format.exponent_bias()
    }

    /// Decodes to `f32` (exact).
    pub fn dequantize(&self) -> Vec<f32> {
        let bs = self.format.block_size;
        let mut out = Vec::with_capacity(self.mantissas.len());
        for (b, block) in self.mantissas.chunks_exact(bs).enumerate() {
            let scale = pow2(self.exponent(b) - self.format.fraction_bits());
            out.extend(block.iter().map(|&m| (m as f64 * scale) as f32));
        }
        out
    }

    /// Decodes to IEEE half precision (each exact `f32` value rounded to nearest even).
    pub fn dequantize_f16(&self) -> Vec<f16> {
        self.dequantize().into_iter().map(f16::from_f32).collect()
    }

    /// Decodes to bfloat16 (each exact `f32` value rounded to nearest even).
    pub fn dequantize_bf16(&self) -> Vec<bf16> {
        self.dequantize().into_iter().map(bf16::from_f32).collect()
    }

    /// Packs the mantissa plane as the engine reads it from host memory.
    pub fn pack_mantissas(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.num_blocks() * self.format.mantissa_bytes()];
        for (block, dst) in
            self.mantissas.chunks_exact(self.format.block_size).zip(out.chunks_exact_mut(self.format.mantissa_bytes()))
        {
            pack_block_mantissas(&self.format, block, dst);
        }
        out
    }

    /// Unpacks a tensor from its mantissa plane and exponent plane (as in host memory).
    pub fn unpack(format: BfpFormat, mantissa_plane: &[u8], exponent_plane: &[u8]) -> Result<Self, BfpError> {
        let expected = exponent_plane.len() * format.mantissa_bytes();
        if mantissa_plane.len() != expected {
            return Err(BfpError::PackedLength { got: mantissa_plane.len(), expected });
        }
        let mut mantissas = vec![0i8; exponent_plane.len() * format.block_size];
        for (src, dst) in
            mantissa_plane.chunks_exact(format.mantissa_bytes()).zip(mantissas.chunks_exact_mut(format.block_size))
        {
            unpack_block_mantissas(&format, src, dst);
        }
        BfpTensor::from_parts(format, exponent_plane.to_vec(), mantissas)
    }
}

/// Packs one block's mantissas into `dst` (`format.mantissa_bytes()` bytes): element `i` occupies bits
/// `i·c .. (i+1)·c` of the little-endian byte string, `c = container_bits`, in two's complement.
pub fn pack_block_mantissas(format: &BfpFormat, mantissas: &[i8], dst: &mut [u8]) {
    let c = format.container_bits() as usize;
    debug_assert_eq!(dst.len(), format.mantissa_bytes());
    if c == 8 {
        for (d, &m) in dst.iter_mut().zip(mantissas) {
            *d = m as u8;
        }
        return;
    }
    dst.fill(0);
    let mask = (1u16 << c) - 1;
    for (i, &m) in mantissas.iter().enumerate() {
        let bit = i * c;
        dst[bit / 8] |= (((m as i16 as u16) & mask) << (bit % 8)) as u8;
    }
}

/// Unpacks one block's mantissas from `src` (the inverse of [`pack_block_mantissas`]). Only the low
/// `mantissa_bits` bits of each container are significant: they are sign-extended, and the container's upper
/// bits are ignored (hardware reads them the same way), so every byte string unpacks to valid mantissas.
pub fn unpack_block_mantissas(format: &BfpFormat, src: &[u8], mantissas: &mut [i8]) {
    let c = format.container_bits() as usize;
    let shift = 8 - format.mantissa_bits();
    for (i, m) in mantissas.iter_mut().enumerate() {
        let bit = i * c;
        let raw = (src[bit / 8] >> (bit % 8)) as i8;
        // Move the mantissa's sign bit to bit 7, then shift back arithmetically.
        *m = (raw << shift) >> shift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_their_specifications() {
        assert_eq!((BfpFormat::MSFP12.block_size(), BfpFormat::MSFP12.mantissa_bits()), (16, 4));
        assert_eq!((BfpFormat::MSFP16.block_size(), BfpFormat::MSFP16.mantissa_bits()), (16, 8));
        assert_eq!((BfpFormat::MXINT8.block_size(), BfpFormat::MXINT8.mantissa_bits()), (32, 8));
        // E8M0: exponents 2^-127 ..= 2^127, code 0xFF reserved.
        let f = BfpFormat::MXINT8;
        assert_eq!((f.min_exponent(), f.max_exponent()), (-127, 127));
        assert!(f.decode_exponent(0xff).is_err());
        assert_eq!(f.decode_exponent(127), Ok(0));
    }

    #[test]
    fn names_round_trip() {
        for s in ["msfp12", "msfp16", "mxint8", "bfp8m2e4", "bfp64m5e8", "bfp32m6e7"] {
            let f: BfpFormat = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!("bfp16m4".parse::<BfpFormat>().unwrap(), BfpFormat::MSFP12);
        assert!("bfp12m4".parse::<BfpFormat>().is_err());
        assert!("bfp16m9".parse::<BfpFormat>().is_err());
        assert!("fp32".parse::<BfpFormat>().is_err());
    }

    #[test]
    fn mx_int8_example() {
        // max |x| = 3.0 → E = floor(log2 3) = 1; element = round(x · 2^(6−1)).
        let mut v = vec![0.0f32; 32];
        v[0] = 3.0;
        v[1] = -0.5;
        v[2] = 0.015625; // 2^-6 → 0.5 → ties to even 0 (RNE) or 1 (away)
        v[3] = 0.046875; // 1.5 → 2 under both
        let t = BfpTensor::quantize(BfpFormat::MXINT8, Rounding::NearestEven, &v).unwrap();
        assert_eq!(t.exponent(0), 1);
        assert_eq!(&t.mantissas()[..4], &[96, -16, 0, 2]);
        let t = BfpTensor::quantize(BfpFormat::MXINT8, Rounding::NearestAway, &v).unwrap();
        assert_eq!(&t.mantissas()[..4], &[96, -16, 1, 2]);
    }

    #[test]
    fn largest_element_saturates() {
        // 1.999 · 2^0 scales to 127.9 → rounds to 128 → saturates to 127.
        let mut v = vec![0.0f32; 16];
        v[5] = -1.999;
        let t = BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &v).unwrap();
        assert_eq!(t.mantissas()[5], -127);
        assert_eq!(t.exponent(0), 0);
    }

    #[test]
    fn zero_block_gets_minimum_exponent() {
        let v = [-0.0f32; 16];
        let t = BfpTensor::quantize(BfpFormat::MSFP12, Rounding::NearestEven, &v).unwrap();
        assert_eq!(t.exponent_codes(), &[0]);
        assert!(t.mantissas().iter().all(|&m| m == 0));
    }

    #[test]
    fn subnormals_are_exact_not_flushed() {
        let tiny = f32::from_bits(3); // 3 · 2^-149
        assert_eq!(floor_log2(tiny), -148);
        let mut v = vec![0.0f32; 8];
        v[0] = tiny;
        let f = BfpFormat::new(8, 8, 8).unwrap();
        let t = BfpTensor::quantize(f, Rounding::NearestEven, &v).unwrap();
        // E clamps to -127; 3·2^-149 · 2^(6+127) = 3·2^-16 rounds to 0.
        assert_eq!(t.exponent(0), -127);
        assert_eq!(t.mantissas()[0], 0);
        // Large enough subnormals survive: 2^-130 → 2^-130 · 2^133 = 8.
        v[0] = 2f32.powi(-130);
        let t = BfpTensor::quantize(f, Rounding::NearestEven, &v).unwrap();
        assert_eq!(t.mantissas()[0], 8);
        assert_eq!(t.dequantize()[0], 2f32.powi(-130));
    }

    #[test]
    fn non_finite_is_an_error_naming_the_index() {
        let mut v = vec![1.0f32; 32];
        v[20] = f32::NAN;
        let err = BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &v).unwrap_err();
        assert!(matches!(err, BfpError::NonFinite { index: 20, .. }), "{err}");
        v[20] = f32::NEG_INFINITY;
        assert!(BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &v).is_err());
        assert!(matches!(
            BfpTensor::quantize(BfpFormat::MSFP16, Rounding::NearestEven, &v[..20]),
            Err(BfpError::RaggedInput { .. })
        ));
    }

    #[test]
    fn narrow_exponent_saturates() {
        // 4-bit exponents: E in [-7, 7]. 1000 = 2^9.97 → E clamps to 7, mantissa saturates.
        let f = BfpFormat::new(8, 8, 4).unwrap();
        let mut v = vec![0.0f32; 8];
        v[0] = 1000.0;
        v[1] = -1000.0;
        let t = BfpTensor::quantize(f, Rounding::NearestEven, &v).unwrap();
        assert_eq!(t.exponent(0), 7);
        assert_eq!(&t.mantissas()[..2], &[127, -127]);
    }

    #[test]
    fn packing_round_trips_every_width_including_the_most_negative_code() {
        for mb in MIN_MANTISSA_BITS..=MAX_MANTISSA_BITS {
            let f = BfpFormat::new(16, mb, 8).unwrap();
            let mants: Vec<i8> = (0..32).map(|i| (f.min_mantissa_code() + i % (1 << mb)) as i8).collect();
            let t = BfpTensor::from_parts(f, vec![3, 200], mants.clone()).unwrap();
            let plane = t.pack_mantissas();
            assert_eq!(plane.len(), 2 * f.mantissa_bytes());
            let back = BfpTensor::unpack(f, &plane, t.exponent_codes()).unwrap();
            assert_eq!(back.mantissas(), &mants[..], "width {mb}");
        }
    }

    #[test]
    fn half_precision_inputs() {
        let v: Vec<f16> = (0..16).map(|i| f16::from_f32(i as f32 * 0.25 - 2.0)).collect();
        let t = BfpTensor::quantize_f16(BfpFormat::MSFP16, Rounding::NearestEven, &v).unwrap();
        // These values are exact in MSFP16 (E = 1, step 2^-5).
        assert_eq!(t.dequantize_f16(), v);
        let b: Vec<bf16> = v.iter().map(|x| bf16::from_f32(x.to_f32())).collect();
        let tb = BfpTensor::quantize_bf16(BfpFormat::MSFP16, Rounding::NearestEven, &b).unwrap();
        assert_eq!(tb, t);
        assert_eq!(tb.dequantize_bf16(), b);
    }

    #[test]
    fn fast_rounding_equals_the_library_rounding() {
        let mut cases: Vec<f64> = (-600..=600).map(|i| i as f64 * 0.25).collect();
        cases.extend([0.5 - f64::EPSILON / 4.0, -0.49999999999999994, 2.5000000000000004, 1e15 + 0.5, -1e15 - 0.5]);
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..100_000 {
            // xorshift: random values in (-200, 200) with random low bits.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x >> 11) as f64 / (1u64 << 53) as f64 * 400.0 - 200.0);
        }
        for v in cases {
            for r in [Rounding::NearestEven, Rounding::NearestAway] {
                // Equal as values (the sign of a zero differs, and vanishes in the integer mantissa).
                assert_eq!(round_small(r, v), r.round(v), "{r:?} {v}");
            }
        }
    }

    #[test]
    fn unpacking_ignores_container_bits_above_the_mantissa() {
        // 3-bit mantissas in 4-bit containers: 0b1011 reads as 0b011 = 3; 0b0100 as -4.
        let f = BfpFormat::new(8, 3, 8).unwrap();
        let mut m = [0i8; 8];
        unpack_block_mantissas(&f, &[0x4b, 0, 0, 0], &mut m);
        assert_eq!(&m[..2], &[3, -4]);
    }
}
