//! The processing element (PE) of the weight-stationary systolic array.

use rust_hdl::prelude::*;

use crate::signed::signed_bit_cast_ext;

/// One PE: holds one weight mantissa, multiplies it with the activation mantissa passing through and adds the
/// product to the partial sum coming down its column. `M` is the mantissa width (sign included, 2..=8).
///
/// Registers and timing (a value *arrives* in the cycle it is on an input):
/// * The activation `a_in` and its flags (`valid_in`, `first_in`, `carry_in`) are registered and passed to
///   the right neighbour one cycle later (`a_out`, …).
/// * The product of the activation and the effective weight is registered (`prod`): multiply, register,
///   accumulate, which keeps the multiplier out of the adder's path (better Fmax).
/// * The partial sum `psum_out = psum_in + prod` is registered and goes to the PE below. A product that
///   arrived at cycle `t` is in `psum_out` from `t + 2`; the PE below receives its activation at `t + 1`
///   and its product is ready at `t + 2`, so the partial sums meet their products without extra skew.
/// * Mantissas are sign-extended to 16 bits and multiplied into an exact 32-bit product (rust-hdl's only
///   multiplier is 16×16→32); partial sums are exact 32-bit integers.
///
/// Weights are double-buffered, so the next tile's weights load while the current tile computes:
/// * `w_in` is the weight-load bus of this PE's row (shared by the row's PEs); `w_load` (one enable per
///   column) writes it into the load register (`transit`) — the sequencer loads one column per cycle;
/// * `capture` (a pulse for the whole column) copies the load register into `shadow`;
/// * an activation arriving with `first_in` set switches this PE to the captured weight (`active`) and is
///   the first one multiplied by it. The switch travels with the activations, so every PE changes tiles
///   exactly between the last row of the previous pass and the first row of the next one.
#[derive(LogicBlock, Default)]
pub struct ProcessingElement<const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Activation mantissa arriving from the left.
    pub a_in: Signal<In, Signed<M>>,
    /// The activation is part of a row being streamed.
    pub valid_in: Signal<In, Bit>,
    /// The activation is the first row of a pass: switch to the captured weight before multiplying.
    pub first_in: Signal<In, Bit>,
    /// Carry flag of the row (used by the top row only: add the column's carried partial sum).
    pub carry_in: Signal<In, Bit>,
    /// The activation, one cycle later, for the PE on the right.
    pub a_out: Signal<Out, Signed<M>>,
    /// `valid_in`, one cycle later.
    pub valid_out: Signal<Out, Bit>,
    /// `first_in`, one cycle later.
    pub first_out: Signal<Out, Bit>,
    /// `carry_in`, one cycle later.
    pub carry_out: Signal<Out, Bit>,
    /// The weight-load bus of this PE's row.
    pub w_in: Signal<In, Signed<M>>,
    /// Write `w_in` into the load register this cycle (the column's load enable).
    pub w_load: Signal<In, Bit>,
    /// Copy the load register into the shadow weight this cycle.
    pub capture: Signal<In, Bit>,
    /// Partial sum from the PE above (or the segment's start value).
    pub psum_in: Signal<In, Signed<32>>,
    /// `psum_in + product`, registered.
    pub psum_out: Signal<Out, Signed<32>>,
    a_q: DFF<Signed<M>>,
    valid_q: DFF<Bit>,
    first_q: DFF<Bit>,
    carry_q: DFF<Bit>,
    transit: DFF<Signed<M>>,
    shadow: DFF<Signed<M>>,
    active: DFF<Signed<M>>,
    prod: DFF<Signed<32>>,
    psum: DFF<Signed<32>>,
    shadow_eff: Signal<Local, Signed<M>>,
    w_eff: Signal<Local, Signed<M>>,
    a16: Signal<Local, Signed<16>>,
    w16: Signal<Local, Signed<16>>,
}

impl<const M: usize> Logic for ProcessingElement<M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, a_q, valid_q, first_q, carry_q, transit, shadow, active, prod, psum);
        // Horizontal: activations and their flags move one column per cycle.
        self.a_q.d.next = self.a_in.val();
        self.valid_q.d.next = self.valid_in.val();
        self.first_q.d.next = self.first_in.val();
        self.carry_q.d.next = self.carry_in.val();
        self.a_out.next = self.a_q.q.val();
        self.valid_out.next = self.valid_q.q.val();
        self.first_out.next = self.first_q.q.val();
        self.carry_out.next = self.carry_q.q.val();
        // The load register takes the bus when the column is loaded.
        self.transit.d.next = self.transit.q.val();
        if self.w_load.val() {
            self.transit.d.next = self.w_in.val();
        }
        // Double-buffered weight: capture, then switch with the first activation of the pass.
        self.shadow_eff.next = self.shadow.q.val();
        if self.capture.val() {
            self.shadow_eff.next = self.transit.q.val();
        }
        self.shadow.d.next = self.shadow_eff.val();
        self.w_eff.next = self.active.q.val();
        if self.first_in.val() {
            self.w_eff.next = self.shadow_eff.val();
        }
        self.active.d.next = self.w_eff.val();
        // Multiply (exact, 16×16→32), register, accumulate.
        self.a16.next = signed_bit_cast_ext::<16, M>(self.a_in.val());
        self.w16.next = signed_bit_cast_ext::<16, M>(self.w_eff.val());
        self.prod.d.next = self.a16.val() * self.w16.val();
        self.psum.d.next = self.psum_in.val() + self.prod.q.val();
        self.psum_out.next = self.psum.q.val();
    }
}
