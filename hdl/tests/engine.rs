//! The whole engine (`hdl::engine`) in rust-hdl simulation against the golden model: programs placed in a
//! command ring in host memory, submitted through BAR0 exactly as the driver does (window, ring, DOORBELL),
//! fetched, loaded, computed and stored by the RTL through its three memory channels, and run by
//! `arch::golden::Engine::run_ring` on the same memory image.
//!
//! A program that completes must leave host memory and all four on-chip buffers identical to the golden
//! model's, bit for bit, raise the DONE interrupt in cycle `cycles` after the doorbell, and leave every BAR0
//! counter (cycles, instructions, MACs, bytes, stage busy cycles, saturations) at the golden model's value,
//! and time every instruction (dispatch, start, end: the trace port, `arch::trace`) as the golden model does.
//! A program that fails must stop with the golden model's error code and instruction index, and the engine
//! must run the next program correctly after `CTRL.RESET`. Every cycle the bench also checks that at most one
//! unit drives each port of a buffer (the accumulator-port rule and the compute stage's ownership).

use arch::bfp::BfpTensor;
use arch::golden::{Engine, ExecError, Fault, RunReport};
use arch::isa::{Activation, Buffer, Deps, Gemm, Instruction, Load, Op, Post, Stage, Store, INSTRUCTION_BYTES};
use arch::program::{matmul, Matmul, OutputKind};
use arch::regs;
use arch::EngineConfig;
use hdl::dma::{HostMemory, ReadChannel, WriteChannel};
use hdl::engine::{Engine16x16, EngineTiny};
use hdl::harness::Harness;
use hdl::regfile::COUNTERS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// IOVA of the DMA window (not 0, so every address the engine makes must add `DMA_BASE`).
const DMA_BASE: u64 = 0x3_0000_0000;

/// Runs `f` on a thread with a large stack (building and settling the engine recurses deeply in debug builds).
fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(512 << 20).spawn(f).unwrap().join().unwrap();
}

/// What a program did.
#[derive(Debug)]
enum Outcome {
    /// DONE: the interrupt's cycle counted from the doorbell write's cycle.
    Done { irq_after: u64 },
    /// ERROR with `ERROR_CODE` and `ERROR_PC`.
    Error { code: u32, pc: u32 },
}

/// Stamps out a bench for one engine type (`W`-bit beats): the engine in simulation, with host memory served
/// by the bridge models of `hdl::dma`.
macro_rules! bench {
    ($bench:ident, $engine:ty, $w:literal) => {
        struct $bench {
            h: Harness<$engine>,
            cfg: EngineConfig,
            mem: HostMemory,
            fetch: ReadChannel<$w>,
            load: ReadChannel<$w>,
            store: WriteChannel<$w>,
            t: u64,
            trace: arch::trace::Recorder,
        }

        impl $bench {
            fn new(cfg: &EngineConfig) -> Self {
                let uut = <$engine>::new(cfg).expect("the engine builds");
                let mut h = Harness::new(uut, |e| &mut e.clock).expect("circuit checks");
                h.uut.reset.next = true;
                h.cycle();
                h.uut.reset.next = false;
                let l = cfg.dma_latency;
                $bench {
                    h,
                    cfg: *cfg,
                    mem: HostMemory::default(),
                    fetch: ReadChannel::new(l),
                    load: ReadChannel::new(l),
                    store: WriteChannel::new(),
                    t: 0,
                    trace: Default::default(),
                }
            }

            /// One cycle: beats in, settle, check the buffer ports, requests and writes out, clock.
            fn step(&mut self) {
                self.fetch.drive(&mut self.h.uut.fetch);
                self.load.drive(&mut self.h.uut.load_dma);
                self.h.settle();
                self.check_port_ownership();
                self.trace.record(self.t, self.h.uut.inst_trace.val().to_u64() as u16);
                self.fetch.sample(&mut self.mem, &self.h.uut.fetch);
                self.load.sample(&mut self.mem, &self.h.uut.load_dma);
                self.store.sample(&mut self.mem, &self.h.uut.store_dma);
                self.h.cycle();
                self.t += 1;
            }

            /// At most one unit drives each buffer port in this cycle.
            fn check_port_ownership(&self) {
                let e = &self.h.uut;
                for l in 0..e.acc.rd_en.len() {
                    let readers = [e.gemm.acc_rd_en[l].val(), e.post.acc_rd_en[l].val(), e.store.acc_rd_en[l].val()];
                    let writers = [e.gemm.acc_wr_en[l].val(), e.post.acc_wr_en[l].val(), e.load.acc_wr_en[l].val()];
                    assert!(
                        readers.iter().filter(|x| **x).count() <= 1,
                        "cycle {}: ACC read lane {l} has two users",
                        self.t
                    );
                    assert!(
                        writers.iter().filter(|x| **x).count() <= 1,
                        "cycle {}: ACC write lane {l} has two users",
                        self.t
                    );
                }
                assert!(
                    !(e.gemm.act_rd_en.val() && e.post.act_rd_en[0].val()),
                    "cycle {}: GEMM and POST read ACT together",
                    self.t
                );
            }

            fn write(&mut self, addr: u32, data: u32) {
                self.h.uut.bar.wr_en.next = true;
                self.h.uut.bar.wr_addr.next = (addr as u64).into();
                self.h.uut.bar.wr_data.next = (data as u64).into();
                self.step();
                self.h.uut.bar.wr_en.next = false;
            }

            fn read(&mut self, addr: u32) -> u32 {
                self.h.uut.bar.rd_en.next = true;
                self.h.uut.bar.rd_addr.next = (addr as u64).into();
                self.step();
                self.h.uut.bar.rd_en.next = false;
                self.h.uut.bar.rd_data.val().to_u64() as u32
            }

            fn read64(&mut self, (lo, hi): (u32, u32)) -> u64 {
                let l = self.read(lo) as u64;
                (self.read(hi) as u64) << 32 | l
            }

            /// Points the engine at `window` (the whole host memory), submits ring slots `head .. tail` and runs to
            /// the interrupt.
            fn run(&mut self, window: &[u8], ring: Ring, tail: u32) -> Outcome {
                self.mem = HostMemory::new(DMA_BASE, window.to_vec());
                self.write(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR);
                self.write(regs::DMA_BASE_LO, DMA_BASE as u32);
                self.write(regs::DMA_BASE_HI, (DMA_BASE >> 32) as u32);
                self.write(regs::DMA_SIZE, window.len() as u32);
                self.write(regs::CQ_BASE, ring.base);
                self.write(regs::CQ_SIZE, ring.size);
                assert_eq!(self.read(regs::CQ_HEAD), ring.head, "the ring's head is CQ_HEAD");
                let doorbell = self.t;
                self.write(regs::DOORBELL, tail);
                while !self.h.uut.irq.val() {
                    assert!(self.t < doorbell + 2_000_000, "no interrupt");
                    self.step();
                }
                let irq_after = self.t - doorbell;
                assert!(self.mem.faults.is_empty(), "memory-port protocol violations: {:?}", self.mem.faults);
                let status = self.read(regs::IRQ_STATUS);
                self.write(regs::IRQ_STATUS, status);
                if status & regs::IRQ_ERROR != 0 {
                    Outcome::Error { code: self.read(regs::ERROR_CODE), pc: self.read(regs::ERROR_PC) }
                } else {
                    assert_eq!(status, regs::IRQ_DONE);
                    Outcome::Done { irq_after }
                }
            }

            /// Clears an error (`CTRL.RESET`: the control, the units, the counters and `CQ_HEAD`).
            fn reset(&mut self) {
                self.write(regs::CTRL, regs::CTRL_RESET);
                assert_eq!(self.read(regs::STATUS), regs::STATUS_IDLE);
            }

            /// `golden` with its buffers replaced by the RTL's.
            fn buffers_as_golden(&self, golden: &Engine) -> Engine {
                let mut g = golden.clone();
                let e = &self.h.uut;
                let bs = self.cfg.format.block_size();
                for (rtl, gold) in [(&e.act, &mut g.act), (&e.wgt, &mut g.wgt), (&e.out, &mut g.out)] {
                    for i in 0..rtl.entries() {
                        let (exp, mant) = rtl.peek(i);
                        gold.exponents[i] = exp;
                        for (dst, m) in gold.mantissas[i * bs..(i + 1) * bs].iter_mut().zip(mant) {
                            *dst = m as i8;
                        }
                    }
                }
                for (i, acc) in g.acc.iter_mut().enumerate() {
                    *acc = f32::from_bits(e.acc.peek(i).to_u64() as u32);
                }
                g
            }

            /// Every buffer entry equals the golden model's.
            fn assert_buffers_equal(&self, golden: &Engine, what: &str) {
                let e = &self.h.uut;
                let bs = self.cfg.format.block_size();
                for (name, rtl, gold) in
                    [("ACT", &e.act, &golden.act), ("WGT", &e.wgt, &golden.wgt), ("OUT", &e.out, &golden.out)]
                {
                    for i in 0..rtl.entries() {
                        let (exp, mant) = rtl.peek(i);
                        let want: Vec<i32> = gold.mantissas[i * bs..(i + 1) * bs].iter().map(|&m| m as i32).collect();
                        assert_eq!(
                            (exp, mant),
                            (gold.exponents[i], want),
                            "{what}: {name} entry {i} (exponent code, mantissas)"
                        );
                    }
                }
                for (i, want) in golden.acc.iter().enumerate() {
                    let got = e.acc.peek(i).to_u64() as u32;
                    assert_eq!(got, want.to_bits(), "{what}: ACC entry {i}: {} vs {want}", f32::from_bits(got));
                }
            }

            /// Runs `program` (placed at ring slot `head` of a ring appended to `window`) on the RTL and the golden model
            /// (whose buffers start as `golden`) and compares everything; returns the golden engine afterwards.
            fn run_and_compare(
                &mut self,
                golden: &Engine,
                window: &[u8],
                program: &[Instruction],
                what: &str,
            ) -> Engine {
                let mut window = window.to_vec();
                let head = self.read(regs::CQ_HEAD);
                let (ring, tail) = place_ring(&mut window, program, head);
                let (after, mem, verdict) = golden_run(&self.cfg, golden, &window, ring, tail);
                let outcome = self.run(&window, ring, tail);
                match (&verdict, outcome) {
                    (Ok(report), Outcome::Done { irq_after }) => {
                        let c = report.counters;
                        eprintln!(
                            "{what}: {} instructions, {} cycles, {} MACs, identical",
                            program.len(),
                            c.cycles,
                            c.macs
                        );
                        // Cycle 0 is the cycle after the DOORBELL write; DONE is visible in cycle `cycles`.
                        assert_eq!(irq_after, 1 + c.cycles, "{what}: interrupt cycle");
                        assert!(self.mem.bytes == mem, "{what}: host memory differs from the golden model's");
                        let timeline = self.trace.timeline().unwrap_or_else(|e| panic!("{what}: {e}"));
                        arch::trace::compare(&timeline, &report.timeline)
                            .unwrap_or_else(|e| panic!("{what}: the trace port's timeline: {e}"));
                        self.assert_buffers_equal(&after, what);
                        let want = [
                            c.cycles,
                            c.instructions,
                            c.macs,
                            c.load_bytes,
                            c.store_bytes,
                            c.load_busy,
                            c.compute_busy,
                            c.store_busy,
                        ];
                        for (reg, want) in COUNTERS.into_iter().zip(want) {
                            assert_eq!(self.read64(reg), want, "{what}: counter at {:#x}", reg.0);
                        }
                        assert_eq!(self.read(regs::SATURATIONS) as u64, c.saturations, "{what}: saturations");
                        assert_eq!(self.read(regs::CQ_HEAD), tail, "{what}: CQ_HEAD moves to the tail");
                        // The counters run on from program to program; CTRL.RESET clears them (and keeps the buffers).
                        self.reset();
                    }
                    (Err(e), Outcome::Error { code, pc }) => {
                        assert!(
                            !matches!(e.fault, Fault::Undefined),
                            "{what}: the test built an undefined program: {e}"
                        );
                        let Fault::Engine(want) = e.fault else { unreachable!() };
                        assert_eq!((code, pc), (want as u32, e.pc as u32), "{what}: error code and index ({e})");
                        eprintln!("{what}: {want:?} at instruction {pc}, as the golden model");
                        self.reset();
                        // After an error the buffers hold what the instructions that ran wrote; instructions of other
                        // stages may have run beyond the golden model's stopping point (it stops in program order), so
                        // the next program starts from the engine's buffers.
                        return self.buffers_as_golden(&after);
                    }
                    (v, o) => panic!("{what}: the golden model says {v:?}, the RTL {o:?}"),
                }
                after
            }
        }
    };
}

bench!(Bench, EngineTiny, 128);
bench!(Bench16, Engine16x16<512, 1024, 2048, 8>, 512);

/// A ring placement: byte offset in the window, slots, head slot.
#[derive(Clone, Copy, Debug)]
struct Ring {
    base: u32,
    size: u32,
    head: u32,
}

/// Appends a ring holding `program` (from slot `head`) to `window`; returns the ring and its tail.
fn place_ring(window: &mut Vec<u8>, program: &[Instruction], head: u32) -> (Ring, u32) {
    let size = (program.len() as u32 + head + 1).next_power_of_two();
    let base = window.len().next_multiple_of(64) as u32;
    window.resize(base as usize + size as usize * INSTRUCTION_BYTES, 0);
    for (pc, inst) in program.iter().enumerate() {
        let at = base as usize + ((head as usize + pc) % size as usize) * INSTRUCTION_BYTES;
        for (i, word) in inst.encode().expect("a valid encoding").iter().enumerate() {
            window[at + 8 * i..at + 8 * i + 8].copy_from_slice(&word.to_le_bytes());
        }
    }
    (Ring { base, size, head }, (head + program.len() as u32) % size)
}

/// The golden model's run of the same ring on a copy of `window`: (engine afterwards, memory afterwards,
/// verdict).
fn golden_run(
    cfg: &EngineConfig,
    before: &Engine,
    window: &[u8],
    ring: Ring,
    tail: u32,
) -> (Engine, Vec<u8>, Result<RunReport, ExecError>) {
    let mut engine = before.clone();
    engine.counters = Default::default();
    let mut mem = window.to_vec();
    let verdict = engine.run_ring(&mut mem, ring.base, ring.size, ring.head, tail);
    assert_eq!(engine.config(), cfg);
    (engine, mem, verdict)
}

/// A random BFP tensor of `blocks` blocks: typical values, with a few zero blocks, extreme mantissas and
/// exponents at the ends of the range.
fn random_bfp(cfg: &EngineConfig, rng: &mut ChaCha8Rng, blocks: usize) -> BfpTensor {
    let f = cfg.format;
    let bs = f.block_size();
    let max_code = (1i32 << f.exponent_bits()) - 2;
    let mut exps = Vec::new();
    let mut mants = Vec::new();
    for _ in 0..blocks {
        let code = match rng.gen_range(0..10) {
            0 => max_code - rng.gen_range(0..2),
            1 => rng.gen_range(0..2),
            _ => f.exponent_bias() + rng.gen_range(-6..=6),
        };
        exps.push(code.clamp(0, max_code) as u8);
        let kind = rng.gen_range(0..8);
        for _ in 0..bs {
            mants.push(match kind {
                0 => 0,
                1 => f.min_mantissa_code(),
                _ => rng.gen_range(f.min_mantissa_code()..=f.max_mantissa()),
            } as i8);
        }
    }
    BfpTensor::from_parts(f, exps, mants).expect("valid blocks")
}

/// A random layer program of `arch::program::matmul` (tiled and double-buffered, with its tokens and SYNCs).
fn random_layer(
    cfg: &EngineConfig,
    rng: &mut ChaCha8Rng,
    m: usize,
    kb: usize,
    n: usize,
) -> (Vec<Instruction>, Vec<u8>) {
    let bs = cfg.format.block_size();
    let a = random_bfp(cfg, rng, m * kb);
    let w = random_bfp(cfg, rng, n * kb);
    let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-50.0f32..50.0)).collect();
    let residual = random_bfp(cfg, rng, m * n / bs);
    let activation = [Activation::None, Activation::Relu, Activation::Relu6][rng.gen_range(0..3)];
    let output = if rng.gen_bool(0.5) { OutputKind::Bfp } else { OutputKind::F32 };
    let spec = Matmul {
        a: &a,
        w: &w,
        m,
        n,
        bias: rng.gen_bool(0.7).then_some(&bias[..]),
        residual: (output == OutputKind::Bfp && rng.gen_bool(0.5)).then_some(&residual),
        activation,
        output,
    };
    let p = matmul(cfg, &spec).expect("a layer that fits");
    (p.program, p.window.bytes)
}

/// A program built by hand to use every opcode and the fields the layer programs leave at their defaults: a
/// padded LOAD, a 3×3 convolution as one GEMM (outer, middle and inner reduction loops with their strides,
/// two-level rows), an empty GEMM, POST with bias, ReLU6 and round-away into OUT, POST with residual and
/// ReLU back into ACC, strided STOREs of OUT and ACC, and tokens in both directions through SYNCs.
fn convolution_program(cfg: &EngineConfig, rng: &mut ChaCha8Rng) -> (Vec<Instruction>, Vec<u8>) {
    let mb = cfg.format.mantissa_bytes();
    let (h, w, n) = (4usize, 4usize, 16usize);
    let mut window = vec![0u8; 0x4000];
    let input = random_bfp(cfg, rng, h * w);
    let weights = random_bfp(cfg, rng, n * 9);
    let put = |window: &mut Vec<u8>, at: usize, bytes: &[u8]| window[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut window, 0x0000, &input.pack_mantissas());
    put(&mut window, 0x0800, input.exponent_codes());
    put(&mut window, 0x1000, &weights.pack_mantissas());
    put(&mut window, 0x0a00, weights.exponent_codes());
    let bias: Vec<u8> = (0..n).flat_map(|_| rng.gen_range(-3.0f32..3.0).to_le_bytes()).collect();
    put(&mut window, 0x0c00, &bias);
    assert!(h * w * mb <= 0x800 && 0x1000 + n * 9 * mb <= 0x3000, "the planes do not overlap");
    let deps = |pop_prev, pop_next, push_prev, push_next| Deps { pop_prev, pop_next, push_prev, push_next };
    let none = Deps::NONE;
    let (ph, pw) = (h + 2, w + 2);
    let program = vec![
        // Padded input: (h+2)×(w+2) entries at ACT 0.
        Instruction::new(Op::Load(Load {
            buffer: Buffer::Act,
            sram_base: 0,
            y_size: h as u16,
            x_size: w as u16,
            x_stride: w as u16,
            dram_addr: 0x0000,
            exp_addr: 0x0800,
            pad: [1, 1, 1, 1],
        }))
        .with_deps(none),
        Instruction::new(Op::Load(Load {
            buffer: Buffer::Wgt,
            sram_base: 0,
            y_size: 1,
            x_size: (n * 9) as u16,
            x_stride: 0,
            dram_addr: 0x1000,
            exp_addr: 0x0a00,
            pad: [0; 4],
        }))
        .with_deps(none),
        Instruction::new(Op::Load(Load {
            buffer: Buffer::Acc,
            sram_base: 1000,
            y_size: 1,
            x_size: n as u16,
            x_stride: 0,
            dram_addr: 0x0c00,
            exp_addr: 0,
            pad: [0; 4],
        }))
        .with_deps(deps(false, false, false, true)),
        Instruction::new(Op::Gemm(Gemm { m_outer: 0, ..Gemm::dense(4, 4, 1, true) })).with_deps(none),
        Instruction::new(Op::Gemm(Gemm {
            reset: true,
            act_base: 0,
            wgt_base: 0,
            acc_base: 0,
            m_outer: h as u16,
            m_inner: w as u16,
            n_size: n as u16,
            wgt_n_stride: 9,
            act_m_outer_stride: pw as u16,
            act_m_inner_stride: 1,
            acc_m_outer_stride: (w * n) as u16,
            acc_m_inner_stride: n as u16,
            k_outer: 3,
            k_mid: 3,
            k_inner: 1,
            act_k_outer_stride: pw as u16,
            act_k_mid_stride: 1,
        }))
        .with_deps(deps(true, false, false, false)),
        Instruction::new(Op::Post(Post {
            activation: Activation::Relu6,
            bias: true,
            residual: false,
            to_acc: false,
            round_away: true,
            acc_base: 0,
            out_base: 0,
            m_size: (h * w) as u16,
            n_blocks: 1,
            acc_m_stride: n as u16,
            out_m_stride: 1,
            bias_base: 1000,
            res_base: 0,
            res_m_stride: 0,
        }))
        .with_deps(deps(false, false, false, true)),
        Instruction::new(Op::Post(Post {
            activation: Activation::Relu,
            bias: false,
            residual: true,
            to_acc: true,
            round_away: false,
            acc_base: 0,
            out_base: 0,
            m_size: (h * w) as u16,
            n_blocks: 1,
            acc_m_stride: n as u16,
            out_m_stride: 0,
            bias_base: 0,
            res_base: (pw + 1) as u16,
            res_m_stride: 2,
        }))
        .with_deps(deps(false, false, false, true)),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Out,
            sram_base: 0,
            y_size: h as u16,
            x_size: w as u16,
            x_stride: (w + 1) as u16,
            dram_addr: 0x3000,
            exp_addr: 0x3800,
        }))
        .with_deps(deps(true, false, false, false)),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Acc,
            sram_base: 0,
            y_size: (h * w) as u16,
            x_size: n as u16,
            x_stride: n as u16,
            dram_addr: 0x3a00,
            exp_addr: 0,
        }))
        .with_deps(deps(true, false, true, false)),
        // The compute stage waits for the stores, then lets the load stage overwrite the input.
        Instruction::new(Op::Sync(Stage::Compute)).with_deps(deps(false, true, true, false)),
        Instruction::new(Op::Load(Load {
            buffer: Buffer::Act,
            sram_base: 0,
            y_size: 1,
            x_size: (ph * pw) as u16,
            x_stride: 0,
            dram_addr: 0x1000,
            exp_addr: 0x0a00,
            pad: [0; 4],
        }))
        .with_deps(deps(false, true, false, false)),
        Instruction::new(Op::Sync(Stage::Store)).with_deps(none),
        Instruction::new(Op::Finish),
    ];
    (program, window)
}

/// `tiny` with small buffers, so that layers are cut into several double-buffered tiles and chunks.
fn small_buffers() -> EngineConfig {
    EngineConfig { act_entries: 64, wgt_entries: 64, acc_entries: 256, out_entries: 32, ..EngineConfig::tiny() }
}

#[test]
fn layer_programs_match_the_golden_model_bit_for_bit() {
    big_stack(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        let cfg = small_buffers();
        let mut bench = Bench::new(&cfg);
        let mut golden = Engine::new(cfg);
        for i in 0..8 {
            let (m, kb, n) = (rng.gen_range(1..=12), rng.gen_range(1..=3), 16 * rng.gen_range(1..=2));
            let (program, window) = random_layer(&cfg, &mut rng, m, kb, n);
            golden = bench.run_and_compare(&golden, &window, &program, &format!("layer {i} ({m}x{kb}x{n})"));
        }
    });
}

#[test]
fn a_convolution_uses_every_opcode_and_field_bit_for_bit() {
    big_stack(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let cfg = EngineConfig::tiny();
        let mut bench = Bench::new(&cfg);
        let golden = Engine::new(cfg);
        let (program, window) = convolution_program(&cfg, &mut rng);
        bench.run_and_compare(&golden, &window, &program, "convolution");
    });
}

#[test]
fn the_16x16_engine_runs_a_layer_bit_for_bit() {
    // Wide beats (64 bytes, four BFP entries per beat), a 16×16 array and the wide fetch path.
    big_stack(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(44);
        let cfg = EngineConfig::default_16x16();
        let mut bench = Bench16::new(&cfg);
        let golden = Engine::new(cfg);
        let (program, window) = random_layer(&cfg, &mut rng, 6, 2, 32);
        bench.run_and_compare(&golden, &window, &program, "16x16 layer (6x2x32)");
    });
}

#[test]
fn errors_stop_at_the_golden_index_and_reset_recovers() {
    big_stack(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        let cfg = small_buffers();
        let mut bench = Bench::new(&cfg);
        let mut golden = Engine::new(cfg);
        let (layer, window) = random_layer(&cfg, &mut rng, 4, 1, 16);
        let finish = layer.len() - 1;
        // Each case breaks one instruction of the layer's program, keeping it encodable.
        let mut cases: Vec<(&str, Vec<Instruction>, Vec<u8>)> = Vec::new();
        let mut bad_exponent = window.clone();
        let first_load = layer.iter().find_map(|i| match i.op {
            Op::Load(l) if l.buffer == Buffer::Act => Some(l),
            _ => None,
        });
        bad_exponent[first_load.expect("the layer loads activations").exp_addr as usize] = 0xff;
        cases.push(("a bad exponent code in LOAD", layer.clone(), bad_exponent));
        let mut gemm_oor = layer.clone();
        for inst in gemm_oor.iter_mut() {
            if let Op::Gemm(g) = &mut inst.op {
                g.acc_base = 250; // its rows run past the 256 accumulators
                break;
            }
        }
        cases.push(("a GEMM beyond ACC", gemm_oor, window.clone()));
        let mut post_oor = layer.clone();
        for inst in post_oor.iter_mut() {
            if let Op::Post(p) = &mut inst.op {
                p.out_base = 31;
                break;
            }
        }
        cases.push(("a POST beyond OUT", post_oor, window.clone()));
        let mut store_dma = layer.clone();
        for inst in store_dma.iter_mut() {
            if let Op::Store(s) = &mut inst.op {
                s.dram_addr = 0xffff_0000; // far beyond the window (the ring is appended, but not this far)
                break;
            }
        }
        cases.push(("a STORE beyond the DMA window", store_dma, window.clone()));
        let mut unbalanced = layer.clone();
        unbalanced
            .insert(finish, Instruction::new(Op::Sync(Stage::Load)).with_deps(Deps { push_next: true, ..Deps::NONE }));
        cases.push(("a token left at FINISH", unbalanced, window.clone()));
        for (what, program, broken_window) in cases {
            golden = bench.run_and_compare(&golden, &broken_window, &program, what);
            // The same engine then runs the intact layer correctly.
            golden = bench.run_and_compare(&golden, &window, &layer, &format!("the layer after {what}"));
        }
    });
}
