//! The control unit (`hdl::control`) in rust-hdl simulation against the golden model: random valid programs
//! placed in a (wrapping) command ring, fetched through a memory model that follows the memory-port
//! convention, executed by stage *models* that raise `done` at `S + instruction_cycles − 1`. Every
//! instruction's dispatch, start and end cycle must equal `arch::golden::Engine::run_ring`'s timeline, and
//! the counters its counters; error programs must stop with the golden model's `ErrorCode` and index.

use arch::golden::{Engine, ExecError, Fault, RunReport};
use arch::isa::{Buffer, Deps, Gemm, Instruction, Load, Op, Post, Stage, Store, INSTRUCTION_BYTES};
use arch::regs::{self, ErrorCode};
use arch::timing::{instruction_cycles, token_queue};
use arch::EngineConfig;
use hdl::control::{bits_from_bytes, inst_words, Control, FetchGeometry, STAGES};
use hdl::harness::Harness;
use hdl::regfile::{ControlRegs, COUNTERS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;

/// The IOVA of the DMA window in the tests (not 0, so that addresses are offset by it).
const DMA_BASE: u64 = 0x1_2340_0000;
/// Bytes of the DMA window.
const WINDOW: usize = 0x10000;
/// Where the random programs' LOADs read and STOREs write (away from the ring).
const DATA: u32 = 0x8000;

/// A ring placement: base offset, slots, head slot.
#[derive(Clone, Copy, Debug)]
struct Ring {
    base: u32,
    size: u32,
    head: u32,
}

/// What the control did with a program.
#[derive(Debug, Default)]
struct Observed {
    /// Per instruction: (dispatch, start, end).
    timeline: Vec<(Option<u64>, Option<u64>, Option<u64>)>,
    cycles: u64,
    retired: u64,
    stage_busy: [u64; STAGES],
    finished: bool,
    error: Option<(u32, u32)>,
    cq_head: u32,
}

/// A stage model's instruction: when it ends.
#[derive(Clone, Copy, Debug)]
struct Running {
    end: u64,
}

/// A control under test, kept across programs (its `CQ_HEAD` moves on from one to the next).
struct Bench<const W: usize, const F: usize> {
    h: Harness<Control<W, F>>,
    cfg: EngineConfig,
}

impl<const W: usize, const F: usize> Bench<W, F> {
    /// A reset control for `cfg`.
    fn new(cfg: &EngineConfig) -> Self {
        let uut = Box::new(Control::<W, F>::new(cfg).expect("control for the configuration"));
        let mut h = Harness::new(uut, |c| &mut c.clock).expect("circuit checks");
        h.uut.reset.next = true;
        h.cycle();
        h.uut.reset.next = false;
        Bench { h, cfg: *cfg }
    }

    /// Rings the doorbell for the program in `ring` slots `CQ_HEAD .. tail` of `mem` (a window of `window`
    /// bytes) and runs it to FINISH or to an error, recording what the control does. `fail` makes the stage
    /// model of that instruction raise `stage_error` with the code in its start cycle.
    fn run(
        &mut self,
        mem: &[u8],
        window: u32,
        ring: Ring,
        tail: u32,
        program_len: usize,
        fail: Option<(usize, ErrorCode)>,
    ) -> Observed {
        let cfg = self.cfg;
        let h = &mut self.h;
        assert_eq!(h.uut.cq_head.val().to_u64() as u32, ring.head, "the ring's head is the control's CQ_HEAD");
        let b = cfg.dma_bytes_per_cycle;
        let l = cfg.dma_latency as u64;
        h.uut.dma_base.next = DMA_BASE.into();
        h.uut.dma_size.next = (window as u64).into();
        h.uut.cq_base.next = (ring.base as u64).into();
        h.uut.cq_size.next = (ring.size as u64).into();
        h.uut.tail.next = (tail as u64).into();
        h.uut.doorbell.next = true;
        h.cycle();
        h.uut.doorbell.next = false;

        let mut obs = Observed { timeline: vec![(None, None, None); program_len], ..Default::default() };
        // Fetch model: beats (cycle, data) pending.
        let mut beats: std::collections::VecDeque<(u64, Bits<W>)> = Default::default();
        let mut stream_free = 0u64; // first cycle the stream can deliver the next request's beats
                                    // Stage models.
        let mut running: [Option<Running>; STAGES] = [None; STAGES];
        // Program-order indices of each stage's instructions, to match starts with instructions (filled at
        // dispatch: the k-th start of a stage is its k-th dispatched instruction).
        let mut stage_order: [std::collections::VecDeque<usize>; STAGES] = Default::default();
        let mut t = 0u64;
        let limit = 200_000;
        while t < limit {
            // Inputs of cycle t known in advance: beats and the models' `done`.
            let beat = beats.front().filter(|(c, _)| *c == t).map(|(_, d)| *d);
            if beat.is_some() {
                beats.pop_front();
            }
            h.uut.fetch_beat_valid.next = beat.is_some();
            h.uut.fetch_beat_data.next = beat.unwrap_or_default();
            for (s, r) in running.iter().enumerate() {
                h.uut.stage_done[s].next = r.is_some_and(|r| r.end == t + 1);
                h.uut.stage_error[s].next = false;
                h.uut.stage_error_code[s].next = 0.into();
            }
            h.settle();
            // Outputs of cycle t (registered state): fetch requests, dispatches, starts.
            if h.uut.fetch_req_valid.val() {
                let addr = h.uut.fetch_req_addr.val().to_u64();
                let len = h.uut.fetch_req_len.val().to_u64() as usize;
                assert!(addr >= DMA_BASE, "fetch below the window");
                let off = (addr - DMA_BASE) as usize;
                assert!(off + len <= window as usize, "fetch of {len} bytes at {off:#x} beyond the window");
                let first = (t + l).max(stream_free);
                let n = len.div_ceil(b);
                for k in 0..n {
                    let lo = off + k * b;
                    let hi = (lo + b).min(off + len);
                    beats.push_back((first + k as u64, bits_from_bytes::<W>(&mem[lo..hi])));
                }
                stream_free = first + n as u64;
            }
            if h.uut.dispatched.val() {
                let pc = h.uut.dispatch_pc.val().to_u64() as usize;
                obs.timeline[pc].0 = Some(t);
                let words = ring_words(mem, ring, pc);
                if let Ok(inst) = Instruction::decode(&words) {
                    if let Some(s) = inst.stage() {
                        stage_order[s as usize].push_back(pc);
                    }
                }
            }
            let mut new_error = false;
            for s in 0..STAGES {
                let external = h.uut.stage_start[s].val();
                // SYNC runs inside the control: the stage is active without a start pulse to the unit.
                let sync = h.uut.stage_active[s].val() && !external && running[s].is_none();
                if external || sync {
                    let pc = stage_order[s].pop_front().expect("a start matches a dispatched instruction");
                    let inst = Instruction::decode(&inst_words(h.uut.stage_inst[s].val())).expect("valid instruction");
                    assert_eq!(inst, Instruction::decode(&ring_words(mem, ring, pc)).unwrap(), "start of pc {pc}");
                    assert_eq!(sync, matches!(inst.op, Op::Sync(_)), "SYNC runs inside the control");
                    let cost = instruction_cycles(&cfg, &inst);
                    obs.timeline[pc].1 = Some(t);
                    obs.timeline[pc].2 = Some(t + cost);
                    if external {
                        assert!(running[s].is_none(), "stage {s} started while busy");
                        running[s] = Some(Running { end: t + cost });
                        if cost == 1 {
                            h.uut.stage_done[s].next = true;
                        }
                        if let Some((_, code)) = fail.filter(|(fpc, _)| *fpc == pc) {
                            h.uut.stage_error[s].next = true;
                            h.uut.stage_error_code[s].next = (code as u64).into();
                            new_error = true;
                        }
                    }
                }
            }
            h.settle();
            // Outputs that depend on this cycle's inputs.
            if h.uut.busy.val() {
                obs.cycles += 1;
            }
            obs.retired += h.uut.retired.val().to_u64();
            for s in 0..STAGES {
                obs.stage_busy[s] += h.uut.stage_active[s].val() as u64;
            }
            let finished = h.uut.finished.val();
            let error = h.uut.error.val();
            assert!(!new_error || error, "a stage error stops the control in its cycle");
            h.cycle();
            t += 1;
            for r in running.iter_mut() {
                if r.is_some_and(|r| r.end == t) {
                    *r = None;
                }
            }
            if finished {
                obs.finished = true;
                assert!(!h.uut.busy.val(), "busy drops after FINISH");
                break;
            }
            if error {
                assert!(h.uut.errored.val() && !h.uut.busy.val(), "an error stops the control");
                obs.error = Some((h.uut.error_code.val().to_u64() as u32, h.uut.error_pc.val().to_u64() as u32));
                break;
            }
        }
        assert!(t < limit, "the control hung");
        obs.cq_head = h.uut.cq_head.val().to_u64() as u32;
        obs
    }
}

/// The four words in program slot `pc` of the ring.
fn ring_words(mem: &[u8], ring: Ring, pc: usize) -> [u64; 4] {
    let slot = (ring.head as usize + pc) % ring.size as usize;
    let at = ring.base as usize + slot * INSTRUCTION_BYTES;
    std::array::from_fn(|i| u64::from_le_bytes(mem[at + 8 * i..at + 8 * i + 8].try_into().unwrap()))
}

/// Writes `words` (one entry per program instruction) into the ring starting at its head; returns the tail.
fn place(mem: &mut [u8], ring: Ring, words: &[[u64; 4]]) -> u32 {
    for (pc, w) in words.iter().enumerate() {
        let slot = (ring.head as usize + pc) % ring.size as usize;
        let at = ring.base as usize + slot * INSTRUCTION_BYTES;
        for (i, word) in w.iter().enumerate() {
            mem[at + 8 * i..at + 8 * i + 8].copy_from_slice(&word.to_le_bytes());
        }
    }
    ((ring.head as usize + words.len()) % ring.size as usize) as u32
}

/// Random legal dependency flags for an instruction of `stage`, popping only queues that hold tokens pushed
/// earlier in program order (`tokens`, updated).
fn random_deps(rng: &mut ChaCha8Rng, stage: Stage, tokens: &mut [u32; 4]) -> Deps {
    let mut d = Deps::NONE;
    for prev in [true, false] {
        if let Some(q) = token_queue(stage, prev, true) {
            if tokens[q] > 0 && rng.gen_bool(0.5) {
                tokens[q] -= 1;
                if prev {
                    d.pop_prev = true;
                } else {
                    d.pop_next = true;
                }
            }
        }
        if let Some(q) = token_queue(stage, prev, false) {
            if rng.gen_bool(0.4) {
                tokens[q] += 1;
                if prev {
                    d.push_prev = true;
                } else {
                    d.push_next = true;
                }
            }
        }
    }
    d
}

/// A random program the golden model accepts on `tiny`-like configurations: every stage touches its own
/// buffer ranges (no cross-stage conflicts, so any token pattern is race-free), tokens are random but
/// balanced at the end by SYNCs, and some GEMMs are empty (1 cycle).
fn random_program(rng: &mut ChaCha8Rng, len: usize) -> Vec<Instruction> {
    let mut tokens = [0u32; 4];
    let mut program = Vec::new();
    for _ in 0..len {
        let op = match rng.gen_range(0..10) {
            0..=2 => {
                let buffer = [Buffer::Act, Buffer::Wgt, Buffer::Acc][rng.gen_range(0..3)];
                let base = if buffer == Buffer::Acc { 2048 } else { 512 };
                let (y, x) = (rng.gen_range(0..3), rng.gen_range(1..4));
                // No padding: the golden model's LOAD overflows on padded entries in debug builds.
                let pad = [0; 4];
                let exp_addr = if buffer == Buffer::Acc { 0 } else { DATA + 0x1000 };
                Op::Load(Load {
                    buffer,
                    sram_base: base + rng.gen_range(0..64),
                    y_size: y,
                    x_size: x,
                    x_stride: x,
                    dram_addr: DATA,
                    exp_addr,
                    pad,
                })
            }
            3..=4 => {
                let m = if rng.gen_bool(0.2) { 0 } else { rng.gen_range(1..6) };
                Op::Gemm(Gemm::dense(m, rng.gen_range(1..5), 1, rng.gen_bool(0.5)))
            }
            5 => Op::Post(Post {
                m_size: rng.gen_range(0..3),
                n_blocks: 1,
                acc_m_stride: 16,
                out_m_stride: 1,
                bias: rng.gen_bool(0.5),
                bias_base: 64,
                ..Post::default()
            }),
            6..=7 => {
                let buffer = if rng.gen_bool(0.5) { Buffer::Out } else { Buffer::Acc };
                let (base, exp_addr) = if buffer == Buffer::Acc { (1024, 0) } else { (256, DATA + 0x3000) };
                let (y, x) = (rng.gen_range(1..3), rng.gen_range(1..3));
                Op::Store(Store {
                    buffer,
                    sram_base: base,
                    y_size: y,
                    x_size: x,
                    x_stride: x,
                    dram_addr: DATA + 0x2000,
                    exp_addr,
                })
            }
            _ => Op::Sync(Stage::ALL[rng.gen_range(0..3)]),
        };
        let inst = Instruction::new(op);
        let deps = random_deps(rng, inst.stage().unwrap(), &mut tokens);
        program.push(inst.with_deps(deps));
    }
    // Consume the remaining tokens with SYNCs on the popping stages.
    for stage in Stage::ALL {
        for prev in [true, false] {
            if let Some(q) = token_queue(stage, prev, true) {
                for _ in 0..std::mem::take(&mut tokens[q]) {
                    let d = Deps { pop_prev: prev, pop_next: !prev, ..Deps::NONE };
                    program.push(Instruction::new(Op::Sync(stage)).with_deps(d));
                }
            }
        }
    }
    program.push(Instruction::new(Op::Finish));
    program
}

/// The golden model's verdict on the ring in `mem` (a window of `window` bytes).
fn golden(cfg: &EngineConfig, mem: &[u8], window: u32, ring: Ring, tail: u32) -> Result<RunReport, ExecError> {
    let mut m = mem[..window as usize].to_vec();
    Engine::new(*cfg).run_ring(&mut m, ring.base, ring.size, ring.head, tail)
}

/// Checks a completed run against the golden model's report.
fn check_run(obs: &Observed, report: &RunReport, tail: u32, what: &str) {
    assert!(obs.finished, "{what}: did not finish ({:?})", obs.error);
    for (pc, (o, g)) in obs.timeline.iter().zip(&report.timeline).enumerate() {
        let (d, s, e) = *o;
        let fin = pc + 1 == report.timeline.len();
        if fin {
            // FINISH: not in a stage; its start and end are the control's last busy cycle and the next.
            assert_eq!(d, Some(g.dispatch), "{what}: FINISH dispatch");
            assert_eq!(obs.cycles, g.end, "{what}: FINISH end (= cycles)");
            continue;
        }
        assert_eq!((d, s, e), (Some(g.dispatch), Some(g.start), Some(g.end)), "{what}: instruction {pc}");
    }
    let c = &report.counters;
    assert_eq!(obs.cycles, c.cycles, "{what}: cycles");
    assert_eq!(obs.retired, c.instructions, "{what}: instructions");
    assert_eq!(obs.stage_busy, [c.load_busy, c.compute_busy, c.store_busy], "{what}: busy counters");
    assert_eq!(obs.cq_head, tail, "{what}: CQ_HEAD ends at the tail");
}

/// Moves the control's `CQ_HEAD` to `ring.head` with a filler program (SYNCs and a FINISH) in the slots
/// before it, checked against the golden model too.
fn advance_head<const W: usize, const F: usize>(bench: &mut Bench<W, F>, ring: Ring) {
    if ring.head == 0 {
        return;
    }
    let start = Ring { head: 0, ..ring };
    let mut filler = vec![Instruction::new(Op::Sync(Stage::Store)); ring.head as usize - 1];
    filler.push(Instruction::new(Op::Finish));
    let words: Vec<[u64; 4]> = filler.iter().map(|i| i.encode().unwrap()).collect();
    let mut mem = vec![0u8; WINDOW];
    let tail = place(&mut mem, start, &words);
    let report = golden(&bench.cfg, &mem, WINDOW as u32, start, tail).unwrap();
    let obs = bench.run(&mem, WINDOW as u32, start, tail, filler.len(), None);
    check_run(&obs, &report, tail, "filler");
}

/// Places `program` in a ring, runs it on a fresh control (after moving its head) and on the golden model,
/// and compares.
fn run_and_compare<const W: usize, const F: usize>(cfg: &EngineConfig, program: &[Instruction], ring: Ring) {
    let mut bench = Bench::<W, F>::new(cfg);
    advance_head(&mut bench, ring);
    let words: Vec<[u64; 4]> = program.iter().map(|i| i.encode().unwrap()).collect();
    let mut mem = vec![0u8; WINDOW];
    let tail = place(&mut mem, ring, &words);
    let report = golden(cfg, &mem, WINDOW as u32, ring, tail).expect("the golden model accepts the program");
    let obs = bench.run(&mem, WINDOW as u32, ring, tail, program.len(), None);
    check_run(&obs, &report, tail, &format!("{ring:?}, {} instructions", program.len()));
}

fn geometry(cfg: &EngineConfig) -> (usize, usize) {
    let g = FetchGeometry::for_config(cfg).unwrap();
    (g.beat_bits, g.buffer_bits)
}

#[test]
fn the_documented_program_runs_on_the_documented_cycles() {
    // docs/architecture.md "Worked examples" (tiny): the golden model's timeline, which the doc restates.
    let cfg = EngineConfig::tiny();
    assert_eq!(geometry(&cfg), (128, 1024));
    let load = |buffer, y, x| Load {
        buffer,
        sram_base: 0,
        y_size: y,
        x_size: x,
        x_stride: x,
        dram_addr: 0,
        exp_addr: 0x4000,
        pad: [0; 4],
    };
    let program = [
        Instruction::new(Op::Load(load(Buffer::Wgt, 16, 2))),
        Instruction::new(Op::Load(load(Buffer::Act, 8, 2))).with_deps(Deps { push_next: true, ..Deps::NONE }),
        Instruction::new(Op::Gemm(Gemm::dense(8, 16, 2, true))).with_deps(Deps { pop_prev: true, ..Deps::NONE }),
        Instruction::new(Op::Post(Post {
            m_size: 8,
            n_blocks: 1,
            acc_m_stride: 16,
            out_m_stride: 1,
            ..Post::default()
        }))
        .with_deps(Deps { push_next: true, ..Deps::NONE }),
        Instruction::new(Op::Store(Store {
            buffer: Buffer::Out,
            sram_base: 0,
            y_size: 8,
            x_size: 1,
            x_stride: 1,
            dram_addr: 0x5000,
            exp_addr: 0x6000,
        }))
        .with_deps(Deps { pop_prev: true, ..Deps::NONE }),
        Instruction::new(Op::Finish),
    ];
    run_and_compare::<128, 1024>(&cfg, &program, Ring { base: 0x1000, size: 16, head: 0 });
}

#[test]
fn random_programs_match_the_golden_timeline() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for i in 0..40 {
        let len = rng.gen_range(6..40);
        let program = random_program(&mut rng, len);
        // Every other program wraps around the ring's end.
        let head = if i % 2 == 1 { 64 - rng.gen_range(1..8) } else { 0 };
        let ring = Ring { base: 0x40 * rng.gen_range(0..8), size: 64, head };
        run_and_compare::<128, 1024>(&cfg, &program, ring);
    }
}

#[test]
fn short_queues_and_other_bursts_match_the_golden_timeline() {
    // Queue depth 2 stalls dispatch on the queue-slot rule; bursts of 8 and 2 change the fetch.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let cfg = EngineConfig { queue_depth: 2, ..EngineConfig::tiny() };
    for _ in 0..3 {
        let len = rng.gen_range(8..20);
        let program = random_program(&mut rng, len);
        run_and_compare::<128, 1024>(&cfg, &program, Ring { base: 0, size: 32, head: 0 });
    }
    let cfg = EngineConfig { fetch_burst: 8, ..EngineConfig::tiny() };
    assert_eq!(geometry(&cfg), (128, 2048));
    let program = random_program(&mut rng, 14);
    run_and_compare::<128, 2048>(&cfg, &program, Ring { base: 0, size: 32, head: 0 });
    let cfg = EngineConfig { fetch_burst: 2, queue_depth: 4, ..EngineConfig::tiny() };
    assert_eq!(geometry(&cfg), (128, 512));
    let program = random_program(&mut rng, 10);
    run_and_compare::<128, 512>(&cfg, &program, Ring { base: 0, size: 16, head: 0 });
}

#[test]
fn wide_beats_of_the_16x16_preset() {
    // 64-byte beats carry two instructions each; an odd burst ends in half a beat.
    let cfg = EngineConfig::default_16x16();
    assert_eq!(geometry(&cfg), (512, 2048));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let program = random_program(&mut rng, 11);
    run_and_compare::<512, 2048>(&cfg, &program, Ring { base: 0x20, size: 32, head: 0 });
}

/// Runs `words` in `ring` (a window of `window` bytes) on a fresh control and on the golden model; both must
/// fail with the same code at the same index, and the control must stop.
fn expect_same_error(cfg: &EngineConfig, words: &[[u64; 4]], ring: Ring, window: u32, tail: Option<u32>, what: &str) {
    let mut mem = vec![0u8; WINDOW];
    let placed = place(&mut mem, ring, words);
    let tail = tail.unwrap_or(placed);
    let e = golden(cfg, &mem, window, ring, tail).expect_err(what);
    let Fault::Engine(code) = e.fault else { panic!("{what}: golden fault {:?}", e.fault) };
    let mut bench = Bench::<128, 1024>::new(cfg);
    let obs = bench.run(&mem, window, ring, tail, words.len().max(1), None);
    assert_eq!(obs.error, Some((code as u32, e.pc as u32)), "{what}: golden says {e}");
}

/// A valid random program (of at least `min` instructions before FINISH), encoded.
fn random_words(rng: &mut ChaCha8Rng, min: usize) -> Vec<[u64; 4]> {
    random_program(rng, min).iter().map(|i| i.encode().unwrap()).collect()
}

#[test]
fn decode_errors_stop_at_the_golden_index() {
    use arch::isa::{header, mem, post, sync};
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let ring = Ring { base: 0x200, size: 32, head: 0 };
    let set = |w: &mut [u64; 4], f: arch::isa::Field, v: u64| {
        w[(f.lsb / 64) as usize] &= !(f.max() << (f.lsb % 64));
        w[(f.lsb / 64) as usize] |= v << (f.lsb % 64);
    };
    let load = |buffer| {
        let exp_addr = if buffer == Buffer::Acc { 0 } else { DATA };
        let l =
            Load { buffer, sram_base: 0, y_size: 1, x_size: 1, x_stride: 1, dram_addr: DATA, exp_addr, pad: [0; 4] };
        Instruction::new(Op::Load(l)).encode().unwrap()
    };
    let store = Instruction::new(Op::Store(Store {
        buffer: Buffer::Out,
        sram_base: 256,
        y_size: 1,
        x_size: 1,
        x_stride: 1,
        dram_addr: DATA,
        exp_addr: DATA + 64,
    }))
    .encode()
    .unwrap();
    for round in 0..3 {
        let words = random_words(&mut rng, 10);
        // Unknown opcodes.
        for op in [6u64, 9, 15] {
            let mut w = words.clone();
            let k = rng.gen_range(0..w.len() - 1);
            set(&mut w[k], header::OPCODE, op);
            expect_same_error(&cfg, &w, ring, WINDOW as u32, None, &format!("opcode {op} at {k}"));
        }
        // A random reserved bit (outside every field of `arch::isa::layout`) of a random instruction.
        for _ in 0..4 {
            let mut w = words.clone();
            let k = rng.gen_range(0..w.len());
            let op = Instruction::decode(&w[k]).unwrap().opcode();
            let used = |bit: u32| arch::isa::layout(op).iter().any(|f| (f.lsb..f.lsb + f.width).contains(&bit));
            let reserved: Vec<u32> = (0..256).filter(|&b| !used(b)).collect();
            let bit = reserved[rng.gen_range(0..reserved.len())];
            w[k][(bit / 64) as usize] |= 1 << (bit % 64);
            expect_same_error(&cfg, &w, ring, WINDOW as u32, None, &format!("reserved bit {bit} of {op:?} at {k}"));
        }
        // Bad fields and flags.
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = load(Buffer::Wgt);
        set(&mut w[k], mem::BUFFER, Buffer::Out as u64);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, &format!("LOAD into OUT ({round})"));
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = load(Buffer::Acc);
        set(&mut w[k], mem::EXP_ADDR, 4);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "LOAD ACC with exp_addr");
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = store;
        set(&mut w[k], mem::BUFFER, Buffer::Wgt as u64);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "STORE from WGT");
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = store;
        set(&mut w[k], header::PUSH_NEXT, 1);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "STORE push_next");
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = load(Buffer::Act);
        set(&mut w[k], header::POP_PREV, 1);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "LOAD pop_prev");
        let mut w = words.clone();
        let last = w.len() - 1;
        set(&mut w[last], header::PUSH_PREV, 1);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "FINISH with a flag");
        let mut w = words.clone();
        let k = rng.gen_range(0..w.len() - 1);
        w[k] = Instruction::new(Op::Post(Post::default())).encode().unwrap();
        set(&mut w[k], post::ACTIVATION, 3);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "POST activation 3");
        let mut w = words.clone();
        w[k] = Instruction::new(Op::Sync(Stage::Load)).encode().unwrap();
        set(&mut w[k], sync::STAGE, 3);
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "SYNC stage 3");
        // FINISH early, and no FINISH at the end: reported at the last index.
        let mut w = words.clone();
        w[k] = Instruction::new(Op::Finish).encode().unwrap();
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "FINISH before the end");
        let mut w = words.clone();
        *w.last_mut().unwrap() = Instruction::new(Op::Sync(Stage::Store)).encode().unwrap();
        expect_same_error(&cfg, &w, ring, WINDOW as u32, None, "no FINISH");
    }
}

#[test]
fn token_errors_stop_at_the_golden_index() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let ring = Ring { base: 0, size: 64, head: 0 };
    for _ in 0..4 {
        let program = random_program(&mut rng, 12);
        let k = rng.gen_range(0..program.len() - 1);
        // A pop of a queue with nothing pushed before it: insert a compute SYNC popping load→compute after
        // draining... simplest: a pop at the very front, or a pop of a queue the prefix never pushed.
        let mut under = program.clone();
        let q = token_queue(Stage::Compute, true, true).unwrap();
        let prefix_pushes = under[..k]
            .iter()
            .filter(|i| i.stage().and_then(|s| token_queue(s, false, false)) == Some(q) && i.deps.push_next)
            .count();
        let prefix_pops = under[..k].iter().filter(|i| i.stage() == Some(Stage::Compute) && i.deps.pop_prev).count();
        let extra = prefix_pushes - prefix_pops + 1;
        for _ in 0..extra {
            under
                .insert(k, Instruction::new(Op::Sync(Stage::Compute)).with_deps(Deps { pop_prev: true, ..Deps::NONE }));
        }
        let words: Vec<_> = under.iter().map(|i| i.encode().unwrap()).collect();
        expect_same_error(&cfg, &words, ring, WINDOW as u32, None, "underflow");
        // A push never popped: unbalanced at FINISH.
        let mut unbalanced = program.clone();
        unbalanced.insert(k, Instruction::new(Op::Sync(Stage::Load)).with_deps(Deps { push_next: true, ..Deps::NONE }));
        let words: Vec<_> = unbalanced.iter().map(|i| i.encode().unwrap()).collect();
        expect_same_error(&cfg, &words, ring, WINDOW as u32, None, "unbalanced");
    }
}

#[test]
fn ring_errors_stop_at_the_golden_index() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let words = random_words(&mut rng, 8);
    // Unaligned base, a size that is not a power of two, a tail beyond the ring, an empty ring.
    expect_same_error(&cfg, &words, Ring { base: 0x210, size: 32, head: 0 }, WINDOW as u32, None, "unaligned base");
    expect_same_error(&cfg, &words, Ring { base: 0x200, size: 48, head: 0 }, WINDOW as u32, None, "size 48");
    expect_same_error(&cfg, &words, Ring { base: 0x200, size: 32, head: 0 }, WINDOW as u32, Some(40), "tail 40");
    expect_same_error(&cfg, &words, Ring { base: 0x200, size: 32, head: 0 }, WINDOW as u32, Some(0), "empty");
    // The ring runs out of the DMA window at slot 5.
    let ring = Ring { base: 0x1000, size: 32, head: 0 };
    expect_same_error(&cfg, &words, ring, 0x1000 + 5 * 32 + 16, None, "slot 5 outside the window");
}

#[test]
fn unit_errors_stop_at_their_instruction() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let ring = Ring { base: 0, size: 64, head: 0 };
    for code in [ErrorCode::BufferOutOfRange, ErrorCode::DmaOutOfBounds, ErrorCode::BadExponent] {
        let program = random_program(&mut rng, 12);
        let k = program.iter().rposition(|i| matches!(i.op, Op::Load(_) | Op::Gemm(_) | Op::Store(_))).unwrap();
        let words: Vec<_> = program.iter().map(|i| i.encode().unwrap()).collect();
        let mut mem = vec![0u8; WINDOW];
        let tail = place(&mut mem, ring, &words);
        let mut bench = Bench::<128, 1024>::new(&cfg);
        let obs = bench.run(&mem, WINDOW as u32, ring, tail, words.len(), Some((k, code)));
        assert_eq!(obs.error, Some((code as u32, k as u32)));
        assert!(!obs.finished);
    }
}

/// The register file wired to the control ([`ControlRegs`]), driven through BAR0 with the same memory and
/// stage models as [`Bench`].
struct Front {
    h: Harness<ControlRegs<128, 1024>>,
    cfg: EngineConfig,
    mem: Vec<u8>,
    beats: std::collections::VecDeque<(u64, Bits<128>)>,
    stream_free: u64,
    ends: [Option<u64>; STAGES],
    t: u64,
    /// Saturations the compute model reports per cycle while it runs.
    sat_per_cycle: u64,
    sat_total: u64,
}

impl Front {
    fn new(cfg: &EngineConfig) -> Self {
        let uut = Box::new(ControlRegs::<128, 1024>::new(cfg).unwrap());
        let mut h = Harness::new(uut, |c| &mut c.clock).expect("circuit checks");
        h.uut.reset.next = true;
        h.cycle();
        h.uut.reset.next = false;
        Front {
            h,
            cfg: *cfg,
            mem: vec![0; WINDOW],
            beats: Default::default(),
            stream_free: 0,
            ends: [None; STAGES],
            t: 0,
            sat_per_cycle: 0,
            sat_total: 0,
        }
    }

    /// One cycle of the models around the BAR access already set up on the inputs.
    fn step(&mut self) {
        let (b, l, t) = (self.cfg.dma_bytes_per_cycle, self.cfg.dma_latency as u64, self.t);
        let h = &mut self.h;
        let beat = self.beats.front().filter(|(c, _)| *c == t).map(|(_, d)| *d);
        if beat.is_some() {
            self.beats.pop_front();
        }
        h.uut.fetch.rd_beat_valid.next = beat.is_some();
        h.uut.fetch.rd_beat_data.next = beat.unwrap_or_default();
        for s in 0..STAGES {
            h.uut.stage_done[s].next = self.ends[s] == Some(t + 1);
            h.uut.stage_error[s].next = false;
            h.uut.stage_error_code[s].next = 0.into();
        }
        let computing = self.ends[Stage::Compute as usize].is_some();
        h.uut.sat_count.next = if computing { self.sat_per_cycle.into() } else { 0.into() };
        self.sat_total += if computing { self.sat_per_cycle } else { 0 };
        h.settle();
        if h.uut.fetch.rd_req_valid.val() {
            let off = (h.uut.fetch.rd_req_addr.val().to_u64() - DMA_BASE) as usize;
            let len = h.uut.fetch.rd_req_len.val().to_u64() as usize;
            let first = (t + l).max(self.stream_free);
            let n = len.div_ceil(b);
            for k in 0..n {
                let lo = off + k * b;
                self.beats
                    .push_back((first + k as u64, bits_from_bytes::<128>(&self.mem[lo..(lo + b).min(off + len)])));
            }
            self.stream_free = first + n as u64;
        }
        for s in 0..STAGES {
            if h.uut.stage_start[s].val() {
                let inst = Instruction::decode(&inst_words(h.uut.stage_inst[s].val())).unwrap();
                let cost = instruction_cycles(&self.cfg, &inst);
                self.ends[s] = Some(t + cost);
                if cost == 1 {
                    h.uut.stage_done[s].next = true;
                }
            }
        }
        h.cycle();
        self.t += 1;
        for e in self.ends.iter_mut() {
            if *e == Some(self.t) {
                *e = None;
            }
        }
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

    fn read64(&mut self, lo: u32, hi: u32) -> u64 {
        let l = self.read(lo) as u64;
        (self.read(hi) as u64) << 32 | l
    }

    /// Programs the window and the ring and rings the doorbell; returns the cycle of the DOORBELL write.
    fn submit(&mut self, ring: Ring, tail: u32) -> u64 {
        self.write(regs::DMA_BASE_LO, DMA_BASE as u32);
        self.write(regs::DMA_BASE_HI, (DMA_BASE >> 32) as u32);
        self.write(regs::DMA_SIZE, WINDOW as u32);
        self.write(regs::CQ_BASE, ring.base);
        self.write(regs::CQ_SIZE, ring.size);
        let at = self.t;
        self.write(regs::DOORBELL, tail);
        at
    }

    /// Runs until the interrupt line rises; returns the cycle it is seen high.
    fn wait_irq(&mut self) -> u64 {
        while !self.h.uut.irq.val() {
            assert!(self.t < 1_000_000, "no interrupt");
            self.step();
        }
        self.t
    }
}

#[test]
fn registers_count_what_the_golden_model_counts() {
    let cfg = EngineConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut f = Front::new(&cfg);
    // Identity and configuration.
    assert_eq!(f.read(regs::ID), regs::ID_MAGIC);
    assert_eq!(f.read(regs::VERSION_REG), regs::VERSION);
    for (offset, value) in regs::encode_config(&cfg) {
        assert_eq!(f.read(offset), value, "config register {offset:#x}");
    }
    assert_eq!(f.read(regs::STATUS), regs::STATUS_IDLE);
    f.write(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR);
    f.sat_per_cycle = 3;
    let mut golden_total = arch::golden::Counters::default();
    let mut head = 0;
    for round in 0..3 {
        let program = random_program(&mut rng, 15);
        let words: Vec<_> = program.iter().map(|i| i.encode().unwrap()).collect();
        let ring = Ring { base: 0x400, size: 32, head };
        f.mem = vec![0; WINDOW];
        let tail = place(&mut f.mem, ring, &words);
        let report = golden(&cfg, &f.mem, WINDOW as u32, ring, tail).unwrap();
        assert_eq!(f.read(regs::CQ_HEAD), head);
        let doorbell = f.submit(ring, tail);
        assert_eq!(f.read(regs::STATUS), regs::STATUS_BUSY);
        // A second doorbell while busy is ignored (DOORBELL still reads the first tail).
        f.write(regs::DOORBELL, (tail + 1) % ring.size);
        assert_eq!(f.read(regs::DOORBELL), tail);
        let irq = f.wait_irq();
        // Cycle 0 is the cycle after the DOORBELL write; DONE is visible in cycle `cycles` (FINISH's end).
        assert_eq!(irq, doorbell + 1 + report.counters.cycles, "round {round}: interrupt cycle");
        assert_eq!(f.read(regs::IRQ_STATUS), regs::IRQ_DONE);
        assert_eq!(f.read(regs::STATUS), regs::STATUS_IDLE);
        assert_eq!(f.read(regs::CQ_HEAD), tail);
        golden_total += report.counters;
        let c = &golden_total;
        let expect =
            [c.cycles, c.instructions, c.macs, c.load_bytes, c.store_bytes, c.load_busy, c.compute_busy, c.store_busy];
        for ((lo, hi), want) in COUNTERS.iter().zip(expect) {
            assert_eq!(f.read64(*lo, *hi), want, "round {round}: counter at {lo:#x}");
        }
        assert_eq!(f.read(regs::SATURATIONS) as u64, f.sat_total, "saturations");
        // W1C: writing 0 keeps DONE, writing 1 clears it and drops the interrupt.
        f.write(regs::IRQ_STATUS, 0);
        assert_eq!(f.read(regs::IRQ_STATUS), regs::IRQ_DONE);
        f.write(regs::IRQ_STATUS, regs::IRQ_DONE);
        assert_eq!(f.read(regs::IRQ_STATUS), 0);
        assert!(!f.h.uut.irq.val());
        head = tail;
    }
}

#[test]
fn counters_latch_their_high_half_and_reset_clears_errors() {
    let cfg = EngineConfig::tiny();
    let mut f = Front::new(&cfg);
    f.write(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR);
    f.sat_per_cycle = 0xFFFF;
    // Counters beyond 32 bits take too long to simulate: the latch is checked on CYCLES (HI reads the
    // latched 0 after LO) and MACS on a GEMM of the golden model's count.
    let program = [Instruction::new(Op::Gemm(Gemm::dense(20, 8, 2, true))), Instruction::new(Op::Finish)];
    let words: Vec<_> = program.iter().map(|i| i.encode().unwrap()).collect();
    let ring = Ring { base: 0, size: 8, head: 0 };
    let tail = place(&mut f.mem, ring, &words);
    let report = golden(&cfg, &f.mem, WINDOW as u32, ring, tail).unwrap();
    f.submit(ring, tail);
    f.wait_irq();
    assert_eq!(f.read64(regs::MACS_LO, regs::MACS_HI), report.counters.macs);
    assert_eq!(f.read(regs::SATURATIONS) as u64, f.sat_total);
    let lo = f.read(regs::CYCLES_LO);
    assert_eq!(lo as u64, report.counters.cycles);
    assert_eq!(f.read(regs::CYCLES_HI), 0);
    assert_eq!(f.read(regs::IRQ_ENABLE), regs::IRQ_DONE | regs::IRQ_ERROR);
    // An error: FINISH with tokens left. ERROR_CODE/ERROR_PC, STATUS.ERROR, IRQ_STATUS.ERROR.
    let bad = [
        Instruction::new(Op::Sync(Stage::Load)).with_deps(Deps { push_next: true, ..Deps::NONE }),
        Instruction::new(Op::Finish),
    ];
    let words: Vec<_> = bad.iter().map(|i| i.encode().unwrap()).collect();
    let ring = Ring { base: 0, size: 8, head: tail };
    let bad_tail = place(&mut f.mem, ring, &words);
    let e = golden(&cfg, &f.mem, WINDOW as u32, ring, bad_tail).unwrap_err();
    f.write(regs::IRQ_STATUS, regs::IRQ_DONE);
    f.submit(ring, bad_tail);
    f.wait_irq();
    assert_eq!(f.read(regs::STATUS), regs::STATUS_ERROR);
    assert_eq!(
        Some(f.read(regs::ERROR_CODE)),
        match e.fault {
            Fault::Engine(c) => Some(c as u32),
            Fault::Undefined => None,
        }
    );
    assert_eq!(f.read(regs::ERROR_PC), e.pc as u32);
    assert_eq!(f.read(regs::IRQ_STATUS), regs::IRQ_ERROR);
    // A doorbell in error is ignored; CTRL.RESET clears the error, the counters and CQ_HEAD.
    f.write(regs::DOORBELL, 0);
    assert_eq!(f.read(regs::STATUS), regs::STATUS_ERROR);
    f.write(regs::CTRL, regs::CTRL_RESET);
    assert_eq!(f.read(regs::STATUS), regs::STATUS_IDLE);
    assert_eq!(f.read(regs::ERROR_CODE), 0);
    assert_eq!(f.read(regs::CQ_HEAD), 0);
    assert_eq!(f.read64(regs::CYCLES_LO, regs::CYCLES_HI), 0);
    assert_eq!(f.read(regs::SATURATIONS), 0);
    // The ring registers survive CTRL.RESET; unlisted offsets read 0.
    assert_eq!(f.read(regs::CQ_SIZE), 8);
    assert_eq!(f.read(0x0FC), 0);
}

#[test]
fn the_front_end_generates_verilog() {
    // rust-hdl evaluates every index and loop of the kernels when it writes Verilog: this catches the
    // constructs it cannot translate.
    let cfg = EngineConfig::tiny();
    let mut uut = ControlRegs::<128, 1024>::new(&cfg).unwrap();
    uut.connect_all();
    let v = generate_verilog(&uut);
    assert!(v.contains("module top"), "a top module");
    assert!(v.contains("control$queues$2"), "the store stage's queue is an instance");
    if let Ok(path) = std::env::var("SYSTOLE_CONTROL_VERILOG") {
        std::fs::write(path, &v).unwrap(); // for linting by hand
    }
    // Configurations the control is not built for are refused with the reason.
    let err = ControlRegs::<128, 1024>::new(&EngineConfig::default_16x16()).err().expect("16x16 needs wider beats");
    assert!(matches!(err, hdl::HdlError::Unsupported(_)), "{err}");
    let cfg = EngineConfig { queue_depth: 64, ..EngineConfig::tiny() };
    assert!(matches!(FetchGeometry::for_config(&cfg), Err(hdl::HdlError::Unsupported(_))));
}
