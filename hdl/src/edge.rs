//! The cell at the bottom of each column segment: block-product exponent, accumulator adder.

use rust_hdl::prelude::*;

use crate::accum::{Accumulator, EXP_BIAS};

/// One edge cell, below the last PE of a column segment (`S = min(R, bs)` rows).
///
/// In the cycle the segment's partial sum `dot` leaves its bottom PE, the activation block's exponent code
/// (`aexp_in`) and the row's flags (`vl_in`: valid, last) arrive from the left, aligned with it. The cell:
///
/// * forms the block-product exponent `e_a + e_w − 2·bias − 2·fraction_bits` (as `code_a + code_w +
///   (1024 − 2·bias − 2·fraction_bits)`, biased by 1024 for the adder): the exponent adder sits here, at the
///   array's edge, never inside the PEs;
/// * if the row is valid and `last`, adds the term `dot · 2^exponent` to the accumulator value `acc_in` with
///   its [`Accumulator`] (`latency` cycles; outputs `acc_out`, `acc_sat`, `acc_valid`);
/// * if valid and not `last` (a block longer than the array, `bs > R`), presents `dot` as a partial sum to be
///   carried into the next pass (`psum_out`, `psum_valid`).
///
/// The weight block's exponent code is double-buffered like the PEs' weights: a load register (written from
/// the segment's exponent bus `wexp_in` when the column's `wexp_load` is set), `capture` into a shadow, and a switch
/// when the pass's first activation reaches the segment's bottom PE (`pe_first`); two registers then delay it
/// to the moment that activation's partial sum reaches this cell.
#[derive(LogicBlock)]
pub struct EdgeCell {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// The segment's exact integer dot product (from its bottom PE).
    pub dot: Signal<In, Signed<32>>,
    /// The `first_in` flag at the segment's bottom PE (two cycles before its partial sum arrives here).
    pub pe_first: Signal<In, Bit>,
    /// The column's capture pulse (same as its PEs').
    pub capture: Signal<In, Bit>,
    /// The segment's weight-exponent load bus.
    pub wexp_in: Signal<In, Bits<8>>,
    /// Write `wexp_in` into the load register this cycle (the column's load enable).
    pub wexp_load: Signal<In, Bit>,
    /// The activation block's exponent code, from the left neighbour.
    pub aexp_in: Signal<In, Bits<8>>,
    /// `aexp_in`, one cycle later, for the right neighbour.
    pub aexp_out: Signal<Out, Bits<8>>,
    /// The row's flags from the left neighbour: bit 0 valid, bit 1 last (the pass completes the block).
    pub vl_in: Signal<In, Bits<2>>,
    /// `vl_in`, one cycle later, for the right neighbour.
    pub vl_out: Signal<Out, Bits<2>>,
    /// The accumulator value this term is added to.
    pub acc_in: Signal<In, Bits<32>>,
    /// The new accumulator value (`latency` cycles later).
    pub acc_out: Signal<Out, Bits<32>>,
    /// The addition saturated.
    pub acc_sat: Signal<Out, Bit>,
    /// `acc_out` and `acc_sat` are valid.
    pub acc_valid: Signal<Out, Bit>,
    /// A partial sum to carry to the next pass.
    pub psum_out: Signal<Out, Signed<32>>,
    /// `psum_out` is valid.
    pub psum_valid: Signal<Out, Bit>,
    /// The block term's mantissa (the dot product, two's complement); internal, public for observation in
    /// simulation.
    pub term_mant: Signal<Local, Bits<32>>,
    /// The block term's exponent plus 1024 (internal, observable).
    pub term_exp: Signal<Local, Bits<12>>,
    /// The term goes to the accumulator this cycle (internal, observable).
    pub term_valid: Signal<Local, Bit>,
    k_exp_off: Constant<Bits<12>>,
    transit: DFF<Bits<8>>,
    shadow: DFF<Bits<8>>,
    active: DFF<Bits<8>>,
    wexp_d1: DFF<Bits<8>>,
    wexp_d2: DFF<Bits<8>>,
    aexp_q: DFF<Bits<8>>,
    vl_q: DFF<Bits<2>>,
    adder: Accumulator,
    shadow_eff: Signal<Local, Bits<8>>,
    w_eff: Signal<Local, Bits<8>>,
}

impl EdgeCell {
    /// An edge cell for a format with the given exponent bias and fraction bits, whose adder has `latency`
    /// pipeline registers.
    pub fn new(exponent_bias: i32, fraction_bits: i32, latency: usize) -> Self {
        let offset = EXP_BIAS - 2 * exponent_bias - 2 * fraction_bits;
        assert!((0..4096).contains(&offset));
        Self {
            clock: Default::default(),
            dot: Default::default(),
            pe_first: Default::default(),
            capture: Default::default(),
            wexp_in: Default::default(),
            wexp_load: Default::default(),
            aexp_in: Default::default(),
            aexp_out: Default::default(),
            vl_in: Default::default(),
            vl_out: Default::default(),
            acc_in: Default::default(),
            acc_out: Default::default(),
            acc_sat: Default::default(),
            acc_valid: Default::default(),
            psum_out: Default::default(),
            psum_valid: Default::default(),
            term_mant: Default::default(),
            term_exp: Default::default(),
            term_valid: Default::default(),
            k_exp_off: Constant::new((offset as u64).into()),
            transit: Default::default(),
            shadow: Default::default(),
            active: Default::default(),
            wexp_d1: Default::default(),
            wexp_d2: Default::default(),
            aexp_q: Default::default(),
            vl_q: Default::default(),
            adder: Accumulator::new(latency),
            shadow_eff: Default::default(),
            w_eff: Default::default(),
        }
    }
}

impl Logic for EdgeCell {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, transit, shadow, active, wexp_d1, wexp_d2, aexp_q, vl_q);
        self.adder.clock.next = self.clock.val();
        // Control travels right one cell per cycle, like the activations above.
        self.aexp_q.d.next = self.aexp_in.val();
        self.aexp_out.next = self.aexp_q.q.val();
        self.vl_q.d.next = self.vl_in.val();
        self.vl_out.next = self.vl_q.q.val();
        // Weight exponent: load, capture, switch with the pass's first activation, delay to the sum.
        self.transit.d.next = self.transit.q.val();
        if self.wexp_load.val() {
            self.transit.d.next = self.wexp_in.val();
        }
        self.shadow_eff.next = self.shadow.q.val();
        if self.capture.val() {
            self.shadow_eff.next = self.transit.q.val();
        }
        self.shadow.d.next = self.shadow_eff.val();
        self.w_eff.next = self.active.q.val();
        if self.pe_first.val() {
            self.w_eff.next = self.shadow_eff.val();
        }
        self.active.d.next = self.w_eff.val();
        self.wexp_d1.d.next = self.w_eff.val();
        self.wexp_d2.d.next = self.wexp_d1.q.val();
        // The block term: exact dot product and e_a + e_w − 2·bias − 2·fraction_bits (+ 1024).
        self.term_mant.next = unsigned_cast(self.dot.val());
        self.term_exp.next =
            bit_cast::<12, 8>(self.aexp_in.val()) + bit_cast::<12, 8>(self.wexp_d2.q.val()) + self.k_exp_off.val();
        self.term_valid.next = self.vl_in.val().get_bit(0) & self.vl_in.val().get_bit(1);
        self.adder.acc.next = self.acc_in.val();
        self.adder.mant.next = self.term_mant.val();
        self.adder.exp.next = self.term_exp.val();
        self.adder.valid.next = self.term_valid.val();
        self.acc_out.next = self.adder.sum.val();
        self.acc_sat.next = self.adder.saturated.val() & self.adder.valid_out.val();
        self.acc_valid.next = self.adder.valid_out.val();
        // Partial sums of blocks longer than the array leave here to be carried into the next pass.
        self.psum_out.next = self.dot.val();
        self.psum_valid.next = self.vl_in.val().get_bit(0) & !self.vl_in.val().get_bit(1);
    }
}
