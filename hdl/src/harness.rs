//! Driving rust-hdl circuits cycle by cycle in tests.
//!
//! rust-hdl's `Simulation` runs every testbench in its own thread and hands the circuit back and forth
//! through channels at every event. For tests that stream thousands of cycles through an array that is
//! needlessly slow, so [`Harness`] drives the same simulation kernel directly: it connects and checks the
//! circuit like `Simulation::run` does, and settles it with the update-until-stable loop of rust-hdl's `simulate`
//! (the one `Simulation` uses) after every clock edge and input change.

use rust_hdl::core::check_error::CheckError;
use rust_hdl::prelude::*;

use crate::array::SystolicArray;

/// Update iterations allowed for the circuit to settle after one change (`Simulation` allows 100).
pub const SETTLE_ITERATIONS: usize = 1000;

/// A circuit under test, owned and driven cycle by cycle.
pub struct Harness<T: Block + ?Sized> {
    /// The circuit; set its inputs' `.next` and read its outputs' `.val()`.
    pub uut: Box<T>,
    clock: fn(&mut T) -> &mut Signal<In, Clock>,
    cycles: u64,
}

impl<T: Block + ?Sized> Harness<T> {
    /// Connects and checks the circuit (open inputs, logic loops, writes to inputs) as `Simulation::run`
    /// does, then settles it with the clock low. `clock` selects the circuit's clock input.
    pub fn new(mut uut: Box<T>, clock: fn(&mut T) -> &mut Signal<In, Clock>) -> Result<Self, CheckError>
    where
        T: Sized,
    {
        uut.connect_all();
        check_all(uut.as_ref())?;
        Ok(Self::checked(uut, clock))
    }

    fn checked(uut: Box<T>, clock: fn(&mut T) -> &mut Signal<In, Clock>) -> Self {
        let mut h = Harness { uut, clock, cycles: 0 };
        (h.clock)(&mut h.uut).next = Clock { clk: false };
        h.settle();
        h
    }

    /// Propagates input changes through the combinational logic.
    ///
    /// # Panics
    /// If the circuit does not settle (a combinational loop).
    pub fn settle(&mut self) {
        // The loop of rust-hdl's `simulate`, written out so that it also takes unsized (`dyn`) circuits.
        for _ in 0..SETTLE_ITERATIONS {
            self.uut.update_all();
            if !self.uut.has_changed() {
                return;
            }
        }
        panic!("the circuit did not settle in {SETTLE_ITERATIONS} iterations");
    }

    /// One clock cycle: settles the inputs set since the last call, raises the clock (registers sample),
    /// settles, lowers the clock and settles again. Afterwards the outputs show the new register state.
    pub fn cycle(&mut self) {
        self.settle();
        (self.clock)(&mut self.uut).next = Clock { clk: true };
        self.settle();
        (self.clock)(&mut self.uut).next = Clock { clk: false };
        self.settle();
        self.cycles += 1;
    }

    /// Clock cycles run so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }
}

impl Harness<dyn SystolicArray> {
    /// A harness for an array built by [`crate::export::build_array`], connected and checked.
    pub fn array(mut uut: Box<dyn SystolicArray>) -> Result<Self, CheckError> {
        uut.connect_all();
        check_all(&*uut)?;
        Ok(Self::checked(uut, |a| a.clock_mut()))
    }
}
