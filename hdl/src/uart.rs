//! A UART for the board's host link: 8 data bits, no parity, one stop bit (8N1), least significant bit first,
//! line idle high, at a fixed number of clock cycles per bit chosen when the circuit is built (a
//! [`Constant`]: 217 for 115 200 baud from a 25 MHz clock).
//!
//! * [`UartRx`] synchronises the line (two registers), detects the falling edge of a start bit, checks the
//!   start bit again half a bit later (a glitch shorter than half a bit is ignored), then samples each data bit
//!   and the stop bit in its middle. A low stop bit is a framing error: the byte is dropped, `frame_err`
//!   pulses, and the receiver waits for the line to go high before looking for the next start bit (so a break
//!   yields one error, not a stream of zero bytes).
//! * [`UartTx`] sends a byte offered with `start` while `ready` (a valid/ready handshake: the byte is taken in
//!   the cycle both are high), start bit, data, stop bit, then is ready again.

use rust_hdl::prelude::*;

/// The clock cycles per bit a UART supports: at least 4 (the receiver samples the start bit again half a bit
/// after its edge) and at most 65 535 (16-bit counters).
fn check_clocks_per_bit(clocks_per_bit: u32) {
    assert!((4..=0xffff).contains(&clocks_per_bit), "{clocks_per_bit} clocks per bit: 4..=65535 are supported");
}

/// The UART receiver (see the [module documentation](self)).
#[derive(LogicBlock)]
pub struct UartRx {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// The serial line (idle high), asynchronous to the clock.
    pub rx: Signal<In, Bit>,
    /// The last byte received (valid in the cycle of `valid`, held until the next byte).
    pub data: Signal<Out, Bits<8>>,
    /// A byte was received: one-cycle pulse.
    pub valid: Signal<Out, Bit>,
    /// A frame ended with a low stop bit: one-cycle pulse; its byte is dropped.
    pub frame_err: Signal<Out, Bit>,
    sync1: DFF<Bit>,
    sync2: DFF<Bit>,
    /// 0 idle, 1 start bit, 2 data bits, 3 stop bit, 4 waiting for the line to go high after a framing error.
    state: DFF<Bits<3>>,
    count: DFF<Bits<16>>,
    nbits: DFF<Bits<4>>,
    shift: DFF<Bits<8>>,
    valid_r: DFF<Bit>,
    err_r: DFF<Bit>,
    k_half: Constant<Bits<16>>,
    k_last: Constant<Bits<16>>,
    k_msb: Constant<Bits<8>>,
}

impl UartRx {
    /// A receiver of `clocks_per_bit` clock cycles per bit (`4..=65535`).
    pub fn new(clocks_per_bit: u32) -> Self {
        check_clocks_per_bit(clocks_per_bit);
        Self {
            clock: Default::default(),
            reset: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            frame_err: Default::default(),
            sync1: Default::default(),
            sync2: Default::default(),
            state: Default::default(),
            count: Default::default(),
            nbits: Default::default(),
            shift: Default::default(),
            valid_r: Default::default(),
            err_r: Default::default(),
            k_half: Constant::new(((clocks_per_bit / 2) as u64).into()),
            k_last: Constant::new(((clocks_per_bit - 1) as u64).into()),
            k_msb: Constant::new(0x80u64.into()),
        }
    }
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, sync1, sync2, state, count, nbits, shift, valid_r, err_r);
        self.sync1.d.next = self.rx.val();
        self.sync2.d.next = self.sync1.q.val();
        self.valid_r.d.next = false;
        self.err_r.d.next = false;
        self.count.d.next = self.count.q.val() + 1;
        if self.state.q.val() == 0 {
            // Idle: a low line starts a frame.
            self.count.d.next = 0.into();
            if !self.sync2.q.val() {
                self.state.d.next = 1.into();
            }
        }
        if self.state.q.val() == 1 {
            // Start bit: still low in its middle, or it was a glitch.
            if self.count.q.val() == self.k_half.val() {
                self.count.d.next = 0.into();
                self.nbits.d.next = 0.into();
                if self.sync2.q.val() {
                    self.state.d.next = 0.into();
                } else {
                    self.state.d.next = 2.into();
                }
            }
        }
        if self.state.q.val() == 2 {
            // Data bits, sampled a whole bit after the previous sample (mid-bit), LSB first.
            if self.count.q.val() == self.k_last.val() {
                self.count.d.next = 0.into();
                self.shift.d.next = self.shift.q.val() >> 1;
                if self.sync2.q.val() {
                    self.shift.d.next = (self.shift.q.val() >> 1) | self.k_msb.val();
                }
                self.nbits.d.next = self.nbits.q.val() + 1;
                if self.nbits.q.val() == 7 {
                    self.state.d.next = 3.into();
                }
            }
        }
        if self.state.q.val() == 3 {
            // The stop bit.
            if self.count.q.val() == self.k_last.val() {
                self.count.d.next = 0.into();
                if self.sync2.q.val() {
                    self.valid_r.d.next = true;
                    self.state.d.next = 0.into();
                } else {
                    self.err_r.d.next = true;
                    self.state.d.next = 4.into();
                }
            }
        }
        if self.state.q.val() == 4 {
            // After a framing error: wait for the idle level.
            self.count.d.next = 0.into();
            if self.sync2.q.val() {
                self.state.d.next = 0.into();
            }
        }
        if self.reset.val() {
            self.sync1.d.next = true;
            self.sync2.d.next = true;
            self.state.d.next = 0.into();
            self.valid_r.d.next = false;
            self.err_r.d.next = false;
        }
        self.data.next = self.shift.q.val();
        self.valid.next = self.valid_r.q.val();
        self.frame_err.next = self.err_r.q.val();
    }
}

/// The UART transmitter (see the [module documentation](self)).
#[derive(LogicBlock)]
pub struct UartTx {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset (aborts a byte being sent).
    pub reset: Signal<In, Bit>,
    /// The byte to send, taken in a cycle with `start` and `ready`.
    pub data: Signal<In, Bits<8>>,
    /// A byte is offered.
    pub start: Signal<In, Bit>,
    /// The transmitter is idle and takes the byte offered this cycle.
    pub ready: Signal<Out, Bit>,
    /// The serial line (idle high).
    pub tx: Signal<Out, Bit>,
    busy: DFF<Bit>,
    /// Stop bit, data, start bit: bit 0 is on the line.
    shift: DFF<Bits<10>>,
    count: DFF<Bits<16>>,
    left: DFF<Bits<4>>,
    k_last: Constant<Bits<16>>,
    k_stop: Constant<Bits<10>>,
}

impl UartTx {
    /// A transmitter of `clocks_per_bit` clock cycles per bit (`4..=65535`).
    pub fn new(clocks_per_bit: u32) -> Self {
        check_clocks_per_bit(clocks_per_bit);
        Self {
            clock: Default::default(),
            reset: Default::default(),
            data: Default::default(),
            start: Default::default(),
            ready: Default::default(),
            tx: Default::default(),
            busy: Default::default(),
            shift: Default::default(),
            count: Default::default(),
            left: Default::default(),
            k_last: Constant::new(((clocks_per_bit - 1) as u64).into()),
            k_stop: Constant::new(0x200u64.into()),
        }
    }
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, busy, shift, count, left);
        self.ready.next = !self.busy.q.val();
        self.tx.next = true;
        if self.busy.q.val() {
            self.tx.next = self.shift.q.val().get_bit(0);
            self.count.d.next = self.count.q.val() + 1;
            if self.count.q.val() == self.k_last.val() {
                self.count.d.next = 0.into();
                self.shift.d.next = self.shift.q.val() >> 1;
                self.left.d.next = self.left.q.val() - 1;
                if self.left.q.val() == 1 {
                    self.busy.d.next = false;
                }
            }
        } else if self.start.val() {
            self.busy.d.next = true;
            self.shift.d.next = self.k_stop.val() | (bit_cast::<10, 8>(self.data.val()) << 1);
            self.count.d.next = 0.into();
            self.left.d.next = 10.into();
        }
        if self.reset.val() {
            self.busy.d.next = false;
        }
    }
}
