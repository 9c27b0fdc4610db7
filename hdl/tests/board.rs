//! The board top level (`hdl::board`, `hdl::uart`) in rust-hdl simulation.
//!
//! * The UART alone (4 and 8 clocks per bit): a loopback of random bytes, a start-bit glitch ignored, a missing
//!   stop bit flagged.
//! * The board memory alone against the memory-port protocol of `hdl::dma`: random unaligned reads on both
//!   channels interleaved with STORE and host writes, every byte equal to a software model, every LOAD beat in
//!   its exact cycle.
//! * The board core (bridge, memory, engine) at its byte interface: a program written into the board memory,
//!   submitted and polled through BAR0 and read back, all by the byte protocol of `arch::bridge`, equal to the
//!   golden model bit for bit; bad input answered with `ERR` and the bridge resynchronised.
//! * The whole board top through its UART pins (a BAR read), and its export as Verilog (Verilator's lint).

mod common;

use std::collections::VecDeque;
use std::time::Instant;

use arch::bfp::BfpTensor;
use arch::bridge::{self, ACK, ERR};
use arch::golden::Engine;
use arch::isa::Activation;
use arch::program::{matmul, DmaWindow, Matmul, OutputKind, OutputLocation};
use arch::regs;
use arch::EngineConfig;
use hdl::board::{BoardCoreMini, BoardMemory, BoardTop4x4};
use hdl::dma::{beat_to_bytes, bytes_to_beat};
use hdl::harness::Harness;
use hdl::uart::{UartRx, UartTx};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Runs `f` on a thread with a large stack (building and settling the engine recurses deeply in debug builds).
fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(512 << 20).spawn(f).unwrap().join().unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// The UART.

/// The line levels of `byte` as an 8N1 frame: start bit, 8 data bits LSB first, stop bit (`stop` level).
fn frame(byte: u8, stop: bool) -> Vec<bool> {
    let mut bits = vec![false];
    bits.extend((0..8).map(|i| byte >> i & 1 == 1));
    bits.push(stop);
    bits
}

/// A receiver driven by line levels, one per cycle; returns (bytes received, framing errors).
fn receive(rx: &mut Harness<UartRx>, levels: impl IntoIterator<Item = bool>) -> (Vec<u8>, usize) {
    let (mut bytes, mut errors) = (Vec::new(), 0);
    for level in levels {
        rx.uut.rx.next = level;
        rx.cycle();
        if rx.uut.valid.val() {
            bytes.push(rx.uut.data.val().to_u64() as u8);
        }
        errors += rx.uut.frame_err.val() as usize;
    }
    (bytes, errors)
}

fn uart_rx(cpb: u32) -> Harness<UartRx> {
    let mut rx = Harness::new(Box::new(UartRx::new(cpb)), |u| &mut u.clock).expect("checks");
    rx.uut.reset.next = true;
    rx.uut.rx.next = true;
    rx.cycle();
    rx.uut.reset.next = false;
    rx
}

/// Each bit level held `cpb` cycles.
fn stretch(bits: &[bool], cpb: u32) -> Vec<bool> {
    bits.iter().flat_map(|&b| std::iter::repeat_n(b, cpb as usize)).collect()
}

#[test]
fn uart_loopback_of_random_bytes() {
    let start = Instant::now();
    let cpb = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sent: Vec<u8> = (0..40).map(|_| rng.gen()).collect();
    let mut tx = Harness::new(Box::new(UartTx::new(cpb)), |u| &mut u.clock).expect("checks");
    tx.uut.reset.next = true;
    tx.cycle();
    tx.uut.reset.next = false;
    let mut rx = uart_rx(cpb);
    let mut next = 0;
    let mut got = Vec::new();
    for _ in 0..40 * 12 * cpb {
        // Offer the next byte (sometimes after a pause); the line goes through one register into the receiver.
        tx.uut.start.next = next < sent.len() && rng.gen_bool(0.7);
        tx.uut.data.next = (*sent.get(next).unwrap_or(&0) as u64).into();
        tx.settle();
        if tx.uut.start.val() && tx.uut.ready.val() {
            next += 1;
        }
        let line = tx.uut.tx.val();
        tx.cycle();
        let (bytes, errors) = receive(&mut rx, [line]);
        assert_eq!(errors, 0);
        got.extend(bytes);
    }
    assert_eq!(got, sent[..got.len()]);
    assert!(got.len() >= 30, "only {} bytes in the time of 40", got.len());
    println!("uart loopback: {} bytes in {:.1?}", got.len(), start.elapsed());
}

#[test]
fn uart_ignores_a_start_glitch_and_flags_a_missing_stop_bit() {
    let cpb = 8;
    let mut rx = uart_rx(cpb);
    // A low pulse shorter than half a bit is not a start bit.
    let mut levels = vec![true; 5];
    levels.extend([false; 3]);
    levels.extend(vec![true; 40]);
    assert_eq!(receive(&mut rx, levels), (vec![], 0));
    // A proper frame is received.
    let mut levels = stretch(&frame(0xa5, true), cpb);
    levels.extend(vec![true; 8]);
    assert_eq!(receive(&mut rx, levels), (vec![0xa5], 0));
    // A low stop bit (here a break of 3 bit times) is one framing error and no byte.
    let mut levels = stretch(&frame(0x3c, false), cpb);
    levels.extend(vec![false; 2 * cpb as usize]);
    levels.extend(vec![true; 8]);
    assert_eq!(receive(&mut rx, levels), (vec![], 1));
    // And the receiver recovers.
    let mut levels = stretch(&frame(0x5a, true), cpb);
    levels.extend(vec![true; 8]);
    assert_eq!(receive(&mut rx, levels), (vec![0x5a], 0));
}

// ---------------------------------------------------------------------------------------------------------
// The board memory against the protocol.

const B: usize = 16;

/// The bytes of each beat of a read of `len` bytes at `addr` (bytes past the memory read as zero).
fn beats_of(mem: &[u8], addr: usize, len: usize) -> Vec<Vec<u8>> {
    let bytes: Vec<u8> = (addr..addr + len).map(|a| mem.get(a).copied().unwrap_or(0)).collect();
    bytes.chunks(B).map(<[u8]>::to_vec).collect()
}

#[test]
fn board_memory_serves_the_dma_protocol() {
    let start = Instant::now();
    let size = 4096;
    let latency = 16u64;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut uut = Box::new(BoardMemory::<128>::new(size, latency as u32).expect("builds"));
    let mut model: Vec<u8> = (0..size).map(|_| rng.gen()).collect();
    for (a, &b) in model.iter().enumerate() {
        uut.poke(a, b);
    }
    let mut h = Harness::new(uut, |m| &mut m.clock).expect("checks");
    // LOAD: expected (cycle, bytes) exactly; fetch: expected beats in order, not before their model cycle.
    let mut load: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut load_free = 0u64;
    let mut fetch: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
    let mut fetch_free = 0u64;
    let mut host_read: Option<usize> = None;
    let mut host_expect: Option<u8> = None;
    let (mut load_beats, mut fetch_beats, mut host_reads, mut fetch_delays) = (0, 0, 0, 0);
    let cycles = 2400u64;
    for t in 0..cycles {
        // Phase 1 reads the lower half while STORE and the host write the upper half; phase 2 (from cycle 1600)
        // reads everything back, writes stopped. A read's bytes are the model's at the request.
        let phase2 = t >= 1600;
        let issuing = t < cycles - 200;
        let read_range = if phase2 { 0..size } else { 0..size / 2 - 64 };
        let m = &mut h.uut;
        m.load_req_valid.next = false;
        if issuing && load.len() < 6 && rng.gen_bool(0.3) {
            let len = rng.gen_range(1..=48);
            // Now and then a read running past the end of the memory.
            let addr = if phase2 && rng.gen_bool(0.05) {
                size - rng.gen_range(1..=20)
            } else {
                rng.gen_range(read_range.start..read_range.end - len)
            };
            m.load_req_valid.next = true;
            m.load_req_addr.next = (addr as u64).into();
            m.load_req_len.next = (len as u64).into();
            let first = (t + latency).max(load_free);
            for (i, beat) in beats_of(&model, addr, len).into_iter().enumerate() {
                load.push_back((first + i as u64, beat));
            }
            load_free = load.back().unwrap().0 + 1;
        }
        m.fetch_req_valid.next = false;
        if issuing && fetch.is_empty() && rng.gen_bool(0.2) {
            let len = rng.gen_range(1..=64);
            let addr = rng.gen_range(read_range.start..read_range.end - len);
            m.fetch_req_valid.next = true;
            m.fetch_req_addr.next = (addr as u64).into();
            m.fetch_req_len.next = (len as u64).into();
            let first = (t + latency).max(fetch_free);
            for (i, beat) in beats_of(&model, addr, len).into_iter().enumerate() {
                fetch.push_back((first + i as u64, beat));
            }
            fetch_free = fetch.back().unwrap().0 + 1;
        }
        m.store_valid.next = false;
        if !phase2 && rng.gen_bool(0.4) {
            let len = rng.gen_range(1..=B);
            let addr = rng.gen_range(size / 2..size - len);
            let data: Vec<u8> = (0..B).map(|_| rng.gen()).collect();
            m.store_valid.next = true;
            m.store_addr.next = (addr as u64).into();
            m.store_len.next = (len as u64).into();
            m.store_data.next = bytes_to_beat::<128>(&data);
            model[addr..addr + len].copy_from_slice(&data[..len]);
        }
        // The host: a write of the upper half in phase 1 (when the port is free), reads of anything.
        let host_write = (!phase2 && rng.gen_bool(0.2)).then(|| (rng.gen_range(size / 2..size), rng.gen::<u8>()));
        if host_read.is_none() && rng.gen_bool(0.1) {
            host_read = Some(rng.gen_range(read_range.clone()));
        }
        m.host_wr_en.next = host_write.is_some();
        m.host_rd_en.next = host_read.is_some();
        if let Some(a) = host_read {
            m.host_addr.next = (a as u64).into();
        }
        if let Some((a, v)) = host_write {
            // One host access at a time (the bridge never makes two): the write goes first.
            m.host_rd_en.next = false;
            m.host_addr.next = (a as u64).into();
            m.host_wr_data.next = (v as u64).into();
        }
        h.settle();
        let m = &h.uut;
        // Beats of this cycle.
        match load.front() {
            Some((c, want)) if *c == t => {
                assert!(m.load_beat_valid.val(), "cycle {t}: the LOAD beat is missing");
                assert_eq!(&beat_to_bytes(m.load_beat_data.val())[..want.len()], &want[..], "cycle {t}: LOAD beat");
                load.pop_front();
                load_beats += 1;
            }
            _ => assert!(!m.load_beat_valid.val(), "cycle {t}: a LOAD beat out of schedule"),
        }
        if m.fetch_beat_valid.val() {
            let (c, want) = fetch.pop_front().unwrap_or_else(|| panic!("cycle {t}: an unexpected fetch beat"));
            assert!(c <= t, "cycle {t}: a fetch beat before its cycle {c}");
            fetch_delays += (t - c) as usize;
            assert_eq!(&beat_to_bytes(m.fetch_beat_data.val())[..want.len()], &want[..], "cycle {t}: fetch beat");
            fetch_beats += 1;
        }
        if let Some(want) = host_expect.take() {
            assert!(m.host_rd_valid.val());
            assert_eq!(m.host_rd_data.val().to_u64() as u8, want, "cycle {t}: host read");
            host_reads += 1;
        }
        if m.host_rd_en.val() && m.host_rd_ready.val() {
            host_expect = Some(model[host_read.take().unwrap()]);
        }
        if let Some((a, v)) = host_write {
            if m.host_wr_ready.val() {
                model[a] = v;
            }
            // else dropped by the bench: the bridge would hold it
        }
        assert!(!m.overflow.val());
        h.cycle();
    }
    assert!(load.is_empty() && fetch.is_empty(), "beats left undelivered");
    // Everything written is in the memory.
    for (a, &want) in model.iter().enumerate() {
        assert_eq!(h.uut.peek(a), want, "byte {a}");
    }
    println!(
        "board memory: {load_beats} LOAD beats on time, {fetch_beats} fetch beats ({fetch_delays} cycles of delay \
         behind LOAD), {host_reads} host reads, in {cycles} cycles, {:.1?}",
        start.elapsed()
    );
    assert!(load_beats > 300 && fetch_beats > 100 && host_reads > 20);
}

#[test]
fn board_memory_discards_reads_in_flight_on_reset() {
    let mut h =
        Harness::new(Box::new(BoardMemory::<128>::new(1024, 16).expect("builds")), |m| &mut m.clock).expect("checks");
    // Requests on both channels, then a flush (engine reset) while their beats are still to come.
    for t in 0..40 {
        let m = &mut h.uut;
        m.load_req_valid.next = t < 4;
        m.fetch_req_valid.next = t < 2;
        m.load_req_addr.next = (16 * t as u64).into();
        m.fetch_req_addr.next = (64 * t as u64).into();
        m.load_req_len.next = 40u64.into();
        m.fetch_req_len.next = 64u64.into();
        m.flush.next = t == 8;
        h.settle();
        assert!(!h.uut.load_beat_valid.val() && !h.uut.fetch_beat_valid.val(), "cycle {t}: a beat after the reset");
        h.cycle();
    }
    // A request after the reset is served normally, L cycles later.
    h.uut.load_req_valid.next = true;
    h.uut.load_req_len.next = 1u64.into();
    h.cycle();
    h.uut.load_req_valid.next = false;
    let mut first = None;
    for t in 1..40 {
        h.settle();
        if h.uut.load_beat_valid.val() {
            assert!(first.is_none(), "one beat");
            first = Some(t);
        }
        h.cycle();
    }
    assert_eq!(first, Some(16));
}

#[test]
fn boards_are_built_for_tiny_mini_and_ecp5_only() {
    big_stack(|| {
        let mini = hdl::board::build_board(&EngineConfig::mini(), 217, 1 << 16).expect("the mini board builds");
        assert_eq!(*mini.config(), EngineConfig::mini());
        let ecp5 = hdl::board::build_board(&EngineConfig::ecp5(), 217, 1 << 16).expect("the ecp5 board builds");
        assert_eq!(*ecp5.config(), EngineConfig::ecp5());
        let sixteen = hdl::board::build_board(&EngineConfig::default_16x16(), 217, 1 << 16);
        assert!(matches!(sixteen, Err(hdl::HdlError::Unsupported(ref why)) if why.contains("board_top!")));
        let odd = hdl::board::build_board(&EngineConfig::tiny(), 217, 3000);
        assert!(matches!(odd, Err(hdl::HdlError::Config(_))), "memory sizes are powers of two");
    });
}

// ---------------------------------------------------------------------------------------------------------
// The board core at its byte interface.

/// The board core of the `mini` preset (the configuration CI builds a bitstream of) with a host on its byte
/// stream (one byte per cycle in, out with back-pressure).
struct CoreBench {
    h: Harness<BoardCoreMini>,
    t: u64,
}

/// The board memory of the core benches.
const MEMORY: usize = 4096;

impl CoreBench {
    fn new(cfg: &EngineConfig, timeout: u32) -> Self {
        let core = BoardCoreMini::new(cfg, MEMORY, timeout).expect("the board core builds");
        let mut h = Harness::new(core, |c| &mut c.clock).expect("circuit checks");
        h.uut.reset.next = true;
        h.cycle();
        h.uut.reset.next = false;
        CoreBench { h, t: 0 }
    }

    /// One cycle with `rx` offered; the transmitter takes a byte every other cycle. Returns the byte sent.
    fn step(&mut self, rx: Option<u8>) -> Option<u8> {
        let c = &mut self.h.uut;
        c.rx_valid.next = rx.is_some();
        c.rx_data.next = (rx.unwrap_or(0) as u64).into();
        c.tx_ready.next = self.t.is_multiple_of(2);
        self.h.settle();
        let c = &self.h.uut;
        let out = (c.tx_valid.val() && c.tx_ready.val()).then(|| c.tx_data.val().to_u64() as u8);
        self.h.cycle();
        self.t += 1;
        out
    }

    /// Sends `bytes` (one per cycle) and collects `reply` bytes (no more arrive within a few cycles).
    fn transact_n(&mut self, bytes: &[u8], reply: usize) -> Vec<u8> {
        let mut got = Vec::new();
        for &b in bytes {
            got.extend(self.step(Some(b)));
        }
        let deadline = self.t + 8 * reply as u64 + 100;
        while got.len() < reply {
            assert!(self.t < deadline, "no reply to {:02x?} (got {got:02x?})", &bytes[..bytes.len().min(8)]);
            got.extend(self.step(None));
        }
        for _ in 0..4 {
            got.extend(self.step(None));
        }
        assert_eq!(got.len(), reply, "reply to {:02x?}: {got:02x?}", &bytes[..bytes.len().min(8)]);
        got
    }

    /// A command of `arch::bridge` and its whole reply.
    fn transact(&mut self, cmd: &[u8]) -> Vec<u8> {
        self.transact_n(cmd, bridge::reply_len(cmd).expect("a command"))
    }

    fn write(&mut self, offset: u32, value: u32) {
        let r = self.transact(&bridge::encode_bar_write(offset as u16, value));
        bridge::decode_ack(&r).expect("BAR write acknowledged");
    }

    fn read(&mut self, offset: u32) -> u32 {
        let r = self.transact(&bridge::encode_bar_read(offset as u16));
        bridge::decode_bar_read(&r).expect("a BAR value")
    }

    fn mem_write(&mut self, addr: u32, data: &[u8]) {
        for cmd in bridge::encode_mem_writes(addr, data, 256) {
            bridge::decode_ack(&self.transact(&cmd)).expect("memory write acknowledged");
        }
    }

    fn mem_read(&mut self, addr: u32, len: u16) -> Vec<u8> {
        self.transact(&bridge::encode_mem_read(addr, len))
    }
}

/// A random BFP tensor of `blocks` blocks with exponent codes near the bias.
fn random_bfp(cfg: &EngineConfig, rng: &mut ChaCha8Rng, blocks: usize) -> BfpTensor {
    let f = cfg.format;
    let exps = (0..blocks).map(|_| (f.exponent_bias() + rng.gen_range(-4..=4)) as u8).collect();
    let mants =
        (0..blocks * f.block_size()).map(|_| rng.gen_range(f.min_mantissa_code()..=f.max_mantissa()) as i8).collect();
    BfpTensor::from_parts(f, exps, mants).expect("valid blocks")
}

#[test]
fn a_program_runs_through_the_bridge_bit_for_bit() {
    big_stack(|| {
        let start = Instant::now();
        let cfg = EngineConfig::mini();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // One LOAD/GEMM/POST/STORE tile: a 1×16 row times 16 weight columns, with bias and ReLU, re-quantized.
        let (m, n) = (1, 16);
        let a = random_bfp(&cfg, &mut rng, m);
        let w = random_bfp(&cfg, &mut rng, n);
        let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-20.0f32..20.0)).collect();
        let spec = Matmul {
            a: &a,
            w: &w,
            m,
            n,
            bias: Some(&bias),
            residual: None,
            activation: Activation::Relu,
            output: OutputKind::Bfp,
        };
        let p = matmul(&cfg, &spec).expect("a layer that fits");
        // The ring behind the operands, from slot 0.
        let mut window: DmaWindow = p.window.clone();
        let ring_base = window.put(&arch::isa::assemble(&p.program).expect("encodable")).expect("fits");
        let ring_size = (p.program.len() as u32 + 1).next_power_of_two();
        let tail = p.program.len() as u32;
        window.alloc(ring_size as usize * arch::isa::INSTRUCTION_BYTES, 32).expect("fits");
        assert!(window.bytes.len() <= MEMORY, "the window fits the board memory");
        let mut golden_mem = window.bytes.clone();
        let report =
            Engine::new(cfg).run_ring(&mut golden_mem, ring_base, ring_size, 0, tail).expect("the golden model runs");

        let mut bench = CoreBench::new(&cfg, 10_000);
        assert_eq!(bench.read(regs::ID), regs::ID_MAGIC);
        bench.mem_write(0, &window.bytes);
        assert_eq!(bench.mem_read(ring_base, 32), window.bytes[ring_base as usize..][..32], "the ring reads back");
        let loaded = bench.t;
        bench.write(regs::IRQ_ENABLE, regs::IRQ_DONE | regs::IRQ_ERROR);
        bench.write(regs::DMA_BASE_LO, 0);
        bench.write(regs::DMA_BASE_HI, 0);
        bench.write(regs::DMA_SIZE, window.bytes.len() as u32);
        bench.write(regs::CQ_BASE, ring_base);
        bench.write(regs::CQ_SIZE, ring_size);
        bench.write(regs::DOORBELL, tail);
        let doorbell = bench.t;
        let status = loop {
            let s = bench.read(regs::IRQ_STATUS);
            if s != 0 {
                break s;
            }
            assert!(bench.t < doorbell + 20_000, "no interrupt");
        };
        assert_eq!(status, regs::IRQ_DONE, "the program finished without error");
        assert!(bench.h.uut.irq.val(), "the interrupt line is up");
        let ran = bench.t - doorbell;
        bench.write(regs::IRQ_STATUS, status);
        assert!(!bench.h.uut.irq.val());
        assert_eq!(bench.read(regs::STATUS), regs::STATUS_IDLE);
        // The result, read through the bridge, and the whole memory, as the golden model's.
        let OutputLocation::Bfp(out) = p.output else { unreachable!("a BFP output") };
        let mant_len = out.blocks * cfg.format.mantissa_bytes();
        let mant = bench.mem_read(out.mantissas, mant_len as u16);
        let exps = bench.mem_read(out.exponents, out.blocks as u16);
        assert_eq!(mant, golden_mem[out.mantissas as usize..][..mant_len], "result mantissas");
        assert_eq!(exps, golden_mem[out.exponents as usize..][..out.blocks], "result exponents");
        for (i, &want) in golden_mem.iter().enumerate() {
            assert_eq!(bench.h.uut.memory.peek(i), want, "board memory byte {i}");
        }
        println!(
            "bridge program: {} instructions, {} bytes loaded in {loaded} cycles, ran and polled in {ran} cycles \
             (golden model: {} cycles), {} cycles in all, {:.1?}",
            p.program.len(),
            window.bytes.len(),
            report.counters.cycles,
            bench.t,
            start.elapsed()
        );
    });
}

#[test]
fn bad_input_is_answered_with_err_and_the_bridge_resynchronises() {
    big_stack(|| {
        let start = Instant::now();
        let cfg = EngineConfig::mini();
        let mut bench = CoreBench::new(&cfg, 60);
        // An unknown command byte: ERR, then the next command works.
        assert_eq!(bench.transact_n(&[0xaa], 1), [ERR]);
        assert_eq!(bench.transact_n(&[0x00], 1), [ERR]);
        assert_eq!(bench.transact_n(b"w", 1), [ERR]);
        assert_eq!(bench.read(regs::ID), regs::ID_MAGIC);
        // A command cut short: abandoned after the timeout with ERR; the next command works.
        let cut = bridge::encode_bar_write(regs::IRQ_ENABLE as u16, 3);
        let mut got = bench.transact_n(&cut[..3], 0);
        for _ in 0..80 {
            got.extend(bench.step(None));
        }
        assert_eq!(got, [ERR], "the abandoned command is answered with ERR");
        assert_eq!(bench.read(regs::IRQ_ENABLE), 0, "the abandoned write did not happen");
        // A memory write whose data stops: ERR, and the bytes that came are written.
        let cut = bridge::encode_mem_write(0x100, &[1, 2, 3, 4]);
        let mut got = bench.transact_n(&cut[..9], 0);
        for _ in 0..80 {
            got.extend(bench.step(None));
        }
        assert_eq!(got, [ERR]);
        assert_eq!(bench.mem_read(0x100, 4), [1, 2, 0, 0]);
        // Out-of-range memory: reads zero, writes dropped; then a write and a read that work.
        assert_eq!(bridge::decode_ack(&bench.transact(&bridge::encode_mem_write(MEMORY as u32 + 8, &[9]))), Ok(()));
        assert_eq!(bench.mem_read(MEMORY as u32 - 1, 3), [0, 0, 0]);
        assert_eq!(bench.mem_read(0, 0), Vec::<u8>::new());
        bench.write(regs::IRQ_ENABLE, 3);
        assert_eq!(bench.read(regs::IRQ_ENABLE), 3);
        // A reply byte sent by mistake is not a command either.
        assert_eq!(bench.transact_n(&[ACK], 1), [ERR]);
        println!("bad input: {} cycles, {:.1?}", bench.t, start.elapsed());
    });
}

// ---------------------------------------------------------------------------------------------------------
// The board top at its pins, and its export.

#[test]
fn the_board_top_answers_over_its_uart_pins() {
    big_stack(|| {
        let start = Instant::now();
        let cfg = EngineConfig::tiny();
        let cpb = 4u32;
        let top = BoardTop4x4::<128, 256, 1024, 8>::new(&cfg, cpb, MEMORY).expect("builds");
        let mut h = Harness::new(top, |t| &mut t.clock).expect("checks");
        h.uut.uart_rx.next = true;
        h.uut.reset.next = true;
        h.cycle();
        h.uut.reset.next = false;
        // The host's UART: the command's frames out, the reply's frames decoded by a software receiver.
        let cmd = bridge::encode_bar_read(regs::ID as u16);
        let mut line: VecDeque<bool> = cmd.iter().flat_map(|&b| stretch(&frame(b, true), cpb)).collect();
        let mut rx = uart_rx(cpb);
        let mut reply = Vec::new();
        let mut t = 0;
        while reply.len() < 4 {
            assert!(t < 2000, "no reply over the UART ({reply:02x?})");
            h.uut.uart_rx.next = line.pop_front().unwrap_or(true);
            h.settle();
            let level = h.uut.uart_tx.val();
            h.cycle();
            reply.extend(receive(&mut rx, [level]).0);
            t += 1;
        }
        assert_eq!(bridge::decode_bar_read(&reply), Ok(regs::ID_MAGIC));
        println!("board top: ID read over the UART in {t} cycles, {:.1?}", start.elapsed());
    });
}

#[test]
fn the_board_exports_and_passes_verilator_lint() {
    use hdl::export::{export_verilog_on_large_stack, top_module_name, BoardParams, Part};
    let start = Instant::now();
    let cfg = EngineConfig::tiny();
    let top = top_module_name(&cfg, Part::Board(BoardParams::default()));
    assert_eq!(top, "systole_board_4x4_msfp16");
    let v = export_verilog_on_large_stack(&cfg, Part::Board(BoardParams::default())).expect("export");
    let ports = v.lines().find(|l| l.starts_with(&format!("module {top}("))).expect("the top module");
    assert_eq!(ports, format!("module {top}(clock,reset,uart_rx,uart_tx,irq);"), "few pins");
    assert!(v.lines().take_while(|l| l.starts_with("//")).any(|l| l.contains("UART 8N1")), "header");
    println!("{top}: {} lines of Verilog in {:.1?}", v.lines().count(), start.elapsed());
    let Some(verilator) = common::tool("verilator") else { return };
    common::verilator_lint(&verilator, &common::scratch_dir("board-lint"), &top, &v);
}

/// The `ecp5` board (16×16) as the ECP5 flow exports it; minutes in a debug build, so run on demand:
/// `cargo test -p hdl --test board -- --ignored --nocapture`.
#[test]
#[ignore]
fn the_ecp5_board_exports() {
    use hdl::export::{export_verilog_on_large_stack, top_module_name, BoardParams, Part};
    let start = Instant::now();
    let cfg = EngineConfig::ecp5();
    let top = top_module_name(&cfg, Part::Board(BoardParams::default()));
    assert_eq!(top, "systole_board_16x16_msfp16");
    let v = export_verilog_on_large_stack(&cfg, Part::Board(BoardParams::default())).expect("export");
    assert!(v.contains(&format!("module {top}(clock,reset,uart_rx,uart_tx,irq);")));
    println!("{top}: {} lines of Verilog in {:.1?}", v.lines().count(), start.elapsed());
}
