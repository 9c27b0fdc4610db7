//! Property tests of BFP quantization over every preset and random formats.
//!
//! The properties are the ones the format's documentation promises: re-quantizing a quantized block changes
//! nothing (idempotence); every element is within half a unit in the last place of the block's scale, except
//! an element that saturated, which is within one; quantization preserves order; the shared exponent follows
//! the MX rule; packing round-trips.

use arch::bfp::{floor_log2, BfpFormat, BfpTensor, Rounding, BLOCK_SIZES};
use proptest::prelude::*;

/// Every preset plus random formats from the whole supported space (8-bit exponents, so no exponent
/// saturation can occur for f32 inputs; narrower exponents are covered separately).
fn formats() -> impl Strategy<Value = BfpFormat> {
    let presets = prop::sample::select(BfpFormat::PRESETS.iter().map(|(_, f)| *f).collect::<Vec<_>>());
    let random = (prop::sample::select(BLOCK_SIZES.to_vec()), 2u32..=8)
        .prop_map(|(bs, m)| BfpFormat::new(bs, m, 8).expect("supported format"));
    prop_oneof![presets, random]
}

fn rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![Just(Rounding::NearestEven), Just(Rounding::NearestAway)]
}

/// Finite f32 values over a wide dynamic range, including zeros and subnormals.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -1.0e4f32..1.0e4f32,
        2 => -1.0f32..1.0f32,
        1 => Just(0.0f32),
        1 => -1.0e-38f32..1.0e-38f32,
        1 => any::<f32>().prop_filter("finite", |x| x.is_finite()),
    ]
}

/// A format, a rounding mode and a whole number of blocks of values.
fn case() -> impl Strategy<Value = (BfpFormat, Rounding, Vec<f32>)> {
    (formats(), rounding(), 1usize..4)
        .prop_flat_map(|(f, r, blocks)| (Just(f), Just(r), prop::collection::vec(value(), blocks * f.block_size())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn requantizing_is_the_identity((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        let again = BfpTensor::quantize(f, r, &q.dequantize()).unwrap();
        prop_assert_eq!(again, q);
    }

    #[test]
    fn error_is_at_most_half_an_ulp_of_the_block_scale((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        let d = q.dequantize();
        for (b, block) in v.chunks_exact(f.block_size()).enumerate() {
            let ulp = 2f64.powi(q.exponent(b) - f.fraction_bits());
            for (i, &x) in block.iter().enumerate() {
                let idx = b * f.block_size() + i;
                let err = (x as f64 - d[idx] as f64).abs();
                let saturated = q.mantissas()[idx].unsigned_abs() as i32 == f.max_mantissa();
                let bound = if saturated { ulp } else { 0.5 * ulp };
                prop_assert!(err <= bound, "x = {x:e}, got {:e}, ulp {ulp:e}, block {b}", d[idx]);
            }
        }
    }

    #[test]
    fn quantization_preserves_order((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        let d = q.dequantize();
        for (block, qb) in v.chunks_exact(f.block_size()).zip(d.chunks_exact(f.block_size())) {
            for i in 0..block.len() {
                for j in 0..block.len() {
                    if block[i] <= block[j] {
                        prop_assert!(qb[i] <= qb[j], "{} <= {} but {} > {}", block[i], block[j], qb[i], qb[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn shared_exponent_follows_the_mx_rule((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        for (b, block) in v.chunks_exact(f.block_size()).enumerate() {
            let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let expected = if amax == 0.0 {
                f.min_exponent()
            } else {
                floor_log2(amax).clamp(f.min_exponent(), f.max_exponent())
            };
            prop_assert_eq!(q.exponent(b), expected);
            // The all-ones exponent code is reserved and never produced.
            prop_assert!((q.exponent_codes()[b] as u32) < (1 << f.exponent_bits()) - 1);
        }
    }

    #[test]
    fn mantissas_stay_in_the_symmetric_range((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        prop_assert!(q.mantissas().iter().all(|&m| (m as i32).abs() <= f.max_mantissa()));
    }

    #[test]
    fn packed_planes_round_trip((f, r, v) in case()) {
        let q = BfpTensor::quantize(f, r, &v).unwrap();
        let back = BfpTensor::unpack(f, &q.pack_mantissas(), q.exponent_codes()).unwrap();
        prop_assert_eq!(back, q);
    }

    #[test]
    fn rounding_modes_differ_only_on_ties((f, v) in (formats(), prop::collection::vec(value(), 64))
        .prop_map(|(f, v)| (f, v[..f.block_size().min(64)].to_vec()))) {
        let even = BfpTensor::quantize(f, Rounding::NearestEven, &v).unwrap();
        let away = BfpTensor::quantize(f, Rounding::NearestAway, &v).unwrap();
        let scale = 2f64.powi(f.fraction_bits() - even.exponent(0));
        for (i, &x) in v.iter().enumerate() {
            let s = x as f64 * scale;
            let tie = (s - s.trunc()).abs() == 0.5;
            if !tie {
                prop_assert_eq!(even.mantissas()[i], away.mantissas()[i]);
            }
        }
    }

    #[test]
    fn narrow_exponents_saturate_instead_of_overflowing(v in prop::collection::vec(value(), 8), e in 4u32..8) {
        let f = BfpFormat::new(8, 8, e).unwrap();
        let q = BfpTensor::quantize(f, Rounding::NearestEven, &v).unwrap();
        prop_assert!(q.exponent(0) <= f.max_exponent() && q.exponent(0) >= f.min_exponent());
        let again = BfpTensor::quantize(f, Rounding::NearestEven, &q.dequantize()).unwrap();
        prop_assert_eq!(again, q);
    }
}
