//! A delay line of registers whose length is chosen when the circuit is built.

use rust_hdl::prelude::*;

/// `dout` is `din` delayed by `len` clock cycles (`len = 0`: a wire).
///
/// The array's edges use these for the input skew (row `r` of activations is delayed `r` cycles, column `c`
/// of weights `c` cycles), for the control that travels beside the partial sums, and between the
/// accumulator adders of consecutive blocks. The length is a run-time value so one Rust type serves every
/// array size; rust-hdl stamps out one Verilog module per instance anyway.
#[derive(LogicBlock)]
pub struct DelayLine<T: Synth> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// The value entering the line.
    pub din: Signal<In, T>,
    /// The value that entered `len` cycles ago.
    pub dout: Signal<Out, T>,
    regs: Vec<DFF<T>>,
    _len: usize,
}

impl<T: Synth> DelayLine<T> {
    /// A delay line of `len` registers.
    pub fn new(len: usize) -> Self {
        Self {
            clock: Default::default(),
            din: Default::default(),
            dout: Default::default(),
            regs: (0..len).map(|_| Default::default()).collect(),
            _len: len,
        }
    }

    /// Cycles of delay.
    pub fn len(&self) -> usize {
        self._len
    }

    /// True for a zero-length line (a wire).
    pub fn is_empty(&self) -> bool {
        self._len == 0
    }
}

impl<T: Synth> Logic for DelayLine<T> {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self._len {
            self.regs[i].clock.next = self.clock.val();
        }
        // Each stage takes the previous one; the first takes the input. The output is the input for an empty
        // line, else the last stage (each loop iteration overrides the previous assignment).
        self.dout.next = self.din.val();
        for i in 0..self._len {
            self.dout.next = self.regs[i].q.val();
        }
        for i in 1..self._len {
            self.regs[i].d.next = self.regs[i - 1].q.val();
        }
        for i in 0..self._len {
            if i == 0 {
                self.regs[0].d.next = self.din.val();
            }
        }
    }
}
