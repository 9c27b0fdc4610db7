//! The whole engine: the front end (BAR0 register file and control), the four stage units, the four
//! on-chip buffers and the systolic array, wired by the rules of docs/hardware.md ("The engine around the
//! array"). This is what a board's top level instantiates and what the `sim` crate verilates.
//!
//! # Ports
//! * **BAR0**: `bar` ([`crate::regfile::BarPort`]: writes, and reads with their data the cycle after the
//!   strobe) and `irq`, the register map of `arch::regs` ([`crate::regfile`]).
//! * **Trace**: `inst_trace`, the instruction-trace port of `arch::trace` (dispatch, start and end of every
//!   instruction), which the simulators read to time each instruction; a board leaves it unconnected.
//! * **Memory**: three channels of the memory-port protocol ([`crate::dma`]): `fetch` (instruction fetch,
//!   read), `load_dma` (the LOAD unit, read) and `store_dma` (the STORE unit, write). A bridge to AXI4 or
//!   XDMA adapts them; the test benches serve them from [`crate::dma::HostMemory`].
//!
//! # Inside
//! * The control starts at most one instruction per stage; the compute stage's instruction goes to the GEMM
//!   unit or the POST unit by its opcode (bit 0: GEMM is 1, POST is 2; SYNC never leaves the control), and
//!   their `done` and `error` are ORed back (only the started one raises them).
//! * ACT and WGT are written by LOAD (`Q` lanes) and read by the compute stage (one lane: GEMM, or POST for
//!   its residual); OUT is written by POST and read by STORE.
//! * ACC has `A` read and `A` write lanes, owned by the compute stage and borrowed by a LOAD into ACC or a
//!   STORE from it. The control's accumulator-port rule (`arch::timing::uses_acc_port`) guarantees that at
//!   most one unit drives them in any cycle, so each lane is a plain multiplexer selected by the enables
//!   (the whole-engine tests check that exclusivity every cycle).
//! * Every unit is reset by `engine_reset` (power-on reset or `CTRL.RESET`); the buffers keep their
//!   contents across a reset, as the golden model's do across programs.
//! * `SATURATIONS` counts the GEMM and POST units' saturated additions.
//!
//! # Types
//! Arrays are distinct types per size (see [`crate::array`]), so [`engine_top!`](crate::engine_top) stamps
//! out one engine type per GEMM unit: [`Engine4x4`], [`Engine8x8`], [`Engine16x16`], [`Engine32x32`]; their const
//! parameters are the beat width `W = 8·B`, `W2 = 2·W`, the fetch buffer `F` (see
//! [`crate::control::FetchGeometry`]) and the mantissa width `M`. [`build_engine`] picks the type of a
//! preset.

use arch::EngineConfig;
use rust_hdl::prelude::*;

use crate::HdlError;

/// What the test benches and the exporter need of an engine of any size.
pub trait EngineTop: Block {
    /// The configuration it was built for.
    fn config(&self) -> &EngineConfig;
    /// The clock input.
    fn clock_mut(&mut self) -> &mut Signal<In, Clock>;
}

/// The ports of an engine with `W`-bit memory beats, for whatever drives it in simulation (the test benches,
/// `sim`'s rust-hdl device): every stamped engine implements it.
pub trait EnginePorts<const W: usize>: EngineTop {
    /// Power-on reset (synchronous).
    fn reset_mut(&mut self) -> &mut Signal<In, Bit>;
    /// BAR0.
    fn bar_mut(&mut self) -> &mut crate::regfile::BarPort;
    /// The interrupt line.
    fn irq(&self) -> bool;
    /// The instruction-trace port's bits this cycle (`arch::trace`).
    fn trace(&self) -> u16;
    /// The three memory channels: instruction fetch, LOAD's reads, STORE's writes.
    fn channels_mut(
        &mut self,
    ) -> (&mut crate::dma::DmaReadPort<W>, &mut crate::dma::DmaReadPort<W>, &mut crate::dma::DmaWritePort<W>);
}

/// Stamps out the engine type for one GEMM unit type (see the module documentation).
#[macro_export]
macro_rules! engine_top {
    ($(#[$doc:meta])* $name:ident, $gemm:ident) => {
        $(#[$doc])*
        #[derive(LogicBlock)]
        pub struct $name<const W: usize, const W2: usize, const F: usize, const M: usize> {
            /// The clock.
            pub clock: Signal<In, Clock>,
            /// Power-on reset (synchronous): clears the registers and every unit.
            pub reset: Signal<In, Bit>,
            /// BAR0: register writes and reads (data the cycle after the read strobe).
            pub bar: $crate::regfile::BarPort,
            /// Interrupt (level, `IRQ_STATUS & IRQ_ENABLE`).
            pub irq: Signal<Out, Bit>,
            /// Instruction fetch: read channel.
            pub fetch: $crate::dma::DmaReadPort<W>,
            /// The LOAD unit's read channel.
            pub load_dma: $crate::dma::DmaReadPort<W>,
            /// The STORE unit's write channel.
            pub store_dma: $crate::dma::DmaWritePort<W>,
            /// The instruction-trace port (`arch::trace`): for simulators; leave it unconnected on a board.
            /// (Not `trace`: Verilator's models have a `trace` method.)
            pub inst_trace: Signal<Out, Bits<16>>,
            /// Register file and control.
            pub front: $crate::regfile::ControlRegs<W, F>,
            /// The LOAD unit.
            pub load: $crate::load::LoadUnit<W, W2, M>,
            /// The GEMM unit (sequencer and array).
            pub gemm: $crate::gemm::$gemm<M>,
            /// The POST unit.
            pub post: $crate::post::PostUnit<M>,
            /// The STORE unit.
            pub store: $crate::store::StoreUnit<W, W2, M>,
            /// The activation buffer.
            pub act: $crate::buffer::BfpBuffer<M>,
            /// The weight buffer.
            pub wgt: $crate::buffer::BfpBuffer<M>,
            /// The output buffer.
            pub out: $crate::buffer::BfpBuffer<M>,
            /// The accumulator buffer.
            pub acc: $crate::buffer::AccBuffer,
            gemm_sat: Signal<Local, Bits<16>>,
            post_sat: Signal<Local, Bits<16>>,
            _cfg: arch::EngineConfig,
            _q: usize,
            _a: usize,
            _bs: usize,
            _nmant: usize,
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $name<W, W2, F, M> {
            /// The engine of `cfg`, boxed (it is large). Fails when the const parameters or the array type do
            /// not match the configuration, or a unit does not support it.
            pub fn new(cfg: &arch::EngineConfig) -> Result<Box<Self>, $crate::HdlError> {
                use arch::isa::Buffer;
                use $crate::buffer::{BfpBuffer, BufferLanes};
                let lanes = BufferLanes::for_config(cfg);
                let bs = cfg.format.block_size();
                Ok(Box::new(Self {
                    clock: Default::default(),
                    reset: Default::default(),
                    bar: Default::default(),
                    irq: Default::default(),
                    fetch: Default::default(),
                    load_dma: Default::default(),
                    store_dma: Default::default(),
                    inst_trace: Default::default(),
                    front: $crate::regfile::ControlRegs::new(cfg)?,
                    load: *$crate::load::LoadUnit::new(cfg)?,
                    gemm: *$crate::gemm::$gemm::new(cfg)?,
                    post: *$crate::post::PostUnit::new(cfg)?,
                    store: *$crate::store::StoreUnit::new(cfg)?,
                    act: BfpBuffer::for_config(cfg, Buffer::Act)?,
                    wgt: BfpBuffer::for_config(cfg, Buffer::Wgt)?,
                    out: BfpBuffer::for_config(cfg, Buffer::Out)?,
                    acc: $crate::buffer::acc_buffer(cfg),
                    gemm_sat: Default::default(),
                    post_sat: Default::default(),
                    _cfg: *cfg,
                    _q: lanes.q,
                    _a: lanes.a,
                    _bs: bs,
                    _nmant: lanes.q * bs,
                }))
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $crate::engine::EngineTop
            for $name<W, W2, F, M>
        {
            fn config(&self) -> &arch::EngineConfig {
                &self._cfg
            }
            fn clock_mut(&mut self) -> &mut Signal<In, Clock> {
                &mut self.clock
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> $crate::engine::EnginePorts<W>
            for $name<W, W2, F, M>
        {
            fn reset_mut(&mut self) -> &mut Signal<In, Bit> {
                &mut self.reset
            }
            fn bar_mut(&mut self) -> &mut $crate::regfile::BarPort {
                &mut self.bar
            }
            fn irq(&self) -> bool {
                self.irq.val()
            }
            fn trace(&self) -> u16 {
                self.inst_trace.val().to_u64() as u16
            }
            fn channels_mut(
                &mut self,
            ) -> (
                &mut $crate::dma::DmaReadPort<W>,
                &mut $crate::dma::DmaReadPort<W>,
                &mut $crate::dma::DmaWritePort<W>,
            ) {
                (&mut self.fetch, &mut self.load_dma, &mut self.store_dma)
            }
        }

        impl<const W: usize, const W2: usize, const F: usize, const M: usize> Logic for $name<W, W2, F, M> {
            #[hdl_gen]
            fn update(&mut self) {
                // Clocks and resets.
                self.front.clock.next = self.clock.val();
                self.load.clock.next = self.clock.val();
                self.gemm.clock.next = self.clock.val();
                self.post.clock.next = self.clock.val();
                self.store.clock.next = self.clock.val();
                self.act.clock.next = self.clock.val();
                self.wgt.clock.next = self.clock.val();
                self.out.clock.next = self.clock.val();
                self.acc.clock.next = self.clock.val();
                self.front.reset.next = self.reset.val();
                self.load.reset.next = self.front.engine_reset.val();
                self.gemm.reset.next = self.front.engine_reset.val();
                self.post.reset.next = self.front.engine_reset.val();
                self.store.reset.next = self.front.engine_reset.val();

                // BAR0 and the fetch channel.
                $crate::regfile::BarPort::link(&mut self.bar, &mut self.front.bar);
                self.irq.next = self.front.irq.val();
                self.inst_trace.next = self.front.trace.val();
                $crate::dma::DmaReadPort::<W>::link(&mut self.fetch, &mut self.front.fetch);

                // The load stage (0): LOAD.
                self.load.start.next = self.front.stage_start[0].val();
                self.load.inst.next = self.front.stage_inst[0].val();
                self.load.dma_base.next = self.front.dma_base.val();
                self.load.dma_size.next = self.front.dma_size.val();
                self.front.stage_done[0].next = self.load.done.val();
                self.front.stage_error[0].next = self.load.error.val();
                self.front.stage_error_code[0].next = self.load.error_code.val();
                $crate::dma::DmaReadPort::<W>::link(&mut self.load_dma, &mut self.load.dma);

                // The compute stage (1): GEMM (opcode 1) or POST (opcode 2), told apart by opcode bit 0.
                self.gemm.start.next = self.front.stage_start[1].val() & self.front.stage_inst[1].val().get_bit(0);
                self.post.start.next = self.front.stage_start[1].val() & !self.front.stage_inst[1].val().get_bit(0);
                self.gemm.inst.next = self.front.stage_inst[1].val();
                self.post.inst.next = self.front.stage_inst[1].val();
                self.front.stage_done[1].next = self.gemm.done.val() | self.post.done.val();
                self.front.stage_error[1].next = self.gemm.error.val() | self.post.error.val();
                self.front.stage_error_code[1].next = self.post.error_code.val();
                if self.gemm.error.val() {
                    self.front.stage_error_code[1].next = self.gemm.error_code.val();
                }

                // The store stage (2): STORE.
                self.store.start.next = self.front.stage_start[2].val();
                self.store.inst.next = self.front.stage_inst[2].val();
                self.store.dma_base.next = self.front.dma_base.val();
                self.store.dma_size.next = self.front.dma_size.val();
                self.front.stage_done[2].next = self.store.done.val();
                self.front.stage_error[2].next = self.store.error.val();
                self.front.stage_error_code[2].next = self.store.error_code.val();
                $crate::dma::DmaWritePort::<W>::link(&mut self.store_dma, &mut self.store.dma);

                // Saturated additions of this cycle.
                self.gemm_sat.next = bit_cast::<16, 8>(self.gemm.sat_count.val());
                self.post_sat.next = bit_cast::<16, 8>(self.post.sat_count.val());
                self.front.sat_count.next = self.gemm_sat.val() + self.post_sat.val();

                // ACT and WGT: written by LOAD, read by the compute stage (lane 0).
                for l in 0..self._q {
                    self.act.wr_en[l].next = self.load.act_wr_en[l].val();
                    self.act.wr_addr[l].next = self.load.wr_addr[l].val();
                    self.act.wr_exp[l].next = self.load.wr_exp[l].val();
                    self.wgt.wr_en[l].next = self.load.wgt_wr_en[l].val();
                    self.wgt.wr_addr[l].next = self.load.wr_addr[l].val();
                    self.wgt.wr_exp[l].next = self.load.wr_exp[l].val();
                }
                for i in 0..self._nmant {
                    self.act.wr_mant[i].next = self.load.wr_mant[i].val();
                    self.wgt.wr_mant[i].next = self.load.wr_mant[i].val();
                }
                self.act.rd_en[0].next = self.gemm.act_rd_en.val() | self.post.act_rd_en[0].val();
                self.act.rd_addr[0].next = self.gemm.act_rd_addr.val();
                if self.post.act_rd_en[0].val() {
                    self.act.rd_addr[0].next = self.post.act_rd_addr[0].val();
                }
                self.gemm.act_rd_exp.next = self.act.rd_exp[0].val();
                self.post.act_rd_exp[0].next = self.act.rd_exp[0].val();
                self.wgt.rd_en[0].next = self.gemm.wgt_rd_en.val();
                self.wgt.rd_addr[0].next = self.gemm.wgt_rd_addr.val();
                self.gemm.wgt_rd_exp.next = self.wgt.rd_exp[0].val();
                for i in 0..self._bs {
                    self.gemm.act_rd_mant[i].next = self.act.rd_mant[i].val();
                    self.post.act_rd_mant[i].next = self.act.rd_mant[i].val();
                    self.gemm.wgt_rd_mant[i].next = self.wgt.rd_mant[i].val();
                }

                // OUT: written by POST (lane 0), read by STORE.
                self.out.wr_en[0].next = self.post.out_wr_en[0].val();
                self.out.wr_addr[0].next = self.post.out_wr_addr[0].val();
                self.out.wr_exp[0].next = self.post.out_wr_exp[0].val();
                for i in 0..self._bs {
                    self.out.wr_mant[i].next = self.post.out_wr_mant[i].val();
                }
                for l in 0..self._q {
                    self.out.rd_en[l].next = self.store.rd_en[l].val();
                    self.out.rd_addr[l].next = self.store.rd_addr[l].val();
                    self.store.rd_exp[l].next = self.out.rd_exp[l].val();
                }
                for i in 0..self._nmant {
                    self.store.rd_mant[i].next = self.out.rd_mant[i].val();
                }

                // ACC: one port, lane by lane, multiplexed by the enables of whichever unit holds it.
                for l in 0..self._a {
                    self.acc.rd_en[l].next =
                        self.gemm.acc_rd_en[l].val() | self.post.acc_rd_en[l].val() | self.store.acc_rd_en[l].val();
                    self.acc.rd_addr[l].next = self.gemm.acc_rd_addr[l].val();
                    if self.post.acc_rd_en[l].val() {
                        self.acc.rd_addr[l].next = self.post.acc_rd_addr[l].val();
                    }
                    if self.store.acc_rd_en[l].val() {
                        self.acc.rd_addr[l].next = self.store.acc_rd_addr[l].val();
                    }
                    self.gemm.acc_rd_data[l].next = self.acc.rd_data[l].val();
                    self.post.acc_rd_data[l].next = self.acc.rd_data[l].val();
                    self.store.acc_rd_data[l].next = self.acc.rd_data[l].val();
                    self.acc.wr_en[l].next =
                        self.gemm.acc_wr_en[l].val() | self.post.acc_wr_en[l].val() | self.load.acc_wr_en[l].val();
                    self.acc.wr_addr[l].next = self.gemm.acc_wr_addr[l].val();
                    self.acc.wr_data[l].next = self.gemm.acc_wr_data[l].val();
                    if self.post.acc_wr_en[l].val() {
                        self.acc.wr_addr[l].next = self.post.acc_wr_addr[l].val();
                        self.acc.wr_data[l].next = self.post.acc_wr_data[l].val();
                    }
                    if self.load.acc_wr_en[l].val() {
                        self.acc.wr_addr[l].next = self.load.acc_wr_addr[l].val();
                        self.acc.wr_data[l].next = self.load.acc_wr_data[l].val();
                    }
                }
            }
        }
    };
}

engine_top!(
    /// The engine of the `tiny` preset (4×4 array): `Engine4x4<128, 256, 1024, 8>`.
    Engine4x4,
    GemmUnit4x4
);
engine_top!(
    /// The engine of the `8x8` configuration (the `16x16` preset's buffers and memory port around an 8×8
    /// array): `Engine8x8<512, 1024, 2048, 8>`.
    Engine8x8,
    GemmUnit8x8
);
engine_top!(
    /// The engine of the `16x16` preset: `Engine16x16<512, 1024, 2048, 8>`.
    Engine16x16,
    GemmUnit16x16
);
engine_top!(
    /// The engine of the `32x32` preset: `Engine32x32<512, 1024, 2048, 8>`.
    Engine32x32,
    GemmUnit32x32
);

/// The engine type of `tiny`.
pub type EngineTiny = Engine4x4<128, 256, 1024, 8>;

/// The engine for `cfg`, boxed behind [`EngineTop`]: the stamped type whose array, beat width, fetch buffer
/// and mantissa width match it. Configurations outside the whole engine's scope (docs/hardware.md) are
/// refused with [`HdlError::Unsupported`], naming what does not match.
pub fn build_engine(cfg: &EngineConfig) -> Result<Box<dyn EngineTop>, HdlError> {
    let fetch = crate::control::FetchGeometry::for_config(cfg)?;
    let m = cfg.format.mantissa_bits();
    let unsupported = || {
        HdlError::Unsupported(format!(
            "no engine type is stamped for a {}x{} array with {}-bit beats, a {}-bit fetch buffer and {m}-bit \
             mantissas: add an engine_top! invocation (hdl/src/engine.rs) and an arm to build_engine",
            cfg.rows, cfg.cols, fetch.beat_bits, fetch.buffer_bits
        ))
    };
    Ok(match (cfg.rows, cfg.cols, fetch.beat_bits, fetch.buffer_bits, m) {
        (4, 4, 128, 1024, 8) => Engine4x4::<128, 256, 1024, 8>::new(cfg)? as Box<dyn EngineTop>,
        (4, 4, 128, 256, 8) => Engine4x4::<128, 256, 256, 8>::new(cfg)?,
        (8, 8, 512, 2048, 8) => Engine8x8::<512, 1024, 2048, 8>::new(cfg)?,
        (16, 16, 512, 2048, 8) => Engine16x16::<512, 1024, 2048, 8>::new(cfg)?,
        (16, 16, 128, 1024, 8) => Engine16x16::<128, 256, 1024, 8>::new(cfg)?,
        (32, 32, 512, 2048, 8) => Engine32x32::<512, 1024, 2048, 8>::new(cfg)?,
        _ => return Err(unsupported()),
    })
}
