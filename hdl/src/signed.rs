//! Signed-width helpers that rust-hdl 0.46 lacks or gets wrong.
//!
//! rust-hdl's own `signed_bit_cast` negates, casts and negates again for a negative value, so it recurses
//! forever on the most negative value of a width (its negation is itself). The array needs exactly that value
//! (mantissa code `−2^(m−1)`, e.g. `−128` for 8-bit mantissas, is a valid input), so this module provides a
//! sign-extending cast that works on the raw bits instead.

use rust_hdl::prelude::*;

/// Sign-extends (`M ≥ N`) a signed `N`-bit value to `M` bits, in simulation and in Verilog.
///
/// Inside `#[hdl_gen]` kernels rust-hdl translates every call whose name starts with `signed_bit_cast` to
/// `$signed(x)`, which Verilog sign-extends to the width of the signed destination; this function is the
/// simulation side of the same operation. Unlike rust-hdl's `signed_bit_cast` it does not recurse, so the
/// most negative value (`−2^(N−1)`) extends correctly. `M < N` is rejected because `$signed` does not truncate
/// the same way in every Verilog context.
pub fn signed_bit_cast_ext<const M: usize, const N: usize>(x: Signed<N>) -> Signed<M> {
    assert!(M >= N, "signed_bit_cast_ext only widens ({N} -> {M} bits)");
    let mut raw: Bits<M> = bit_cast(x.inner());
    if x.sign_bit() {
        for i in N..M {
            raw = raw.replace_bit(i, true);
        }
    }
    signed_cast(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<const N: usize>(x: Signed<N>) -> i64 {
        i64::try_from(x.bigint()).expect("fits in i64")
    }

    #[test]
    fn extends_every_8_bit_value_including_the_most_negative() {
        for v in -128i64..=127 {
            let x: Signed<8> = v.into();
            assert_eq!(value(signed_bit_cast_ext::<16, 8>(x)), v);
            assert_eq!(value(signed_bit_cast_ext::<32, 8>(x)), v);
        }
    }

    #[test]
    fn extends_the_extremes_of_other_widths() {
        for n in [2i64, 3, 4, 5, 6, 7] {
            let lo = -(1 << (n - 1));
            let hi = (1 << (n - 1)) - 1;
            for v in [lo, -1, 0, 1, hi] {
                let got = match n {
                    2 => value(signed_bit_cast_ext::<16, 2>(v.into())),
                    3 => value(signed_bit_cast_ext::<16, 3>(v.into())),
                    4 => value(signed_bit_cast_ext::<16, 4>(v.into())),
                    5 => value(signed_bit_cast_ext::<16, 5>(v.into())),
                    6 => value(signed_bit_cast_ext::<16, 6>(v.into())),
                    _ => value(signed_bit_cast_ext::<16, 7>(v.into())),
                };
                assert_eq!(got, v, "{n}-bit {v}");
            }
        }
        let min16: Signed<16> = (-32768i64).into();
        assert_eq!(value(signed_bit_cast_ext::<32, 16>(min16)), -32768);
        assert_eq!(value(signed_bit_cast_ext::<16, 16>(min16)), -32768);
    }
}
