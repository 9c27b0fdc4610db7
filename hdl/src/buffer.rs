//! The engine's on-chip memories: the BFP buffers (ACT, WGT, OUT) and the accumulator buffer (ACC).
//!
//! Every buffer follows the port convention of the engine's stage units: **simple dual-port, registered read**.
//! A unit drives `rd_en[l]`/`rd_addr[l]` in cycle `t` and finds the entry on `rd_*[l]` in cycle `t + 1`; it
//! drives `wr_en[l]`/`wr_addr[l]`/data in cycle `t` and a read issued in `t + 1` sees the write (a read of an
//! address written in the same cycle returns the old entry). Addresses are entry indices, `Bits<16>`.
//!
//! # Lanes and banks
//! A port has several **lanes** (the LOAD/STORE units move `Q = max(1, B / mantissa_bytes)` BFP entries per
//! cycle, the compute stage a row of `A = max(C, B / 4)` accumulators). The lanes of one cycle address
//! consecutive entries (`base + lane`), so the memory is cut into `N` **banks** (`N` = the number of lanes, a
//! power of two) by `address mod N`: entry `a` lives in bank `a mod N` at bank address `a / N`. The lanes of a
//! cycle then fall into distinct banks, whatever `base` is, and each bank is an ordinary simple dual-port RAM
//! with one read and one write port — what FPGA block RAM offers. Lane `l` reaches bank `(base + l) mod N`,
//! which rotates with `base`: each bank takes the lane whose address has its residue (a crossbar of `N × N`
//! address compares, one mux per bank: [`LaneRouter`]), and each read lane takes its data from the bank its
//! address selected one cycle earlier (the residue is registered with the read).
//!
//! # Why these memories map to block RAM
//! [`DualPortRam`] writes the Verilog template synthesis tools infer block RAM from (one `reg` array, one
//! clocked read with enable into a data register, one clocked write with enable), with the bank's exact depth
//! (`entries / N`, not `2^16`). A BFP entry (exponent code + `bs` mantissas) is stored as **planes**: one
//! 8-bit RAM for the exponent codes and one `M`-bit RAM per mantissa position, all addressed alike. A plane
//! is as deep as the bank and 4 to 8 bits wide, the natural aspect ratio of FPGA block RAM (e.g. 4K × 9 or
//! 8K × 4 per 36-kbit block), so the planes waste nothing at the engine's depths, and each plane is a
//! separate, plain memory (no const-generic entry width, no packing logic).

use arch::isa::Buffer;
use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::HdlError;

/// A simple dual-port RAM of `depth` entries with a registered read (one read port, one write port, one
/// clock), written as the Verilog template synthesis infers block RAM from.
///
/// Reads: `rd_en` and `rd_addr` in cycle `t`, `rd_data` from cycle `t + 1` until the next enabled read.
/// Writes: `wr_en`, `wr_addr`, `wr_data` in cycle `t`. A read and a write of the same address in the same
/// cycle return the old entry. Addresses at or beyond `depth` read zero in simulation (undefined in hardware)
/// and are not written.
#[derive(LogicBlock)]
pub struct DualPortRam<D: Synth> {
    /// The clock of both ports.
    pub clock: Signal<In, Clock>,
    /// Read this cycle.
    pub rd_en: Signal<In, Bit>,
    /// The address to read.
    pub rd_addr: Signal<In, Bits<16>>,
    /// The entry read by the last enabled read (one cycle after it).
    pub rd_data: Signal<Out, D>,
    /// Write this cycle.
    pub wr_en: Signal<In, Bit>,
    /// The address to write.
    pub wr_addr: Signal<In, Bits<16>>,
    /// The entry to write.
    pub wr_data: Signal<In, D>,
    _mem: Vec<D>,
}

impl<D: Synth> DualPortRam<D> {
    /// A RAM of `depth` zeroed entries (`1..=65536`).
    pub fn new(depth: usize) -> Self {
        assert!((1..=1 << 16).contains(&depth), "a RAM of {depth} entries is not addressable by 16 bits");
        Self {
            clock: Default::default(),
            rd_en: Default::default(),
            rd_addr: Default::default(),
            rd_data: Default::default(),
            wr_en: Default::default(),
            wr_addr: Default::default(),
            wr_data: Default::default(),
            _mem: vec![D::default(); depth],
        }
    }

    /// Entries.
    pub fn depth(&self) -> usize {
        self._mem.len()
    }

    /// The stored entry at `addr` (for test benches).
    pub fn peek(&self, addr: usize) -> D {
        self._mem[addr]
    }

    /// Overwrites the entry at `addr` (for test benches: preloading a memory).
    pub fn poke(&mut self, addr: usize, value: D) {
        self._mem[addr] = value;
    }
}

impl<D: Synth> Logic for DualPortRam<D> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            if self.rd_en.val() {
                self.rd_data.next = self._mem.get(self.rd_addr.val().index()).copied().unwrap_or_default();
            }
            if self.wr_en.val() {
                if let Some(slot) = self._mem.get_mut(self.wr_addr.val().index()) {
                    *slot = self.wr_data.val();
                }
            }
        }
    }

    fn connect(&mut self) {
        self.rd_data.connect();
    }

    fn hdl(&self) -> Verilog {
        // Index with the bank's own address bits; the bits above are zero by the callers' range checks and are
        // consumed by a waived dummy wire (Verilator's idiom for deliberately unused bits).
        let bits = self._mem.len().next_power_of_two().trailing_zeros();
        let index = |port: &str| if bits == 0 { "0".to_string() } else { format!("{port}[{}:0]", bits - 1) };
        Verilog::Custom(format!(
            "\
reg [{msb}:0] mem [0:{last}];

/* verilator lint_off UNUSEDSIGNAL */
wire unused_address_bits = &{{1'b0, rd_addr, wr_addr}};
/* verilator lint_on UNUSEDSIGNAL */

always @(posedge clock) begin
   if (rd_en) begin
      rd_data <= mem[{rd}];
   end
   if (wr_en) begin
      mem[{wr}] <= wr_data;
   end
end
",
            msb = D::BITS - 1,
            last = self._mem.len() - 1,
            rd = index("rd_addr"),
            wr = index("wr_addr"),
        ))
    }

    fn timing(&self) -> Vec<rust_hdl::core::timing::TimingInfo> {
        vec![rust_hdl::core::timing::TimingInfo {
            name: "ram".into(),
            clock: "clock".into(),
            inputs: vec!["rd_en".into(), "rd_addr".into(), "wr_en".into(), "wr_addr".into(), "wr_data".into()],
            outputs: vec!["rd_data".into()],
        }]
    }
}

/// The address side of a banked memory: routes `rd_lanes` read lanes and `wr_lanes` write lanes (each at most
/// `N`) to `N` banks by `address mod N` (see the module documentation), for [`BankedRam`] and [`BfpBuffer`],
/// which mux their data with `bank_wr_lane` and `lane_rd_bank`.
#[derive(LogicBlock)]
pub struct LaneRouter {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Read enables, one per read lane.
    pub rd_en: Vec<Signal<In, Bit>>,
    /// Read addresses, one per read lane.
    pub rd_addr: Vec<Signal<In, Bits<16>>>,
    /// Write enables, one per write lane.
    pub wr_en: Vec<Signal<In, Bit>>,
    /// Write addresses, one per write lane.
    pub wr_addr: Vec<Signal<In, Bits<16>>>,
    /// Bank `b` reads this cycle.
    pub bank_rd_en: Vec<Signal<Out, Bit>>,
    /// Bank `b`'s read address (`address / N`).
    pub bank_rd_addr: Vec<Signal<Out, Bits<16>>>,
    /// Bank `b` writes this cycle.
    pub bank_wr_en: Vec<Signal<Out, Bit>>,
    /// Bank `b`'s write address.
    pub bank_wr_addr: Vec<Signal<Out, Bits<16>>>,
    /// The write lane whose data bank `b` takes.
    pub bank_wr_lane: Vec<Signal<Out, Bits<16>>>,
    /// The bank whose read data lane `l` takes (the bank its last read went to).
    pub lane_rd_bank: Vec<Signal<Out, Bits<16>>>,
    rd_bank: Vec<DFF<Bits<16>>>,
    k_mask: Constant<Bits<16>>,
    k_shift: Constant<Bits<16>>,
    k_lane: Vec<Constant<Bits<16>>>,
    _banks: usize,
    _rd_lanes: usize,
    _wr_lanes: usize,
}

impl LaneRouter {
    /// A router to `banks` banks (a power of two) from the given numbers of lanes (`1..=banks` each).
    pub fn new(banks: usize, rd_lanes: usize, wr_lanes: usize) -> Self {
        assert!(banks.is_power_of_two(), "{banks} banks");
        assert!((1..=banks).contains(&rd_lanes) && (1..=banks).contains(&wr_lanes), "lanes must be 1..=banks");
        Self {
            clock: Default::default(),
            rd_en: crate::array::filled(rd_lanes),
            rd_addr: crate::array::filled(rd_lanes),
            wr_en: crate::array::filled(wr_lanes),
            wr_addr: crate::array::filled(wr_lanes),
            bank_rd_en: crate::array::filled(banks),
            bank_rd_addr: crate::array::filled(banks),
            bank_wr_en: crate::array::filled(banks),
            bank_wr_addr: crate::array::filled(banks),
            bank_wr_lane: crate::array::filled(banks),
            lane_rd_bank: crate::array::filled(rd_lanes),
            rd_bank: crate::array::filled(rd_lanes),
            k_mask: Constant::new(((banks - 1) as u64).into()),
            k_shift: Constant::new((banks.trailing_zeros() as u64).into()),
            k_lane: (0..wr_lanes).map(|l| Constant::new((l as u64).into())).collect(),
            _banks: banks,
            _rd_lanes: rd_lanes,
            _wr_lanes: wr_lanes,
        }
    }
}

impl Logic for LaneRouter {
    #[hdl_gen]
    fn update(&mut self) {
        // Each bank takes the lane whose address has its residue.
        for b in 0..self._banks {
            self.bank_rd_en[b].next = false;
            self.bank_rd_addr[b].next = self.rd_addr[0].val() >> self.k_shift.val();
            self.bank_wr_en[b].next = false;
            self.bank_wr_addr[b].next = self.wr_addr[0].val() >> self.k_shift.val();
            self.bank_wr_lane[b].next = self.k_lane[0].val();
            for l in 0..self._rd_lanes {
                if self.rd_en[l].val() & ((self.rd_addr[l].val() & self.k_mask.val()).index() == b) {
                    self.bank_rd_en[b].next = true;
                    self.bank_rd_addr[b].next = self.rd_addr[l].val() >> self.k_shift.val();
                }
            }
            for l in 0..self._wr_lanes {
                if self.wr_en[l].val() & ((self.wr_addr[l].val() & self.k_mask.val()).index() == b) {
                    self.bank_wr_en[b].next = true;
                    self.bank_wr_addr[b].next = self.wr_addr[l].val() >> self.k_shift.val();
                    self.bank_wr_lane[b].next = self.k_lane[l].val();
                }
            }
        }
        // Each read lane remembers the bank its read went to.
        for l in 0..self._rd_lanes {
            self.rd_bank[l].clock.next = self.clock.val();
            self.rd_bank[l].d.next = self.rd_bank[l].q.val();
            if self.rd_en[l].val() {
                self.rd_bank[l].d.next = self.rd_addr[l].val() & self.k_mask.val();
            }
            self.lane_rd_bank[l].next = self.rd_bank[l].q.val();
        }
    }
}

/// A memory of `entries` values of type `D` in `N` banks (`address mod N`), with `rd_lanes` read lanes and
/// `wr_lanes` write lanes (each at most `N`); see the module documentation for the lane↔bank rotation.
///
/// The lanes of one cycle must address distinct banks (consecutive addresses do). A read's data is on
/// `rd_data[l]` in the next cycle (later, the bank may have been read by another lane).
#[derive(LogicBlock)]
pub struct BankedRam<D: Synth> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Read enables, one per read lane.
    pub rd_en: Vec<Signal<In, Bit>>,
    /// Read addresses (entry indices), one per read lane.
    pub rd_addr: Vec<Signal<In, Bits<16>>>,
    /// Read data, one per read lane, one cycle after the read.
    pub rd_data: Vec<Signal<Out, D>>,
    /// Write enables, one per write lane.
    pub wr_en: Vec<Signal<In, Bit>>,
    /// Write addresses, one per write lane.
    pub wr_addr: Vec<Signal<In, Bits<16>>>,
    /// Write data, one per write lane.
    pub wr_data: Vec<Signal<In, D>>,
    /// Lanes to banks.
    pub router: LaneRouter,
    /// The banks (bank `b` holds the entries `a` with `a mod N = b`, at `a / N`).
    pub banks: Vec<DualPortRam<D>>,
    k_zero: Constant<D>,
    _banks: usize,
    _rd_lanes: usize,
    _wr_lanes: usize,
}

impl<D: Synth> BankedRam<D> {
    /// `entries` values in `banks` banks (a power of two dividing `entries`), with the given lane counts.
    pub fn new(entries: usize, banks: usize, rd_lanes: usize, wr_lanes: usize) -> Self {
        assert!(entries.is_multiple_of(banks), "{entries} entries in {banks} banks");
        Self {
            clock: Default::default(),
            rd_en: crate::array::filled(rd_lanes),
            rd_addr: crate::array::filled(rd_lanes),
            rd_data: crate::array::filled(rd_lanes),
            wr_en: crate::array::filled(wr_lanes),
            wr_addr: crate::array::filled(wr_lanes),
            wr_data: crate::array::filled(wr_lanes),
            router: LaneRouter::new(banks, rd_lanes, wr_lanes),
            banks: (0..banks).map(|_| DualPortRam::new(entries / banks)).collect(),
            k_zero: Constant::new(D::default()),
            _banks: banks,
            _rd_lanes: rd_lanes,
            _wr_lanes: wr_lanes,
        }
    }

    /// Total entries.
    pub fn entries(&self) -> usize {
        self._banks * self.banks[0].depth()
    }

    /// The stored value of entry `addr` (for test benches).
    pub fn peek(&self, addr: usize) -> D {
        self.banks[addr % self._banks].peek(addr / self._banks)
    }

    /// Overwrites entry `addr` (for test benches).
    pub fn poke(&mut self, addr: usize, value: D) {
        let n = self._banks;
        self.banks[addr % n].poke(addr / n, value);
    }
}

impl<D: Synth> Logic for BankedRam<D> {
    #[hdl_gen]
    fn update(&mut self) {
        self.router.clock.next = self.clock.val();
        for l in 0..self._rd_lanes {
            self.router.rd_en[l].next = self.rd_en[l].val();
            self.router.rd_addr[l].next = self.rd_addr[l].val();
        }
        for l in 0..self._wr_lanes {
            self.router.wr_en[l].next = self.wr_en[l].val();
            self.router.wr_addr[l].next = self.wr_addr[l].val();
        }
        for b in 0..self._banks {
            self.banks[b].clock.next = self.clock.val();
            self.banks[b].rd_en.next = self.router.bank_rd_en[b].val();
            self.banks[b].rd_addr.next = self.router.bank_rd_addr[b].val();
            self.banks[b].wr_en.next = self.router.bank_wr_en[b].val();
            self.banks[b].wr_addr.next = self.router.bank_wr_addr[b].val();
            self.banks[b].wr_data.next = self.wr_data[0].val();
            for l in 0..self._wr_lanes {
                if self.router.bank_wr_lane[b].val().index() == l {
                    self.banks[b].wr_data.next = self.wr_data[l].val();
                }
            }
        }
        for l in 0..self._rd_lanes {
            self.rd_data[l].next = self.k_zero.val();
            for b in 0..self._banks {
                if self.router.lane_rd_bank[l].val().index() == b {
                    self.rd_data[l].next = self.banks[b].rd_data.val();
                }
            }
        }
    }
}

/// The lane and bank counts of the buffers of one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferLanes {
    /// BFP entries per cycle of the LOAD/STORE units, `Q = max(1, B / mantissa_bytes)`.
    pub q: usize,
    /// Accumulators per cycle (a row of the compute stage), `A = max(C, B / 4)`.
    pub a: usize,
}

impl BufferLanes {
    /// The lanes of `cfg`'s buffers.
    pub fn for_config(cfg: &EngineConfig) -> Self {
        let b = cfg.dma_bytes_per_cycle;
        BufferLanes { q: (b / cfg.format.mantissa_bytes()).max(1), a: cfg.cols.max(b / 4) }
    }
}

/// A BFP buffer (ACT, WGT or OUT): entries of one exponent code and `bs` mantissas of `M` bits.
///
/// Lane signals follow the engine's convention: `rd_exp[l]` and `rd_mant[l·bs + i]` (mantissa `i` of read
/// lane `l`), likewise `wr_exp[q]`, `wr_mant[q·bs + i]`. Stored as an exponent plane and `bs` mantissa planes,
/// each cut into `N` banks ([`DualPortRam`]s; mantissa `i` of bank `b` is `mant_banks[i·N + b]`), all
/// addressed by one [`LaneRouter`] (see the module documentation).
#[derive(LogicBlock)]
pub struct BfpBuffer<const M: usize> {
    /// The clock.
    pub clock: Signal<In, Clock>,
    /// Read enables, one per read lane.
    pub rd_en: Vec<Signal<In, Bit>>,
    /// Read addresses, one per read lane.
    pub rd_addr: Vec<Signal<In, Bits<16>>>,
    /// Exponent codes read, one per read lane.
    pub rd_exp: Vec<Signal<Out, Bits<8>>>,
    /// Mantissas read, `bs` per read lane (`l·bs + i`).
    pub rd_mant: Vec<Signal<Out, Signed<M>>>,
    /// Write enables, one per write lane.
    pub wr_en: Vec<Signal<In, Bit>>,
    /// Write addresses, one per write lane.
    pub wr_addr: Vec<Signal<In, Bits<16>>>,
    /// Exponent codes to write, one per write lane.
    pub wr_exp: Vec<Signal<In, Bits<8>>>,
    /// Mantissas to write, `bs` per write lane (`q·bs + i`).
    pub wr_mant: Vec<Signal<In, Signed<M>>>,
    /// Lanes to banks.
    pub router: LaneRouter,
    /// The exponent plane's banks.
    pub exp_banks: Vec<DualPortRam<Bits<8>>>,
    /// The mantissa planes' banks (`i·N + b`).
    pub mant_banks: Vec<DualPortRam<Bits<M>>>,
    k_zero_exp: Constant<Bits<8>>,
    k_zero_mant: Constant<Signed<M>>,
    _bs: usize,
    _bs_end: usize,
    _banks: usize,
    _banks_end: usize,
    _rd_lanes: usize,
    _wr_lanes: usize,
}

impl<const M: usize> BfpBuffer<M> {
    /// A buffer of `entries` blocks of `bs` mantissas in `banks` banks, with the given lane counts.
    pub fn new(entries: usize, bs: usize, banks: usize, rd_lanes: usize, wr_lanes: usize) -> Self {
        assert!(entries.is_multiple_of(banks), "{entries} entries in {banks} banks");
        let depth = entries / banks;
        Self {
            clock: Default::default(),
            rd_en: crate::array::filled(rd_lanes),
            rd_addr: crate::array::filled(rd_lanes),
            rd_exp: crate::array::filled(rd_lanes),
            rd_mant: crate::array::filled(rd_lanes * bs),
            wr_en: crate::array::filled(wr_lanes),
            wr_addr: crate::array::filled(wr_lanes),
            wr_exp: crate::array::filled(wr_lanes),
            wr_mant: crate::array::filled(wr_lanes * bs),
            router: LaneRouter::new(banks, rd_lanes, wr_lanes),
            exp_banks: (0..banks).map(|_| DualPortRam::new(depth)).collect(),
            mant_banks: (0..bs * banks).map(|_| DualPortRam::new(depth)).collect(),
            k_zero_exp: Constant::new(0u64.into()),
            k_zero_mant: Constant::new(Signed::<M>::from(0i64)),
            _bs: bs,
            _bs_end: bs + 1,
            _banks: banks,
            _banks_end: banks + 1,
            _rd_lanes: rd_lanes,
            _wr_lanes: wr_lanes,
        }
    }

    /// `cfg`'s buffer `which` (ACT, WGT or OUT) with the engine's lanes: ACT and WGT have one read lane (the
    /// compute stage) and `Q` write lanes (LOAD); OUT has one write lane (POST) and `Q` read lanes (STORE).
    pub fn for_config(cfg: &EngineConfig, which: Buffer) -> Result<Self, HdlError> {
        if cfg.format.mantissa_bits() as usize != M {
            return Err(HdlError::Config(format!(
                "{}: mantissas of {} bits, not {M}",
                cfg.format,
                cfg.format.mantissa_bits()
            )));
        }
        let q = BufferLanes::for_config(cfg).q;
        let bs = cfg.format.block_size();
        Ok(match which {
            Buffer::Act => Self::new(cfg.act_entries, bs, q, 1, q),
            Buffer::Wgt => Self::new(cfg.wgt_entries, bs, q, 1, q),
            Buffer::Out => Self::new(cfg.out_entries, bs, q, q, 1),
            Buffer::Acc => return Err(HdlError::Config("the accumulator buffer is an AccBuffer".into())),
        })
    }

    /// Entries.
    pub fn entries(&self) -> usize {
        self._banks * self.exp_banks[0].depth()
    }

    /// The exponent code and mantissas of entry `addr` (for test benches).
    pub fn peek(&self, addr: usize) -> (u8, Vec<i32>) {
        let (n, b, a) = (self._banks, addr % self._banks, addr / self._banks);
        let mant = (0..self._bs).map(|i| signed_value::<M>(self.mant_banks[i * n + b].peek(a))).collect();
        (self.exp_banks[b].peek(a).to_u64() as u8, mant)
    }

    /// Overwrites entry `addr` (for test benches).
    pub fn poke(&mut self, addr: usize, exp: u8, mant: &[i32]) {
        let (n, b, a) = (self._banks, addr % self._banks, addr / self._banks);
        self.exp_banks[b].poke(a, (exp as u64).into());
        for (i, &x) in mant.iter().enumerate() {
            self.mant_banks[i * n + b].poke(a, unsigned_cast(Signed::<M>::from(x as i64)));
        }
    }
}

/// The value of an `M`-bit two's complement pattern.
fn signed_value<const M: usize>(bits: Bits<M>) -> i32 {
    let v = bits.to_u64() as i64;
    (if v >= 1 << (M - 1) { v - (1 << M) } else { v }) as i32
}

impl<const M: usize> Logic for BfpBuffer<M> {
    #[hdl_gen]
    fn update(&mut self) {
        self.router.clock.next = self.clock.val();
        for l in 0..self._rd_lanes {
            self.router.rd_en[l].next = self.rd_en[l].val();
            self.router.rd_addr[l].next = self.rd_addr[l].val();
        }
        for l in 0..self._wr_lanes {
            self.router.wr_en[l].next = self.wr_en[l].val();
            self.router.wr_addr[l].next = self.wr_addr[l].val();
        }
        // N and bs enter the index expressions through one-value loops (rust-hdl evaluates index expressions
        // from loop variables and literals only).
        for n in self._banks..self._banks_end {
            for bs in self._bs..self._bs_end {
                for b in 0..self._banks {
                    self.exp_banks[b].clock.next = self.clock.val();
                    self.exp_banks[b].rd_en.next = self.router.bank_rd_en[b].val();
                    self.exp_banks[b].rd_addr.next = self.router.bank_rd_addr[b].val();
                    self.exp_banks[b].wr_en.next = self.router.bank_wr_en[b].val();
                    self.exp_banks[b].wr_addr.next = self.router.bank_wr_addr[b].val();
                    self.exp_banks[b].wr_data.next = self.wr_exp[0].val();
                    for l in 0..self._wr_lanes {
                        if self.router.bank_wr_lane[b].val().index() == l {
                            self.exp_banks[b].wr_data.next = self.wr_exp[l].val();
                        }
                    }
                    for i in 0..self._bs {
                        self.mant_banks[i * n + b].clock.next = self.clock.val();
                        self.mant_banks[i * n + b].rd_en.next = self.router.bank_rd_en[b].val();
                        self.mant_banks[i * n + b].rd_addr.next = self.router.bank_rd_addr[b].val();
                        self.mant_banks[i * n + b].wr_en.next = self.router.bank_wr_en[b].val();
                        self.mant_banks[i * n + b].wr_addr.next = self.router.bank_wr_addr[b].val();
                        self.mant_banks[i * n + b].wr_data.next = unsigned_cast(self.wr_mant[i].val());
                        for l in 0..self._wr_lanes {
                            if self.router.bank_wr_lane[b].val().index() == l {
                                self.mant_banks[i * n + b].wr_data.next = unsigned_cast(self.wr_mant[l * bs + i].val());
                            }
                        }
                    }
                }
                for l in 0..self._rd_lanes {
                    self.rd_exp[l].next = self.k_zero_exp.val();
                    for i in 0..self._bs {
                        self.rd_mant[l * bs + i].next = self.k_zero_mant.val();
                    }
                    for b in 0..self._banks {
                        if self.router.lane_rd_bank[l].val().index() == b {
                            self.rd_exp[l].next = self.exp_banks[b].rd_data.val();
                            for i in 0..self._bs {
                                self.rd_mant[l * bs + i].next = signed_cast(self.mant_banks[i * n + b].rd_data.val());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The accumulator buffer: `f32` bit patterns, `A` read and `A` write lanes, banked by `address mod A`.
pub type AccBuffer = BankedRam<Bits<32>>;

/// `cfg`'s accumulator buffer: `acc_entries` values in `A = max(C, B/4)` banks, `A` read and write lanes.
pub fn acc_buffer(cfg: &EngineConfig) -> AccBuffer {
    let a = BufferLanes::for_config(cfg).a;
    BankedRam::new(cfg.acc_entries, a, a, a)
}
