//! The LOAD unit: host memory → ACT, WGT or ACC, through the LOAD read channel ([`crate::dma`]).
//!
//! It executes one `arch::isa::Load` at a time, exactly as `arch::golden` does (values, errors and what is
//! written before an error) and in exactly `arch::timing::load_cycles` cycles: started in cycle `S`, it
//! raises `done` in cycle `E − 1 = S + load_cycles − 1`, and its last buffer write is issued in that cycle.
//!
//! # Schedule
//! The padded window (`rows = pad_top + y_size + pad_bottom` rows of `row = pad_left + x_size + pad_right`
//! entries) is written row by row in **groups** of `Q` consecutive entries (`Q = B / mantissa_bytes` for
//! ACT/WGT, `B / 4` for ACC: one beat of mantissas or of `f32`s), one group per cycle on the write lanes.
//! Each row takes exactly `row_beats(row)` **slots** (cycles), the cycle model's charge:
//! * ACT/WGT: `⌈row/Q⌉` group slots, and before the group that receives the first mantissa beat of each data
//!   chunk (`B` entries of the row's data) one *exponent slot* in which the chunk's exponent beat arrives;
//!   the remaining `⌈row/B⌉ − ⌈x_size/B⌉` slots of the row are idle. Per chunk the unit requests the chunk's
//!   exponent bytes (`exp_addr + h0`, one beat) in the exponent slot and its mantissa bytes
//!   (`dram_addr + h0·mantissa_bytes`) in the next slot, so every row costs `⌈x/B⌉ + ⌈x·mb/B⌉` beats.
//! * ACC: `⌈4·row/B⌉` group slots; the row's `4·x_size` bytes are one request, made in the slot of the first
//!   group that holds data.
//!
//! Two copies of the same schedule ([`LoadSchedule`]) run: the *requester* from cycle `S` and the *consumer*
//! from `S + L`. A request made in requester slot `k` therefore has its first beat in consumer slot `k`
//! (the read channel never stalls and earlier requests' beats lie in earlier slots), and the consumer writes
//! the group of each slot in the cycle its beat arrives. Pad-only rows and groups take their slots without
//! requests (padding costs the beats the model charges, but is not read).
//!
//! Data entries are realigned to the groups: a group's mantissas are taken from the two-beat window
//! (this beat, previous beat) shifted by `Q − pad_left mod Q` lanes, and its exponents from the
//! two-chunk window of exponent beats, so a left padding that is not a multiple of `Q` costs nothing.
//!
//! # Errors (as the golden model)
//! * `BufferOutOfRange` in cycle `S` when `sram_base + rows·row` exceeds the destination buffer: nothing is
//!   requested or written.
//! * Per entry, in row-major order: the exponent byte outside the DMA window (`DMA_SIZE`), a reserved exponent
//!   code (`BadExponent`), the mantissa bytes outside the window (both `DmaOutOfBounds`); for ACC the `f32`
//!   outside the window (`DmaOutOfBounds`), then NaN/Inf (`NonFiniteInput`). Requests are cut at the window's
//!   end (the unit never asks for a byte outside it). Every entry before the failing one is written (padding
//!   included), none after it; the error pulses in the cycle of the failing entry's group, and the unit goes
//!   idle without `done`.

use arch::isa::{mem, Buffer};
use arch::regs::ErrorCode;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::array::filled;
use crate::dma::DmaReadPort;
use crate::HdlError;

/// The memory-side parameters of a LOAD or STORE unit, derived from a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferParams {
    /// `B`: bytes per beat.
    pub beat_bytes: usize,
    /// Bytes of one entry's packed mantissas.
    pub mantissa_bytes: usize,
    /// BFP entries per beat (`B / mantissa_bytes`): the ACT/WGT/OUT lanes.
    pub bfp_lanes: usize,
    /// `f32` entries per beat (`B / 4`).
    pub acc_beat_lanes: usize,
    /// ACC port lanes, `A = max(C, B/4)`.
    pub acc_lanes: usize,
    /// Block size (mantissas per entry).
    pub block_size: usize,
    /// Mantissa width in bits.
    pub mantissa_bits: usize,
    /// The largest valid exponent code (larger codes are reserved: `BadExponent`).
    pub max_exponent_code: u8,
    /// `L`: DMA latency.
    pub latency: u32,
}

impl TransferParams {
    /// The parameters of `cfg`, or why the LOAD/STORE units cannot be built for it: mantissas must use 8-bit
    /// containers (5..=8 bits, as in every preset), a packed block must fit one beat, and `L ≥ 1`.
    pub fn for_config(cfg: &EngineConfig) -> Result<Self, HdlError> {
        cfg.validate().map_err(|e| HdlError::Config(e.to_string()))?;
        let f = cfg.format;
        let b = cfg.dma_bytes_per_cycle;
        let mb = f.mantissa_bytes();
        if f.container_bits() != 8 {
            return Err(HdlError::Unsupported(format!(
                "LOAD/STORE: {}-bit mantissas are packed in {}-bit containers; only 8-bit containers (5..=8 bits) \
                 are built",
                f.mantissa_bits(),
                f.container_bits()
            )));
        }
        if mb > b {
            return Err(HdlError::Unsupported(format!(
                "LOAD/STORE: a block's {mb} mantissa bytes exceed the {b}-byte beat"
            )));
        }
        if cfg.dma_latency == 0 {
            return Err(HdlError::Unsupported(
                "LOAD/STORE: dma_latency 0 (a combinational memory) is not built".into(),
            ));
        }
        let max_code = (0..=255u8).rev().find(|&c| f.decode_exponent(c).is_ok()).expect("some code decodes");
        Ok(TransferParams {
            beat_bytes: b,
            mantissa_bytes: mb,
            bfp_lanes: b / mb,
            acc_beat_lanes: b / 4,
            acc_lanes: cfg.cols.max(b / 4),
            block_size: f.block_size(),
            mantissa_bits: f.mantissa_bits() as usize,
            max_exponent_code: max_code,
            latency: cfg.dma_latency,
        })
    }

    /// Checks that the const generics of a unit match: `W = 8·B`, `W2 = 2·W`, `M` = mantissa bits.
    pub fn check_widths(&self, w: usize, w2: usize, m: usize) -> Result<(), HdlError> {
        if w != 8 * self.beat_bytes || w2 != 2 * w || m != self.mantissa_bits {
            return Err(HdlError::Config(format!(
                "unit built with W = {w}, W2 = {w2}, M = {m}; the configuration needs W = {}, W2 = {}, M = {}",
                8 * self.beat_bytes,
                16 * self.beat_bytes,
                self.mantissa_bits
            )));
        }
        Ok(())
    }
}

/// `log2` of a power of two.
pub(crate) fn log2(v: usize) -> u64 {
    debug_assert!(v.is_power_of_two());
    v.trailing_zeros() as u64
}

/// `Constant<Bits<N>>` from an integer.
pub(crate) fn k<const N: usize>(v: u64) -> Constant<Bits<N>> {
    Constant::new(v.into())
}

/// The LOAD schedule (see the module documentation): walks the slots of a LOAD from the cycle `go` is
/// asserted, one slot per cycle, and says what happens in each slot (which group is written, whether an
/// exponent beat arrives, which request to make, the DMA-window limits of the row). The LOAD unit runs two of
/// them, `L` cycles apart. All state returns to zero when idle, so slot 0 is computed from the fields in the
/// `go` cycle itself.
#[derive(LogicBlock)]
pub struct LoadSchedule {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Start walking: this cycle is slot 0 (the fields must be valid from this cycle on).
    pub go: Signal<In, Bit>,
    /// Stop and return to idle (error or reset).
    pub halt: Signal<In, Bit>,
    /// The destination is the accumulator buffer.
    pub acc: Signal<In, Bit>,
    /// LOAD's `y_size`.
    pub y_size: Signal<In, Bits<32>>,
    /// LOAD's `x_size`.
    pub x_size: Signal<In, Bits<32>>,
    /// LOAD's `x_stride`.
    pub x_stride: Signal<In, Bits<32>>,
    /// LOAD's `pad_top`.
    pub pad_top: Signal<In, Bits<32>>,
    /// LOAD's `pad_bottom`.
    pub pad_bottom: Signal<In, Bits<32>>,
    /// LOAD's `pad_left`.
    pub pad_left: Signal<In, Bits<32>>,
    /// LOAD's `pad_right`.
    pub pad_right: Signal<In, Bits<32>>,
    /// LOAD's `dram_addr` (window offset).
    pub dram_addr: Signal<In, Bits<64>>,
    /// LOAD's `exp_addr` (window offset).
    pub exp_addr: Signal<In, Bits<64>>,
    /// The DMA window's size in bytes.
    pub dma_size: Signal<In, Bits<64>>,
    /// This cycle is a slot of the walk.
    pub active: Signal<Out, Bit>,
    /// This slot is the walk's last.
    pub last: Signal<Out, Bit>,
    /// An exponent beat arrives in this slot (ACT/WGT).
    pub exp_slot: Signal<Out, Bit>,
    /// A group is written in this slot.
    pub group_slot: Signal<Out, Bit>,
    /// The current row holds data (it is not a top/bottom padding row and `x_size > 0`).
    pub data_row: Signal<Out, Bit>,
    /// Position in the row of the group's first entry.
    pub pos0: Signal<Out, Bits<32>>,
    /// Buffer offset of the row's first entry from `sram_base`.
    pub row_off: Signal<Out, Bits<32>>,
    /// Data index (in the row) of the current chunk's first entry.
    pub cbase: Signal<Out, Bits<32>>,
    /// Entries of the row whose exponent byte lies inside the DMA window (ACT/WGT).
    pub n_exp: Signal<Out, Bits<32>>,
    /// Entries of the row whose mantissas (or `f32`) lie inside the DMA window.
    pub n_data: Signal<Out, Bits<32>>,
    /// Entries per group, `Q`.
    pub lanes: Signal<Out, Bits<32>>,
    /// `pad_left mod Q`: the lane of the row's first data entry.
    pub lane_shift: Signal<Out, Bits<32>>,
    /// Make a request this slot.
    pub req_valid: Signal<Out, Bit>,
    /// The request's window offset.
    pub req_off: Signal<Out, Bits<64>>,
    /// The request's length in bytes.
    pub req_len: Signal<Out, Bits<32>>,
    act: DFF<Bit>,
    yy: DFF<Bits<32>>,
    t: DFF<Bits<32>>,
    g: DFF<Bits<32>>,
    exp_done: DFF<Bit>,
    cb: DFF<Bits<32>>,
    cgrp: DFF<Bits<32>>,
    h_row: DFF<Bits<64>>,
    row_off_q: DFF<Bits<32>>,
    k_qlog_bfp: Constant<Bits<32>>,
    k_qlog_acc: Constant<Bits<32>>,
    k_b: Constant<Bits<32>>,
    k_blog: Constant<Bits<32>>,
    k_mb: Constant<Bits<32>>,
    k_mblog: Constant<Bits<32>>,
    k_two: Constant<Bits<32>>,
    k_one: Constant<Bits<32>>,
    k_zero: Constant<Bits<32>>,
    k_zero64: Constant<Bits<64>>,
    qlog: Signal<Local, Bits<32>>,
    qn: Signal<Local, Bits<32>>,
    rows: Signal<Local, Bits<32>>,
    row: Signal<Local, Bits<32>>,
    groups: Signal<Local, Bits<32>>,
    row_slots: Signal<Local, Bits<32>>,
    lq: Signal<Local, Bits<32>>,
    on: Signal<Local, Bit>,
    data_row_l: Signal<Local, Bit>,
    chunk: Signal<Local, Bit>,
    cgroup: Signal<Local, Bits<32>>,
    in_grp: Signal<Local, Bit>,
    is_exp: Signal<Local, Bit>,
    is_grp: Signal<Local, Bit>,
    is_mreq: Signal<Local, Bit>,
    is_areq: Signal<Local, Bit>,
    row_end: Signal<Local, Bit>,
    is_last: Signal<Local, Bit>,
    elog: Signal<Local, Bits<32>>,
    eoff: Signal<Local, Bits<64>>,
    moff: Signal<Local, Bits<64>>,
    x64: Signal<Local, Bits<64>>,
    rem_e: Signal<Local, Bits<64>>,
    rem_m: Signal<Local, Bits<64>>,
    n_e: Signal<Local, Bits<32>>,
    n_m: Signal<Local, Bits<32>>,
    d: Signal<Local, Bits<32>>,
    ne_c: Signal<Local, Bits<32>>,
    nm_c: Signal<Local, Bits<32>>,
}

impl LoadSchedule {
    /// A schedule for the transfer parameters `p`.
    pub fn new(p: &TransferParams) -> Self {
        LoadSchedule {
            clock: Default::default(),
            go: Default::default(),
            halt: Default::default(),
            acc: Default::default(),
            y_size: Default::default(),
            x_size: Default::default(),
            x_stride: Default::default(),
            pad_top: Default::default(),
            pad_bottom: Default::default(),
            pad_left: Default::default(),
            pad_right: Default::default(),
            dram_addr: Default::default(),
            exp_addr: Default::default(),
            dma_size: Default::default(),
            active: Default::default(),
            last: Default::default(),
            exp_slot: Default::default(),
            group_slot: Default::default(),
            data_row: Default::default(),
            pos0: Default::default(),
            row_off: Default::default(),
            cbase: Default::default(),
            n_exp: Default::default(),
            n_data: Default::default(),
            lanes: Default::default(),
            lane_shift: Default::default(),
            req_valid: Default::default(),
            req_off: Default::default(),
            req_len: Default::default(),
            act: Default::default(),
            yy: Default::default(),
            t: Default::default(),
            g: Default::default(),
            exp_done: Default::default(),
            cb: Default::default(),
            cgrp: Default::default(),
            h_row: Default::default(),
            row_off_q: Default::default(),
            k_qlog_bfp: k(log2(p.bfp_lanes)),
            k_qlog_acc: k(log2(p.acc_beat_lanes)),
            k_b: k(p.beat_bytes as u64),
            k_blog: k(log2(p.beat_bytes)),
            k_mb: k(p.mantissa_bytes as u64),
            k_mblog: k(log2(p.mantissa_bytes)),
            k_two: k(2),
            k_one: k(1),
            k_zero: k(0),
            k_zero64: k(0),
            qlog: Default::default(),
            qn: Default::default(),
            rows: Default::default(),
            row: Default::default(),
            groups: Default::default(),
            row_slots: Default::default(),
            lq: Default::default(),
            on: Default::default(),
            data_row_l: Default::default(),
            chunk: Default::default(),
            cgroup: Default::default(),
            in_grp: Default::default(),
            is_exp: Default::default(),
            is_grp: Default::default(),
            is_mreq: Default::default(),
            is_areq: Default::default(),
            row_end: Default::default(),
            is_last: Default::default(),
            elog: Default::default(),
            eoff: Default::default(),
            moff: Default::default(),
            x64: Default::default(),
            rem_e: Default::default(),
            rem_m: Default::default(),
            n_e: Default::default(),
            n_m: Default::default(),
            d: Default::default(),
            ne_c: Default::default(),
            nm_c: Default::default(),
        }
    }
}

impl Logic for LoadSchedule {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, act, yy, t, g, exp_done, cb, cgrp, h_row, row_off_q);
        // Geometry of the window and of one row's slots.
        self.qlog.next = self.k_qlog_bfp.val();
        self.elog.next = self.k_mblog.val();
        if self.acc.val() {
            self.qlog.next = self.k_qlog_acc.val();
            self.elog.next = self.k_two.val();
        }
        self.qn.next = self.k_one.val() << self.qlog.val();
        self.rows.next = self.pad_top.val() + self.y_size.val() + self.pad_bottom.val();
        self.row.next = self.pad_left.val() + self.x_size.val() + self.pad_right.val();
        self.groups.next = (self.row.val() + self.qn.val() - self.k_one.val()) >> self.qlog.val();
        self.row_slots.next =
            self.groups.val() + ((self.row.val() + self.k_b.val() - self.k_one.val()) >> self.k_blog.val());
        if self.acc.val() {
            self.row_slots.next = self.groups.val();
        }
        self.lq.next = self.pad_left.val() >> self.qlog.val();
        // The current slot.
        self.on.next = self.act.q.val() | self.go.val();
        self.data_row_l.next = (self.yy.q.val() >= self.pad_top.val())
            & (self.yy.q.val() < self.pad_top.val() + self.y_size.val())
            & (self.x_size.val() != self.k_zero.val());
        self.chunk.next = self.cb.q.val() < self.x_size.val();
        self.cgroup.next = self.lq.val() + self.cgrp.q.val();
        self.in_grp.next = self.g.q.val() < self.groups.val();
        self.is_exp.next = self.on.val()
            & !self.acc.val()
            & self.data_row_l.val()
            & self.chunk.val()
            & (self.g.q.val() == self.cgroup.val())
            & !self.exp_done.q.val()
            & self.in_grp.val();
        self.is_grp.next = self.on.val() & self.in_grp.val() & !self.is_exp.val();
        self.is_mreq.next = self.is_grp.val()
            & !self.acc.val()
            & self.data_row_l.val()
            & self.chunk.val()
            & self.exp_done.q.val()
            & (self.g.q.val() == self.cgroup.val());
        self.is_areq.next =
            self.is_grp.val() & self.acc.val() & self.data_row_l.val() & (self.g.q.val() == self.lq.val());
        self.row_end.next = self.t.q.val() == self.row_slots.val() - self.k_one.val();
        self.is_last.next =
            self.on.val() & self.row_end.val() & (self.yy.q.val() == self.rows.val() - self.k_one.val());
        // The row's host offsets and how many of its entries lie inside the DMA window.
        self.eoff.next = self.exp_addr.val() + self.h_row.q.val();
        self.moff.next = self.dram_addr.val() + (self.h_row.q.val() << self.elog.val());
        self.x64.next = bit_cast::<64, 32>(self.x_size.val());
        self.rem_e.next = self.k_zero64.val();
        if self.dma_size.val() > self.eoff.val() {
            self.rem_e.next = self.dma_size.val() - self.eoff.val();
        }
        self.rem_m.next = self.k_zero64.val();
        if self.dma_size.val() > self.moff.val() {
            self.rem_m.next = (self.dma_size.val() - self.moff.val()) >> self.elog.val();
        }
        self.n_e.next = self.x_size.val();
        if self.rem_e.val() < self.x64.val() {
            self.n_e.next = bit_cast::<32, 64>(self.rem_e.val());
        }
        self.n_m.next = self.x_size.val();
        if self.rem_m.val() < self.x64.val() {
            self.n_m.next = bit_cast::<32, 64>(self.rem_m.val());
        }
        // The current chunk: its size and how much of each plane is inside the window.
        self.d.next = self.x_size.val() - self.cb.q.val();
        if self.d.val() > self.k_b.val() {
            self.d.next = self.k_b.val();
        }
        self.ne_c.next = self.k_zero.val();
        if self.n_e.val() > self.cb.q.val() {
            self.ne_c.next = self.n_e.val() - self.cb.q.val();
            if self.n_e.val() - self.cb.q.val() > self.d.val() {
                self.ne_c.next = self.d.val();
            }
        }
        self.nm_c.next = self.k_zero.val();
        if self.n_m.val() > self.cb.q.val() {
            self.nm_c.next = self.n_m.val() - self.cb.q.val();
            if self.n_m.val() - self.cb.q.val() > self.d.val() {
                self.nm_c.next = self.d.val();
            }
        }
        // Requests: a chunk's exponents, its mantissas, or an accumulator row.
        self.req_valid.next = (self.is_exp.val() & (self.ne_c.val() != self.k_zero.val()))
            | (self.is_mreq.val() & (self.nm_c.val() != self.k_zero.val()))
            | (self.is_areq.val() & (self.n_m.val() != self.k_zero.val()));
        self.req_off.next = self.moff.val();
        self.req_len.next = self.n_m.val() << self.k_two.val();
        if self.is_exp.val() {
            self.req_off.next = self.eoff.val() + bit_cast::<64, 32>(self.cb.q.val());
            self.req_len.next = self.ne_c.val();
        }
        if self.is_mreq.val() {
            self.req_off.next = self.moff.val() + (bit_cast::<64, 32>(self.cb.q.val()) << self.k_mblog.val());
            self.req_len.next = self.nm_c.val() << self.k_mblog.val();
        }
        // Outputs.
        self.active.next = self.on.val();
        self.last.next = self.is_last.val();
        self.exp_slot.next = self.is_exp.val();
        self.group_slot.next = self.is_grp.val();
        self.data_row.next = self.data_row_l.val();
        self.pos0.next = self.g.q.val() << self.qlog.val();
        self.row_off.next = self.row_off_q.q.val();
        self.cbase.next = self.cb.q.val();
        self.n_exp.next = self.n_e.val();
        self.n_data.next = self.n_m.val();
        self.lanes.next = self.qn.val();
        self.lane_shift.next = self.pad_left.val() & (self.qn.val() - self.k_one.val());
        // Next slot (everything returns to zero when idle).
        if self.on.val() & !self.halt.val() & !self.is_last.val() {
            self.act.d.next = true;
            self.t.d.next = self.t.q.val() + self.k_one.val();
            if self.is_exp.val() {
                self.exp_done.d.next = true;
            }
            if self.is_grp.val() {
                self.g.d.next = self.g.q.val() + self.k_one.val();
            }
            if self.is_mreq.val() {
                self.cb.d.next = self.cb.q.val() + self.k_b.val();
                self.cgrp.d.next = self.cgrp.q.val() + self.k_mb.val();
                self.exp_done.d.next = false;
            }
            if self.row_end.val() {
                self.t.d.next = self.k_zero.val();
                self.g.d.next = self.k_zero.val();
                self.cb.d.next = self.k_zero.val();
                self.cgrp.d.next = self.k_zero.val();
                self.exp_done.d.next = false;
                self.yy.d.next = self.yy.q.val() + self.k_one.val();
                self.row_off_q.d.next = self.row_off_q.q.val() + self.row.val();
                if self.data_row_l.val() {
                    self.h_row.d.next = self.h_row.q.val() + bit_cast::<64, 32>(self.x_stride.val());
                }
            }
        } else {
            self.act.d.next = false;
            self.t.d.next = self.k_zero.val();
            self.g.d.next = self.k_zero.val();
            self.exp_done.d.next = false;
            self.cb.d.next = self.k_zero.val();
            self.cgrp.d.next = self.k_zero.val();
            self.yy.d.next = self.k_zero.val();
            self.h_row.d.next = self.k_zero64.val();
            self.row_off_q.d.next = self.k_zero.val();
        }
    }
}

/// The LOAD unit for a configuration with `W = 8·B`-bit beats (`W2 = 2·W`) and `M`-bit mantissas.
///
/// Ports follow the stage-unit handshake (`start` with the raw instruction on `inst`, `done` in cycle
/// `E − 1`, `error`/`error_code` pulses) and the buffer conventions: `Q` BFP write lanes shared by ACT and WGT
/// (`act_wr_en` / `wgt_wr_en` select the buffer; lane `q` writes entry `wr_addr[q]`, which is `wr_addr[0] + q`),
/// and `A` ACC write lanes of which the first `B/4` are used. Build it with [`LoadUnit::new`].
#[derive(LogicBlock)]
pub struct LoadUnit<const W: usize, const W2: usize, const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous reset: abandons the instruction.
    pub reset: Signal<In, Bit>,
    /// Start the instruction on `inst` (one cycle).
    pub start: Signal<In, Bit>,
    /// The raw 256-bit instruction (read in the `start` cycle only).
    pub inst: Signal<In, Bits<256>>,
    /// `DMA_BASE`: IOVA of the DMA window.
    pub dma_base: Signal<In, Bits<64>>,
    /// `DMA_SIZE`: bytes of the DMA window.
    pub dma_size: Signal<In, Bits<32>>,
    /// The instruction ends after this cycle (`E − 1`).
    pub done: Signal<Out, Bit>,
    /// The instruction failed (one cycle); the unit is idle afterwards.
    pub error: Signal<Out, Bit>,
    /// The `arch::regs::ErrorCode` of `error`.
    pub error_code: Signal<Out, Bits<4>>,
    /// The LOAD read channel.
    pub dma: DmaReadPort<W>,
    /// Write enables of the ACT buffer's lanes.
    pub act_wr_en: Vec<Signal<Out, Bit>>,
    /// Write enables of the WGT buffer's lanes.
    pub wgt_wr_en: Vec<Signal<Out, Bit>>,
    /// Entry written by each BFP lane.
    pub wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// Exponent code written by each BFP lane.
    pub wr_exp: Vec<Signal<Out, Bits<8>>>,
    /// Mantissas written: lane `q`, element `i` at `q·bs + i`.
    pub wr_mant: Vec<Signal<Out, Signed<M>>>,
    /// Write enables of the ACC lanes.
    pub acc_wr_en: Vec<Signal<Out, Bit>>,
    /// Accumulator written by each ACC lane.
    pub acc_wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// `f32` bits written by each ACC lane.
    pub acc_wr_data: Vec<Signal<Out, Bits<32>>>,
    req: LoadSchedule,
    con: LoadSchedule,
    busy: DFF<Bit>,
    cnt: DFF<Bits<16>>,
    f_buf: DFF<Bits<2>>,
    f_sram: DFF<Bits<32>>,
    f_y: DFF<Bits<32>>,
    f_x: DFF<Bits<32>>,
    f_stride: DFF<Bits<32>>,
    f_pt: DFF<Bits<32>>,
    f_pb: DFF<Bits<32>>,
    f_pl: DFF<Bits<32>>,
    f_pr: DFF<Bits<32>>,
    f_dram: DFF<Bits<64>>,
    f_exp: DFF<Bits<64>>,
    prev_beat: DFF<Bits<W>>,
    cur_exp: DFF<Bits<W>>,
    prev_exp: DFF<Bits<W>>,
    cbase_q: DFF<Bits<32>>,
    k_lsb_buf: Constant<Bits<16>>,
    k_lsb_sram: Constant<Bits<16>>,
    k_lsb_y: Constant<Bits<16>>,
    k_lsb_x: Constant<Bits<16>>,
    k_lsb_stride: Constant<Bits<16>>,
    k_lsb_dram: Constant<Bits<16>>,
    k_lsb_exp: Constant<Bits<16>>,
    k_lsb_pt: Constant<Bits<16>>,
    k_lsb_pb: Constant<Bits<16>>,
    k_lsb_pl: Constant<Bits<16>>,
    k_lsb_pr: Constant<Bits<16>>,
    k_len_act: Constant<Bits<64>>,
    k_len_wgt: Constant<Bits<64>>,
    k_len_acc: Constant<Bits<64>>,
    k_buf_wgt: Constant<Bits<2>>,
    k_buf_acc: Constant<Bits<2>>,
    k_lat: Constant<Bits<16>>,
    k_latm1: Constant<Bits<16>>,
    k_one16: Constant<Bits<16>>,
    k_zero16: Constant<Bits<16>>,
    k_max16: Constant<Bits<32>>,
    k_w: Constant<Bits<32>>,
    k_b: Constant<Bits<32>>,
    k_eblog_bfp: Constant<Bits<32>>,
    k_eblog_acc: Constant<Bits<32>>,
    k_three: Constant<Bits<32>>,
    k_zero: Constant<Bits<32>>,
    k_ones_w: Constant<Bits<W>>,
    k_zero_w: Constant<Bits<W>>,
    k_max_code: Constant<Bits<8>>,
    k_ff: Constant<Bits<8>>,
    k_zero8: Constant<Bits<8>>,
    k_code_range: Constant<Bits<4>>,
    k_code_dma: Constant<Bits<4>>,
    k_code_bad: Constant<Bits<4>>,
    k_code_nonfinite: Constant<Bits<4>>,
    k_code_none: Constant<Bits<4>>,
    d_buf: Signal<Local, Bits<2>>,
    d_sram: Signal<Local, Bits<32>>,
    d_y: Signal<Local, Bits<32>>,
    d_x: Signal<Local, Bits<32>>,
    d_stride: Signal<Local, Bits<32>>,
    d_pt: Signal<Local, Bits<32>>,
    d_pb: Signal<Local, Bits<32>>,
    d_pl: Signal<Local, Bits<32>>,
    d_pr: Signal<Local, Bits<32>>,
    d_dram: Signal<Local, Bits<64>>,
    d_exp: Signal<Local, Bits<64>>,
    e_buf: Signal<Local, Bits<2>>,
    e_y: Signal<Local, Bits<32>>,
    e_x: Signal<Local, Bits<32>>,
    e_stride: Signal<Local, Bits<32>>,
    e_pt: Signal<Local, Bits<32>>,
    e_pb: Signal<Local, Bits<32>>,
    e_pl: Signal<Local, Bits<32>>,
    e_pr: Signal<Local, Bits<32>>,
    e_dram: Signal<Local, Bits<64>>,
    e_exp: Signal<Local, Bits<64>>,
    e_rows: Signal<Local, Bits<32>>,
    e_row: Signal<Local, Bits<32>>,
    empty: Signal<Local, Bit>,
    big: Signal<Local, Bit>,
    prod: Signal<Local, Bits<32>>,
    buf_len: Signal<Local, Bits<64>>,
    oor: Signal<Local, Bit>,
    accept: Signal<Local, Bit>,
    f_acc: Signal<Local, Bit>,
    f_wgt: Signal<Local, Bit>,
    size64: Signal<Local, Bits<64>>,
    slot_ok: Signal<Local, Bit>,
    lo: Signal<Local, Bits<32>>,
    hi: Signal<Local, Bits<32>>,
    row_len: Signal<Local, Bits<32>>,
    base16: Signal<Local, Bits<16>>,
    qlo: Signal<Local, Bits<32>>,
    qhi: Signal<Local, Bits<32>>,
    eblog: Signal<Local, Bits<32>>,
    mmask: Signal<Local, Bits<W>>,
    emask: Signal<Local, Bits<W>>,
    mwin: Signal<Local, Bits<W2>>,
    ewin: Signal<Local, Bits<W2>>,
    mshift: Signal<Local, Bits<32>>,
    eshift: Signal<Local, Bits<32>>,
    grp: Signal<Local, Bits<W>>,
    gexp: Signal<Local, Bits<W>>,
    grp_m: Signal<Local, Bits<W>>,
    gexp_m: Signal<Local, Bits<W>>,
    l_pos: Vec<Signal<Local, Bits<32>>>,
    l_data: Vec<Signal<Local, Bit>>,
    l_idx: Vec<Signal<Local, Bits<32>>>,
    l_exp: Vec<Signal<Local, Bits<8>>>,
    l_fail: Vec<Signal<Local, Bit>>,
    l_bad: Vec<Signal<Local, Bit>>,
    l_ok: Vec<Signal<Local, Bit>>,
    l_badsel: Vec<Signal<Local, Bit>>,
    l_en: Vec<Signal<Local, Bit>>,
    a_pos: Vec<Signal<Local, Bits<32>>>,
    a_data: Vec<Signal<Local, Bit>>,
    a_idx: Vec<Signal<Local, Bits<32>>>,
    a_val: Vec<Signal<Local, Bits<32>>>,
    a_fail: Vec<Signal<Local, Bit>>,
    a_nonfin: Vec<Signal<Local, Bit>>,
    a_ok: Vec<Signal<Local, Bit>>,
    a_nfsel: Vec<Signal<Local, Bit>>,
    err_grp: Signal<Local, Bit>,
    err_code_grp: Signal<Local, Bits<4>>,
    _q: usize,
    _q_end: usize,
    _qa: usize,
    _qa_end: usize,
    _a: usize,
    _nmant: usize,
}

impl<const W: usize, const W2: usize, const M: usize> LoadUnit<W, W2, M> {
    /// The LOAD unit of `cfg`; `W`, `W2` and `M` must be `8·B`, `16·B` and the mantissa width
    /// (`HdlError::Config` otherwise), and the configuration must be one [`TransferParams::for_config`] builds.
    pub fn new(cfg: &EngineConfig) -> Result<Box<Self>, HdlError> {
        let p = TransferParams::for_config(cfg)?;
        p.check_widths(W, W2, M)?;
        for (f, width) in [
            (mem::BUFFER, 2),
            (mem::SRAM_BASE, 16),
            (mem::Y_SIZE, 16),
            (mem::X_SIZE, 16),
            (mem::X_STRIDE, 16),
            (mem::DRAM_ADDR, 32),
            (mem::EXP_ADDR, 32),
        ]
        .into_iter()
        .chain(mem::PADDING.map(|f| (f, 4)))
        {
            assert_eq!(f.width, width, "LOAD field {} changed width: update hdl::load", f.name);
        }
        let (q, qa, a, nmant) = (p.bfp_lanes, p.acc_beat_lanes, p.acc_lanes, p.bfp_lanes * p.block_size);
        let lsb = |f: arch::isa::Field| k::<16>(f.lsb as u64);
        let code = |c: ErrorCode| k::<4>(c as u64);
        Ok(Box::new(LoadUnit {
            clock: Default::default(),
            reset: Default::default(),
            start: Default::default(),
            inst: Default::default(),
            dma_base: Default::default(),
            dma_size: Default::default(),
            done: Default::default(),
            error: Default::default(),
            error_code: Default::default(),
            dma: Default::default(),
            act_wr_en: filled(q),
            wgt_wr_en: filled(q),
            wr_addr: filled(q),
            wr_exp: filled(q),
            wr_mant: filled(nmant),
            acc_wr_en: filled(a),
            acc_wr_addr: filled(a),
            acc_wr_data: filled(a),
            req: LoadSchedule::new(&p),
            con: LoadSchedule::new(&p),
            busy: Default::default(),
            cnt: Default::default(),
            f_buf: Default::default(),
            f_sram: Default::default(),
            f_y: Default::default(),
            f_x: Default::default(),
            f_stride: Default::default(),
            f_pt: Default::default(),
            f_pb: Default::default(),
            f_pl: Default::default(),
            f_pr: Default::default(),
            f_dram: Default::default(),
            f_exp: Default::default(),
            prev_beat: Default::default(),
            cur_exp: Default::default(),
            prev_exp: Default::default(),
            cbase_q: Default::default(),
            k_lsb_buf: lsb(mem::BUFFER),
            k_lsb_sram: lsb(mem::SRAM_BASE),
            k_lsb_y: lsb(mem::Y_SIZE),
            k_lsb_x: lsb(mem::X_SIZE),
            k_lsb_stride: lsb(mem::X_STRIDE),
            k_lsb_dram: lsb(mem::DRAM_ADDR),
            k_lsb_exp: lsb(mem::EXP_ADDR),
            k_lsb_pt: lsb(mem::PAD_TOP),
            k_lsb_pb: lsb(mem::PAD_BOTTOM),
            k_lsb_pl: lsb(mem::PAD_LEFT),
            k_lsb_pr: lsb(mem::PAD_RIGHT),
            k_len_act: k(cfg.act_entries as u64),
            k_len_wgt: k(cfg.wgt_entries as u64),
            k_len_acc: k(cfg.acc_entries as u64),
            k_buf_wgt: k(Buffer::Wgt as u64),
            k_buf_acc: k(Buffer::Acc as u64),
            k_lat: k(p.latency as u64),
            k_latm1: k(p.latency as u64 - 1),
            k_one16: k(1),
            k_zero16: k(0),
            k_max16: k(0xffff),
            k_w: k(W as u64),
            k_b: k(p.beat_bytes as u64),
            k_eblog_bfp: k(log2(p.mantissa_bytes) + 3),
            k_eblog_acc: k(5),
            k_three: k(3),
            k_zero: k(0),
            k_ones_w: Constant::new(Bits::<W>::mask()),
            k_zero_w: Constant::new(Bits::<W>::default()),
            k_max_code: k(p.max_exponent_code as u64),
            k_ff: k(0xff),
            k_zero8: k(0),
            k_code_range: code(ErrorCode::BufferOutOfRange),
            k_code_dma: code(ErrorCode::DmaOutOfBounds),
            k_code_bad: code(ErrorCode::BadExponent),
            k_code_nonfinite: code(ErrorCode::NonFiniteInput),
            k_code_none: k(0),
            d_buf: Default::default(),
            d_sram: Default::default(),
            d_y: Default::default(),
            d_x: Default::default(),
            d_stride: Default::default(),
            d_pt: Default::default(),
            d_pb: Default::default(),
            d_pl: Default::default(),
            d_pr: Default::default(),
            d_dram: Default::default(),
            d_exp: Default::default(),
            e_buf: Default::default(),
            e_y: Default::default(),
            e_x: Default::default(),
            e_stride: Default::default(),
            e_pt: Default::default(),
            e_pb: Default::default(),
            e_pl: Default::default(),
            e_pr: Default::default(),
            e_dram: Default::default(),
            e_exp: Default::default(),
            e_rows: Default::default(),
            e_row: Default::default(),
            empty: Default::default(),
            big: Default::default(),
            prod: Default::default(),
            buf_len: Default::default(),
            oor: Default::default(),
            accept: Default::default(),
            f_acc: Default::default(),
            f_wgt: Default::default(),
            size64: Default::default(),
            slot_ok: Default::default(),
            lo: Default::default(),
            hi: Default::default(),
            row_len: Default::default(),
            base16: Default::default(),
            qlo: Default::default(),
            qhi: Default::default(),
            eblog: Default::default(),
            mmask: Default::default(),
            emask: Default::default(),
            mwin: Default::default(),
            ewin: Default::default(),
            mshift: Default::default(),
            eshift: Default::default(),
            grp: Default::default(),
            gexp: Default::default(),
            grp_m: Default::default(),
            gexp_m: Default::default(),
            l_pos: filled(q),
            l_data: filled(q),
            l_idx: filled(q),
            l_exp: filled(q),
            l_fail: filled(q),
            l_bad: filled(q),
            l_ok: filled(q + 1),
            l_badsel: filled(q + 1),
            l_en: filled(q),
            a_pos: filled(qa),
            a_data: filled(qa),
            a_idx: filled(qa),
            a_val: filled(qa),
            a_fail: filled(qa),
            a_nonfin: filled(qa),
            a_ok: filled(qa + 1),
            a_nfsel: filled(qa + 1),
            err_grp: Default::default(),
            err_code_grp: Default::default(),
            _q: q,
            _q_end: q + 1,
            _qa: qa,
            _qa_end: qa + 1,
            _a: a,
            _nmant: nmant,
        }))
    }
}

impl<const W: usize, const W2: usize, const M: usize> Logic for LoadUnit<W, W2, M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy, cnt, f_buf, f_sram, f_y, f_x, f_stride, f_pt, f_pb, f_pl, f_pr, f_dram, f_exp,
            prev_beat, cur_exp, prev_exp, cbase_q
        );
        self.req.clock.next = self.clock.val();
        self.con.clock.next = self.clock.val();
        // Decode the instruction's fields (positions from arch::isa::mem).
        self.d_buf.next = bit_cast::<2, 256>(self.inst.val() >> self.k_lsb_buf.val());
        self.d_sram.next =
            bit_cast::<32, 256>(bit_cast::<256, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_sram.val())));
        self.d_y.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_y.val()));
        self.d_x.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_x.val()));
        self.d_stride.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_stride.val()));
        self.d_pt.next = bit_cast::<32, 4>(bit_cast::<4, 256>(self.inst.val() >> self.k_lsb_pt.val()));
        self.d_pb.next = bit_cast::<32, 4>(bit_cast::<4, 256>(self.inst.val() >> self.k_lsb_pb.val()));
        self.d_pl.next = bit_cast::<32, 4>(bit_cast::<4, 256>(self.inst.val() >> self.k_lsb_pl.val()));
        self.d_pr.next = bit_cast::<32, 4>(bit_cast::<4, 256>(self.inst.val() >> self.k_lsb_pr.val()));
        self.d_dram.next = bit_cast::<64, 32>(bit_cast::<32, 256>(self.inst.val() >> self.k_lsb_dram.val()));
        self.d_exp.next = bit_cast::<64, 32>(bit_cast::<32, 256>(self.inst.val() >> self.k_lsb_exp.val()));
        // The fields in effect: the instruction's in its start cycle, the latched ones afterwards.
        self.e_buf.next = self.f_buf.q.val();
        self.e_y.next = self.f_y.q.val();
        self.e_x.next = self.f_x.q.val();
        self.e_stride.next = self.f_stride.q.val();
        self.e_pt.next = self.f_pt.q.val();
        self.e_pb.next = self.f_pb.q.val();
        self.e_pl.next = self.f_pl.q.val();
        self.e_pr.next = self.f_pr.q.val();
        self.e_dram.next = self.f_dram.q.val();
        self.e_exp.next = self.f_exp.q.val();
        if self.start.val() {
            self.e_buf.next = self.d_buf.val();
            self.e_y.next = self.d_y.val();
            self.e_x.next = self.d_x.val();
            self.e_stride.next = self.d_stride.val();
            self.e_pt.next = self.d_pt.val();
            self.e_pb.next = self.d_pb.val();
            self.e_pl.next = self.d_pl.val();
            self.e_pr.next = self.d_pr.val();
            self.e_dram.next = self.d_dram.val();
            self.e_exp.next = self.d_exp.val();
            self.f_buf.d.next = self.d_buf.val();
            self.f_sram.d.next = self.d_sram.val();
            self.f_y.d.next = self.d_y.val();
            self.f_x.d.next = self.d_x.val();
            self.f_stride.d.next = self.d_stride.val();
            self.f_pt.d.next = self.d_pt.val();
            self.f_pb.d.next = self.d_pb.val();
            self.f_pl.d.next = self.d_pl.val();
            self.f_pr.d.next = self.d_pr.val();
            self.f_dram.d.next = self.d_dram.val();
            self.f_exp.d.next = self.d_exp.val();
        }
        self.e_rows.next = self.e_pt.val() + self.e_y.val() + self.e_pb.val();
        self.e_row.next = self.e_pl.val() + self.e_x.val() + self.e_pr.val();
        self.empty.next = (self.e_rows.val() == self.k_zero.val()) | (self.e_row.val() == self.k_zero.val());
        // BufferOutOfRange: sram_base + rows·row beyond the buffer (rows and row may exceed 16 bits).
        self.big.next = ((self.e_rows.val() > self.k_max16.val()) & (self.e_row.val() != self.k_zero.val()))
            | ((self.e_row.val() > self.k_max16.val()) & (self.e_rows.val() != self.k_zero.val()));
        self.prod.next = bit_cast::<16, 32>(self.e_rows.val()) * bit_cast::<16, 32>(self.e_row.val());
        self.buf_len.next = self.k_len_act.val();
        if self.e_buf.val() == self.k_buf_wgt.val() {
            self.buf_len.next = self.k_len_wgt.val();
        }
        if self.e_buf.val() == self.k_buf_acc.val() {
            self.buf_len.next = self.k_len_acc.val();
        }
        self.oor.next = self.big.val()
            | (bit_cast::<64, 32>(self.d_sram.val()) + bit_cast::<64, 32>(self.prod.val()) > self.buf_len.val());
        self.accept.next = self.start.val() & !self.reset.val() & !self.oor.val();
        // The two schedules: the requester from S, the consumer from S + L.
        self.size64.next = bit_cast::<64, 32>(self.dma_size.val());
        self.req.go.next = self.accept.val() & !self.empty.val();
        self.req.acc.next = self.e_buf.val() == self.k_buf_acc.val();
        self.req.y_size.next = self.e_y.val();
        self.req.x_size.next = self.e_x.val();
        self.req.x_stride.next = self.e_stride.val();
        self.req.pad_top.next = self.e_pt.val();
        self.req.pad_bottom.next = self.e_pb.val();
        self.req.pad_left.next = self.e_pl.val();
        self.req.pad_right.next = self.e_pr.val();
        self.req.dram_addr.next = self.e_dram.val();
        self.req.exp_addr.next = self.e_exp.val();
        self.req.dma_size.next = self.size64.val();
        self.f_acc.next = self.f_buf.q.val() == self.k_buf_acc.val();
        self.f_wgt.next = self.f_buf.q.val() == self.k_buf_wgt.val();
        self.con.go.next = self.busy.q.val() & (self.cnt.q.val() == self.k_lat.val()) & !self.empty.val();
        self.con.acc.next = self.f_acc.val();
        self.con.y_size.next = self.f_y.q.val();
        self.con.x_size.next = self.f_x.q.val();
        self.con.x_stride.next = self.f_stride.q.val();
        self.con.pad_top.next = self.f_pt.q.val();
        self.con.pad_bottom.next = self.f_pb.q.val();
        self.con.pad_left.next = self.f_pl.q.val();
        self.con.pad_right.next = self.f_pr.q.val();
        self.con.dram_addr.next = self.f_dram.q.val();
        self.con.exp_addr.next = self.f_exp.q.val();
        self.con.dma_size.next = self.size64.val();
        // The consumer's group: realign the two-beat windows to the group's lanes.
        self.slot_ok.next = self.busy.q.val() & self.con.group_slot.val() & !self.reset.val();
        self.lo.next = self.f_pl.q.val();
        self.hi.next = self.f_pl.q.val() + self.f_x.q.val();
        self.row_len.next = self.hi.val() + self.f_pr.q.val();
        self.base16.next = bit_cast::<16, 32>(self.f_sram.q.val() + self.con.row_off.val() + self.con.pos0.val());
        self.eblog.next = self.k_eblog_bfp.val();
        if self.f_acc.val() {
            self.eblog.next = self.k_eblog_acc.val();
        }
        self.mwin.next = (bit_cast::<W2, W>(self.dma.rd_beat_data.val()) << self.k_w.val())
            | bit_cast::<W2, W>(self.prev_beat.q.val());
        self.mshift.next = (self.con.lanes.val() - self.con.lane_shift.val()) << self.eblog.val();
        self.grp.next = bit_cast::<W, W2>(self.mwin.val() >> self.mshift.val());
        self.ewin.next =
            (bit_cast::<W2, W>(self.cur_exp.q.val()) << self.k_w.val()) | bit_cast::<W2, W>(self.prev_exp.q.val());
        self.eshift.next =
            (self.k_b.val() + self.con.pos0.val() - self.f_pl.q.val() - self.cbase_q.q.val()) << self.k_three.val();
        self.gexp.next = bit_cast::<W, W2>(self.ewin.val() >> self.eshift.val());
        // Lanes [qlo, qhi) of the group hold data; the others are padding (zero).
        self.qlo.next = self.k_zero.val();
        if self.lo.val() > self.con.pos0.val() {
            self.qlo.next = self.lo.val() - self.con.pos0.val();
        }
        self.qhi.next = self.k_zero.val();
        if self.hi.val() > self.con.pos0.val() {
            self.qhi.next = self.hi.val() - self.con.pos0.val();
        }
        if !self.con.data_row.val() {
            self.qhi.next = self.k_zero.val();
        }
        self.mmask.next = (self.k_ones_w.val() << (self.qlo.val() << self.eblog.val()))
            & !(self.k_ones_w.val() << (self.qhi.val() << self.eblog.val()));
        self.emask.next = (self.k_ones_w.val() << (self.qlo.val() << self.k_three.val()))
            & !(self.k_ones_w.val() << (self.qhi.val() << self.k_three.val()));
        if self.qhi.val() <= self.qlo.val() {
            self.mmask.next = self.k_zero_w.val();
            self.emask.next = self.k_zero_w.val();
        }
        self.grp_m.next = self.grp.val() & self.mmask.val();
        self.gexp_m.next = self.gexp.val() & self.emask.val();
        // BFP lanes: the first failing entry (exponent outside the window, reserved code, mantissas outside
        // the window, in the golden model's order) and everything after it are not written.
        self.l_ok[0].next = true;
        self.l_badsel[0].next = false;
        for q in 0..self._q {
            self.l_pos[q].next = self.con.pos0.val() + q.to_bits::<32>();
            self.l_data[q].next = self.con.data_row.val()
                & (self.l_pos[q].val() >= self.lo.val())
                & (self.l_pos[q].val() < self.hi.val());
            self.l_idx[q].next = self.l_pos[q].val() - self.lo.val();
            self.l_exp[q].next = self.gexp.val().get_bits::<8>(q * 8);
            self.l_fail[q].next = self.l_data[q].val()
                & ((self.l_idx[q].val() >= self.con.n_exp.val())
                    | (self.l_idx[q].val() >= self.con.n_data.val())
                    | (self.l_exp[q].val() > self.k_max_code.val()));
            self.l_bad[q].next =
                (self.l_exp[q].val() > self.k_max_code.val()) & (self.l_idx[q].val() < self.con.n_exp.val());
            self.l_ok[q + 1].next = self.l_ok[q].val() & !self.l_fail[q].val();
            self.l_badsel[q + 1].next =
                self.l_badsel[q].val() | (self.l_ok[q].val() & self.l_fail[q].val() & self.l_bad[q].val());
            self.l_en[q].next = self.slot_ok.val()
                & !self.f_acc.val()
                & (self.l_pos[q].val() < self.row_len.val())
                & self.l_ok[q + 1].val();
            self.act_wr_en[q].next = self.l_en[q].val() & !self.f_wgt.val();
            self.wgt_wr_en[q].next = self.l_en[q].val() & self.f_wgt.val();
            self.wr_addr[q].next = self.base16.val() + q.to_bits::<16>();
            self.wr_exp[q].next = self.gexp_m.val().get_bits::<8>(q * 8);
        }
        for j in 0..self._nmant {
            self.wr_mant[j].next = signed_cast(self.grp_m.val().get_bits::<M>(j * 8));
        }
        // ACC lanes: outside the window, then NaN/Inf; subnormals and −0 become +0.
        self.a_ok[0].next = true;
        self.a_nfsel[0].next = false;
        for q in 0..self._qa {
            self.a_pos[q].next = self.con.pos0.val() + q.to_bits::<32>();
            self.a_data[q].next = self.con.data_row.val()
                & (self.a_pos[q].val() >= self.lo.val())
                & (self.a_pos[q].val() < self.hi.val());
            self.a_idx[q].next = self.a_pos[q].val() - self.lo.val();
            self.a_val[q].next = self.grp_m.val().get_bits::<32>(q * 32);
            self.a_nonfin[q].next = (self.a_val[q].val().get_bits::<8>(23) == self.k_ff.val())
                & (self.a_idx[q].val() < self.con.n_data.val());
            self.a_fail[q].next = self.a_data[q].val()
                & ((self.a_idx[q].val() >= self.con.n_data.val())
                    | (self.a_val[q].val().get_bits::<8>(23) == self.k_ff.val()));
            self.a_ok[q + 1].next = self.a_ok[q].val() & !self.a_fail[q].val();
            self.a_nfsel[q + 1].next =
                self.a_nfsel[q].val() | (self.a_ok[q].val() & self.a_fail[q].val() & self.a_nonfin[q].val());
            self.acc_wr_en[q].next = self.slot_ok.val()
                & self.f_acc.val()
                & (self.a_pos[q].val() < self.row_len.val())
                & self.a_ok[q + 1].val();
            self.acc_wr_addr[q].next = self.base16.val() + q.to_bits::<16>();
            self.acc_wr_data[q].next = self.a_val[q].val();
            if self.a_val[q].val().get_bits::<8>(23) == self.k_zero8.val() {
                self.acc_wr_data[q].next = 0.into();
            }
        }
        for q in self._qa..self._a {
            self.acc_wr_en[q].next = false;
            self.acc_wr_addr[q].next = self.k_zero16.val();
            self.acc_wr_data[q].next = 0.into();
        }
        // Errors found in the consumer's group.
        self.err_grp.next = false;
        self.err_code_grp.next = self.k_code_dma.val();
        if self.slot_ok.val() {
            // The chains' last entries, through one-value loops (rust-hdl evaluates index expressions from loop
            // variables and literals only).
            if self.f_acc.val() {
                for last in self._qa..self._qa_end {
                    self.err_grp.next = !self.a_ok[last].val();
                    if self.a_nfsel[last].val() {
                        self.err_code_grp.next = self.k_code_nonfinite.val();
                    }
                }
            } else {
                for last in self._q..self._q_end {
                    self.err_grp.next = !self.l_ok[last].val();
                    if self.l_badsel[last].val() {
                        self.err_code_grp.next = self.k_code_bad.val();
                    }
                }
            }
        }
        // The requester's request (none in the cycle of an error).
        self.dma.rd_req_valid.next = self.req.req_valid.val()
            & !self.reset.val()
            & !self.err_grp.val()
            & (self.busy.q.val() | self.accept.val());
        self.dma.rd_req_addr.next = self.dma_base.val() + self.req.req_off.val();
        self.dma.rd_req_len.next = self.req.req_len.val();
        // The schedules stop one cycle after the unit leaves `busy` (error or done); the cycle in between is
        // masked here (no request, no write), which keeps the error path free of combinational loops.
        self.req.halt.next = self.reset.val() | (!self.busy.q.val() & !self.accept.val());
        self.con.halt.next = self.reset.val() | (!self.busy.q.val() & !self.accept.val());
        // Beats: the exponent beat of a chunk, the mantissa or f32 beat of a group.
        if self.busy.q.val() & self.con.exp_slot.val() {
            self.prev_exp.d.next = self.cur_exp.q.val();
            self.cur_exp.d.next = self.dma.rd_beat_data.val();
            self.cbase_q.d.next = self.con.cbase.val();
        }
        if self.slot_ok.val() {
            self.prev_beat.d.next = self.dma.rd_beat_data.val();
        }
        // Handshake: done in E − 1 (the consumer's last slot, or S + L − 1 for an empty window).
        self.error.next = false;
        self.error_code.next = self.k_code_none.val();
        self.done.next = false;
        if self.busy.q.val() & (self.cnt.q.val() <= self.k_lat.val()) {
            self.cnt.d.next = self.cnt.q.val() + self.k_one16.val();
        }
        if self.busy.q.val() & !self.reset.val() {
            if self.err_grp.val() {
                self.error.next = true;
                self.error_code.next = self.err_code_grp.val();
                self.busy.d.next = false;
            } else if (self.con.last.val() & !self.empty.val())
                | (self.empty.val() & (self.cnt.q.val() == self.k_latm1.val()))
            {
                self.done.next = true;
                self.busy.d.next = false;
            }
        }
        if self.start.val() & !self.reset.val() {
            if self.oor.val() {
                self.error.next = true;
                self.error_code.next = self.k_code_range.val();
            } else {
                self.busy.d.next = true;
                self.cnt.d.next = self.k_one16.val();
                if self.empty.val() & (self.k_latm1.val() == self.k_zero16.val()) {
                    self.done.next = true;
                    self.busy.d.next = false;
                }
            }
        }
        if self.reset.val() {
            self.busy.d.next = false;
            self.cnt.d.next = self.k_zero16.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_of_the_presets() {
        let lanes = |cfg: &EngineConfig| {
            let p = TransferParams::for_config(cfg).unwrap();
            (p.bfp_lanes, p.acc_beat_lanes, p.acc_lanes)
        };
        assert_eq!(lanes(&EngineConfig::tiny()), (1, 4, 4));
        assert_eq!(lanes(&EngineConfig::default_16x16()), (4, 16, 16));
        assert_eq!(lanes(&EngineConfig::large_32x32()), (2, 16, 32));
    }

    #[test]
    fn refuses_what_it_does_not_build() {
        let msfp12 = EngineConfig::tiny().with_format(arch::bfp::BfpFormat::MSFP12);
        assert!(matches!(TransferParams::for_config(&msfp12), Err(HdlError::Unsupported(_))));
        let wide_block = EngineConfig::tiny().with_format(arch::bfp::BfpFormat::MXINT8);
        assert!(matches!(TransferParams::for_config(&wide_block), Err(HdlError::Unsupported(_))));
        let no_latency = EngineConfig { dma_latency: 0, ..EngineConfig::tiny() };
        assert!(matches!(TransferParams::for_config(&no_latency), Err(HdlError::Unsupported(_))));
        assert!(matches!(LoadUnit::<512, 1024, 8>::new(&EngineConfig::tiny()), Err(HdlError::Config(_))));
    }
}
