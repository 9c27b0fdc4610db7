//! The board top level: the engine with a host interface a small FPGA board without PCIe can offer (the
//! ULX3S: a 25 MHz oscillator and an FTDI UART), and its memory on chip.
//!
//! # Blocks
//! * [`BoardMemory`]: a byte-addressed on-chip memory serving the engine's three memory channels by the
//!   protocol of [`crate::dma`], plus a byte-wide host port for the bridge.
//! * [`HostBridge`]: the byte protocol of `arch::bridge` (BAR reads and writes, memory reads and writes) on a
//!   byte-valid input and a valid/ready output.
//! * The **board core** ([`BoardCore4x4`], [`BoardCore16x16`]): bridge, memory and engine, with the byte
//!   stream as its ports (what the test benches drive: a UART byte costs `10 × clocks_per_bit` cycles).
//! * The **board top** ([`BoardTop4x4`], [`BoardTop16x16`]): [`crate::uart`] receiver and transmitter around a
//!   core. Its ports are `clock`, `reset` (synchronous, active high), `uart_rx` (idle high), `uart_tx` (idle
//!   high) and `irq` (the engine's interrupt, for a LED): a hand-written wrapper adds the PLL and the pins.
//!   [`build_board`] picks the type of a configuration (`tiny`: 4×4; `ecp5`: 16×16 with 128-bit beats).
//!
//! # Addresses
//! The memory sits at IOVA [`MEMORY_IOVA`] = 0, so a host writes `DMA_BASE = 0` and `DMA_SIZE` at most the
//! memory's size, and instruction offsets are memory addresses; the bridge's `M`/`N` addresses are the same
//! byte addresses. Accesses outside the memory are harmless: their bytes read as zero and writes to them are
//! dropped (the engine never makes them with a correct `DMA_SIZE`).
//!
//! # Engine reset
//! The engine does not export its internal reset, so the board watches the bridge's BAR writes: a write of
//! `CTRL` with `CTRL.RESET`, or the `reset` input, flushes the memory's queued requests and the beats in
//! flight (in that cycle and the next), as the protocol's "Reset and errors" requires.

use arch::bridge;
use arch::regs;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::array::filled;
use crate::buffer::BankedRam;
use crate::signed::signed_bit_cast_ext;
use crate::HdlError;

/// The IOVA of the board memory's first byte (so `DMA_BASE = 0` maps the memory directly).
pub const MEMORY_IOVA: u64 = 0;
/// The UART's clock cycles per bit in exported boards: 115 200 baud from a 25 MHz clock (25e6 / 115200 = 217.01).
pub const DEFAULT_CLOCKS_PER_BIT: u32 = 217;
/// The board memory's size in exported boards: 64 KiB, the most the 16-bit bank addresses reach.
pub const DEFAULT_MEMORY_BYTES: usize = 1 << 16;

/// A queue of read requests in registers: `push` appends `push_data` (unless full: then `overflow` pulses and
/// the request is lost), `head` is the oldest entry while `nonempty`, `pop` removes it, `flush` empties the
/// queue (and drops a push of the same cycle).
#[derive(LogicBlock)]
pub struct ReqQueue {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Empties the queue.
    pub flush: Signal<In, Bit>,
    /// Append `push_data`.
    pub push: Signal<In, Bit>,
    /// The entry to append.
    pub push_data: Signal<In, Bits<64>>,
    /// Remove the head.
    pub pop: Signal<In, Bit>,
    /// The oldest entry (meaningful while `nonempty`).
    pub head: Signal<Out, Bits<64>>,
    /// The queue holds an entry.
    pub nonempty: Signal<Out, Bit>,
    /// A push found the queue full (its entry is lost).
    pub overflow: Signal<Out, Bit>,
    slots: Vec<DFF<Bits<64>>>,
    wp: DFF<Bits<8>>,
    rp: DFF<Bits<8>>,
    count: DFF<Bits<8>>,
    push_ok: Signal<Local, Bit>,
    pop_ok: Signal<Local, Bit>,
    k_mask: Constant<Bits<8>>,
    k_depth: Constant<Bits<8>>,
    _depth: usize,
}

impl ReqQueue {
    /// A queue of `depth` entries (a power of two, `2..=128`).
    pub fn new(depth: usize) -> Self {
        assert!(depth.is_power_of_two() && (2..=128).contains(&depth), "queue depth {depth}");
        Self {
            clock: Default::default(),
            flush: Default::default(),
            push: Default::default(),
            push_data: Default::default(),
            pop: Default::default(),
            head: Default::default(),
            nonempty: Default::default(),
            overflow: Default::default(),
            slots: filled(depth),
            wp: Default::default(),
            rp: Default::default(),
            count: Default::default(),
            push_ok: Default::default(),
            pop_ok: Default::default(),
            k_mask: Constant::new(((depth - 1) as u64).into()),
            k_depth: Constant::new((depth as u64).into()),
            _depth: depth,
        }
    }
}

impl Logic for ReqQueue {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, wp, rp, count);
        for i in 0..self._depth {
            self.slots[i].clock.next = self.clock.val();
            self.slots[i].d.next = self.slots[i].q.val();
        }
        self.head.next = self.slots[0].q.val();
        for i in 0..self._depth {
            if self.rp.q.val().index() == i {
                self.head.next = self.slots[i].q.val();
            }
        }
        self.nonempty.next = self.count.q.val().any();
        self.overflow.next = self.push.val() & (self.count.q.val() == self.k_depth.val());
        self.push_ok.next = self.push.val() & (self.count.q.val() != self.k_depth.val());
        self.pop_ok.next = self.pop.val() & self.count.q.val().any();
        if self.push_ok.val() {
            for i in 0..self._depth {
                if self.wp.q.val().index() == i {
                    self.slots[i].d.next = self.push_data.val();
                }
            }
            self.wp.d.next = (self.wp.q.val() + 1) & self.k_mask.val();
        }
        if self.pop_ok.val() {
            self.rp.d.next = (self.rp.q.val() + 1) & self.k_mask.val();
        }
        if self.push_ok.val() & !self.pop_ok.val() {
            self.count.d.next = self.count.q.val() + 1;
        }
        if self.pop_ok.val() & !self.push_ok.val() {
            self.count.d.next = self.count.q.val() - 1;
        }
        if self.flush.val() {
            self.wp.d.next = 0.into();
            self.rp.d.next = 0.into();
            self.count.d.next = 0.into();
        }
    }
}

/// The board's on-chip memory: `memory_bytes` bytes at IOVA [`MEMORY_IOVA`], serving the engine's fetch and
/// LOAD read channels and its STORE write channel by the protocol of [`crate::dma`] (`W`-bit beats, `B = W/8`
/// bytes), and a byte-wide host port.
///
/// # Storage
/// A [`BankedRam`] of bytes in `B` banks with `B` read and `B` write lanes: lane `i` of a beat at byte `a`
/// reads or writes byte `a + i`, which lies in bank `(a + i) mod B`, so the lanes of any beat, at any
/// alignment, hit distinct banks, and the router does the realignment the protocol asks of a bridge.
///
/// # Reads
/// Each read channel queues its requests ([`ReqQueue`], `(L + 2).next_power_of_two()` deep) with the cycle
/// `t + L − 1` in which its first beat must be read, so that a request of cycle `t` has its first beat in
/// cycle `max(t + L, f)` (`f`: the cycle after the channel's previous beat), its beats back to back, as the
/// protocol specifies. The two channels share the one read port: the LOAD channel always has it (the LOAD
/// unit relies on the exact cycle of every beat), the fetch channel uses the cycles LOAD leaves free (the
/// control counts fetch beats by `rd_beat_valid`, so a delayed fetch beat costs time, not correctness; when
/// both channels are busy the engine runs slower than the cycle model), and the host port the cycles both
/// leave free. `L ≥ 2` (the queues are registered).
///
/// # Writes
/// Every STORE beat is written in its cycle (bytes `0 .. len` at `addr ..`, any alignment), so later reads see
/// it; host writes wait for a cycle without one.
///
/// # Outside the memory
/// Bytes outside `MEMORY_IOVA .. MEMORY_IOVA + memory_bytes` read as zero, and writes to them are dropped.
#[derive(LogicBlock)]
pub struct BoardMemory<const W: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Drops queued requests and the beats in flight (engine reset).
    pub flush: Signal<In, Bit>,
    /// Fetch channel: a request this cycle.
    pub fetch_req_valid: Signal<In, Bit>,
    /// Fetch channel: IOVA of the first byte.
    pub fetch_req_addr: Signal<In, Bits<64>>,
    /// Fetch channel: bytes.
    pub fetch_req_len: Signal<In, Bits<32>>,
    /// Fetch channel: a beat this cycle.
    pub fetch_beat_valid: Signal<Out, Bit>,
    /// Fetch channel: the beat.
    pub fetch_beat_data: Signal<Out, Bits<W>>,
    /// LOAD channel: a request this cycle.
    pub load_req_valid: Signal<In, Bit>,
    /// LOAD channel: IOVA of the first byte.
    pub load_req_addr: Signal<In, Bits<64>>,
    /// LOAD channel: bytes.
    pub load_req_len: Signal<In, Bits<32>>,
    /// LOAD channel: a beat this cycle.
    pub load_beat_valid: Signal<Out, Bit>,
    /// LOAD channel: the beat.
    pub load_beat_data: Signal<Out, Bits<W>>,
    /// STORE channel: a write beat this cycle.
    pub store_valid: Signal<In, Bit>,
    /// STORE channel: IOVA of the first byte.
    pub store_addr: Signal<In, Bits<64>>,
    /// STORE channel: bytes (`1 ..= B`).
    pub store_len: Signal<In, Bits<32>>,
    /// STORE channel: the bytes.
    pub store_data: Signal<In, Bits<W>>,
    /// Host port: read the byte at `host_addr` (held until `host_rd_ready`).
    pub host_rd_en: Signal<In, Bit>,
    /// Host port: write `host_wr_data` at `host_addr` (held until `host_wr_ready`).
    pub host_wr_en: Signal<In, Bit>,
    /// Host port: the byte address (offset in the memory).
    pub host_addr: Signal<In, Bits<32>>,
    /// Host port: the byte to write.
    pub host_wr_data: Signal<In, Bits<8>>,
    /// Host port: the read is performed this cycle (its byte is on `host_rd_data` next cycle).
    pub host_rd_ready: Signal<Out, Bit>,
    /// Host port: the write is performed this cycle.
    pub host_wr_ready: Signal<Out, Bit>,
    /// Host port: the byte of the read performed last cycle is on `host_rd_data`.
    pub host_rd_valid: Signal<Out, Bit>,
    /// Host port: the byte read.
    pub host_rd_data: Signal<Out, Bits<8>>,
    /// Sticky: a read channel had more requests outstanding than its queue holds (a protocol violation; the
    /// request was lost). Cleared by `flush`.
    pub overflow: Signal<Out, Bit>,
    /// The bytes.
    pub ram: BankedRam<Bits<8>>,
    /// The fetch channel's requests.
    pub fetch_q: ReqQueue,
    /// The LOAD channel's requests.
    pub load_q: ReqQueue,
    now: DFF<Bits<16>>,
    f_cur: DFF<Bits<32>>,
    f_left: DFF<Bits<16>>,
    l_cur: DFF<Bits<32>>,
    l_left: DFF<Bits<16>>,
    iss_f: DFF<Bit>,
    iss_l: DFF<Bit>,
    iss_h: DFF<Bit>,
    lane_ok: Vec<DFF<Bit>>,
    ovf: DFF<Bit>,
    f_off64: Signal<Local, Bits<64>>,
    f_off: Signal<Local, Bits<32>>,
    f_beats: Signal<Local, Bits<32>>,
    l_off64: Signal<Local, Bits<64>>,
    l_off: Signal<Local, Bits<32>>,
    l_beats: Signal<Local, Bits<32>>,
    due: Signal<Local, Bits<16>>,
    f_wait: Signal<Local, Bits<16>>,
    l_wait: Signal<Local, Bits<16>>,
    f_issue: Signal<Local, Bit>,
    l_issue: Signal<Local, Bit>,
    h_issue: Signal<Local, Bit>,
    iss_addr: Signal<Local, Bits<32>>,
    iss_addr16: Signal<Local, Bits<16>>,
    s_off16: Signal<Local, Bits<16>>,
    beat: Signal<Local, Bits<W>>,
    s_off64: Signal<Local, Bits<64>>,
    s_off: Signal<Local, Bits<32>>,
    k_base: Constant<Bits<64>>,
    k_far: Constant<Bits<32>>,
    k_b: Constant<Bits<32>>,
    k_bm1: Constant<Bits<32>>,
    k_log2b: Constant<Bits<32>>,
    k_latm1: Constant<Bits<16>>,
    k_half16: Constant<Bits<16>>,
    k_lane: Vec<Constant<Bits<32>>>,
    k_lane16: Vec<Constant<Bits<16>>>,
    k_ff_w: Constant<Bits<W>>,
    k_lim: Vec<Constant<Bits<32>>>,
    k_sh: Vec<Constant<Bits<32>>>,
    k_zero_beat: Constant<Bits<W>>,
    _lanes: usize,
}

impl<const W: usize> BoardMemory<W> {
    /// A memory of `memory_bytes` bytes (a power of two, `B ..= 65536`) at [`MEMORY_IOVA`], for an engine whose
    /// memory latency is `latency` (`dma_latency`, at least 2).
    pub fn new(memory_bytes: usize, latency: u32) -> Result<Self, HdlError> {
        let b = W / 8;
        if !W.is_multiple_of(8) || !b.is_power_of_two() {
            return Err(HdlError::Config(format!("{W}-bit beats are not a power of two of bytes")));
        }
        if !memory_bytes.is_power_of_two() || !(b..=1 << 16).contains(&memory_bytes) {
            return Err(HdlError::Config(format!(
                "board memory of {memory_bytes} bytes: a power of two from {b} to 65536 is supported"
            )));
        }
        if !(2..=4095).contains(&latency) {
            return Err(HdlError::Unsupported(format!("board memory for dma_latency {latency} (2..=4095 are built)")));
        }
        let depth = (latency as usize + 2).next_power_of_two().min(128);
        let k32 = |v: u64| Constant::new(v.into());
        Ok(Self {
            clock: Default::default(),
            flush: Default::default(),
            fetch_req_valid: Default::default(),
            fetch_req_addr: Default::default(),
            fetch_req_len: Default::default(),
            fetch_beat_valid: Default::default(),
            fetch_beat_data: Default::default(),
            load_req_valid: Default::default(),
            load_req_addr: Default::default(),
            load_req_len: Default::default(),
            load_beat_valid: Default::default(),
            load_beat_data: Default::default(),
            store_valid: Default::default(),
            store_addr: Default::default(),
            store_len: Default::default(),
            store_data: Default::default(),
            host_rd_en: Default::default(),
            host_wr_en: Default::default(),
            host_addr: Default::default(),
            host_wr_data: Default::default(),
            host_rd_ready: Default::default(),
            host_wr_ready: Default::default(),
            host_rd_valid: Default::default(),
            host_rd_data: Default::default(),
            overflow: Default::default(),
            ram: BankedRam::new(memory_bytes, b, b, b),
            fetch_q: ReqQueue::new(depth),
            load_q: ReqQueue::new(depth),
            now: Default::default(),
            f_cur: Default::default(),
            f_left: Default::default(),
            l_cur: Default::default(),
            l_left: Default::default(),
            iss_f: Default::default(),
            iss_l: Default::default(),
            iss_h: Default::default(),
            lane_ok: filled(b),
            ovf: Default::default(),
            f_off64: Default::default(),
            f_off: Default::default(),
            f_beats: Default::default(),
            l_off64: Default::default(),
            l_off: Default::default(),
            l_beats: Default::default(),
            due: Default::default(),
            f_wait: Default::default(),
            l_wait: Default::default(),
            f_issue: Default::default(),
            l_issue: Default::default(),
            h_issue: Default::default(),
            iss_addr: Default::default(),
            iss_addr16: Default::default(),
            s_off16: Default::default(),
            beat: Default::default(),
            s_off64: Default::default(),
            s_off: Default::default(),
            k_base: Constant::new(MEMORY_IOVA.into()),
            // Offsets at or beyond 2^31 stand for "outside" (a request's beats never carry them back inside).
            k_far: k32(1 << 31),
            k_b: k32(b as u64),
            k_bm1: k32(b as u64 - 1),
            k_log2b: k32(b.trailing_zeros() as u64),
            k_latm1: Constant::new((latency as u64 - 1).into()),
            // A head is due when `now − due` (mod 2^16) is below 2^15: its cycle has come or passed.
            k_half16: Constant::new(0x8000u64.into()),
            k_lane: (0..b).map(|i| k32(i as u64)).collect(),
            k_lane16: (0..b).map(|i| Constant::new((i as u64).into())).collect(),
            k_ff_w: Constant::new(0xffu64.into()),
            k_lim: (0..b).map(|i| k32((memory_bytes - i) as u64)).collect(),
            k_sh: (0..b).map(|i| k32(8 * i as u64)).collect(),
            k_zero_beat: Constant::new(0u64.into()),
            _lanes: b,
        })
    }

    /// Bytes of memory.
    pub fn size(&self) -> usize {
        self.ram.entries()
    }

    /// The byte at offset `addr` (for test benches).
    pub fn peek(&self, addr: usize) -> u8 {
        self.ram.peek(addr).to_u64() as u8
    }

    /// Overwrites the byte at offset `addr` (for test benches).
    pub fn poke(&mut self, addr: usize, value: u8) {
        self.ram.poke(addr, (value as u64).into());
    }
}

impl<const W: usize> Logic for BoardMemory<W> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, now, f_cur, f_left, l_cur, l_left, iss_f, iss_l, iss_h, ovf);
        self.ram.clock.next = self.clock.val();
        self.fetch_q.clock.next = self.clock.val();
        self.load_q.clock.next = self.clock.val();
        self.fetch_q.flush.next = self.flush.val();
        self.load_q.flush.next = self.flush.val();
        self.now.d.next = self.now.q.val() + 1;

        // Requests: offset in the memory (or "far" outside), beats, and the cycle of the first read.
        self.due.next = self.now.q.val() + self.k_latm1.val();
        self.f_off64.next = self.fetch_req_addr.val() - self.k_base.val();
        self.f_off.next = bit_cast::<32, 64>(self.f_off64.val());
        if (self.f_off64.val() >> 31).any() {
            self.f_off.next = self.k_far.val();
        }
        self.f_beats.next = (self.fetch_req_len.val() + self.k_bm1.val()) >> self.k_log2b.val();
        self.fetch_q.push.next = self.fetch_req_valid.val();
        self.fetch_q.push_data.next = bit_cast::<64, 32>(self.f_off.val())
            | (bit_cast::<64, 16>(bit_cast::<16, 32>(self.f_beats.val())) << 32)
            | (bit_cast::<64, 16>(self.due.val()) << 48);
        self.l_off64.next = self.load_req_addr.val() - self.k_base.val();
        self.l_off.next = bit_cast::<32, 64>(self.l_off64.val());
        if (self.l_off64.val() >> 31).any() {
            self.l_off.next = self.k_far.val();
        }
        self.l_beats.next = (self.load_req_len.val() + self.k_bm1.val()) >> self.k_log2b.val();
        self.load_q.push.next = self.load_req_valid.val();
        self.load_q.push_data.next = bit_cast::<64, 32>(self.l_off.val())
            | (bit_cast::<64, 16>(bit_cast::<16, 32>(self.l_beats.val())) << 32)
            | (bit_cast::<64, 16>(self.due.val()) << 48);

        // The LOAD channel owns the read port in the cycles its beats must be read.
        self.l_wait.next = self.now.q.val() - self.load_q.head.val().get_bits::<16>(48);
        self.l_issue.next = false;
        self.load_q.pop.next = false;
        self.iss_addr.next = self.l_cur.q.val();
        if self.l_left.q.val().any() {
            self.l_issue.next = true;
            self.l_cur.d.next = self.l_cur.q.val() + self.k_b.val();
            self.l_left.d.next = self.l_left.q.val() - 1;
        } else if self.load_q.nonempty.val() & (self.l_wait.val() < self.k_half16.val()) {
            self.l_issue.next = true;
            self.load_q.pop.next = true;
            self.iss_addr.next = self.load_q.head.val().get_bits::<32>(0);
            self.l_cur.d.next = self.load_q.head.val().get_bits::<32>(0) + self.k_b.val();
            self.l_left.d.next = self.load_q.head.val().get_bits::<16>(32) - 1;
            if !self.load_q.head.val().get_bits::<16>(32).any() {
                self.l_left.d.next = 0.into();
            }
        }

        // The fetch channel takes the cycles LOAD leaves.
        self.f_wait.next = self.now.q.val() - self.fetch_q.head.val().get_bits::<16>(48);
        self.f_issue.next = false;
        self.fetch_q.pop.next = false;
        if !self.l_issue.val() {
            if self.f_left.q.val().any() {
                self.f_issue.next = true;
                self.iss_addr.next = self.f_cur.q.val();
                self.f_cur.d.next = self.f_cur.q.val() + self.k_b.val();
                self.f_left.d.next = self.f_left.q.val() - 1;
            } else if self.fetch_q.nonempty.val() & (self.f_wait.val() < self.k_half16.val()) {
                self.f_issue.next = true;
                self.fetch_q.pop.next = true;
                self.iss_addr.next = self.fetch_q.head.val().get_bits::<32>(0);
                self.f_cur.d.next = self.fetch_q.head.val().get_bits::<32>(0) + self.k_b.val();
                self.f_left.d.next = self.fetch_q.head.val().get_bits::<16>(32) - 1;
                if !self.fetch_q.head.val().get_bits::<16>(32).any() {
                    self.f_left.d.next = 0.into();
                }
            }
        }

        // The host reads in the cycles both channels leave.
        self.h_issue.next = self.host_rd_en.val() & !self.l_issue.val() & !self.f_issue.val();
        if self.h_issue.val() {
            self.iss_addr.next = self.host_addr.val();
        }
        self.host_rd_ready.next = self.h_issue.val();

        // One read of B consecutive bytes; each lane remembers whether its byte is inside the memory. (Lane
        // arithmetic is 16-bit: rust-hdl evaluates `bit_cast` arguments outside loops.)
        self.iss_addr16.next = bit_cast::<16, 32>(self.iss_addr.val());
        for i in 0..self._lanes {
            self.ram.rd_en[i].next = self.l_issue.val() | self.f_issue.val() | self.h_issue.val();
            self.ram.rd_addr[i].next = self.iss_addr16.val() + self.k_lane16[i].val();
            self.lane_ok[i].clock.next = self.clock.val();
            self.lane_ok[i].d.next = self.iss_addr.val() < self.k_lim[i].val();
        }
        self.iss_l.d.next = self.l_issue.val();
        self.iss_f.d.next = self.f_issue.val();
        self.iss_h.d.next = self.h_issue.val();

        // The beat read last cycle, bytes outside the memory zeroed.
        self.beat.next = self.k_zero_beat.val();
        for i in 0..self._lanes {
            if self.lane_ok[i].q.val() {
                self.beat.next = self.beat.val()
                    | ((unsigned_cast(signed_bit_cast_ext::<W, 8>(signed_cast(self.ram.rd_data[i].val())))
                        & self.k_ff_w.val())
                        << self.k_sh[i].val());
            }
        }
        self.load_beat_valid.next = self.iss_l.q.val();
        self.load_beat_data.next = self.beat.val();
        self.fetch_beat_valid.next = self.iss_f.q.val();
        self.fetch_beat_data.next = self.beat.val();
        self.host_rd_valid.next = self.iss_h.q.val();
        self.host_rd_data.next = self.beat.val().get_bits::<8>(0);

        // Writes: a STORE beat in its cycle, else a host byte.
        self.s_off64.next = self.store_addr.val() - self.k_base.val();
        self.s_off.next = bit_cast::<32, 64>(self.s_off64.val());
        if (self.s_off64.val() >> 31).any() {
            self.s_off.next = self.k_far.val();
        }
        self.s_off16.next = bit_cast::<16, 32>(self.s_off.val());
        for i in 0..self._lanes {
            self.ram.wr_en[i].next = self.store_valid.val()
                & (self.k_lane[i].val() < self.store_len.val())
                & (self.s_off.val() < self.k_lim[i].val());
            self.ram.wr_addr[i].next = self.s_off16.val() + self.k_lane16[i].val();
            self.ram.wr_data[i].next = self.store_data.val().get_bits::<8>(i * 8);
        }
        self.host_wr_ready.next = !self.store_valid.val();
        if !self.store_valid.val() {
            self.ram.wr_en[0].next = self.host_wr_en.val() & (self.host_addr.val() < self.k_lim[0].val());
            self.ram.wr_addr[0].next = bit_cast::<16, 32>(self.host_addr.val());
            self.ram.wr_data[0].next = self.host_wr_data.val();
        }

        // Engine reset: nothing queued or in flight survives.
        if self.fetch_q.overflow.val() | self.load_q.overflow.val() {
            self.ovf.d.next = true;
        }
        if self.flush.val() {
            self.f_left.d.next = 0.into();
            self.l_left.d.next = 0.into();
            self.iss_f.d.next = false;
            self.iss_l.d.next = false;
            self.ovf.d.next = false;
        }
        self.overflow.next = self.ovf.q.val();
    }
}

/// The bridge's states.
mod st {
    pub const IDLE: u64 = 0;
    pub const ARGS: u64 = 1;
    pub const EXEC: u64 = 2;
    pub const BAR_WAIT: u64 = 3;
    pub const SEND_VALUE: u64 = 4;
    pub const SEND_ONE: u64 = 5;
    pub const M_DATA: u64 = 6;
    pub const M_HOLD: u64 = 7;
    pub const N_REQ: u64 = 8;
    pub const N_WAIT: u64 = 9;
    pub const N_SEND: u64 = 10;
}

/// The host bridge: parses the byte protocol of `arch::bridge` and performs its commands on BAR0 and on the
/// memory's host port, answering on a valid/ready byte output.
///
/// Incoming bytes are taken as they come (`rx_valid`, at most one per cycle, no back-pressure: a UART cannot
/// wait; memory-write data is written in its cycle unless a STORE beat holds the port): a host sends one
/// command and reads its reply before the next; bytes arriving while the bridge answers are dropped. A byte
/// that is not a command byte where one is expected is answered with `arch::bridge::ERR`; a command whose bytes
/// stop for `timeout` cycles is abandoned and answered with `ERR` (how a host resynchronises).
#[derive(LogicBlock)]
pub struct HostBridge {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset.
    pub reset: Signal<In, Bit>,
    /// The byte received.
    pub rx_data: Signal<In, Bits<8>>,
    /// A byte is received this cycle.
    pub rx_valid: Signal<In, Bit>,
    /// The byte to send.
    pub tx_data: Signal<Out, Bits<8>>,
    /// A byte is offered.
    pub tx_valid: Signal<Out, Bit>,
    /// The transmitter takes the offered byte this cycle.
    pub tx_ready: Signal<In, Bit>,
    /// BAR0 write strobe.
    pub bar_wr_en: Signal<Out, Bit>,
    /// BAR0 write offset.
    pub bar_wr_addr: Signal<Out, Bits<12>>,
    /// BAR0 write data.
    pub bar_wr_data: Signal<Out, Bits<32>>,
    /// BAR0 read strobe.
    pub bar_rd_en: Signal<Out, Bit>,
    /// BAR0 read offset.
    pub bar_rd_addr: Signal<Out, Bits<12>>,
    /// BAR0 read data (the cycle after the strobe).
    pub bar_rd_data: Signal<In, Bits<32>>,
    /// Memory host port: read request.
    pub mem_rd_en: Signal<Out, Bit>,
    /// Memory host port: write request.
    pub mem_wr_en: Signal<Out, Bit>,
    /// Memory host port: byte address.
    pub mem_addr: Signal<Out, Bits<32>>,
    /// Memory host port: byte to write.
    pub mem_wr_data: Signal<Out, Bits<8>>,
    /// Memory host port: the read is performed this cycle.
    pub mem_rd_ready: Signal<In, Bit>,
    /// Memory host port: the write is performed this cycle.
    pub mem_wr_ready: Signal<In, Bit>,
    /// Memory host port: the byte read is on `mem_rd_data` (the cycle after `mem_rd_ready`).
    pub mem_rd_valid: Signal<In, Bit>,
    /// Memory host port: the byte read.
    pub mem_rd_data: Signal<In, Bits<8>>,
    state: DFF<Bits<4>>,
    cmd: DFF<Bits<8>>,
    args: DFF<Bits<48>>,
    nargs: DFF<Bits<3>>,
    need: DFF<Bits<3>>,
    addr: DFF<Bits<32>>,
    len: DFF<Bits<16>>,
    value: DFF<Bits<32>>,
    nval: DFF<Bits<3>>,
    reply: DFF<Bits<8>>,
    held: DFF<Bits<8>>,
    quiet: DFF<Bits<32>>,
    timed_out: Signal<Local, Bit>,
    args_next: Signal<Local, Bits<48>>,
    k_timeout: Constant<Bits<32>>,
    k_cmd_w: Constant<Bits<8>>,
    k_cmd_r: Constant<Bits<8>>,
    k_cmd_m: Constant<Bits<8>>,
    k_cmd_n: Constant<Bits<8>>,
    k_ack: Constant<Bits<8>>,
    k_err: Constant<Bits<8>>,
    k_s_idle: Constant<Bits<4>>,
    k_s_args: Constant<Bits<4>>,
    k_s_exec: Constant<Bits<4>>,
    k_s_bar_wait: Constant<Bits<4>>,
    k_s_send_value: Constant<Bits<4>>,
    k_s_send_one: Constant<Bits<4>>,
    k_s_m_data: Constant<Bits<4>>,
    k_s_m_hold: Constant<Bits<4>>,
    k_s_n_req: Constant<Bits<4>>,
    k_s_n_wait: Constant<Bits<4>>,
    k_s_n_send: Constant<Bits<4>>,
}

impl HostBridge {
    /// A bridge that abandons a command after `timeout` quiet cycles (at least 1).
    pub fn new(timeout: u32) -> Self {
        let k8 = |v: u8| Constant::new((v as u64).into());
        let ks = |v: u64| Constant::new(v.into());
        Self {
            clock: Default::default(),
            reset: Default::default(),
            rx_data: Default::default(),
            rx_valid: Default::default(),
            tx_data: Default::default(),
            tx_valid: Default::default(),
            tx_ready: Default::default(),
            bar_wr_en: Default::default(),
            bar_wr_addr: Default::default(),
            bar_wr_data: Default::default(),
            bar_rd_en: Default::default(),
            bar_rd_addr: Default::default(),
            bar_rd_data: Default::default(),
            mem_rd_en: Default::default(),
            mem_wr_en: Default::default(),
            mem_addr: Default::default(),
            mem_wr_data: Default::default(),
            mem_rd_ready: Default::default(),
            mem_wr_ready: Default::default(),
            mem_rd_valid: Default::default(),
            mem_rd_data: Default::default(),
            state: Default::default(),
            cmd: Default::default(),
            args: Default::default(),
            nargs: Default::default(),
            need: Default::default(),
            addr: Default::default(),
            len: Default::default(),
            value: Default::default(),
            nval: Default::default(),
            reply: Default::default(),
            held: Default::default(),
            quiet: Default::default(),
            timed_out: Default::default(),
            args_next: Default::default(),
            k_timeout: Constant::new((timeout.max(1) as u64).into()),
            k_cmd_w: k8(bridge::CMD_BAR_WRITE),
            k_cmd_r: k8(bridge::CMD_BAR_READ),
            k_cmd_m: k8(bridge::CMD_MEM_WRITE),
            k_cmd_n: k8(bridge::CMD_MEM_READ),
            k_ack: k8(bridge::ACK),
            k_err: k8(bridge::ERR),
            k_s_idle: ks(st::IDLE),
            k_s_args: ks(st::ARGS),
            k_s_exec: ks(st::EXEC),
            k_s_bar_wait: ks(st::BAR_WAIT),
            k_s_send_value: ks(st::SEND_VALUE),
            k_s_send_one: ks(st::SEND_ONE),
            k_s_m_data: ks(st::M_DATA),
            k_s_m_hold: ks(st::M_HOLD),
            k_s_n_req: ks(st::N_REQ),
            k_s_n_wait: ks(st::N_WAIT),
            k_s_n_send: ks(st::N_SEND),
        }
    }
}

impl Logic for HostBridge {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, state, cmd, args, nargs, need, addr, len, value, nval, reply, held, quiet);
        // Arguments arrive little-endian and shift in from the top: after 6 bytes the first is bits 7..0
        // (W: offset 15..0, value 47..16; M/N: address 31..0, length 47..32); after 2 (R) the offset is 47..32.
        self.bar_wr_en.next = false;
        self.bar_wr_addr.next = self.args.q.val().get_bits::<12>(0);
        self.bar_wr_data.next = self.args.q.val().get_bits::<32>(16);
        self.bar_rd_en.next = false;
        self.bar_rd_addr.next = self.args.q.val().get_bits::<12>(32);
        self.mem_rd_en.next = false;
        self.mem_wr_en.next = false;
        self.mem_addr.next = self.addr.q.val();
        self.mem_wr_data.next = self.held.q.val();
        self.tx_valid.next = false;
        self.tx_data.next = self.reply.q.val();
        self.quiet.d.next = self.quiet.q.val() + 1;
        self.timed_out.next = self.quiet.q.val() == self.k_timeout.val();
        self.args_next.next = (self.args.q.val() >> 8) | (bit_cast::<48, 8>(self.rx_data.val()) << 40);

        if self.state.q.val() == self.k_s_idle.val() {
            self.quiet.d.next = 0.into();
            self.nargs.d.next = 0.into();
            self.args.d.next = 0.into();
            if self.rx_valid.val() {
                self.cmd.d.next = self.rx_data.val();
                self.state.d.next = self.k_s_args.val();
                self.need.d.next = 6.into();
                if self.rx_data.val() == self.k_cmd_r.val() {
                    self.need.d.next = 2.into();
                } else if (self.rx_data.val() != self.k_cmd_w.val())
                    & (self.rx_data.val() != self.k_cmd_m.val())
                    & (self.rx_data.val() != self.k_cmd_n.val())
                {
                    self.reply.d.next = self.k_err.val();
                    self.state.d.next = self.k_s_send_one.val();
                }
            }
        }
        if self.state.q.val() == self.k_s_args.val() {
            if self.rx_valid.val() {
                self.quiet.d.next = 0.into();
                self.args.d.next = self.args_next.val();
                self.nargs.d.next = self.nargs.q.val() + 1;
                if self.nargs.q.val() + 1 == self.need.q.val() {
                    self.state.d.next = self.k_s_exec.val();
                    // A memory write takes its first data byte in the next cycle already.
                    if self.cmd.q.val() == self.k_cmd_m.val() {
                        self.addr.d.next = self.args_next.val().get_bits::<32>(0);
                        self.len.d.next = self.args_next.val().get_bits::<16>(32);
                        self.state.d.next = self.k_s_m_data.val();
                        if !self.args_next.val().get_bits::<16>(32).any() {
                            self.reply.d.next = self.k_ack.val();
                            self.state.d.next = self.k_s_send_one.val();
                        }
                    }
                }
            } else if self.timed_out.val() {
                self.reply.d.next = self.k_err.val();
                self.state.d.next = self.k_s_send_one.val();
            }
        }
        if self.state.q.val() == self.k_s_exec.val() {
            self.quiet.d.next = 0.into();
            self.addr.d.next = self.args.q.val().get_bits::<32>(0);
            self.len.d.next = self.args.q.val().get_bits::<16>(32);
            if self.cmd.q.val() == self.k_cmd_w.val() {
                self.bar_wr_en.next = true;
                self.reply.d.next = self.k_ack.val();
                self.state.d.next = self.k_s_send_one.val();
            }
            if self.cmd.q.val() == self.k_cmd_r.val() {
                self.bar_rd_en.next = true;
                self.state.d.next = self.k_s_bar_wait.val();
            }
            if self.cmd.q.val() == self.k_cmd_n.val() {
                self.state.d.next = self.k_s_n_req.val();
                if !self.args.q.val().get_bits::<16>(32).any() {
                    self.state.d.next = self.k_s_idle.val();
                }
            }
        }
        if self.state.q.val() == self.k_s_bar_wait.val() {
            self.value.d.next = self.bar_rd_data.val();
            self.nval.d.next = 4.into();
            self.state.d.next = self.k_s_send_value.val();
        }
        if self.state.q.val() == self.k_s_send_value.val() {
            self.tx_valid.next = true;
            self.tx_data.next = self.value.q.val().get_bits::<8>(0);
            if self.tx_ready.val() {
                self.value.d.next = self.value.q.val() >> 8;
                self.nval.d.next = self.nval.q.val() - 1;
                if self.nval.q.val() == 1 {
                    self.state.d.next = self.k_s_idle.val();
                }
            }
        }
        if self.state.q.val() == self.k_s_send_one.val() {
            self.tx_valid.next = true;
            if self.tx_ready.val() {
                self.state.d.next = self.k_s_idle.val();
            }
        }
        if self.state.q.val() == self.k_s_m_data.val() {
            // A data byte is written in its cycle if the port is free, else held.
            self.mem_wr_data.next = self.rx_data.val();
            if self.rx_valid.val() {
                self.quiet.d.next = 0.into();
                self.held.d.next = self.rx_data.val();
                self.mem_wr_en.next = true;
                if self.mem_wr_ready.val() {
                    self.addr.d.next = self.addr.q.val() + 1;
                    self.len.d.next = self.len.q.val() - 1;
                    if self.len.q.val() == 1 {
                        self.reply.d.next = self.k_ack.val();
                        self.state.d.next = self.k_s_send_one.val();
                    }
                } else {
                    self.state.d.next = self.k_s_m_hold.val();
                }
            } else if self.timed_out.val() {
                self.reply.d.next = self.k_err.val();
                self.state.d.next = self.k_s_send_one.val();
            }
        }
        if self.state.q.val() == self.k_s_m_hold.val() {
            self.quiet.d.next = 0.into();
            self.mem_wr_en.next = true;
            if self.mem_wr_ready.val() {
                self.addr.d.next = self.addr.q.val() + 1;
                self.len.d.next = self.len.q.val() - 1;
                self.state.d.next = self.k_s_m_data.val();
                if self.len.q.val() == 1 {
                    self.reply.d.next = self.k_ack.val();
                    self.state.d.next = self.k_s_send_one.val();
                }
            }
        }
        if self.state.q.val() == self.k_s_n_req.val() {
            self.mem_rd_en.next = true;
            if self.mem_rd_ready.val() {
                self.state.d.next = self.k_s_n_wait.val();
            }
        }
        if (self.state.q.val() == self.k_s_n_wait.val()) & self.mem_rd_valid.val() {
            self.reply.d.next = self.mem_rd_data.val();
            self.state.d.next = self.k_s_n_send.val();
        }
        if self.state.q.val() == self.k_s_n_send.val() {
            self.tx_valid.next = true;
            if self.tx_ready.val() {
                self.addr.d.next = self.addr.q.val() + 1;
                self.len.d.next = self.len.q.val() - 1;
                self.state.d.next = self.k_s_n_req.val();
                if self.len.q.val() == 1 {
                    self.state.d.next = self.k_s_idle.val();
                }
            }
        }
        if self.reset.val() {
            self.state.d.next = self.k_s_idle.val();
        }
    }
}

/// Consumes signals a board deliberately leaves unused (the engine's trace port, the memory's overflow flag,
/// the UART's framing-error pulse), in the Verilog idiom Verilator's lint accepts for that.
#[derive(LogicBlock, Default)]
pub struct Sink {
    /// Unused bits.
    pub din: Signal<In, Bits<16>>,
    /// An unused flag.
    pub flag_a: Signal<In, Bit>,
    /// Another unused flag.
    pub flag_b: Signal<In, Bit>,
}

impl Logic for Sink {
    fn update(&mut self) {}

    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
/* verilator lint_off UNUSEDSIGNAL */
wire unused = &{1'b0, din, flag_a, flag_b};
/* verilator lint_on UNUSEDSIGNAL */
"
            .into(),
        )
    }
}

/// What the test benches and the exporter need of a board of any size.
pub trait Board: Block {
    /// The engine's configuration.
    fn config(&self) -> &EngineConfig;
}

/// Stamps out the board core and top types for one engine type (see the module documentation): the engine's
/// types differ per array size, and rust-hdl kernels need concrete field types.
#[macro_export]
macro_rules! board_top {
    ($(#[$cdoc:meta])* $core:ident, $(#[$tdoc:meta])* $top:ident, $engine:ident) => {
        $(#[$cdoc])*
        #[derive(LogicBlock)]
        pub struct $core<const W: usize, const W2: usize, const F: usize, const M: usize> {
            /// The clock.
            pub clock: Signal<In, Clock>,
            /// Synchronous reset of everything (the memory's contents stay).
            pub reset: Signal<In, Bit>,
            /// The byte received from the host.
            pub rx_data: Signal<In, Bits<8>>,
            /// A byte is received this cycle.
            pub rx_valid: Signal<In, Bit>,
            /// The byte to send to the host.
            pub tx_data: Signal<Out, Bits<8>>,
            /// A byte is offered.
            pub tx_valid: Signal<Out, Bit>,
            /// The offered byte is taken this cycle.
            pub tx_ready: Signal<In, Bit>,
            /// The engine's interrupt.
            pub irq: Signal<Out, Bit>,
            /// The UART receiver's framing-error pulse (unused: a broken byte is lost, and the bridge's
            /// timeout resynchronises).
            pub rx_error: Signal<In, Bit>,
            /// The host bridge.
            pub bridge: $crate::board::HostBridge,
            /// The memory.
            pub memory: $crate::board::BoardMemory<W>,
            /// The engine.
            pub engine: $crate::engine::$engine<W, W2, F, M>,
            /// The unused signals' sink (the trace port, the memory's overflow flag, `rx_error`).
            pub sink: $crate::board::Sink,
            snoop: DFF<Bit>,
            ctrl_reset: Signal<Local, Bit>,
            k_ctrl: Constant<Bits<12>>,
            _cfg: arch::EngineConfig,
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $core<W, W2, F, M> {
            /// The core for `cfg` with `memory_bytes` of memory and a bridge timeout of `timeout` cycles, boxed.
            pub fn new(
                cfg: &arch::EngineConfig,
                memory_bytes: usize,
                timeout: u32,
            ) -> Result<Box<Self>, $crate::HdlError> {
                Ok(Box::new(Self {
                    clock: Default::default(),
                    reset: Default::default(),
                    rx_data: Default::default(),
                    rx_valid: Default::default(),
                    tx_data: Default::default(),
                    tx_valid: Default::default(),
                    tx_ready: Default::default(),
                    irq: Default::default(),
                    rx_error: Default::default(),
                    sink: Default::default(),
                    bridge: $crate::board::HostBridge::new(timeout),
                    memory: $crate::board::BoardMemory::new(memory_bytes, cfg.dma_latency)?,
                    engine: *$crate::engine::$engine::new(cfg)?,
                    snoop: Default::default(),
                    ctrl_reset: Default::default(),
                    k_ctrl: Constant::new((arch::regs::CTRL as u64).into()),
                    _cfg: *cfg,
                }))
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $crate::board::Board
            for $core<W, W2, F, M>
        {
            fn config(&self) -> &arch::EngineConfig {
                &self._cfg
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> Logic for $core<W, W2, F, M> {
            #[hdl_gen]
            fn update(&mut self) {
                dff_setup!(self, clock, snoop);
                self.bridge.clock.next = self.clock.val();
                self.memory.clock.next = self.clock.val();
                self.engine.clock.next = self.clock.val();
                self.bridge.reset.next = self.reset.val();
                self.engine.reset.next = self.reset.val();

                // The byte stream.
                self.bridge.rx_data.next = self.rx_data.val();
                self.bridge.rx_valid.next = self.rx_valid.val();
                self.tx_data.next = self.bridge.tx_data.val();
                self.tx_valid.next = self.bridge.tx_valid.val();
                self.bridge.tx_ready.next = self.tx_ready.val();

                // BAR0.
                self.engine.bar.wr_en.next = self.bridge.bar_wr_en.val();
                self.engine.bar.wr_addr.next = self.bridge.bar_wr_addr.val();
                self.engine.bar.wr_data.next = self.bridge.bar_wr_data.val();
                self.engine.bar.rd_en.next = self.bridge.bar_rd_en.val();
                self.engine.bar.rd_addr.next = self.bridge.bar_rd_addr.val();
                self.bridge.bar_rd_data.next = self.engine.bar.rd_data.val();
                self.irq.next = self.engine.irq.val();

                // The memory's host port.
                self.memory.host_rd_en.next = self.bridge.mem_rd_en.val();
                self.memory.host_wr_en.next = self.bridge.mem_wr_en.val();
                self.memory.host_addr.next = self.bridge.mem_addr.val();
                self.memory.host_wr_data.next = self.bridge.mem_wr_data.val();
                self.bridge.mem_rd_ready.next = self.memory.host_rd_ready.val();
                self.bridge.mem_wr_ready.next = self.memory.host_wr_ready.val();
                self.bridge.mem_rd_valid.next = self.memory.host_rd_valid.val();
                self.bridge.mem_rd_data.next = self.memory.host_rd_data.val();

                // The engine's three channels.
                self.memory.fetch_req_valid.next = self.engine.fetch.rd_req_valid.val();
                self.memory.fetch_req_addr.next = self.engine.fetch.rd_req_addr.val();
                self.memory.fetch_req_len.next = self.engine.fetch.rd_req_len.val();
                self.engine.fetch.rd_beat_valid.next = self.memory.fetch_beat_valid.val();
                self.engine.fetch.rd_beat_data.next = self.memory.fetch_beat_data.val();
                self.memory.load_req_valid.next = self.engine.load_dma.rd_req_valid.val();
                self.memory.load_req_addr.next = self.engine.load_dma.rd_req_addr.val();
                self.memory.load_req_len.next = self.engine.load_dma.rd_req_len.val();
                self.engine.load_dma.rd_beat_valid.next = self.memory.load_beat_valid.val();
                self.engine.load_dma.rd_beat_data.next = self.memory.load_beat_data.val();
                self.memory.store_valid.next = self.engine.store_dma.wr_valid.val();
                self.memory.store_addr.next = self.engine.store_dma.wr_addr.val();
                self.memory.store_len.next = self.engine.store_dma.wr_len.val();
                self.memory.store_data.next = self.engine.store_dma.wr_data.val();

                // Engine reset (the input, or CTRL.RESET written by the host) flushes the memory's reads.
                self.ctrl_reset.next = self.bridge.bar_wr_en.val()
                    & (self.bridge.bar_wr_addr.val() == self.k_ctrl.val())
                    & self.bridge.bar_wr_data.val().get_bit(0);
                self.snoop.d.next = self.ctrl_reset.val() | self.reset.val();
                self.memory.flush.next = self.ctrl_reset.val() | self.reset.val() | self.snoop.q.val();

                self.sink.din.next = self.engine.inst_trace.val();
                self.sink.flag_a.next = self.memory.overflow.val();
                self.sink.flag_b.next = self.rx_error.val();
            }
        }

        $(#[$tdoc])*
        #[derive(LogicBlock)]
        pub struct $top<const W: usize, const W2: usize, const F: usize, const M: usize> {
            /// The clock (the UART's bit time is `clocks_per_bit` of its cycles).
            pub clock: Signal<In, Clock>,
            /// Synchronous reset, active high.
            pub reset: Signal<In, Bit>,
            /// The UART's receive line from the host (idle high).
            pub uart_rx: Signal<In, Bit>,
            /// The UART's transmit line to the host (idle high).
            pub uart_tx: Signal<Out, Bit>,
            /// The engine's interrupt (for a LED: lit when a program finished or failed, with the interrupt
            /// enabled).
            pub irq: Signal<Out, Bit>,
            /// The receiver (not `rx`: Verilog would see the receiver's own port `rx` hide it).
            pub receiver: $crate::uart::UartRx,
            /// The transmitter.
            pub transmitter: $crate::uart::UartTx,
            /// Bridge, memory and engine.
            pub core: $core<W, W2, F, M>,
            _cfg: arch::EngineConfig,
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $top<W, W2, F, M> {
            /// The board for `cfg`: a UART of `clocks_per_bit` cycles per bit, `memory_bytes` of memory; the
            /// bridge abandons a stalled command after `arch::bridge::TIMEOUT_BYTE_TIMES` byte times.
            pub fn new(
                cfg: &arch::EngineConfig,
                clocks_per_bit: u32,
                memory_bytes: usize,
            ) -> Result<Box<Self>, $crate::HdlError> {
                let timeout = arch::bridge::TIMEOUT_BYTE_TIMES.saturating_mul(10).saturating_mul(clocks_per_bit);
                Ok(Box::new(Self {
                    clock: Default::default(),
                    reset: Default::default(),
                    uart_rx: Default::default(),
                    uart_tx: Default::default(),
                    irq: Default::default(),
                    receiver: $crate::uart::UartRx::new(clocks_per_bit),
                    transmitter: $crate::uart::UartTx::new(clocks_per_bit),
                    core: *$core::new(cfg, memory_bytes, timeout)?,
                    _cfg: *cfg,
                }))
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $crate::board::Board
            for $top<W, W2, F, M>
        {
            fn config(&self) -> &arch::EngineConfig {
                &self._cfg
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> Logic for $top<W, W2, F, M> {
            #[hdl_gen]
            fn update(&mut self) {
                self.receiver.clock.next = self.clock.val();
                self.transmitter.clock.next = self.clock.val();
                self.core.clock.next = self.clock.val();
                self.receiver.reset.next = self.reset.val();
                self.transmitter.reset.next = self.reset.val();
                self.core.reset.next = self.reset.val();
                self.receiver.rx.next = self.uart_rx.val();
                self.core.rx_data.next = self.receiver.data.val();
                self.core.rx_valid.next = self.receiver.valid.val();
                self.transmitter.data.next = self.core.tx_data.val();
                self.transmitter.start.next = self.core.tx_valid.val();
                self.core.tx_ready.next = self.transmitter.ready.val();
                self.uart_tx.next = self.transmitter.tx.val();
                self.irq.next = self.core.irq.val();
                self.core.rx_error.next = self.receiver.frame_err.val();
            }
        }
    };
}

board_top!(
    /// Bridge, memory and engine of the `tiny` preset (4×4): `BoardCore4x4<128, 256, 1024, 8>`.
    BoardCore4x4,
    /// The board top of the `tiny` preset (4×4): `BoardTop4x4<128, 256, 1024, 8>`.
    BoardTop4x4,
    Engine4x4
);
board_top!(
    /// Bridge, memory and engine of the `ecp5` preset (16×16, 128-bit beats): `BoardCore16x16<128, 256, 1024, 8>`.
    BoardCore16x16,
    /// The board top of the `ecp5` preset (16×16, 128-bit beats): `BoardTop16x16<128, 256, 1024, 8>`.
    BoardTop16x16,
    Engine16x16
);

/// The board core of `tiny`.
pub type BoardCoreTiny = BoardCore4x4<128, 256, 1024, 8>;
/// The board core of the `mini` preset (two-beat fetch buffer): the smallest whole engine, the one that fits the
/// LFE5U-85F (docs/bitstreams.md).
pub type BoardCoreMini = BoardCore4x4<128, 256, 256, 8>;

/// The board top for `cfg` (the stamped type whose engine matches it, like
/// [`crate::engine::build_engine`]), with a UART of `clocks_per_bit` cycles per bit and `memory_bytes` of
/// memory, boxed. Built: `tiny` (4×4) and `ecp5` (16×16 with 128-bit beats); others are
/// [`HdlError::Unsupported`].
pub fn build_board(cfg: &EngineConfig, clocks_per_bit: u32, memory_bytes: usize) -> Result<Box<dyn Board>, HdlError> {
    let fetch = crate::control::FetchGeometry::for_config(cfg)?;
    let m = cfg.format.mantissa_bits();
    Ok(match (cfg.rows, cfg.cols, fetch.beat_bits, fetch.buffer_bits, m) {
        (4, 4, 128, 1024, 8) => {
            BoardTop4x4::<128, 256, 1024, 8>::new(cfg, clocks_per_bit, memory_bytes)? as Box<dyn Board>
        }
        (4, 4, 128, 256, 8) => BoardTop4x4::<128, 256, 256, 8>::new(cfg, clocks_per_bit, memory_bytes)?,
        (16, 16, 128, 1024, 8) => BoardTop16x16::<128, 256, 1024, 8>::new(cfg, clocks_per_bit, memory_bytes)?,
        _ => {
            return Err(HdlError::Unsupported(format!(
                "no board type is stamped for a {}x{} array with {}-bit beats, a {}-bit fetch buffer and {m}-bit \
                 mantissas: add a board_top! invocation (hdl/src/board.rs) and an arm to build_board",
                cfg.rows, cfg.cols, fetch.beat_bits, fetch.buffer_bits
            )))
        }
    })
}

/// Keeps the register map's CTRL offset in the 12 bits of BAR0 (what the reset snoop compares).
const _: () = assert!(regs::CTRL < regs::BAR0_SIZE);
