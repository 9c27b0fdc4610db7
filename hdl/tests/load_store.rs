//! The LOAD (and STORE) units in rust-hdl simulation against the golden model.
//!
//! Each case is a one-instruction program (`LOAD` or `STORE`, then `FINISH`) run twice on the same host
//! memory image and the same initial buffers: by `arch::golden::Engine`, and by the unit with
//! [`hdl::dma::ReadChannel`] / [`hdl::dma::WriteChannel`] serving its memory port and software buffers taking
//! its writes. Buffers and memory must agree bit for bit, including what was written before an error; the
//! error code must be the golden model's; `done` must come exactly in cycle `cost − 1` (`cost` from
//! `arch::timing`), with no buffer write or memory access after it; no request may leave the DMA window.

use arch::golden::{Engine, ExecError, Fault};
use arch::isa::{Buffer, Instruction, Load, Op, Store};
use arch::regs::ErrorCode;
use arch::timing::{load_cycles, store_cycles};
use arch::EngineConfig;
use hdl::dma::{HostMemory, ReadChannel, WriteChannel};
use hdl::harness::Harness;
use hdl::load::LoadUnit;
use hdl::store::StoreUnit;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;

/// IOVA of the DMA window in the tests (any value; it must be added to every request).
const DMA_BASE: u64 = 0x7_0000_1000;

/// The bits of a 256-bit instruction, as the stage units receive it.
fn inst_bits(inst: &Instruction) -> Bits<256> {
    let w = inst.encode().expect("valid instruction");
    let mut b = Bits::<256>::default();
    for (i, word) in w.iter().enumerate() {
        b.set_bits::<64>(64 * i, (*word).into());
    }
    b
}

fn signed_value<const M: usize>(x: Signed<M>) -> i8 {
    i8::try_from(i64::try_from(x.bigint()).expect("fits")).expect("mantissa fits i8")
}

/// A host memory image: a DMA window of `size` bytes followed by `tail` bytes outside it.
fn window_image(rng: &mut ChaCha8Rng, size: usize, tail: usize) -> Vec<u8> {
    (0..size + tail).map(|_| rng.gen()).collect()
}

/// Where a transfer's planes lie in host memory: `host_entries` entries from `y_size` rows of `x_size` at
/// `x_stride`, the data plane at `dram_addr` and (BFP) the exponent plane at `exp_addr`, and the bytes the
/// image needs to hold both.
struct Planes {
    host_entries: usize,
    dram_addr: usize,
    exp_addr: usize,
    need: usize,
}

/// Random, non-overlapping planes at unaligned offsets: mantissas first and exponents after, or the other
/// way round (`entry` is the data bytes per entry; ACC has no exponent plane).
fn random_planes(
    rng: &mut ChaCha8Rng,
    buffer: Buffer,
    entry: usize,
    y_size: u16,
    x_size: u16,
    x_stride: u16,
) -> Planes {
    let host_entries =
        if y_size == 0 || x_size == 0 { 0 } else { (y_size as usize - 1) * x_stride as usize + x_size as usize };
    let data_bytes = host_entries * entry;
    let exp_bytes = if buffer == Buffer::Acc { 0 } else { host_entries };
    let gap = rng.gen_range(0..40usize);
    let (dram_addr, exp_addr) = if buffer == Buffer::Acc {
        (rng.gen_range(0..40usize), 0)
    } else if rng.gen_bool(0.5) {
        let d = rng.gen_range(0..40usize);
        (d, d + data_bytes + gap)
    } else {
        let e = rng.gen_range(0..40usize);
        (e + exp_bytes + gap, e)
    };
    Planes { host_entries, dram_addr, exp_addr, need: (dram_addr + data_bytes).max(exp_addr + exp_bytes) }
}

/// A random LOAD on `cfg`, with the host memory image it reads (valid exponent codes and finite `f32`s
/// except for faults planted on purpose), and a DMA window size (sometimes too small).
fn random_load(cfg: &EngineConfig, rng: &mut ChaCha8Rng) -> (Load, Vec<u8>, usize) {
    let f = cfg.format;
    let mb = f.mantissa_bytes();
    let buffer = [Buffer::Act, Buffer::Wgt, Buffer::Acc][rng.gen_range(0..3)];
    let entry = if buffer == Buffer::Acc { 4 } else { mb };
    let x_size: u16 = if rng.gen_bool(0.1) { 0 } else { rng.gen_range(1..=3 * cfg.dma_bytes_per_cycle as u16 + 3) };
    let y_size: u16 = if rng.gen_bool(0.05) { 0 } else { rng.gen_range(1..=4) };
    let x_stride = match rng.gen_range(0..3) {
        0 => x_size,
        1 => rng.gen_range(0..=x_size),
        _ => x_size + rng.gen_range(0..8),
    };
    let mut pad = [0u8; 4];
    if rng.gen_bool(0.6) {
        pad = [rng.gen_range(0..=3), rng.gen_range(0..=3), rng.gen_range(0..=15), rng.gen_range(0..=15)];
        for p in &mut pad {
            if rng.gen_bool(0.3) {
                *p = 0;
            }
        }
    }
    let Planes { host_entries, dram_addr, exp_addr, need } =
        random_planes(rng, buffer, entry, y_size, x_size, x_stride);
    let mut mem = window_image(rng, need + 64, 64);
    // Valid contents, then perhaps a fault.
    let max_code = (0..=255u8).rev().find(|&c| f.decode_exponent(c).is_ok()).unwrap();
    for h in 0..host_entries {
        if buffer == Buffer::Acc {
            let v: f32 = match rng.gen_range(0..10) {
                0 => 0.0,
                1 => -0.0,
                2 => f32::from_bits(rng.gen_range(1..0x0080_0000) | (rng.gen::<u32>() & 0x8000_0000)),
                _ => rng.gen_range(-1e6f32..1e6),
            };
            mem[dram_addr + 4 * h..][..4].copy_from_slice(&v.to_le_bytes());
        } else {
            mem[exp_addr + h] = rng.gen_range(0..=max_code);
        }
    }
    if host_entries > 0 && rng.gen_bool(0.15) {
        let h = rng.gen_range(0..host_entries);
        if buffer == Buffer::Acc {
            let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.gen_range(0..3)];
            mem[dram_addr + 4 * h..][..4].copy_from_slice(&v.to_le_bytes());
        } else {
            mem[exp_addr + h] = rng.gen_range(max_code as u16 + 1..=255) as u8;
        }
    }
    let mut size = need + rng.gen_range(0..64);
    if need > 0 && rng.gen_bool(0.15) {
        size = rng.gen_range(0..need);
    }
    let rows = pad[0] as usize + y_size as usize + pad[1] as usize;
    let row = pad[2] as usize + x_size as usize + pad[3] as usize;
    let len = match buffer {
        Buffer::Act => cfg.act_entries,
        Buffer::Wgt => cfg.wgt_entries,
        _ => cfg.acc_entries,
    };
    let sram_base = if rng.gen_bool(0.08) {
        rng.gen_range(0..=u16::MAX)
    } else {
        rng.gen_range(0..=len.saturating_sub(rows * row).min(u16::MAX as usize)) as u16
    };
    let load = Load {
        buffer,
        sram_base,
        y_size,
        x_size,
        x_stride,
        dram_addr: dram_addr as u32,
        exp_addr: exp_addr as u32,
        pad,
    };
    (load, mem, size)
}

/// Random initial buffer contents (so that entries a LOAD must not touch are visible).
fn random_engine(cfg: &EngineConfig, rng: &mut ChaCha8Rng) -> Engine {
    let mut e = Engine::new(*cfg);
    for b in [&mut e.act, &mut e.wgt] {
        b.exponents.iter_mut().for_each(|x| *x = rng.gen());
        b.mantissas.iter_mut().for_each(|x| *x = rng.gen());
    }
    e.acc.iter_mut().for_each(|x| *x = rng.gen_range(-1.0f32..1.0));
    e
}

/// What the unit did with one instruction.
struct Outcome {
    /// Cycle (from the start cycle, 0) of `done` or `error`.
    end: u64,
    /// `Some(code)` if it raised `error`.
    error: Option<u32>,
}

/// Runs one LOAD through the unit; `buffers` receives its writes, `mem` serves its reads.
fn run_load<const W: usize, const W2: usize, const M: usize>(
    h: &mut Harness<LoadUnit<W, W2, M>>,
    cfg: &EngineConfig,
    inst: &Instruction,
    mem: &mut HostMemory,
    window: usize,
    buffers: &mut Engine,
) -> Outcome {
    let bs = cfg.format.block_size();
    let mut ch = ReadChannel::<W>::new(cfg.dma_latency);
    let cost = arch::timing::instruction_cycles(cfg, inst);
    let limit = cost + 8;
    let mut outcome = None;
    for cycle in 0..limit {
        let u = &mut h.uut;
        u.start.next = cycle == 0;
        u.inst.next = if cycle == 0 { inst_bits(inst) } else { Bits::default() };
        u.dma_base.next = DMA_BASE.into();
        u.dma_size.next = (window as u64).into();
        u.reset.next = false;
        ch.drive(&mut u.dma);
        h.settle();
        let u = &mut h.uut;
        let finished = outcome.is_some();
        // Buffer writes.
        for q in 0..u.act_wr_en.len() {
            let (a, w) = (u.act_wr_en[q].val(), u.wgt_wr_en[q].val());
            if !(a || w) {
                continue;
            }
            assert!(!finished, "buffer write in cycle {cycle}, after the instruction ended");
            let addr = u.wr_addr[q].val().to_u64() as usize;
            assert_eq!(addr, u.wr_addr[0].val().to_u64() as usize + q, "lane {q} must address base + {q}");
            let buf = if a { &mut buffers.act } else { &mut buffers.wgt };
            buf.exponents[addr] = u.wr_exp[q].val().to_u8();
            for i in 0..bs {
                buf.mantissas[addr * bs + i] = signed_value(u.wr_mant[q * bs + i].val());
            }
        }
        for l in 0..u.acc_wr_en.len() {
            if u.acc_wr_en[l].val() {
                assert!(!finished, "accumulator write in cycle {cycle}, after the instruction ended");
                let addr = u.acc_wr_addr[l].val().to_u64() as usize;
                buffers.acc[addr] = f32::from_bits(u.acc_wr_data[l].val().to_u32());
            }
        }
        if u.dma.rd_req_valid.val() {
            assert!(!finished, "read request in cycle {cycle}, after the instruction ended");
        }
        let (done, error) = (u.done.val(), u.error.val());
        if done || error {
            assert!(!finished, "a second done/error pulse in cycle {cycle}");
            assert!(!(done && error), "done and error together");
            outcome = Some(Outcome { end: cycle, error: error.then(|| u.error_code.val().to_u32()) });
        }
        ch.sample(mem, &h.uut.dma);
        h.cycle();
    }
    for r in &ch.requests {
        assert!(r.len > 0 && r.addr >= DMA_BASE, "bad request {r:?}");
        assert!(r.addr - DMA_BASE + r.len <= window as u64, "request {r:?} leaves the {window}-byte window");
    }
    outcome.expect("neither done nor error")
}

fn check_buffers(got: &Engine, want: &Engine, what: &str) {
    for (name, g, w) in [("ACT", &got.act, &want.act), ("WGT", &got.wgt, &want.wgt)] {
        if let Some(e) = (0..g.len()).find(|&e| g.exponents[e] != w.exponents[e] || g.block(e) != w.block(e)) {
            panic!(
                "{what}: {name} entry {e}: unit ({}, {:?}), golden ({}, {:?})",
                g.exponents[e],
                g.block(e),
                w.exponents[e],
                w.block(e)
            );
        }
    }
    if let Some(e) = (0..got.acc.len()).find(|&e| got.acc[e].to_bits() != want.acc[e].to_bits()) {
        panic!("{what}: ACC entry {e}: unit {:e}, golden {:e}", got.acc[e], want.acc[e]);
    }
}

/// Runs one LOAD on the golden model and on the unit, and compares everything.
fn check_load<const W: usize, const W2: usize, const M: usize>(
    h: &mut Harness<LoadUnit<W, W2, M>>,
    cfg: &EngineConfig,
    load: Load,
    image: &[u8],
    window: usize,
    initial: &Engine,
    what: &str,
) -> Option<ErrorCode> {
    let inst = Instruction::new(Op::Load(load));
    let mut golden = initial.clone();
    let mut gmem = image[..window.min(image.len())].to_vec();
    let result = golden.run(&[inst, Instruction::new(Op::Finish)], &mut gmem);
    let want_error = match result {
        Ok(_) => None,
        Err(ExecError { fault: Fault::Engine(code), .. }) => Some(code),
        Err(e) => panic!("{what}: the golden model refused the program: {e}"),
    };
    let mut buffers = initial.clone();
    let mut mem = HostMemory::new(DMA_BASE, image.to_vec());
    let got = run_load(h, cfg, &inst, &mut mem, window, &mut buffers);
    assert!(mem.faults.is_empty(), "{what}: memory faults {:?}", mem.faults);
    assert_eq!(got.error, want_error.map(|c| c as u32), "{what}: error code (golden {want_error:?})");
    let cost = load_cycles(cfg, &load);
    if want_error.is_none() {
        assert_eq!(got.end, cost - 1, "{what}: done must be in cycle cost − 1 = {}", cost - 1);
    } else {
        assert!(got.end < cost, "{what}: error in cycle {} after the instruction's {cost} cycles", got.end);
    }
    check_buffers(&buffers, &golden, what);
    want_error
}

fn load_harness<const W: usize, const W2: usize, const M: usize>(cfg: &EngineConfig) -> Harness<LoadUnit<W, W2, M>> {
    Harness::new(LoadUnit::<W, W2, M>::new(cfg).expect("a supported configuration"), |u| &mut u.clock)
        .expect("the LOAD unit passes rust-hdl's checks")
}

fn random_loads<const W: usize, const W2: usize, const M: usize>(cfg: &EngineConfig, seed: u64, count: usize) {
    let mut h = load_harness::<W, W2, M>(cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let initial = random_engine(cfg, &mut rng);
    let mut errors = std::collections::BTreeMap::new();
    let t0 = std::time::Instant::now();
    for i in 0..count {
        let (load, image, window) = random_load(cfg, &mut rng);
        let what = format!("case {i} (seed {seed}): {load:?}, window {window}");
        let e = check_load(&mut h, cfg, load, &image, window, &initial, &what);
        *errors.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    eprintln!("{count} random LOADs on {cfg:?}: outcomes {errors:?}, {:.1} s", t0.elapsed().as_secs_f64());
}

fn count_from_env(default: usize) -> usize {
    std::env::var("SYSTOLE_LOAD_STORE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_loads_tiny() {
    random_loads::<128, 256, 8>(&EngineConfig::tiny(), 1, count_from_env(300));
}

#[test]
fn random_loads_16x16_memory_parameters() {
    random_loads::<512, 1024, 8>(&EngineConfig::default_16x16(), 2, count_from_env(300) / 5);
}

/// A random STORE on `cfg` with its host memory image and DMA window size (sometimes too small). The two
/// planes never overlap (see `hdl::store`).
fn random_store(cfg: &EngineConfig, rng: &mut ChaCha8Rng) -> (Store, Vec<u8>, usize) {
    let mb = cfg.format.mantissa_bytes();
    let buffer = if rng.gen_bool(0.5) { Buffer::Out } else { Buffer::Acc };
    let entry = if buffer == Buffer::Acc { 4 } else { mb };
    let x_size: u16 = if rng.gen_bool(0.08) { 0 } else { rng.gen_range(1..=3 * cfg.dma_bytes_per_cycle as u16 + 3) };
    let y_size: u16 = if rng.gen_bool(0.05) { 0 } else { rng.gen_range(1..=4) };
    let x_stride = match rng.gen_range(0..3) {
        0 => x_size,
        1 => rng.gen_range(0..=x_size),
        _ => x_size + rng.gen_range(0..8),
    };
    let Planes { dram_addr, exp_addr, need, .. } = random_planes(rng, buffer, entry, y_size, x_size, x_stride);
    let mem = window_image(rng, need + 64, 64);
    let mut size = need + rng.gen_range(0..64);
    if need > 0 && rng.gen_bool(0.2) {
        size = rng.gen_range(0..need);
    }
    let len = if buffer == Buffer::Acc { cfg.acc_entries } else { cfg.out_entries };
    let count = y_size as usize * x_size as usize;
    let sram_base = if rng.gen_bool(0.08) {
        rng.gen_range(0..=u16::MAX)
    } else {
        rng.gen_range(0..=len.saturating_sub(count).min(u16::MAX as usize)) as u16
    };
    let store =
        Store { buffer, sram_base, y_size, x_size, x_stride, dram_addr: dram_addr as u32, exp_addr: exp_addr as u32 };
    (store, mem, size)
}

/// Runs one STORE through the unit: `buffers` serves its reads (registered: data the cycle after), `mem`
/// takes its writes.
fn run_store<const W: usize, const W2: usize, const M: usize>(
    h: &mut Harness<StoreUnit<W, W2, M>>,
    cfg: &EngineConfig,
    inst: &Instruction,
    mem: &mut HostMemory,
    window: usize,
    buffers: &Engine,
) -> Outcome {
    let bs = cfg.format.block_size();
    let mut ch = WriteChannel::<W>::new();
    let cost = arch::timing::instruction_cycles(cfg, inst);
    let mut outcome = None;
    let mut out_reads: Vec<Option<usize>> = vec![None; h.uut.rd_en.len()];
    let mut acc_reads: Vec<Option<usize>> = vec![None; h.uut.acc_rd_en.len()];
    for cycle in 0..cost + 8 {
        let u = &mut h.uut;
        u.start.next = cycle == 0;
        u.inst.next = if cycle == 0 { inst_bits(inst) } else { Bits::default() };
        u.dma_base.next = DMA_BASE.into();
        u.dma_size.next = (window as u64).into();
        u.reset.next = false;
        // Read data of last cycle's reads (lanes not read keep stale data).
        for (q, r) in out_reads.iter().enumerate() {
            if let Some(e) = *r {
                u.rd_exp[q].next = (buffers.out.exponents[e] as LiteralType).into();
                for i in 0..bs {
                    u.rd_mant[q * bs + i].next = (buffers.out.block(e)[i] as i64).into();
                }
            }
        }
        for (l, r) in acc_reads.iter().enumerate() {
            if let Some(e) = *r {
                u.acc_rd_data[l].next = (buffers.acc[e].to_bits() as LiteralType).into();
            }
        }
        h.settle();
        let u = &mut h.uut;
        let finished = outcome.is_some();
        for (q, r) in out_reads.iter_mut().enumerate() {
            *r = u.rd_en[q].val().then(|| u.rd_addr[q].val().to_u64() as usize);
            if let Some(e) = *r {
                assert!(!finished, "OUT read in cycle {cycle}, after the instruction ended");
                assert_eq!(e, u.rd_addr[0].val().to_u64() as usize + q, "lane {q} must address base + {q}");
            }
        }
        for (l, r) in acc_reads.iter_mut().enumerate() {
            *r = u.acc_rd_en[l].val().then(|| u.acc_rd_addr[l].val().to_u64() as usize);
            if let Some(e) = *r {
                assert!(!finished, "ACC read in cycle {cycle}, after the instruction ended");
                assert_eq!(e, u.acc_rd_addr[0].val().to_u64() as usize + l, "lane {l} must address base + {l}");
            }
        }
        if u.dma.wr_valid.val() {
            assert!(!finished, "memory write in cycle {cycle}, after the instruction ended");
            let (addr, len) = (u.dma.wr_addr.val().to_u64(), u.dma.wr_len.val().to_u64());
            assert!(addr >= DMA_BASE && addr - DMA_BASE + len <= window as u64, "write outside the window");
        }
        let (done, error) = (u.done.val(), u.error.val());
        if done || error {
            assert!(!finished, "a second done/error pulse in cycle {cycle}");
            assert!(!(done && error), "done and error together");
            outcome = Some(Outcome { end: cycle, error: error.then(|| u.error_code.val().to_u32()) });
        }
        ch.sample(mem, &h.uut.dma);
        h.cycle();
    }
    outcome.expect("neither done nor error")
}

/// Runs one STORE on the golden model and on the unit, and compares memory, error and timing.
fn check_store<const W: usize, const W2: usize, const M: usize>(
    h: &mut Harness<StoreUnit<W, W2, M>>,
    cfg: &EngineConfig,
    store: Store,
    image: &[u8],
    window: usize,
    initial: &Engine,
    what: &str,
) -> Option<ErrorCode> {
    let inst = Instruction::new(Op::Store(store));
    let mut golden = initial.clone();
    let mut gmem = image[..window].to_vec();
    let want_error = match golden.run(&[inst, Instruction::new(Op::Finish)], &mut gmem) {
        Ok(_) => None,
        Err(ExecError { fault: Fault::Engine(code), .. }) => Some(code),
        Err(e) => panic!("{what}: the golden model refused the program: {e}"),
    };
    let mut mem = HostMemory::new(DMA_BASE, image.to_vec());
    let got = run_store(h, cfg, &inst, &mut mem, window, initial);
    assert!(mem.faults.is_empty(), "{what}: memory faults {:?}", mem.faults);
    assert_eq!(got.error, want_error.map(|c| c as u32), "{what}: error code (golden {want_error:?})");
    let cost = store_cycles(cfg, &store);
    if want_error.is_none() {
        assert_eq!(got.end, cost - 1, "{what}: done must be in cycle cost − 1 = {}", cost - 1);
    } else {
        assert!(got.end < cost, "{what}: error in cycle {} after the instruction's {cost} cycles", got.end);
    }
    if let Some(i) = (0..window).find(|&i| mem.bytes[i] != gmem[i]) {
        panic!("{what}: window byte {i}: unit {:#04x}, golden {:#04x}", mem.bytes[i], gmem[i]);
    }
    assert_eq!(&mem.bytes[window..], &image[window..], "{what}: bytes beyond the window changed");
    want_error
}

fn random_stores<const W: usize, const W2: usize, const M: usize>(cfg: &EngineConfig, seed: u64, count: usize) {
    let mut h = Harness::new(StoreUnit::<W, W2, M>::new(cfg).expect("a supported configuration"), |u| &mut u.clock)
        .expect("the STORE unit passes rust-hdl's checks");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut initial = random_engine(cfg, &mut rng);
    initial.out.exponents.iter_mut().for_each(|x| *x = rng.gen());
    initial.out.mantissas.iter_mut().for_each(|x| *x = rng.gen());
    let mut outcomes = std::collections::BTreeMap::new();
    let t0 = std::time::Instant::now();
    for i in 0..count {
        let (store, image, window) = random_store(cfg, &mut rng);
        let what = format!("case {i} (seed {seed}): {store:?}, window {window}");
        let e = check_store(&mut h, cfg, store, &image, window, &initial, &what);
        *outcomes.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    eprintln!("{count} random STOREs on {cfg:?}: outcomes {outcomes:?}, {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn random_stores_tiny() {
    random_stores::<128, 256, 8>(&EngineConfig::tiny(), 3, count_from_env(300));
}

#[test]
fn random_stores_16x16_memory_parameters() {
    random_stores::<512, 1024, 8>(&EngineConfig::default_16x16(), 4, count_from_env(300) / 15);
}
