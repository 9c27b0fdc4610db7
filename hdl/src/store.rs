//! The STORE unit: OUT or ACC → host memory, through the STORE write channel ([`crate::dma`]).
//!
//! It executes one `arch::isa::Store` at a time exactly as `arch::golden` does (bytes written, errors, and
//! what is written before an error) and in exactly `arch::timing::store_cycles` cycles: started in cycle
//! `S`, it raises `done` in cycle `E − 1 = S + L + y_size·row_beats(x_size) − 1`.
//!
//! # Schedule
//! Rows are written in order; each row takes `row_beats(x_size)` **slots**, one per cycle from cycle `S`:
//! * OUT: the row is cut into chunks of `B` entries; a chunk takes one slot per mantissa beat (`Q` entries
//!   read on the `Q` OUT read lanes, packed — each mantissa sign-extended to its 8-bit container — into one
//!   beat of `Q·mantissa_bytes` bytes at `dram_addr + h·mantissa_bytes`), then one slot for its exponent beat
//!   (the chunk's exponent codes, gathered while its mantissas were read, at `exp_addr + h0`): `⌈x/Q⌉ +
//!   ⌈x/B⌉` beats per row.
//! * ACC: one slot per beat of `B/4` accumulators read on the first `B/4` ACC read lanes: `⌈4x/B⌉` beats.
//!
//! A slot's reads are issued in its cycle and its write beat one cycle later (registered reads), so the last
//! beat is written in cycle `S + y·row_beats`; the unit then waits out the write-acknowledge latency `L` the
//! cycle model charges and raises `done` in `S + L + y·row_beats − 1` (the last write is issued by then since
//! `L ≥ 1`). Every beat is written at its exact byte address (any alignment), so no realignment is needed.
//!
//! # Errors (as the golden model)
//! * `BufferOutOfRange` in cycle `S` when `sram_base + y_size·x_size` exceeds the source buffer: nothing is
//!   read or written.
//! * `DmaOutOfBounds`: the golden model writes each entry's mantissas, then its exponent, checking each against
//!   the DMA window. With `e` the first entry (row-major) with either plane outside the window, the unit
//!   writes the mantissas of entries before `e` (and of `e` itself when only its exponent byte is outside) and
//!   the exponents of entries before `e`, cutting its beats at those limits; it raises `error` after the
//!   chunk holding `e` (ACC: after the beat holding `e`) and goes idle without `done`.
//!
//! The two planes must not overlap in host memory (the golden model interleaves the planes' writes entry by
//! entry; the unit writes a chunk's mantissas before its exponents, which only differs if they overlap).

use arch::isa::{mem, Buffer};
use arch::regs::ErrorCode;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::array::filled;
use crate::dma::DmaWritePort;
use crate::load::{k, log2, TransferParams};
use crate::signed::signed_bit_cast_ext;
use crate::HdlError;

/// The STORE unit for `W = 8·B`-bit beats (`W2 = 2·W`, unused but kept for symmetry with
/// [`crate::load::LoadUnit`]) and `M`-bit mantissas.
///
/// Ports: the stage-unit handshake (`start`/`inst`, `done`, `error`/`error_code`), `Q` OUT read lanes
/// (`rd_en[q]`, `rd_addr[q] = rd_addr[0] + q`; data on `rd_exp[q]`, `rd_mant[q·bs + i]` the next cycle), `A`
/// ACC read lanes (the first `B/4` used) and the STORE write channel. Build it with [`StoreUnit::new`].
#[derive(LogicBlock)]
pub struct StoreUnit<const W: usize, const W2: usize, const M: usize> {
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
    /// The STORE write channel.
    pub dma: DmaWritePort<W>,
    /// OUT read enables, one per lane.
    pub rd_en: Vec<Signal<Out, Bit>>,
    /// OUT entry read by each lane.
    pub rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// Exponent code read by each lane (the cycle after the read).
    pub rd_exp: Vec<Signal<In, Bits<8>>>,
    /// Mantissas read: lane `q`, element `i` at `q·bs + i` (the cycle after the read).
    pub rd_mant: Vec<Signal<In, Signed<M>>>,
    /// ACC read enables, one per lane.
    pub acc_rd_en: Vec<Signal<Out, Bit>>,
    /// Accumulator read by each lane.
    pub acc_rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// `f32` bits read by each lane (the cycle after the read).
    pub acc_rd_data: Vec<Signal<In, Bits<32>>>,
    busy: DFF<Bit>,
    walking: DFF<Bit>,
    tail: DFF<Bits<16>>,
    f_acc: DFF<Bit>,
    f_sram: DFF<Bits<32>>,
    f_y: DFF<Bits<32>>,
    f_x: DFF<Bits<32>>,
    f_stride: DFF<Bits<32>>,
    f_dram: DFF<Bits<64>>,
    f_exp: DFF<Bits<64>>,
    yy: DFF<Bits<32>>,
    cb: DFF<Bits<32>>,
    kb: DFF<Bits<32>>,
    h_row: DFF<Bits<64>>,
    row_off: DFF<Bits<32>>,
    exp_acc: DFF<Bits<W>>,
    w_valid: DFF<Bit>,
    w_exp: DFF<Bit>,
    w_mant: DFF<Bit>,
    w_acc: DFF<Bit>,
    w_addr: DFF<Bits<64>>,
    w_len: DFF<Bits<32>>,
    w_eshift: DFF<Bits<32>>,
    w_err: DFF<Bit>,
    k_lsb_buf: Constant<Bits<16>>,
    k_lsb_sram: Constant<Bits<16>>,
    k_lsb_y: Constant<Bits<16>>,
    k_lsb_x: Constant<Bits<16>>,
    k_lsb_stride: Constant<Bits<16>>,
    k_lsb_dram: Constant<Bits<16>>,
    k_lsb_exp: Constant<Bits<16>>,
    k_len_out: Constant<Bits<64>>,
    k_len_acc: Constant<Bits<64>>,
    k_buf_acc: Constant<Bits<2>>,
    k_lat: Constant<Bits<16>>,
    k_one16: Constant<Bits<16>>,
    k_zero16: Constant<Bits<16>>,
    k_q: Constant<Bits<32>>,
    k_qa: Constant<Bits<32>>,
    k_b: Constant<Bits<32>>,
    k_w: Constant<Bits<32>>,
    k_mblog: Constant<Bits<32>>,
    k_two: Constant<Bits<32>>,
    k_three: Constant<Bits<32>>,
    k_one: Constant<Bits<32>>,
    k_zero: Constant<Bits<32>>,
    k_zero64: Constant<Bits<64>>,
    k_8: Constant<Bits<32>>,
    k_32: Constant<Bits<32>>,
    k_top8: Constant<Bits<32>>,
    k_top32: Constant<Bits<32>>,
    k_qbits: Constant<Bits<32>>,
    k_ff_w: Constant<Bits<W>>,
    k_f32_w: Constant<Bits<W>>,
    k_zero_w: Constant<Bits<W>>,
    k_code_range: Constant<Bits<4>>,
    k_code_dma: Constant<Bits<4>>,
    k_code_none: Constant<Bits<4>>,
    d_acc: Signal<Local, Bit>,
    d_sram: Signal<Local, Bits<32>>,
    d_y: Signal<Local, Bits<32>>,
    d_x: Signal<Local, Bits<32>>,
    d_stride: Signal<Local, Bits<32>>,
    d_dram: Signal<Local, Bits<64>>,
    d_exp: Signal<Local, Bits<64>>,
    e_acc: Signal<Local, Bit>,
    e_sram: Signal<Local, Bits<32>>,
    e_y: Signal<Local, Bits<32>>,
    e_x: Signal<Local, Bits<32>>,
    e_stride: Signal<Local, Bits<32>>,
    e_dram: Signal<Local, Bits<64>>,
    e_exp: Signal<Local, Bits<64>>,
    empty: Signal<Local, Bit>,
    prod: Signal<Local, Bits<32>>,
    oor: Signal<Local, Bit>,
    accept: Signal<Local, Bit>,
    on: Signal<Local, Bit>,
    size64: Signal<Local, Bits<64>>,
    elog: Signal<Local, Bits<32>>,
    eoff: Signal<Local, Bits<64>>,
    moff: Signal<Local, Bits<64>>,
    x64: Signal<Local, Bits<64>>,
    rem_e: Signal<Local, Bits<64>>,
    rem_m: Signal<Local, Bits<64>>,
    n_e: Signal<Local, Bits<32>>,
    n_m: Signal<Local, Bits<32>>,
    e_first: Signal<Local, Bits<32>>,
    mant_lim: Signal<Local, Bits<32>>,
    d: Signal<Local, Bits<32>>,
    lo_e: Signal<Local, Bits<32>>,
    is_mant: Signal<Local, Bit>,
    is_exp: Signal<Local, Bit>,
    is_beat: Signal<Local, Bit>,
    cnt: Signal<Local, Bits<32>>,
    row_end: Signal<Local, Bit>,
    is_last: Signal<Local, Bit>,
    slot_err: Signal<Local, Bit>,
    rbase16: Signal<Local, Bits<16>>,
    tail_eff: Signal<Local, Bits<16>>,
    stop: Signal<Local, Bit>,
    off: Signal<Local, Bits<64>>,
    m_chain: Vec<Signal<Local, Bits<W>>>,
    e_chain: Vec<Signal<Local, Bits<W>>>,
    a_chain: Vec<Signal<Local, Bits<W>>>,
    _q: usize,
    _q_end: usize,
    _qa: usize,
    _qa_end: usize,
    _a: usize,
    _nmant: usize,
    _nmant_end: usize,
}

impl<const W: usize, const W2: usize, const M: usize> StoreUnit<W, W2, M> {
    /// The STORE unit of `cfg`; `W`, `W2` and `M` must be `8·B`, `16·B` and the mantissa width
    /// (`HdlError::Config` otherwise), and the configuration one [`TransferParams::for_config`] builds.
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
        ] {
            assert_eq!(f.width, width, "STORE field {} changed width: update hdl::store", f.name);
        }
        let (q, qa, a, nmant) = (p.bfp_lanes, p.acc_beat_lanes, p.acc_lanes, p.bfp_lanes * p.block_size);
        let lsb = |f: arch::isa::Field| k::<16>(f.lsb as u64);
        let code = |c: ErrorCode| k::<4>(c as u64);
        let mut f32_mask = Bits::<W>::default();
        let mut ff_mask = Bits::<W>::default();
        for i in 0..32 {
            f32_mask = f32_mask.replace_bit(i, true);
            ff_mask = ff_mask.replace_bit(i, i < 8);
        }
        Ok(Box::new(StoreUnit {
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
            rd_en: filled(q),
            rd_addr: filled(q),
            rd_exp: filled(q),
            rd_mant: filled(nmant),
            acc_rd_en: filled(a),
            acc_rd_addr: filled(a),
            acc_rd_data: filled(a),
            busy: Default::default(),
            walking: Default::default(),
            tail: Default::default(),
            f_acc: Default::default(),
            f_sram: Default::default(),
            f_y: Default::default(),
            f_x: Default::default(),
            f_stride: Default::default(),
            f_dram: Default::default(),
            f_exp: Default::default(),
            yy: Default::default(),
            cb: Default::default(),
            kb: Default::default(),
            h_row: Default::default(),
            row_off: Default::default(),
            exp_acc: Default::default(),
            w_valid: Default::default(),
            w_exp: Default::default(),
            w_mant: Default::default(),
            w_acc: Default::default(),
            w_addr: Default::default(),
            w_len: Default::default(),
            w_eshift: Default::default(),
            w_err: Default::default(),
            k_lsb_buf: lsb(mem::BUFFER),
            k_lsb_sram: lsb(mem::SRAM_BASE),
            k_lsb_y: lsb(mem::Y_SIZE),
            k_lsb_x: lsb(mem::X_SIZE),
            k_lsb_stride: lsb(mem::X_STRIDE),
            k_lsb_dram: lsb(mem::DRAM_ADDR),
            k_lsb_exp: lsb(mem::EXP_ADDR),
            k_len_out: k(cfg.out_entries as u64),
            k_len_acc: k(cfg.acc_entries as u64),
            k_buf_acc: k(Buffer::Acc as u64),
            k_lat: k(p.latency as u64),
            k_one16: k(1),
            k_zero16: k(0),
            k_q: k(q as u64),
            k_qa: k(qa as u64),
            k_b: k(p.beat_bytes as u64),
            k_w: k(W as u64),
            k_mblog: k(log2(p.mantissa_bytes)),
            k_two: k(2),
            k_three: k(3),
            k_one: k(1),
            k_zero: k(0),
            k_zero64: k(0),
            k_8: k(8),
            k_32: k(32),
            k_top8: k(W as u64 - 8),
            k_top32: k(W as u64 - 32),
            k_qbits: k(8 * q as u64),
            k_ff_w: Constant::new(ff_mask),
            k_f32_w: Constant::new(f32_mask),
            k_zero_w: Constant::new(Bits::<W>::default()),
            k_code_range: code(ErrorCode::BufferOutOfRange),
            k_code_dma: code(ErrorCode::DmaOutOfBounds),
            k_code_none: k(0),
            d_acc: Default::default(),
            d_sram: Default::default(),
            d_y: Default::default(),
            d_x: Default::default(),
            d_stride: Default::default(),
            d_dram: Default::default(),
            d_exp: Default::default(),
            e_acc: Default::default(),
            e_sram: Default::default(),
            e_y: Default::default(),
            e_x: Default::default(),
            e_stride: Default::default(),
            e_dram: Default::default(),
            e_exp: Default::default(),
            empty: Default::default(),
            prod: Default::default(),
            oor: Default::default(),
            accept: Default::default(),
            on: Default::default(),
            size64: Default::default(),
            elog: Default::default(),
            eoff: Default::default(),
            moff: Default::default(),
            x64: Default::default(),
            rem_e: Default::default(),
            rem_m: Default::default(),
            n_e: Default::default(),
            n_m: Default::default(),
            e_first: Default::default(),
            mant_lim: Default::default(),
            d: Default::default(),
            lo_e: Default::default(),
            is_mant: Default::default(),
            is_exp: Default::default(),
            is_beat: Default::default(),
            cnt: Default::default(),
            row_end: Default::default(),
            is_last: Default::default(),
            slot_err: Default::default(),
            rbase16: Default::default(),
            tail_eff: Default::default(),
            stop: Default::default(),
            off: Default::default(),
            m_chain: filled(nmant + 1),
            e_chain: filled(q + 1),
            a_chain: filled(qa + 1),
            _q: q,
            _q_end: q + 1,
            _qa: qa,
            _qa_end: qa + 1,
            _a: a,
            _nmant: nmant,
            _nmant_end: nmant + 1,
        }))
    }
}

impl<const W: usize, const W2: usize, const M: usize> Logic for StoreUnit<W, W2, M> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, busy, walking, tail, f_acc, f_sram, f_y, f_x, f_stride, f_dram, f_exp, yy, cb, kb, h_row,
            row_off, exp_acc, w_valid, w_exp, w_mant, w_acc, w_addr, w_len, w_eshift, w_err
        );
        // Decode (positions from arch::isa::mem); the fields in effect are the instruction's in the start cycle.
        self.d_acc.next = bit_cast::<2, 256>(self.inst.val() >> self.k_lsb_buf.val()) == self.k_buf_acc.val();
        self.d_sram.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_sram.val()));
        self.d_y.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_y.val()));
        self.d_x.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_x.val()));
        self.d_stride.next = bit_cast::<32, 16>(bit_cast::<16, 256>(self.inst.val() >> self.k_lsb_stride.val()));
        self.d_dram.next = bit_cast::<64, 32>(bit_cast::<32, 256>(self.inst.val() >> self.k_lsb_dram.val()));
        self.d_exp.next = bit_cast::<64, 32>(bit_cast::<32, 256>(self.inst.val() >> self.k_lsb_exp.val()));
        self.e_acc.next = self.f_acc.q.val();
        self.e_sram.next = self.f_sram.q.val();
        self.e_y.next = self.f_y.q.val();
        self.e_x.next = self.f_x.q.val();
        self.e_stride.next = self.f_stride.q.val();
        self.e_dram.next = self.f_dram.q.val();
        self.e_exp.next = self.f_exp.q.val();
        if self.start.val() {
            self.e_acc.next = self.d_acc.val();
            self.e_sram.next = self.d_sram.val();
            self.e_y.next = self.d_y.val();
            self.e_x.next = self.d_x.val();
            self.e_stride.next = self.d_stride.val();
            self.e_dram.next = self.d_dram.val();
            self.e_exp.next = self.d_exp.val();
            self.f_acc.d.next = self.d_acc.val();
            self.f_sram.d.next = self.d_sram.val();
            self.f_y.d.next = self.d_y.val();
            self.f_x.d.next = self.d_x.val();
            self.f_stride.d.next = self.d_stride.val();
            self.f_dram.d.next = self.d_dram.val();
            self.f_exp.d.next = self.d_exp.val();
        }
        self.empty.next = (self.e_y.val() == self.k_zero.val()) | (self.e_x.val() == self.k_zero.val());
        // BufferOutOfRange: sram_base + y·x beyond the source buffer (y and x fit 16 bits).
        self.prod.next = bit_cast::<16, 32>(self.e_y.val()) * bit_cast::<16, 32>(self.e_x.val());
        self.oor.next =
            bit_cast::<64, 32>(self.e_sram.val()) + bit_cast::<64, 32>(self.prod.val()) > self.k_len_out.val();
        if self.e_acc.val() {
            self.oor.next =
                bit_cast::<64, 32>(self.e_sram.val()) + bit_cast::<64, 32>(self.prod.val()) > self.k_len_acc.val();
        }
        self.accept.next = self.start.val() & !self.reset.val() & !self.oor.val();
        // An error is raised by the write stage (registered), so it never loops back combinationally.
        self.stop.next = self.reset.val() | (self.w_valid.q.val() & self.busy.q.val() & self.w_err.q.val());
        self.on.next = (self.walking.q.val() | (self.accept.val() & !self.empty.val())) & !self.stop.val();
        // The row's host offsets, and the entries whose planes lie inside the DMA window.
        self.size64.next = bit_cast::<64, 32>(self.dma_size.val());
        self.elog.next = self.k_mblog.val();
        if self.e_acc.val() {
            self.elog.next = self.k_two.val();
        }
        self.eoff.next = self.e_exp.val() + self.h_row.q.val();
        self.moff.next = self.e_dram.val() + (self.h_row.q.val() << self.elog.val());
        self.x64.next = bit_cast::<64, 32>(self.e_x.val());
        self.rem_e.next = self.k_zero64.val();
        if self.size64.val() > self.eoff.val() {
            self.rem_e.next = self.size64.val() - self.eoff.val();
        }
        self.rem_m.next = self.k_zero64.val();
        if self.size64.val() > self.moff.val() {
            self.rem_m.next = (self.size64.val() - self.moff.val()) >> self.elog.val();
        }
        self.n_e.next = self.e_x.val();
        if (self.rem_e.val() < self.x64.val()) & !self.e_acc.val() {
            self.n_e.next = bit_cast::<32, 64>(self.rem_e.val());
        }
        self.n_m.next = self.e_x.val();
        if self.rem_m.val() < self.x64.val() {
            self.n_m.next = bit_cast::<32, 64>(self.rem_m.val());
        }
        // The golden model's first failing entry of the row, and the mantissas it writes before failing.
        self.e_first.next = self.n_m.val();
        self.mant_lim.next = self.n_m.val();
        if self.n_e.val() < self.n_m.val() {
            self.e_first.next = self.n_e.val();
            self.mant_lim.next = self.n_e.val() + self.k_one.val();
        }
        // The current slot. OUT: chunk `cb` of the row, mantissa beat at chunk offset `kb` or, once `kb`
        // reaches the chunk's size, its exponent beat. ACC: the beat of entries from `cb`.
        self.d.next = self.e_x.val() - self.cb.q.val();
        if self.d.val() > self.k_b.val() {
            self.d.next = self.k_b.val();
        }
        self.lo_e.next = self.cb.q.val() + self.kb.q.val();
        self.is_beat.next = self.on.val() & self.e_acc.val();
        self.is_mant.next = self.on.val() & !self.e_acc.val() & (self.kb.q.val() < self.d.val());
        self.is_exp.next = self.on.val() & !self.e_acc.val() & (self.kb.q.val() >= self.d.val());
        self.cnt.next = self.k_zero.val();
        self.off.next = self.moff.val() + (bit_cast::<64, 32>(self.lo_e.val()) << self.elog.val());
        self.slot_err.next = false;
        self.row_end.next = false;
        if self.is_beat.val() {
            if self.n_m.val() > self.cb.q.val() {
                self.cnt.next = self.n_m.val() - self.cb.q.val();
                if self.n_m.val() - self.cb.q.val() > self.k_qa.val() {
                    self.cnt.next = self.k_qa.val();
                }
            }
            self.slot_err.next =
                (self.n_m.val() < self.e_x.val()) & (self.n_m.val() < self.cb.q.val() + self.k_qa.val());
            self.row_end.next = self.cb.q.val() + self.k_qa.val() >= self.e_x.val();
        }
        if self.is_mant.val() & (self.mant_lim.val() > self.lo_e.val()) {
            self.cnt.next = self.mant_lim.val() - self.lo_e.val();
            if self.mant_lim.val() - self.lo_e.val() > self.k_q.val() {
                self.cnt.next = self.k_q.val();
            }
        }
        if self.is_exp.val() {
            if self.e_first.val() > self.cb.q.val() {
                self.cnt.next = self.e_first.val() - self.cb.q.val();
                if self.e_first.val() - self.cb.q.val() > self.d.val() {
                    self.cnt.next = self.d.val();
                }
            }
            self.off.next = self.eoff.val() + bit_cast::<64, 32>(self.cb.q.val());
            self.slot_err.next =
                (self.e_first.val() < self.e_x.val()) & (self.e_first.val() < self.cb.q.val() + self.d.val());
            self.row_end.next = self.cb.q.val() + self.k_b.val() >= self.e_x.val();
        }
        self.is_last.next = self.row_end.val() & (self.yy.q.val() == self.e_y.val() - self.k_one.val());
        // Reads of the slot (registered: the data arrive next cycle, at the write stage).
        self.rbase16.next = bit_cast::<16, 32>(self.e_sram.val() + self.row_off.q.val() + self.lo_e.val());
        for q in 0..self._q {
            self.rd_en[q].next = self.is_mant.val() & (self.lo_e.val() + q.to_bits::<32>() < self.e_x.val());
            self.rd_addr[q].next = self.rbase16.val() + q.to_bits::<16>();
        }
        for q in 0..self._a {
            self.acc_rd_en[q].next = false;
            self.acc_rd_addr[q].next = self.rbase16.val() + q.to_bits::<16>();
        }
        for q in 0..self._qa {
            self.acc_rd_en[q].next = self.is_beat.val() & (self.lo_e.val() + q.to_bits::<32>() < self.e_x.val());
        }
        // The write stage's registers.
        self.w_valid.d.next = self.on.val();
        self.w_exp.d.next = self.is_exp.val();
        self.w_mant.d.next = self.is_mant.val();
        self.w_acc.d.next = self.is_beat.val();
        self.w_addr.d.next = self.dma_base.val() + self.off.val();
        self.w_len.d.next = self.cnt.val() << self.elog.val();
        if self.is_exp.val() {
            self.w_len.d.next = self.cnt.val();
        }
        self.w_eshift.d.next = self.k_w.val() - (self.kb.q.val() << self.k_three.val());
        self.w_err.d.next = self.slot_err.val();
        // Next slot (everything returns to zero when idle).
        self.walking.d.next = self.on.val() & !self.is_last.val();
        if self.on.val() & !self.is_last.val() {
            if self.is_mant.val() {
                self.kb.d.next = self.kb.q.val() + self.k_q.val();
            }
            if self.is_exp.val() {
                self.kb.d.next = self.k_zero.val();
                self.cb.d.next = self.cb.q.val() + self.k_b.val();
            }
            if self.is_beat.val() {
                self.cb.d.next = self.cb.q.val() + self.k_qa.val();
            }
            if self.row_end.val() {
                self.kb.d.next = self.k_zero.val();
                self.cb.d.next = self.k_zero.val();
                self.yy.d.next = self.yy.q.val() + self.k_one.val();
                self.row_off.d.next = self.row_off.q.val() + self.e_x.val();
                self.h_row.d.next = self.h_row.q.val() + bit_cast::<64, 32>(self.e_stride.val());
            }
        } else {
            self.kb.d.next = self.k_zero.val();
            self.cb.d.next = self.k_zero.val();
            self.yy.d.next = self.k_zero.val();
            self.row_off.d.next = self.k_zero.val();
            self.h_row.d.next = self.k_zero64.val();
        }
        // Write stage: pack the read data into the slot's beat.
        self.m_chain[0].next = self.k_zero_w.val();
        for j in 0..self._nmant {
            self.m_chain[j + 1].next = (self.m_chain[j].val() >> self.k_8.val())
                | ((unsigned_cast(signed_bit_cast_ext::<W, M>(self.rd_mant[j].val())) & self.k_ff_w.val())
                    << self.k_top8.val());
        }
        self.e_chain[0].next = self.k_zero_w.val();
        for q in 0..self._q {
            self.e_chain[q + 1].next = (self.e_chain[q].val() >> self.k_8.val())
                | ((unsigned_cast(signed_bit_cast_ext::<W, 8>(signed_cast(self.rd_exp[q].val()))) & self.k_ff_w.val())
                    << self.k_top8.val());
        }
        self.a_chain[0].next = self.k_zero_w.val();
        for q in 0..self._qa {
            self.a_chain[q + 1].next = (self.a_chain[q].val() >> self.k_32.val())
                | ((unsigned_cast(signed_bit_cast_ext::<W, 32>(signed_cast(self.acc_rd_data[q].val())))
                    & self.k_f32_w.val())
                    << self.k_top32.val());
        }
        // The chains' last entries are read through one-value loops (rust-hdl evaluates index expressions from
        // loop variables and literals only).
        if self.w_valid.q.val() & self.w_mant.q.val() {
            for last in self._q..self._q_end {
                self.exp_acc.d.next = (self.exp_acc.q.val() >> self.k_qbits.val()) | self.e_chain[last].val();
            }
        }
        self.dma.wr_valid.next =
            self.w_valid.q.val() & self.busy.q.val() & !self.reset.val() & (self.w_len.q.val() != self.k_zero.val());
        self.dma.wr_addr.next = self.w_addr.q.val();
        self.dma.wr_len.next = self.w_len.q.val();
        for last in self._nmant..self._nmant_end {
            self.dma.wr_data.next = self.m_chain[last].val();
        }
        if self.w_acc.q.val() {
            for last in self._qa..self._qa_end {
                self.dma.wr_data.next = self.a_chain[last].val();
            }
        }
        if self.w_exp.q.val() {
            self.dma.wr_data.next = self.exp_acc.q.val() >> self.w_eshift.q.val();
        }
        // Handshake: `done` L cycles after the last slot (E − 1); errors from the write stage.
        self.error.next = false;
        self.error_code.next = self.k_code_none.val();
        self.done.next = false;
        self.tail_eff.next = self.tail.q.val();
        if self.accept.val() & self.empty.val() {
            self.tail_eff.next = self.k_one16.val();
        }
        if self.tail_eff.val() != self.k_zero16.val() {
            self.tail.d.next = self.tail_eff.val() + self.k_one16.val();
        }
        if self.on.val() & self.is_last.val() {
            self.tail.d.next = self.k_one16.val();
        }
        if self.accept.val() {
            self.busy.d.next = true;
        }
        if self.busy.q.val() | self.accept.val() {
            if self.stop.val() & !self.reset.val() {
                self.error.next = true;
                self.error_code.next = self.k_code_dma.val();
                self.busy.d.next = false;
                self.tail.d.next = self.k_zero16.val();
            } else if self.tail_eff.val() == self.k_lat.val() {
                self.done.next = true;
                self.busy.d.next = false;
                self.tail.d.next = self.k_zero16.val();
            }
        }
        if self.start.val() & !self.reset.val() & self.oor.val() {
            self.error.next = true;
            self.error_code.next = self.k_code_range.val();
        }
        if self.reset.val() {
            self.busy.d.next = false;
            self.walking.d.next = false;
            self.tail.d.next = self.k_zero16.val();
        }
    }
}
