//! The accumulator adder: `arch::accum::accumulate` in RTL, bit for bit.
//!
//! The adder is four combinational stages, [`AccumDecode`] → [`AccumAlign`] → [`AccumAdd`] → [`AccumRound`].
//! [`AccumulateCore`] chains them with wires (POST's bias and residual adders use it, inside one cycle);
//! [`Accumulator`] puts pipeline registers between them, as many as the configuration's `acc_latency` allows,
//! which is how the array's column edges use it. Both compute the same function; only the cycle it takes differs.
//!
//! # The rule (from `arch::accum`)
//! The accumulator `a` is `+0` or a normal `f32`; the term is `t = mantissa · 2^exponent` with
//! `|mantissa| < 2^24`. The exact sum is rounded to a 24-bit significand, nearest-even, with an unbounded
//! exponent; a rounded magnitude below `2^−126` gives `+0`, one above `f32::MAX` gives `±f32::MAX` and raises
//! `saturated`. A zero result is always `+0`.
//!
//! # How the hardware computes it
//! Both operands are brought to the same form, a 24-bit significand with its top bit set and the exponent `E`
//! of that top bit (value `sig · 2^(E − 23)`), biased by 1024 in 12 bits so that every comparison is unsigned:
//! the accumulator directly (`E = biased_exp − 127`), the term after a leading-one search and a left shift
//! (exact, since `|mantissa| < 2^24`). The operand with the larger magnitude (the *big* one: larger `E`, or
//! equal `E` and larger significand) is placed at bit 26 of a 28-bit word (`big_sig << 3`); the other is
//! shifted right by the exponent difference `d` from bit 25 (`small_sig << 2 >> d`), then moved up one place
//! with a **sticky bit** below it that records whether any bit was shifted out (the classic guard, round and
//! sticky bits). Since big ≥ small, one adder adds or subtracts them (`big − small ≥ 0`). Nothing is lost while
//! `d ≤ 2`. For larger `d` the small operand is below `2^25` units, so the result's leading one is at bit 25 or
//! above and its rounding (guard) bit at bit 1 or above; the computed sum and the true one lie in the same open
//! interval between two consecutive even multiples of the unit (or are equal), and every rounding boundary
//! and power of two at or above the guard bit is such a multiple, so both normalise and round alike. The sum is
//! normalised (its leading one moved to bit 27), rounded nearest-even on bit 3, and its exponent tested for
//! flush and saturation. Because the exponent is unbounded until that test, rounding happens before the
//! flush, as the rule requires.
//!
//! # Pipeline
//! An `acc_latency` of `L` cycles places `min(L − 1, 3)` registers between the stages and the rest after the
//! last one: `L = 1` registers only the result, `L = 2` cuts after the alignment, `L = 3` also after the
//! addition, and `L ≥ 4` after every stage (the presets use 4). The longest path is then one stage, not the
//! whole adder: nextpnr measured the unpipelined adder at 48 ns on the ECP5 (docs/bitstreams.md). The
//! latency, and so every cycle count of the engine, is unchanged.
//!
//! # Interface
//! * `acc`: the accumulator's `f32` bits (`+0` or normal).
//! * `mant`: the term's mantissa, 32-bit two's complement (only `|mant| < 2^24` is meaningful).
//! * `exp`: the term's exponent plus [`EXP_BIAS`] (1024), 12 bits, so `−1024 ..= 3071` (the engine uses
//!   `−266 ..= 242` for block products).

use rust_hdl::prelude::*;

/// The bias added to term exponents on the [`AccumulateCore::exp`] port (the port is unsigned).
pub const EXP_BIAS: i32 = 1024;

/// Stage 1: both operands decoded to a sign, a 24-bit significand with its top bit set (zero for a zero
/// operand's unused value) and the exponent of that top bit plus 1024. The term goes through a two's
/// complement negation, a leading-one search and a left shift.
#[derive(LogicBlock)]
pub struct AccumDecode {
    /// The accumulator's `f32` bit pattern (`+0` or a normal number).
    pub acc: Signal<In, Bits<32>>,
    /// The term's mantissa in two's complement (`|mant| < 2^24`).
    pub mant: Signal<In, Bits<32>>,
    /// The term's exponent plus 1024.
    pub exp: Signal<In, Bits<12>>,
    /// The accumulator's significand, hidden bit included.
    pub a_sig: Signal<Out, Bits<24>>,
    /// The accumulator's exponent plus 1024.
    pub a_e: Signal<Out, Bits<12>>,
    /// The accumulator is zero.
    pub a_zero: Signal<Out, Bit>,
    /// The accumulator is negative.
    pub a_neg: Signal<Out, Bit>,
    /// The term's normalised significand (top bit set unless the term is zero).
    pub t_sig: Signal<Out, Bits<24>>,
    /// The exponent of the term's leading one, plus 1024.
    pub t_e: Signal<Out, Bits<12>>,
    /// The term is zero.
    pub t_zero: Signal<Out, Bit>,
    /// The term is negative.
    pub t_neg: Signal<Out, Bit>,
    k_hidden: Constant<Bits<24>>,
    k_acc_e_off: Constant<Bits<12>>,
    k_zero8: Constant<Bits<8>>,
    k_zero24: Constant<Bits<24>>,
    k_one32: Constant<Bits<32>>,
    a_bexp: Signal<Local, Bits<8>>,
    t_mag: Signal<Local, Bits<32>>,
    t_mag24: Signal<Local, Bits<24>>,
    t_top: Signal<Local, Bits<5>>,
    t_shift: Signal<Local, Bits<5>>,
}

impl Default for AccumDecode {
    fn default() -> Self {
        Self {
            acc: Default::default(),
            mant: Default::default(),
            exp: Default::default(),
            a_sig: Default::default(),
            a_e: Default::default(),
            a_zero: Default::default(),
            a_neg: Default::default(),
            t_sig: Default::default(),
            t_e: Default::default(),
            t_zero: Default::default(),
            t_neg: Default::default(),
            k_hidden: Constant::new(0x80_0000.into()),
            // E + 1024 = biased_exp − 127 + 1024.
            k_acc_e_off: Constant::new(897.into()),
            k_zero8: Constant::new(0.into()),
            k_zero24: Constant::new(0.into()),
            k_one32: Constant::new(1.into()),
            a_bexp: Default::default(),
            t_mag: Default::default(),
            t_mag24: Default::default(),
            t_top: Default::default(),
            t_shift: Default::default(),
        }
    }
}

impl Logic for AccumDecode {
    #[hdl_gen]
    fn update(&mut self) {
        // The accumulator: +0 or 1.frac · 2^(bexp − 127).
        self.a_bexp.next = self.acc.val().get_bits::<8>(23);
        self.a_zero.next = self.a_bexp.val() == self.k_zero8.val();
        self.a_sig.next = bit_cast::<24, 23>(self.acc.val().get_bits::<23>(0)) | self.k_hidden.val();
        self.a_e.next = bit_cast::<12, 8>(self.a_bexp.val()) + self.k_acc_e_off.val();
        self.a_neg.next = self.acc.val().get_bit(31);
        // The term: magnitude, leading one, normalised significand.
        self.t_neg.next = self.mant.val().get_bit(31);
        self.t_mag.next = self.mant.val();
        if self.mant.val().get_bit(31) {
            self.t_mag.next = (!self.mant.val()) + self.k_one32.val();
        }
        self.t_mag24.next = self.t_mag.val().get_bits::<24>(0);
        self.t_zero.next = self.t_mag24.val() == self.k_zero24.val();
        self.t_top.next = 0.into();
        for i in 0..24 {
            if self.t_mag24.val().get_bit(i) {
                self.t_top.next = i.to_bits();
            }
        }
        self.t_shift.next = bits::<5>(23) - self.t_top.val();
        self.t_sig.next = self.t_mag24.val() << self.t_shift.val();
        self.t_e.next = self.exp.val() + bit_cast::<12, 5>(self.t_top.val());
    }
}

/// Stage 2: the operand with the larger magnitude (larger exponent, or equal exponent and larger significand)
/// becomes `big` (a zero operand never does unless both are zero), and the other, `small`, is shifted right by
/// the exponent difference into the 28-bit window with a sticky bit below it.
#[derive(LogicBlock)]
pub struct AccumAlign {
    /// The accumulator's significand ([`AccumDecode::a_sig`]).
    pub a_sig: Signal<In, Bits<24>>,
    /// The accumulator's exponent plus 1024.
    pub a_e: Signal<In, Bits<12>>,
    /// The accumulator is zero.
    pub a_zero: Signal<In, Bit>,
    /// The accumulator is negative.
    pub a_neg: Signal<In, Bit>,
    /// The term's normalised significand.
    pub t_sig: Signal<In, Bits<24>>,
    /// The term's exponent plus 1024.
    pub t_e: Signal<In, Bits<12>>,
    /// The term is zero.
    pub t_zero: Signal<In, Bit>,
    /// The term is negative.
    pub t_neg: Signal<In, Bit>,
    /// The big operand's significand (placed at bit 26 by the next stage).
    pub big_sig: Signal<Out, Bits<24>>,
    /// The big operand's exponent plus 1024 (the exponent of bit 26).
    pub big_e: Signal<Out, Bits<12>>,
    /// The big operand is negative.
    pub big_neg: Signal<Out, Bit>,
    /// The small operand aligned below the big one: shifted right by `d` from bit 26, sticky bit at bit 0.
    pub small_w: Signal<Out, Bits<28>>,
    /// The small operand is negative.
    pub small_neg: Signal<Out, Bit>,
    k_zero24: Constant<Bits<24>>,
    k_zero26: Constant<Bits<26>>,
    k_ones26: Constant<Bits<26>>,
    k_d_max: Constant<Bits<12>>,
    a_key: Signal<Local, Bits<36>>,
    t_key: Signal<Local, Bits<36>>,
    acc_is_big: Signal<Local, Bit>,
    small_sig: Signal<Local, Bits<24>>,
    d_at: Signal<Local, Bits<12>>,
    d_ta: Signal<Local, Bits<12>>,
    d: Signal<Local, Bits<12>>,
    near: Signal<Local, Bit>,
    small_wide: Signal<Local, Bits<26>>,
    b_trunc: Signal<Local, Bits<26>>,
    sticky: Signal<Local, Bit>,
}

impl Default for AccumAlign {
    fn default() -> Self {
        Self {
            a_sig: Default::default(),
            a_e: Default::default(),
            a_zero: Default::default(),
            a_neg: Default::default(),
            t_sig: Default::default(),
            t_e: Default::default(),
            t_zero: Default::default(),
            t_neg: Default::default(),
            big_sig: Default::default(),
            big_e: Default::default(),
            big_neg: Default::default(),
            small_w: Default::default(),
            small_neg: Default::default(),
            k_zero24: Constant::new(0.into()),
            k_zero26: Constant::new(0.into()),
            k_ones26: Constant::new(0x3ff_ffff.into()),
            k_d_max: Constant::new(26.into()),
            a_key: Default::default(),
            t_key: Default::default(),
            acc_is_big: Default::default(),
            small_sig: Default::default(),
            d_at: Default::default(),
            d_ta: Default::default(),
            d: Default::default(),
            near: Default::default(),
            small_wide: Default::default(),
            b_trunc: Default::default(),
            sticky: Default::default(),
        }
    }
}

impl Logic for AccumAlign {
    #[hdl_gen]
    fn update(&mut self) {
        // Magnitudes compare as (exponent, significand) pairs.
        self.a_key.next = bit_cast::<36, 12>(self.a_e.val()) << 24_u64 | bit_cast::<36, 24>(self.a_sig.val());
        self.t_key.next = bit_cast::<36, 12>(self.t_e.val()) << 24_u64 | bit_cast::<36, 24>(self.t_sig.val());
        self.acc_is_big.next = !self.a_zero.val() & (self.t_zero.val() | (self.a_key.val() >= self.t_key.val()));
        // The exponent difference d = big − small, both ways at once beside the comparison (0 for a zero small
        // operand, which takes the big one's exponent), and whether any of the small operand survives the
        // shift (`near`: d < 26), tested on both before the comparison selects.
        self.d_at.next = self.a_e.val() - self.t_e.val();
        self.d_ta.next = self.t_e.val() - self.a_e.val();
        self.d.next = 0.into();
        self.near.next = true;
        if self.acc_is_big.val() {
            self.big_sig.next = self.a_sig.val();
            self.big_e.next = self.a_e.val();
            self.big_neg.next = self.a_neg.val();
            self.small_sig.next = self.t_sig.val();
            self.small_neg.next = self.t_neg.val();
            if self.t_zero.val() {
                self.small_sig.next = self.k_zero24.val();
            } else {
                self.d.next = self.d_at.val();
                self.near.next = self.d_at.val() < self.k_d_max.val();
            }
        } else {
            self.big_sig.next = self.t_sig.val();
            self.big_e.next = self.t_e.val();
            self.big_neg.next = self.t_neg.val();
            self.small_sig.next = self.a_sig.val();
            self.small_neg.next = self.a_neg.val();
            if self.a_zero.val() {
                self.small_sig.next = self.k_zero24.val();
            } else {
                self.d.next = self.d_ta.val();
                self.near.next = self.d_ta.val() < self.k_d_max.val();
            }
        }
        // Small shifted right by d from bit 25, then up one place with the sticky bit below: the OR of the d
        // bits shifted out (all of them once d ≥ 26).
        self.small_wide.next = bit_cast::<26, 24>(self.small_sig.val()) << 2_u64;
        self.b_trunc.next = self.k_zero26.val();
        self.sticky.next = self.small_sig.val() != self.k_zero24.val();
        if self.near.val() {
            self.b_trunc.next = self.small_wide.val() >> self.d.val();
            self.sticky.next = (self.small_wide.val() & !(self.k_ones26.val() << self.d.val())) != self.k_zero26.val();
        }
        self.small_w.next =
            bit_cast::<28, 26>(self.b_trunc.val()) << 1_u64 | bit_cast::<28, 1>(self.sticky.val().into());
    }
}

/// Stage 3: the aligned magnitudes added or subtracted (big − small, never negative) by one adder, and the
/// number of zeros above the result's leading one.
#[derive(LogicBlock, Default)]
pub struct AccumAdd {
    /// The big operand's significand.
    pub big_sig: Signal<In, Bits<24>>,
    /// The big operand is negative.
    pub big_neg: Signal<In, Bit>,
    /// The aligned small operand ([`AccumAlign::small_w`]).
    pub small_w: Signal<In, Bits<28>>,
    /// The small operand is negative.
    pub small_neg: Signal<In, Bit>,
    /// The sum's magnitude (bit 26 has the big operand's top bit's weight; bit 27 takes a carry).
    pub s: Signal<Out, Bits<28>>,
    /// The sum is negative.
    pub s_neg: Signal<Out, Bit>,
    /// Zeros above the sum's leading one in its 28 bits: `27 −` its position (0 when the sum is zero).
    pub lz: Signal<Out, Bits<5>>,
    a_w: Signal<Local, Bits<28>>,
    subtract: Signal<Local, Bit>,
    b_x: Signal<Local, Bits<28>>,
    wide: Signal<Local, Bits<29>>,
}

impl Logic for AccumAdd {
    #[hdl_gen]
    fn update(&mut self) {
        self.a_w.next = bit_cast::<28, 24>(self.big_sig.val()) << 3_u64;
        // big ± small in one 29-bit adder: (2·big + 1) + (2·(small or !small) + subtract), whose top 28 bits
        // are big + small, or big + !small + 1 = big − small.
        self.subtract.next = self.big_neg.val() != self.small_neg.val();
        self.b_x.next = self.small_w.val();
        if self.subtract.val() {
            self.b_x.next = !self.small_w.val();
        }
        self.wide.next = (bit_cast::<29, 28>(self.a_w.val()) << 1_u64 | bits::<29>(1))
            + (bit_cast::<29, 28>(self.b_x.val()) << 1_u64 | bit_cast::<29, 1>(self.subtract.val().into()));
        self.s.next = bit_cast::<28, 29>(self.wide.val() >> 1_u64);
        self.s_neg.next = self.big_neg.val();
        self.lz.next = 0.into();
        for i in 0..28 {
            if self.s.val().get_bit(i) {
                self.lz.next = (27 - i).to_bits();
            }
        }
    }
}

/// Stage 4: the sum normalised (leading one to bit 27), rounded nearest-even to 24 bits, and its exponent
/// tested: below `2^−126` (or a zero sum) gives `+0`, above `f32::MAX` gives `±f32::MAX` and `saturated`.
///
/// The exponent is computed both ways beside the normalisation, for a rounding that carries out of the
/// significand (a significand of all ones rounded up: `1.000…` at the next exponent) and for one that does
/// not, and the carry only selects; the fraction is the rounded significand's low 23 bits either way.
#[derive(LogicBlock)]
pub struct AccumRound {
    /// The sum's magnitude ([`AccumAdd::s`]).
    pub s: Signal<In, Bits<28>>,
    /// The sum is negative.
    pub s_neg: Signal<In, Bit>,
    /// Zeros above the sum's leading one ([`AccumAdd::lz`]).
    pub lz: Signal<In, Bits<5>>,
    /// The big operand's exponent plus 1024 ([`AccumAlign::big_e`]).
    pub big_e: Signal<In, Bits<12>>,
    /// The new accumulator value's `f32` bit pattern.
    pub sum: Signal<Out, Bits<32>>,
    /// The rounded sum exceeded `f32::MAX` and was saturated.
    pub saturated: Signal<Out, Bit>,
    k_zero32: Constant<Bits<32>>,
    k_zero28: Constant<Bits<28>>,
    k_ones24: Constant<Bits<24>>,
    k_one: Constant<Bits<12>>,
    k_two: Constant<Bits<12>>,
    k_e_min: Constant<Bits<12>>,
    k_e_max: Constant<Bits<12>>,
    k_out_off: Constant<Bits<8>>,
    k_max_mag: Constant<Bits<32>>,
    norm: Signal<Local, Bits<28>>,
    sig: Signal<Local, Bits<24>>,
    round_up: Signal<Local, Bit>,
    carry: Signal<Local, Bit>,
    frac: Signal<Local, Bits<23>>,
    e_no_carry: Signal<Local, Bits<12>>,
    e_carry: Signal<Local, Bits<12>>,
    flush_no_carry: Signal<Local, Bit>,
    flush_carry: Signal<Local, Bit>,
    sat_no_carry: Signal<Local, Bit>,
    sat_carry: Signal<Local, Bit>,
    flush: Signal<Local, Bit>,
    sat: Signal<Local, Bit>,
    out_bexp: Signal<Local, Bits<8>>,
}

impl Default for AccumRound {
    fn default() -> Self {
        Self {
            s: Default::default(),
            s_neg: Default::default(),
            lz: Default::default(),
            big_e: Default::default(),
            sum: Default::default(),
            saturated: Default::default(),
            k_zero32: Constant::new(0.into()),
            k_zero28: Constant::new(0.into()),
            k_ones24: Constant::new(0xff_ffff.into()),
            k_one: Constant::new(1.into()),
            k_two: Constant::new(2.into()),
            // Smallest normal: E = −126; largest finite: E = 127 (both + 1024).
            k_e_min: Constant::new((1024 - 126).into()),
            k_e_max: Constant::new((1024 + 127).into()),
            // biased_exp = E + 127 = (E + 1024) − 897 ≡ (E + 1024) + 127 (mod 256).
            k_out_off: Constant::new(127.into()),
            k_max_mag: Constant::new(0x7f7f_ffff.into()),
            norm: Default::default(),
            sig: Default::default(),
            round_up: Default::default(),
            carry: Default::default(),
            frac: Default::default(),
            e_no_carry: Default::default(),
            e_carry: Default::default(),
            flush_no_carry: Default::default(),
            flush_carry: Default::default(),
            sat_no_carry: Default::default(),
            sat_carry: Default::default(),
            flush: Default::default(),
            sat: Default::default(),
            out_bexp: Default::default(),
        }
    }
}

impl Logic for AccumRound {
    #[hdl_gen]
    fn update(&mut self) {
        // Normalise: leading one to bit 27; 24-bit significand, guard bit 3, sticky below.
        self.norm.next = self.s.val() << self.lz.val();
        self.sig.next = self.norm.val().get_bits::<24>(4);
        self.round_up.next = self.norm.val().get_bit(3)
            & (self.norm.val().get_bit(4) | (self.norm.val().get_bits::<3>(0) != bits::<3>(0)));
        self.carry.next = self.round_up.val() & (self.sig.val() == self.k_ones24.val());
        self.frac.next = self.sig.val().get_bits::<23>(0) + bit_cast::<23, 1>(self.round_up.val().into());
        // The leading one's exponent, big_e + (27 − lz) − 26, plus one when the rounding carries; each tested
        // for flush (below 2^−126) and saturation (above f32::MAX) before the carry is known.
        self.e_no_carry.next = self.big_e.val() + self.k_one.val() - bit_cast::<12, 5>(self.lz.val());
        self.e_carry.next = self.big_e.val() + self.k_two.val() - bit_cast::<12, 5>(self.lz.val());
        self.flush_no_carry.next = self.e_no_carry.val() < self.k_e_min.val();
        self.flush_carry.next = self.e_carry.val() < self.k_e_min.val();
        self.sat_no_carry.next = self.e_no_carry.val() > self.k_e_max.val();
        self.sat_carry.next = self.e_carry.val() > self.k_e_max.val();
        self.out_bexp.next = self.e_no_carry.val().get_bits::<8>(0) + self.k_out_off.val();
        self.flush.next = self.flush_no_carry.val();
        self.sat.next = self.sat_no_carry.val();
        if self.carry.val() {
            self.out_bexp.next = self.e_carry.val().get_bits::<8>(0) + self.k_out_off.val();
            self.flush.next = self.flush_carry.val();
            self.sat.next = self.sat_carry.val();
        }
        // A zero sum is +0 too.
        self.saturated.next = false;
        self.sum.next = bit_cast::<32, 1>(self.s_neg.val().into()) << 31_u64
            | bit_cast::<32, 8>(self.out_bexp.val()) << 23_u64
            | bit_cast::<32, 23>(self.frac.val());
        if (self.s.val() == self.k_zero28.val()) | self.flush.val() {
            self.sum.next = self.k_zero32.val();
        } else if self.sat.val() {
            self.saturated.next = true;
            self.sum.next = self.k_max_mag.val() | (bit_cast::<32, 1>(self.s_neg.val().into()) << 31_u64);
        }
    }
}

/// The combinational accumulator adder: `sum = accumulate(acc, mant · 2^(exp − 1024))`, the four stages
/// wired in one cycle.
#[derive(LogicBlock, Default)]
pub struct AccumulateCore {
    /// The accumulator's `f32` bit pattern (`+0` or a normal number).
    pub acc: Signal<In, Bits<32>>,
    /// The term's mantissa in two's complement (`|mant| < 2^24`).
    pub mant: Signal<In, Bits<32>>,
    /// The term's exponent plus 1024.
    pub exp: Signal<In, Bits<12>>,
    /// The new accumulator value's `f32` bit pattern.
    pub sum: Signal<Out, Bits<32>>,
    /// The rounded sum exceeded `f32::MAX` and was saturated.
    pub saturated: Signal<Out, Bit>,
    decode: AccumDecode,
    align: AccumAlign,
    add: AccumAdd,
    round: AccumRound,
}

impl Logic for AccumulateCore {
    #[hdl_gen]
    fn update(&mut self) {
        self.decode.acc.next = self.acc.val();
        self.decode.mant.next = self.mant.val();
        self.decode.exp.next = self.exp.val();
        self.align.a_sig.next = self.decode.a_sig.val();
        self.align.a_e.next = self.decode.a_e.val();
        self.align.a_zero.next = self.decode.a_zero.val();
        self.align.a_neg.next = self.decode.a_neg.val();
        self.align.t_sig.next = self.decode.t_sig.val();
        self.align.t_e.next = self.decode.t_e.val();
        self.align.t_zero.next = self.decode.t_zero.val();
        self.align.t_neg.next = self.decode.t_neg.val();
        self.add.big_sig.next = self.align.big_sig.val();
        self.add.big_neg.next = self.align.big_neg.val();
        self.add.small_w.next = self.align.small_w.val();
        self.add.small_neg.next = self.align.small_neg.val();
        self.round.s.next = self.add.s.val();
        self.round.s_neg.next = self.add.s_neg.val();
        self.round.lz.next = self.add.lz.val();
        self.round.big_e.next = self.align.big_e.val();
        self.sum.next = self.round.sum.val();
        self.saturated.next = self.round.saturated.val();
    }
}

/// The accumulator adder with its pipeline: inputs sampled in one cycle appear on the outputs `latency`
/// cycles later (`latency ≥ 1`, the configuration's `acc_latency`).
///
/// The four stages of [`AccumulateCore`] with `min(latency − 1, 3)` registers between them (module
/// documentation, *Pipeline*) and the remaining registers after the last stage. The registers run freely:
/// `valid` travels alongside and says which outputs mean something.
#[derive(LogicBlock)]
pub struct Accumulator {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// The accumulator's `f32` bit pattern.
    pub acc: Signal<In, Bits<32>>,
    /// The term's mantissa in two's complement.
    pub mant: Signal<In, Bits<32>>,
    /// The term's exponent plus 1024.
    pub exp: Signal<In, Bits<12>>,
    /// The inputs are meaningful this cycle.
    pub valid: Signal<In, Bit>,
    /// The sum, `latency` cycles after its inputs.
    pub sum: Signal<Out, Bits<32>>,
    /// The addition saturated (`latency` cycles after its inputs).
    pub saturated: Signal<Out, Bit>,
    /// `valid`, delayed like the sum.
    pub valid_out: Signal<Out, Bit>,
    decode: AccumDecode,
    align: AccumAlign,
    add: AccumAdd,
    round: AccumRound,
    // Which stage boundaries are registered.
    k_cut_decode: Constant<Bit>,
    k_cut_align: Constant<Bit>,
    k_cut_add: Constant<Bit>,
    // Registers after decoding.
    d_a_sig: DFF<Bits<24>>,
    d_a_e: DFF<Bits<12>>,
    d_a_zero: DFF<Bit>,
    d_a_neg: DFF<Bit>,
    d_t_sig: DFF<Bits<24>>,
    d_t_e: DFF<Bits<12>>,
    d_t_zero: DFF<Bit>,
    d_t_neg: DFF<Bit>,
    // Registers after alignment.
    a_big_sig: DFF<Bits<24>>,
    a_big_e: DFF<Bits<12>>,
    a_big_neg: DFF<Bit>,
    a_small_w: DFF<Bits<28>>,
    a_small_neg: DFF<Bit>,
    // Registers after the addition.
    s_s: DFF<Bits<28>>,
    s_s_neg: DFF<Bit>,
    s_lz: DFF<Bits<5>>,
    s_big_e: DFF<Bits<12>>,
    // The big operand's exponent as the rounding stage sees it (after the alignment cut, if any).
    big_e_add: Signal<Local, Bits<12>>,
    sum_pipe: Vec<DFF<Bits<32>>>,
    sat_pipe: Vec<DFF<Bit>>,
    valid_pipe: Vec<DFF<Bit>>,
    _latency: usize,
    _tail: usize,
}

impl Accumulator {
    /// An accumulator adder with `latency` pipeline registers (`≥ 1`).
    pub fn new(latency: usize) -> Self {
        assert!(latency >= 1, "the accumulator needs at least one register");
        let cuts = (latency - 1).min(3);
        Self {
            clock: Default::default(),
            acc: Default::default(),
            mant: Default::default(),
            exp: Default::default(),
            valid: Default::default(),
            sum: Default::default(),
            saturated: Default::default(),
            valid_out: Default::default(),
            decode: Default::default(),
            align: Default::default(),
            add: Default::default(),
            round: Default::default(),
            k_cut_decode: Constant::new(cuts >= 3),
            k_cut_align: Constant::new(cuts >= 1),
            k_cut_add: Constant::new(cuts >= 2),
            d_a_sig: Default::default(),
            d_a_e: Default::default(),
            d_a_zero: Default::default(),
            d_a_neg: Default::default(),
            d_t_sig: Default::default(),
            d_t_e: Default::default(),
            d_t_zero: Default::default(),
            d_t_neg: Default::default(),
            a_big_sig: Default::default(),
            a_big_e: Default::default(),
            a_big_neg: Default::default(),
            a_small_w: Default::default(),
            a_small_neg: Default::default(),
            s_s: Default::default(),
            s_s_neg: Default::default(),
            s_lz: Default::default(),
            s_big_e: Default::default(),
            big_e_add: Default::default(),
            sum_pipe: (0..latency - cuts).map(|_| Default::default()).collect(),
            sat_pipe: (0..latency - cuts).map(|_| Default::default()).collect(),
            valid_pipe: (0..latency).map(|_| Default::default()).collect(),
            _latency: latency,
            _tail: latency - cuts,
        }
    }

    /// Cycles from inputs to outputs.
    pub fn latency(&self) -> usize {
        self._latency
    }
}

impl Logic for Accumulator {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            d_a_sig,
            d_a_e,
            d_a_zero,
            d_a_neg,
            d_t_sig,
            d_t_e,
            d_t_zero,
            d_t_neg,
            a_big_sig,
            a_big_e,
            a_big_neg,
            a_small_w,
            a_small_neg,
            s_s,
            s_s_neg,
            s_lz,
            s_big_e
        );
        // Stage 1, then the registers after it (used when the decode cut is on).
        self.decode.acc.next = self.acc.val();
        self.decode.mant.next = self.mant.val();
        self.decode.exp.next = self.exp.val();
        self.d_a_sig.d.next = self.decode.a_sig.val();
        self.d_a_e.d.next = self.decode.a_e.val();
        self.d_a_zero.d.next = self.decode.a_zero.val();
        self.d_a_neg.d.next = self.decode.a_neg.val();
        self.d_t_sig.d.next = self.decode.t_sig.val();
        self.d_t_e.d.next = self.decode.t_e.val();
        self.d_t_zero.d.next = self.decode.t_zero.val();
        self.d_t_neg.d.next = self.decode.t_neg.val();
        // Stage 2.
        self.align.a_sig.next = self.decode.a_sig.val();
        self.align.a_e.next = self.decode.a_e.val();
        self.align.a_zero.next = self.decode.a_zero.val();
        self.align.a_neg.next = self.decode.a_neg.val();
        self.align.t_sig.next = self.decode.t_sig.val();
        self.align.t_e.next = self.decode.t_e.val();
        self.align.t_zero.next = self.decode.t_zero.val();
        self.align.t_neg.next = self.decode.t_neg.val();
        if self.k_cut_decode.val() {
            self.align.a_sig.next = self.d_a_sig.q.val();
            self.align.a_e.next = self.d_a_e.q.val();
            self.align.a_zero.next = self.d_a_zero.q.val();
            self.align.a_neg.next = self.d_a_neg.q.val();
            self.align.t_sig.next = self.d_t_sig.q.val();
            self.align.t_e.next = self.d_t_e.q.val();
            self.align.t_zero.next = self.d_t_zero.q.val();
            self.align.t_neg.next = self.d_t_neg.q.val();
        }
        self.a_big_sig.d.next = self.align.big_sig.val();
        self.a_big_e.d.next = self.align.big_e.val();
        self.a_big_neg.d.next = self.align.big_neg.val();
        self.a_small_w.d.next = self.align.small_w.val();
        self.a_small_neg.d.next = self.align.small_neg.val();
        // Stage 3.
        self.add.big_sig.next = self.align.big_sig.val();
        self.add.big_neg.next = self.align.big_neg.val();
        self.add.small_w.next = self.align.small_w.val();
        self.add.small_neg.next = self.align.small_neg.val();
        self.big_e_add.next = self.align.big_e.val();
        if self.k_cut_align.val() {
            self.add.big_sig.next = self.a_big_sig.q.val();
            self.add.big_neg.next = self.a_big_neg.q.val();
            self.add.small_w.next = self.a_small_w.q.val();
            self.add.small_neg.next = self.a_small_neg.q.val();
            self.big_e_add.next = self.a_big_e.q.val();
        }
        self.s_s.d.next = self.add.s.val();
        self.s_s_neg.d.next = self.add.s_neg.val();
        self.s_lz.d.next = self.add.lz.val();
        self.s_big_e.d.next = self.big_e_add.val();
        // Stage 4.
        self.round.s.next = self.add.s.val();
        self.round.s_neg.next = self.add.s_neg.val();
        self.round.lz.next = self.add.lz.val();
        self.round.big_e.next = self.big_e_add.val();
        if self.k_cut_add.val() {
            self.round.s.next = self.s_s.q.val();
            self.round.s_neg.next = self.s_s_neg.q.val();
            self.round.lz.next = self.s_lz.q.val();
            self.round.big_e.next = self.s_big_e.q.val();
        }
        // The result registers, and `valid` beside the whole pipeline.
        for i in 0..self._tail {
            self.sum_pipe[i].clock.next = self.clock.val();
            self.sat_pipe[i].clock.next = self.clock.val();
        }
        for i in 0..self._latency {
            self.valid_pipe[i].clock.next = self.clock.val();
        }
        self.sum_pipe[0].d.next = self.round.sum.val();
        self.sat_pipe[0].d.next = self.round.saturated.val();
        self.valid_pipe[0].d.next = self.valid.val();
        for i in 1..self._tail {
            self.sum_pipe[i].d.next = self.sum_pipe[i - 1].q.val();
            self.sat_pipe[i].d.next = self.sat_pipe[i - 1].q.val();
        }
        for i in 1..self._latency {
            self.valid_pipe[i].d.next = self.valid_pipe[i - 1].q.val();
        }
        // The last stage drives the outputs (each iteration overrides the previous one).
        self.sum.next = self.sum_pipe[0].q.val();
        self.saturated.next = self.sat_pipe[0].q.val();
        self.valid_out.next = self.valid_pipe[0].q.val();
        for i in 0..self._tail {
            self.sum.next = self.sum_pipe[i].q.val();
            self.saturated.next = self.sat_pipe[i].q.val();
        }
        for i in 0..self._latency {
            self.valid_out.next = self.valid_pipe[i].q.val();
        }
    }
}
