//! The accumulator arithmetic: how the engine adds a term to an `f32` accumulator, bit for bit.
//!
//! Every addition the engine performs outside a block's integer dot product goes through [`accumulate`]:
//! adding a block product in GEMM, adding the bias and the residual in POST. The rule is one correctly
//! rounded addition, chosen so that hardware implements it with one pipelined adder per array column:
//!
//! 1. The operands are the accumulator `a` (an `f32` that is `+0` or normal, never subnormal, NaN or Inf:
//!    the engine never produces those, and LOAD into the accumulator buffer flushes subnormals and rejects
//!    non-finite values) and a [`Term`] `t = mantissa · 2^exponent` with `|mantissa| < 2^24`.
//! 2. The exact real sum `a + t` is rounded to a 24-bit significand, **round to nearest, ties to even**, with
//!    an unbounded exponent range.
//! 3. If the rounded magnitude is below `2^−126` (the smallest normal `f32`) the result is `+0`
//!    (flush to zero, after rounding). A zero result is always `+0`.
//! 4. If the rounded magnitude exceeds `f32::MAX` the result saturates to `±f32::MAX` and the addition is
//!    reported as saturated (the engine counts these in a performance counter).
//!
//! # Why the `f64` implementation is exact
//! Both operands have at most 24 significant bits and magnitudes within `2^±300`, so each is exact in `f64`
//! and their sum is rounded once to 53 bits. Rounding to 53 bits and then to 24 bits equals rounding the exact
//! sum to 24 bits directly, because `53 ≥ 2·24 + 2` (Figueroa, "When is double rounding innocuous?", 1995);
//! the `f64` intermediate never underflows, so the argument holds with the unbounded exponent of step 2.
//! The unit tests check this against exact big-integer arithmetic.

/// A value `mantissa · 2^exponent` to be added to an accumulator; `|mantissa|` must be below `2^24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    /// Signed integer significand.
    pub mantissa: i32,
    /// Power-of-two exponent.
    pub exponent: i32,
}

impl Term {
    /// The exact term for a finite `f32` (subnormals included).
    pub fn from_f32(x: f32) -> Term {
        debug_assert!(x.is_finite());
        let bits = x.to_bits();
        let biased = ((bits >> 23) & 0xff) as i32;
        let frac = (bits & 0x7f_ffff) as i32;
        let (mag, exponent) = if biased == 0 { (frac, -149) } else { (frac | 0x80_0000, biased - 150) };
        Term { mantissa: if bits >> 31 == 1 { -mag } else { mag }, exponent }
    }

    /// The exact value as an `f64`.
    #[inline]
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 * crate::bfp::pow2(self.exponent)
    }
}

/// The result of one accumulator addition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sum {
    /// The new accumulator value (`+0` or a normal `f32`).
    pub value: f32,
    /// True when the rounded sum exceeded `f32::MAX` and was saturated.
    pub saturated: bool,
}

/// Adds `term` to the accumulator `acc` by the engine's rule (see the module documentation).
#[inline]
pub fn accumulate(acc: f32, term: Term) -> Sum {
    debug_assert!(term.mantissa.unsigned_abs() < 1 << 24);
    debug_assert!(acc == 0.0 || acc.is_normal());
    round_to_accumulator(acc as f64 + term.to_f64())
}

/// Rounds an `f64` to the accumulator format: 24-bit significand, nearest-even, then flush below `2^−126`
/// to `+0` and saturate above `f32::MAX`. Steps 2–4 of the module's rule, for a value already exact in `f64`.
#[inline]
pub fn round_to_accumulator(x: f64) -> Sum {
    let bits = x.to_bits();
    let sign = bits & (1 << 63);
    let mag = bits & !(1 << 63);
    // Round the 52-bit fraction to 23 bits, nearest-even, by integer arithmetic on the magnitude's bits; a carry
    // out of the fraction correctly bumps the exponent.
    const DROP: u32 = 52 - 23;
    let half = 1u64 << (DROP - 1);
    let lsb = (mag >> DROP) & 1;
    let rounded = (mag + half - 1 + lsb) & !((1u64 << DROP) - 1);
    let r = f64::from_bits(rounded);
    if r < f32::MIN_POSITIVE as f64 {
        Sum { value: 0.0, saturated: false }
    } else if r > f32::MAX as f64 {
        Sum { value: if sign != 0 { -f32::MAX } else { f32::MAX }, saturated: true }
    } else {
        Sum { value: f64::from_bits(rounded | sign) as f32, saturated: false }
    }
}

/// Prepares an `f32` read from host memory for the accumulator buffer: subnormals and `−0` become `+0`;
/// NaN and ±Inf are rejected (`None`).
pub fn accumulator_input(x: f32) -> Option<f32> {
    if !x.is_finite() {
        None
    } else if x.abs() < f32::MIN_POSITIVE {
        Some(0.0)
    } else {
        Some(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;
    use rand::{Rng, SeedableRng};

    /// The rule computed with exact integers: the independent oracle for [`accumulate`].
    fn exact_reference(acc: f32, term: Term) -> Sum {
        let a = Term::from_f32(acc);
        let e = a.exponent.min(term.exponent);
        let sum: BigInt = (BigInt::from(a.mantissa) << (a.exponent - e) as usize)
            + (BigInt::from(term.mantissa) << (term.exponent - e) as usize);
        if sum == BigInt::from(0) {
            return Sum { value: 0.0, saturated: false };
        }
        let negative = sum < BigInt::from(0);
        let mut mag = if negative { -sum } else { sum };
        let mut exp = e;
        let bits = mag.bits() as i32;
        if bits > 24 {
            let drop = (bits - 24) as usize;
            let rem = &mag & ((BigInt::from(1) << drop) - 1);
            mag >>= drop;
            exp += drop as i32;
            let half = BigInt::from(1) << (drop - 1);
            let odd = (&mag & BigInt::from(1)) == BigInt::from(1);
            if rem > half || (rem == half && odd) {
                mag += 1;
            }
        }
        // value = mag · 2^exp, mag ≤ 2^24.
        let m: u32 = mag.try_into().unwrap();
        let top = exp + 31 - m.leading_zeros() as i32; // floor(log2)
        if top < -126 {
            return Sum { value: 0.0, saturated: false };
        }
        let v = m as f64 * crate::bfp::pow2(exp.clamp(-1000, 1000));
        if top > 127 || v > f32::MAX as f64 {
            return Sum { value: if negative { -f32::MAX } else { f32::MAX }, saturated: true };
        }
        Sum { value: (if negative { -v } else { v }) as f32, saturated: false }
    }

    fn random_acc(rng: &mut impl Rng) -> f32 {
        match rng.gen_range(0..10) {
            0 => 0.0,
            1 => f32::MIN_POSITIVE * rng.gen_range(1.0..4.0) * if rng.gen() { 1.0 } else { -1.0 },
            2 => f32::MAX * rng.gen_range(0.5..1.0) * if rng.gen() { 1.0 } else { -1.0 },
            _ => {
                let bits = rng.gen::<u32>() & 0x807f_ffff | ((rng.gen_range(1u32..255)) << 23);
                f32::from_bits(bits)
            }
        }
    }

    #[test]
    fn matches_exact_arithmetic_on_random_and_extreme_operands() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for i in 0..200_000 {
            let acc = random_acc(&mut rng);
            let anchor = if acc == 0.0 { 0 } else { crate::bfp::floor_log2(acc) };
            let term = Term {
                mantissa: rng.gen_range(-(1 << 21)..(1 << 21)),
                exponent: match i % 3 {
                    // near the accumulator: ties and carries
                    0 => anchor - 21 + rng.gen_range(-30..30),
                    // anywhere in the engine's range
                    _ => rng.gen_range(-266..=254),
                },
            };
            assert_eq!(accumulate(acc, term), exact_reference(acc, term), "acc {acc:e} term {term:?}");
        }
    }

    #[test]
    fn ties_round_to_even_and_tiny_results_flush() {
        // 1 + 2^-24 is a tie between 1 and 1 + 2^-23: even is 1.
        assert_eq!(accumulate(1.0, Term { mantissa: 1, exponent: -24 }).value, 1.0);
        // 1 + 3·2^-24 is a tie between 1+2^-23 and 1+2^-22: even is 1 + 2^-22.
        assert_eq!(accumulate(1.0, Term { mantissa: 3, exponent: -24 }).value, 1.0 + 2f32.powi(-22));
        // Results below 2^-126 flush to +0, including negative ones.
        let r = accumulate(0.0, Term { mantissa: -1, exponent: -127 });
        assert_eq!(r.value.to_bits(), 0);
        // 2^-126 − 2^-151 rounds up to 2^-126 before the flush test, so it survives.
        let r = accumulate(f32::MIN_POSITIVE, Term { mantissa: -1, exponent: -151 });
        assert_eq!(r.value, f32::MIN_POSITIVE);
        // x + (−x) is +0.
        assert_eq!(accumulate(-2.5, Term::from_f32(2.5)).value.to_bits(), 0);
    }

    #[test]
    fn overflow_saturates_and_reports_it() {
        let r = accumulate(f32::MAX, Term { mantissa: 1, exponent: 104 });
        assert_eq!(r, Sum { value: f32::MAX, saturated: true });
        let r = accumulate(-f32::MAX, Term { mantissa: -(1 << 20), exponent: 200 });
        assert_eq!(r, Sum { value: -f32::MAX, saturated: true });
        // Just below the rounding threshold stays finite and unsaturated.
        let r = accumulate(f32::MAX, Term { mantissa: 1, exponent: 102 });
        assert_eq!(r, Sum { value: f32::MAX, saturated: false });
    }

    #[test]
    fn f32_terms_are_exact() {
        for x in [1.0f32, -3.75, f32::MIN_POSITIVE, f32::from_bits(1), -f32::MAX, 0.1] {
            assert_eq!(Term::from_f32(x).to_f64(), x as f64);
        }
        assert_eq!(accumulator_input(f32::from_bits(5)), Some(0.0));
        assert_eq!(accumulator_input(-0.0).map(f32::to_bits), Some(0));
        assert_eq!(accumulator_input(f32::NAN), None);
        assert_eq!(accumulator_input(-2.0), Some(-2.0));
    }
}
