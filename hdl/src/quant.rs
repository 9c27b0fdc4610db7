//! The BFP quantizer: `arch::bfp::quantize_block_into` in RTL, bit for bit.
//!
//! POST ends by turning each run of `bs` `f32` values into one BFP block (a shared exponent code and `bs`
//! mantissas) for the output buffer. This module is that step, for values that are `+0` or normal `f32`s —
//! the only values the accumulator rule ([`arch::accum::accumulate`]) and POST's activations produce.
//!
//! # The rule (from `arch::bfp`)
//! With `m` mantissa bits (sign included), `k` exponent bits and `bias = 2^(k−1) − 1`: the shared exponent is
//! `E = floor(log2(max_i |x_i|))` clamped to `[−bias, bias]` (an all-zero block gets `E = −bias`, code 0);
//! each mantissa is `round(x_i · 2^((m−2)−E))` (nearest-even, or half away from zero) clamped to
//! `±(2^(m−1) − 1)`; the code is `E + bias`.
//!
//! # How the hardware computes it
//! Everything stays in the `f32` exponent domain, so no floating-point arithmetic is needed:
//!
//! * `floor(log2 |x|)` of a normal `f32` is its biased exponent field `b` minus 127, so the block's shared
//!   exponent (biased by 127, `ec`) is the largest `b` of the block, clamped to `[127 − bias, 127 + bias]`
//!   ([`QuantizeCore`]). Zero elements have `b = 0`, which never raises the maximum; an all-zero block
//!   clamps to `127 − bias`, code 0, as the rule says.
//! * Element `x = ±sig · 2^(b − 150)` (`sig` the 24-bit significand with its hidden one) scales to
//!   `sig · 2^−sh` with `sh = (25 − m) + (ec − b)` ([`QuantLane`]). When `b > ec` (only when a block's
//!   exponent was clamped at `E_max`, `k < 8`) the value is at least `2^(m−1)` and saturates; when
//!   `ec − b ≥ m` (`sh ≥ 25`) it is below one half and rounds to zero. Otherwise `sh = 17 + s2` with
//!   `0 ≤ s2 ≤ 7`, and `(sig << 16) >> s2` holds the exact quotient from bit 33 up and the exact remainder
//!   below it, from which the rounding (compare with one half, ties by the quotient's parity or away from
//!   zero) follows exactly.
//!   The magnitude is clamped to `2^(m−1) − 1` and the sign applied in two's complement.
//!
//! Subnormal inputs are not handled (they are treated as zero): the engine's `f32` values never are
//! subnormal. `−0` is treated as zero, like the rule does.
//!
//! # Blocks arriving in chunks
//! POST produces `C` values per cycle (one per array column), so a block arrives over `bs / C` cycles.
//! [`BlockQuantizer`] collects the chunks in a register and presents the quantized block, combinationally
//! from that register, in the cycle after the block's last chunk.
//!
//! # rust-hdl note
//! Index expressions in `#[hdl_gen]` kernels must be evaluable from loop variables and literals when Verilog
//! is written. The chunk placement `block[k·C + l]` needs `C`, a field: the kernel binds it to a loop
//! variable by a loop of one iteration (`for cc in C..C + 1`), which rust-hdl evaluates like any other loop.

use arch::bfp::BfpFormat;
use rust_hdl::prelude::*;

/// The `f32` exponent bias: `floor(log2 |x|) = b − 127` for a normal `f32` with exponent field `b`.
const F32_BIAS: i32 = 127;

/// The clamp range of the shared exponent in the `f32`-biased domain, `[127 − bias, 127 + bias]`.
fn shared_exponent_range(format: &BfpFormat) -> (u64, u64) {
    let bias = format.exponent_bias();
    ((F32_BIAS - bias) as u64, (F32_BIAS + bias) as u64)
}

/// One element of the quantizer: the mantissa of `value` in a block whose shared exponent, biased like an
/// `f32` exponent field, is `ec` (combinational).
#[derive(LogicBlock)]
pub struct QuantLane<const M: usize> {
    /// The element's `f32` bit pattern (`±0` or normal).
    pub value: Signal<In, Bits<32>>,
    /// The block's shared exponent plus 127 (`E + 127`).
    pub ec: Signal<In, Bits<8>>,
    /// Round half away from zero instead of half to even.
    pub round_away: Signal<In, Bit>,
    /// The quantized mantissa.
    pub mant: Signal<Out, Signed<M>>,
    k_hidden: Constant<Bits<24>>,
    k_s0: Constant<Bits<8>>,
    k_m: Constant<Bits<8>>,
    k_half: Constant<Bits<33>>,
    k_max: Constant<Bits<9>>,
    k_zero8: Constant<Bits<8>>,
    k_one_m: Constant<Bits<M>>,
    b: Signal<Local, Bits<8>>,
    sig: Signal<Local, Bits<24>>,
    d: Signal<Local, Bits<8>>,
    s2: Signal<Local, Bits<8>>,
    t: Signal<Local, Bits<40>>,
    q: Signal<Local, Bits<9>>,
    rem: Signal<Local, Bits<33>>,
    up: Signal<Local, Bit>,
    mag: Signal<Local, Bits<9>>,
    mag_m: Signal<Local, Bits<M>>,
    code: Signal<Local, Bits<M>>,
}

impl<const M: usize> QuantLane<M> {
    /// A lane for `M`-bit mantissas (`2 ≤ M ≤ 8`).
    pub fn new() -> Self {
        assert!((2..=8).contains(&M), "mantissa width {M} outside 2..=8");
        Self {
            value: Default::default(),
            ec: Default::default(),
            round_away: Default::default(),
            mant: Default::default(),
            k_hidden: Constant::new(0x80_0000.into()),
            k_s0: Constant::new(((8 - M) as u64).into()),
            k_m: Constant::new((M as u64).into()),
            k_half: Constant::new((1u64 << 32).into()),
            k_max: Constant::new((((1u64) << (M - 1)) - 1).into()),
            k_zero8: Constant::new(0.into()),
            k_one_m: Constant::new(1.into()),
            b: Default::default(),
            sig: Default::default(),
            d: Default::default(),
            s2: Default::default(),
            t: Default::default(),
            q: Default::default(),
            rem: Default::default(),
            up: Default::default(),
            mag: Default::default(),
            mag_m: Default::default(),
            code: Default::default(),
        }
    }
}

impl<const M: usize> Default for QuantLane<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const M: usize> Logic for QuantLane<M> {
    #[hdl_gen]
    fn update(&mut self) {
        self.b.next = self.value.val().get_bits::<8>(23);
        self.sig.next = bit_cast::<24, 23>(self.value.val().get_bits::<23>(0)) | self.k_hidden.val();
        // The scale is sig · 2^−sh with sh = (25 − m) + (ec − b) = 17 + s2: (sig << 16) >> s2 holds the
        // exact quotient from bit 33 up and the exact remainder below it (s2 ≤ 7 whenever it is used).
        self.d.next = self.ec.val() - self.b.val();
        self.s2.next = self.k_s0.val() + self.d.val();
        if (self.b.val() > self.ec.val()) | (self.d.val() >= self.k_m.val()) {
            // Saturated or zero below: keep the shifter in range (its result is not used).
            self.s2.next = self.k_s0.val();
        }
        self.t.next = (bit_cast::<40, 24>(self.sig.val()) << 16_u64) >> self.s2.val();
        self.q.next = bit_cast::<9, 7>(self.t.val().get_bits::<7>(33));
        self.rem.next = self.t.val().get_bits::<33>(0);
        self.up.next = (self.rem.val() > self.k_half.val())
            | ((self.rem.val() == self.k_half.val()) & (self.round_away.val() | self.q.val().get_bit(0)));
        self.mag.next = self.q.val() + bit_cast::<9, 1>(self.up.val().into());
        if (self.b.val() > self.ec.val()) | (self.mag.val() > self.k_max.val()) {
            // Above the block's (clamped) exponent, or rounded up to 2^(m−1): saturate.
            self.mag.next = self.k_max.val();
        }
        if (self.b.val() == self.k_zero8.val()) | ((self.b.val() <= self.ec.val()) & (self.d.val() >= self.k_m.val())) {
            // A zero element, or one below half of the smallest step: rounds to zero.
            self.mag.next = 0.into();
        }
        self.mag_m.next = bit_cast::<M, 9>(self.mag.val());
        self.code.next = self.mag_m.val();
        if self.value.val().get_bit(31) {
            self.code.next = (!self.mag_m.val()) + self.k_one_m.val();
        }
        self.mant.next = signed_cast(self.code.val());
    }
}

/// The combinational quantizer of one whole block: shared exponent code and `bs` mantissas.
#[derive(LogicBlock)]
pub struct QuantizeCore<const M: usize> {
    /// The block's `bs` values as `f32` bit patterns (`±0` or normal).
    pub values: Vec<Signal<In, Bits<32>>>,
    /// Round half away from zero instead of half to even.
    pub round_away: Signal<In, Bit>,
    /// The shared exponent code `E + bias`.
    pub exp_code: Signal<Out, Bits<8>>,
    /// The `bs` mantissas.
    pub mant: Vec<Signal<Out, Signed<M>>>,
    lanes: Vec<QuantLane<M>>,
    bexp: Vec<Signal<Local, Bits<8>>>,
    run_max: Vec<Signal<Local, Bits<8>>>,
    ec: Signal<Local, Bits<8>>,
    k_ec_min: Constant<Bits<8>>,
    k_ec_max: Constant<Bits<8>>,
    _bs: usize,
}

impl<const M: usize> QuantizeCore<M> {
    /// The quantizer for `format` (whose mantissa width must be `M`).
    pub fn new(format: &BfpFormat) -> Self {
        assert_eq!(format.mantissa_bits() as usize, M, "QuantizeCore<{M}> for {format}");
        let bs = format.block_size();
        let (lo, hi) = shared_exponent_range(format);
        Self {
            values: (0..bs).map(|_| Default::default()).collect(),
            round_away: Default::default(),
            exp_code: Default::default(),
            mant: (0..bs).map(|_| Default::default()).collect(),
            lanes: (0..bs).map(|_| QuantLane::new()).collect(),
            bexp: (0..bs).map(|_| Default::default()).collect(),
            run_max: (0..bs).map(|_| Default::default()).collect(),
            ec: Default::default(),
            k_ec_min: Constant::new(lo.into()),
            k_ec_max: Constant::new(hi.into()),
            _bs: bs,
        }
    }

    /// Values per block.
    pub fn block_size(&self) -> usize {
        self._bs
    }
}

impl<const M: usize> Logic for QuantizeCore<M> {
    #[hdl_gen]
    fn update(&mut self) {
        // The largest exponent field of the block, at least E_min (a chain of comparisons).
        for i in 0..self._bs {
            self.bexp[i].next = self.values[i].val().get_bits::<8>(23);
        }
        // (Starting the chain at E_min clamps from below without a comparison that is constant for k = 8.)
        self.run_max[0].next = self.k_ec_min.val();
        if self.bexp[0].val() > self.k_ec_min.val() {
            self.run_max[0].next = self.bexp[0].val();
        }
        for i in 1..self._bs {
            self.run_max[i].next = self.run_max[i - 1].val();
            if self.bexp[i].val() > self.run_max[i - 1].val() {
                self.run_max[i].next = self.bexp[i].val();
            }
        }
        // Clamp to E_max (biased by 127); the last element of the chain holds the maximum.
        self.ec.next = self.run_max[0].val();
        for i in 0..self._bs {
            self.ec.next = self.run_max[i].val();
        }
        if self.ec.val() > self.k_ec_max.val() {
            self.ec.next = self.k_ec_max.val();
        }
        self.exp_code.next = self.ec.val() - self.k_ec_min.val();
        for i in 0..self._bs {
            self.lanes[i].value.next = self.values[i].val();
            self.lanes[i].ec.next = self.ec.val();
            self.lanes[i].round_away.next = self.round_away.val();
            self.mant[i].next = self.lanes[i].mant.val();
        }
    }
}

/// The quantizer fed `C` values per cycle: collects a block's `bs / C` chunks, then quantizes it.
///
/// In a cycle with `in_valid`, `in_values[l]` is element `in_chunk·C + l` of the current block; the chunk
/// `bs/C − 1` completes it. In the next cycle `out_valid` is high and `exp_code`/`mant` hold the quantized
/// block, computed combinationally from the collected block (a chunk of the next block arriving in that cycle
/// replaces its part of the register only at the cycle's end, so blocks can follow back to back).
/// `round_away` is sampled with the last chunk.
#[derive(LogicBlock)]
pub struct BlockQuantizer<const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: drops a pending `out_valid`.
    pub reset: Signal<In, Bit>,
    /// `in_values` carry a chunk this cycle.
    pub in_valid: Signal<In, Bit>,
    /// Which chunk of the block (`0 .. bs/C`).
    pub in_chunk: Signal<In, Bits<8>>,
    /// The chunk's `C` values (`f32` bit patterns, `±0` or normal).
    pub in_values: Vec<Signal<In, Bits<32>>>,
    /// Rounding of the block whose last chunk arrives this cycle: half away from zero.
    pub round_away: Signal<In, Bit>,
    /// A quantized block is on `exp_code` and `mant` this cycle.
    pub out_valid: Signal<Out, Bit>,
    /// The block's shared exponent code.
    pub exp_code: Signal<Out, Bits<8>>,
    /// The block's mantissas.
    pub mant: Vec<Signal<Out, Signed<M>>>,
    core: QuantizeCore<M>,
    block: Vec<DFF<Bits<32>>>,
    done_q: DFF<Bit>,
    away_q: DFF<Bit>,
    k_last: Constant<Bits<8>>,
    _bs: usize,
    _lanes: usize,
    _lanes_end: usize,
    _chunks: usize,
}

impl<const M: usize> BlockQuantizer<M> {
    /// A quantizer for `format` taking `lanes` values per cycle (`lanes` divides the block size).
    pub fn new(format: &BfpFormat, lanes: usize) -> Self {
        let bs = format.block_size();
        assert!(lanes >= 1 && bs.is_multiple_of(lanes), "{lanes} lanes do not divide blocks of {bs}");
        Self {
            clock: Default::default(),
            reset: Default::default(),
            in_valid: Default::default(),
            in_chunk: Default::default(),
            in_values: (0..lanes).map(|_| Default::default()).collect(),
            round_away: Default::default(),
            out_valid: Default::default(),
            exp_code: Default::default(),
            mant: (0..bs).map(|_| Default::default()).collect(),
            core: QuantizeCore::new(format),
            block: (0..bs).map(|_| Default::default()).collect(),
            done_q: Default::default(),
            away_q: Default::default(),
            k_last: Constant::new(((bs / lanes - 1) as u64).into()),
            _bs: bs,
            _lanes: lanes,
            _lanes_end: lanes + 1,
            _chunks: bs / lanes,
        }
    }

    /// Values per cycle (`C`).
    pub fn lanes(&self) -> usize {
        self._lanes
    }
}

impl<const M: usize> Logic for BlockQuantizer<M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, done_q, away_q);
        for i in 0..self._bs {
            self.block[i].clock.next = self.clock.val();
            self.block[i].d.next = self.block[i].q.val();
        }
        // Element k·C + l of the block is lane l of chunk k (`cc` is C, bound by a one-iteration loop).
        for cc in self._lanes..self._lanes_end {
            for k in 0..self._chunks {
                for l in 0..self._lanes {
                    if self.in_valid.val() & (self.in_chunk.val() == k.to_bits()) {
                        self.block[k * cc + l].d.next = self.in_values[l].val();
                    }
                }
            }
        }
        self.done_q.d.next = self.in_valid.val() & (self.in_chunk.val() == self.k_last.val()) & !self.reset.val();
        if self.in_valid.val() & (self.in_chunk.val() == self.k_last.val()) {
            self.away_q.d.next = self.round_away.val();
        }
        for i in 0..self._bs {
            self.core.values[i].next = self.block[i].q.val();
            self.mant[i].next = self.core.mant[i].val();
        }
        self.core.round_away.next = self.away_q.q.val();
        self.exp_code.next = self.core.exp_code.val();
        self.out_valid.next = self.done_q.q.val();
    }
}
