//! The cycle model: how many cycles each instruction takes, and how the stages overlap.
//!
//! These formulas *are* the engine's timing contract. The RTL implements them exactly (the `sim` crate's
//! tests compare its cycle counters with [`crate::golden`]), and the runtime's scheduler uses them to
//! predict per-layer cycles and utilisation without running anything.
//!
//! # Per-instruction costs
//! With `R × C` the array, `bs` the block size, `L` the DMA latency and `B` the DMA bytes per cycle:
//!
//! | instruction | cycles |
//! |---|---|
//! | LOAD | `L + (pad_top + y_size + pad_bottom) · row_beats(pad_left + x_size + pad_right)` |
//! | STORE | `L + y_size · row_beats(x_size)` |
//! | GEMM | `R + passes · P + (R + C − 1) + acc_latency`, `passes = ⌈K_blocks·bs / R⌉ · ⌈N / C⌉`, `P = max(M, P_min)`; 1 if empty |
//! | POST | `post_latency + (M + bias) · ⌈n_blocks·bs / C⌉` (`bias` is 1 when POST adds a bias) |
//! | SYNC, FINISH | 1 |
//!
//! `row_beats(x)` is the memory port's beats for `x` entries of one row ([`row_beats`]): `⌈x / B⌉ + ⌈x ·
//! mantissa_bytes / B⌉` for BFP buffers (the exponent plane and the mantissa plane are separate streams) and
//! `⌈4x / B⌉` for the accumulator buffer.
//! GEMM is weight-stationary: the first weight tile is preloaded (`R` cycles), each pass streams `M` rows
//! while the next tile's weights move in behind them, and the last wavefront drains through the skewed array
//! and the accumulator adders. A pass is never shorter than `P_min` ([`min_pass_cycles`]): `R`, and long
//! enough for a row's accumulator (or carried partial sum) to be written back before the next pass reads it.
//! POST reads the bias of each run of `C` columns once, in a cycle of its own.
//!
//! # The accumulator port
//! The accumulator buffer has one read port and one write port, owned by the compute stage. A LOAD into it or
//! a STORE from it borrows them: it starts no earlier than the end of every compute instruction before it in
//! program order, and every compute instruction after it starts no earlier than its end.
//!
//! # Fetch, dispatch and overlap
//! Time 0 is the doorbell. The fetch unit reads the ring in bursts of `fetch_burst` instructions (fewer at
//! the end of the program); a burst takes `L + ⌈32·n / B⌉` cycles and is requested when the previous burst's
//! last instruction has been dispatched. Instructions are dispatched in order, one per cycle from the cycle
//! their burst arrives. An instruction is dispatched no earlier than the cycle in which the instruction
//! `queue_depth` places before it *in the same stage* started (its queue slot frees then).
//!
//! An instruction starts at the latest of: its dispatch cycle, the cycle its stage finished the previous
//! instruction, and the cycles at which the tokens it pops were pushed. It ends `cost` cycles after it starts
//! and pushes its tokens at its end. FINISH starts when it is dispatched and every earlier instruction has
//! ended. The program's cycle count is FINISH's end.

use std::collections::VecDeque;

use crate::config::EngineConfig;
use crate::isa::{Buffer, Gemm, Instruction, Load, Op, Post, Stage, Store, INSTRUCTION_BYTES};
use crate::regs::{ErrorCode, TOKEN_COUNTER_BITS};

/// Bytes one buffer entry occupies in host memory (both planes for BFP buffers).
pub fn entry_bytes(cfg: &EngineConfig, buffer: Buffer) -> u64 {
    match buffer {
        Buffer::Acc => 4,
        _ => cfg.format.mantissa_bytes() as u64 + 1,
    }
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// Memory-port beats (cycles) that one row of `x` entries of `buffer` takes to transfer.
///
/// The port moves `B` bytes per cycle of one stream. A BFP row is two streams, its exponent plane (`x`
/// bytes) and its mantissa plane (`x · mantissa_bytes` bytes), each rounded up to whole beats; an accumulator
/// row is `4x` bytes of `f32`.
pub fn row_beats(cfg: &EngineConfig, buffer: Buffer, x: u64) -> u64 {
    let b = cfg.dma_bytes_per_cycle as u64;
    match buffer {
        Buffer::Acc => div_ceil(4 * x, b),
        _ => div_ceil(x, b) + div_ceil(x * cfg.format.mantissa_bytes() as u64, b),
    }
}

/// Cycles of a LOAD.
pub fn load_cycles(cfg: &EngineConfig, l: &Load) -> u64 {
    let [top, bottom, left, right] = l.pad.map(u64::from);
    let rows = top + l.y_size as u64 + bottom;
    cfg.dma_latency as u64 + rows * row_beats(cfg, l.buffer, left + l.x_size as u64 + right)
}

/// Cycles of a STORE.
pub fn store_cycles(cfg: &EngineConfig, s: &Store) -> u64 {
    cfg.dma_latency as u64 + s.y_size as u64 * row_beats(cfg, s.buffer, s.x_size as u64)
}

/// The shortest pass of the array, `P_min`, in cycles.
///
/// A pass streams its rows one per cycle, so it lasts at least `R` cycles (the next pass's weights need them
/// to move in). Each row's accumulators are read `S + 1` cycles after the row enters (`S = min(R, bs)`, the
/// rows of a segment) and its new values are written, one row at a time, `R + C + acc_latency + 1` cycles
/// after it enters; the next pass reads the same row `P` cycles after this one, so `P ≥ R − S + C +
/// acc_latency + 2` keeps the read after the write without a forwarding network. When a block spans passes
/// (`R < bs`) the carried partial sums are written `R + C + 1` cycles after the row enters and read again at
/// the next pass's row entry, so `P ≥ R + C + 2`.
pub fn min_pass_cycles(cfg: &EngineConfig) -> u64 {
    let (r, c, bs) = (cfg.rows as u64, cfg.cols as u64, cfg.format.block_size() as u64);
    let s = r.min(bs);
    let acc = r - s + c + cfg.acc_latency as u64 + 2;
    let carry = if r < bs { r + c + 2 } else { 0 };
    r.max(acc).max(carry)
}

/// Cycles of one pass streaming `m` rows: `max(m, P_min)`.
pub fn pass_cycles(cfg: &EngineConfig, m: u64) -> u64 {
    m.max(min_pass_cycles(cfg))
}

/// Passes of the systolic array a GEMM needs: `⌈K_blocks·bs / R⌉ · ⌈N / C⌉`.
pub fn gemm_passes(cfg: &EngineConfig, g: &Gemm) -> u64 {
    let k = g.k_blocks() * cfg.format.block_size() as u64;
    div_ceil(k, cfg.rows as u64) * div_ceil(g.n_size as u64, cfg.cols as u64)
}

/// Cycles of a GEMM.
pub fn gemm_cycles(cfg: &EngineConfig, g: &Gemm) -> u64 {
    let m = g.rows();
    if m == 0 || g.n_size == 0 || g.k_blocks() == 0 {
        return 1;
    }
    let (r, c) = (cfg.rows as u64, cfg.cols as u64);
    r + gemm_passes(cfg, g) * pass_cycles(cfg, m) + (r + c - 1) + cfg.acc_latency as u64
}

/// Cycles of a POST: `post_latency + (m_size + bias) · ⌈n_blocks·bs / C⌉` (an empty POST still pays the
/// latency).
pub fn post_cycles(cfg: &EngineConfig, p: &Post) -> u64 {
    let cols = p.n_blocks as u64 * cfg.format.block_size() as u64;
    let rows = if p.m_size == 0 || p.n_blocks == 0 { 0 } else { p.m_size as u64 + u64::from(p.bias) };
    cfg.post_latency as u64 + rows * div_ceil(cols, cfg.cols as u64)
}

/// Cycles an instruction occupies its stage.
pub fn instruction_cycles(cfg: &EngineConfig, inst: &Instruction) -> u64 {
    match &inst.op {
        Op::Load(l) => load_cycles(cfg, l),
        Op::Store(s) => store_cycles(cfg, s),
        Op::Gemm(g) => gemm_cycles(cfg, g),
        Op::Post(p) => post_cycles(cfg, p),
        Op::Sync(_) | Op::Finish => 1,
    }
}

/// Cycles to fetch a burst of `n` instructions.
pub fn fetch_burst_cycles(cfg: &EngineConfig, n: usize) -> u64 {
    cfg.dma_latency as u64 + div_ceil((n * INSTRUCTION_BYTES) as u64, cfg.dma_bytes_per_cycle as u64)
}

/// Useful MACs of a GEMM: `M · N · K_blocks · bs`.
pub fn gemm_macs(cfg: &EngineConfig, g: &Gemm) -> u64 {
    g.rows() * g.n_size as u64 * g.k_blocks() * cfg.format.block_size() as u64
}

/// When one instruction was dispatched, started and ended (cycles from the doorbell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Cycle it entered its stage's queue.
    pub dispatch: u64,
    /// Cycle it started executing.
    pub start: u64,
    /// Cycle it finished (start + cost).
    pub end: u64,
}

/// The four token queues (indices into [`QUEUE_NAMES`]), indexed as `[load→compute, compute→load, compute→store, store→compute]`.
const L2C: usize = 0;
const C2L: usize = 1;
const C2S: usize = 2;
const S2C: usize = 3;

/// Largest number of tokens a queue's counter holds.
pub const TOKEN_CAPACITY: usize = (1 << TOKEN_COUNTER_BITS) - 1;

/// The queue an instruction of `stage` pops for `pop_prev`/`pop_next` and pushes for `push_prev`/`push_next`;
/// `None` where the stage has no such neighbour (rejected by [`Instruction::validate`]).
pub fn token_queue(stage: Stage, prev: bool, pop: bool) -> Option<usize> {
    match (stage, prev, pop) {
        (Stage::Compute, true, true) => Some(L2C),
        (Stage::Store, true, true) => Some(C2S),
        (Stage::Load, false, true) => Some(C2L),
        (Stage::Compute, false, true) => Some(S2C),
        (Stage::Compute, true, false) => Some(C2L),
        (Stage::Store, true, false) => Some(S2C),
        (Stage::Load, false, false) => Some(L2C),
        (Stage::Compute, false, false) => Some(C2S),
        _ => None,
    }
}

/// The cycles a program takes by the rules of this module (the end of its last instruction), placed at the
/// start of a ring of its own length, without executing it: what a scheduler compares candidate programs
/// by. A program whose tokens would deadlock or overflow has no cycle count: `u64::MAX`.
pub fn program_cycles(cfg: &EngineConfig, program: &[Instruction]) -> u64 {
    let mut clock = Clock::new(*cfg, program.len(), program.len().max(1), 0);
    let mut end = 0;
    for inst in program {
        match clock.schedule(inst) {
            Ok(t) => end = t.end,
            Err(_) => return u64::MAX,
        }
    }
    if clock.check_token_capacity().is_err() {
        return u64::MAX;
    }
    end
}

/// Computes each instruction's [`Timing`] by the rules of this module, one instruction at a time in
/// program order. Used by the golden model; usable by a scheduler to predict a program's cycles.
#[derive(Clone, Debug)]
pub struct Clock {
    cfg: EngineConfig,
    program_len: usize,
    ring_size: usize,
    head: usize,
    next: usize,
    burst_end: usize,
    last_dispatch: Option<u64>,
    next_dispatch: u64,
    stage_free: [u64; 3],
    recent_starts: [VecDeque<u64>; 3],
    tokens: [VecDeque<u64>; 4],
    history: [(Vec<u64>, Vec<u64>); 4],
    last_end: u64,
}

impl Clock {
    /// A clock for a program of `program_len` instructions placed at ring slot `head` of a ring of
    /// `ring_size` slots (bursts never cross the ring's end).
    pub fn new(cfg: EngineConfig, program_len: usize, ring_size: usize, head: usize) -> Self {
        Clock {
            cfg,
            program_len,
            ring_size,
            head,
            next: 0,
            burst_end: 0,
            last_dispatch: None,
            next_dispatch: 0,
            stage_free: [0; 3],
            recent_starts: Default::default(),
            tokens: Default::default(),
            history: Default::default(),
            last_end: 0,
        }
    }

    /// Schedules the next instruction in program order and returns its timing, or the engine error its
    /// tokens cause.
    pub fn schedule(&mut self, inst: &Instruction) -> Result<Timing, (ErrorCode, String)> {
        debug_assert!(self.next < self.program_len);
        if self.next == self.burst_end {
            let slot = self.head.wrapping_add(self.next) % self.ring_size;
            let n = self.cfg.fetch_burst.min(self.program_len - self.next).min(self.ring_size - slot);
            let request = self.last_dispatch.map_or(0, |d| d + 1);
            self.next_dispatch = request + fetch_burst_cycles(&self.cfg, n);
            self.burst_end = self.next + n;
        }
        self.next += 1;
        let stage = inst.stage();
        let mut dispatch = self.next_dispatch;
        if let Some(s) = stage {
            let recent = &self.recent_starts[s as usize];
            if recent.len() == self.cfg.queue_depth {
                dispatch = dispatch.max(recent[0]);
            }
        }
        self.last_dispatch = Some(dispatch);
        self.next_dispatch = dispatch + 1;

        let cost = instruction_cycles(&self.cfg, inst);
        let Some(stage) = stage else {
            // FINISH: waits for every stage; all tokens must have been consumed.
            if let Some(q) = self.tokens.iter().position(|t| !t.is_empty()) {
                return Err((
                    ErrorCode::UnbalancedTokens,
                    format!("{} token(s) left in queue {} at FINISH", self.tokens[q].len(), QUEUE_NAMES[q]),
                ));
            }
            let start = dispatch.max(self.last_end);
            self.last_end = start + cost;
            return Ok(Timing { dispatch, start, end: start + cost });
        };

        let mut start = dispatch.max(self.stage_free[stage as usize]);
        let borrows_acc_port = uses_acc_port(inst);
        if borrows_acc_port {
            start = start.max(self.stage_free[Stage::Compute as usize]);
        }
        for (flag, prev) in [(inst.deps.pop_prev, true), (inst.deps.pop_next, false)] {
            if !flag {
                continue;
            }
            let q = token_queue(stage, prev, true).expect("validated dependency flags");
            let pushed = self.tokens[q].pop_front().ok_or_else(|| {
                (
                    ErrorCode::TokenUnderflow,
                    format!("pops queue {} which has no token pushed by an earlier instruction", QUEUE_NAMES[q]),
                )
            })?;
            start = start.max(pushed);
        }
        let end = start + cost;
        for (flag, prev) in [(inst.deps.pop_prev, true), (inst.deps.pop_next, false)] {
            if flag {
                self.history[token_queue(stage, prev, true).expect("validated")].1.push(start);
            }
        }
        for (flag, prev) in [(inst.deps.push_prev, true), (inst.deps.push_next, false)] {
            if flag {
                let q = token_queue(stage, prev, false).expect("validated dependency flags");
                self.tokens[q].push_back(end);
                self.history[q].0.push(end);
            }
        }
        self.stage_free[stage as usize] = end;
        if borrows_acc_port {
            self.stage_free[Stage::Compute as usize] = end;
        }
        let recent = &mut self.recent_starts[stage as usize];
        recent.push_back(start);
        if recent.len() > self.cfg.queue_depth {
            recent.pop_front();
        }
        self.last_end = self.last_end.max(end);
        Ok(Timing { dispatch, start, end })
    }

    /// Checks that no token counter ever held more than [`TOKEN_CAPACITY`] tokens at once (in real time,
    /// pushes at instruction ends and pops at starts). Call after the last instruction.
    pub fn check_token_capacity(&self) -> Result<(), (ErrorCode, String)> {
        for (q, (pushes, pops)) in self.history.iter().enumerate() {
            if pushes.len() <= TOKEN_CAPACITY {
                continue;
            }
            // +1 at each push, −1 at each pop; a pop at the cycle of its push sees the token.
            let mut events: Vec<(u64, i64)> =
                pushes.iter().map(|&t| (t, 1)).chain(pops.iter().map(|&t| (t, -1))).collect();
            events.sort_by_key(|&(t, d)| (t, -d));
            let mut level = 0i64;
            for (t, d) in events {
                level += d;
                if level > TOKEN_CAPACITY as i64 {
                    return Err((
                        ErrorCode::TokenOverflow,
                        format!("queue {} holds more than {TOKEN_CAPACITY} tokens at cycle {t}", QUEUE_NAMES[q]),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether a load- or store-stage instruction borrows the compute stage's accumulator port (a LOAD into or a
/// STORE from the accumulator buffer; see [the module documentation](self#the-accumulator-port)).
pub fn uses_acc_port(inst: &Instruction) -> bool {
    matches!(&inst.op, Op::Load(Load { buffer: Buffer::Acc, .. }) | Op::Store(Store { buffer: Buffer::Acc, .. }))
}

/// Names of the token queues, for messages and documentation.
pub const QUEUE_NAMES: [&str; 4] = ["load→compute", "compute→load", "compute→store", "store→compute"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_cost_follows_the_formula() {
        let cfg = EngineConfig::default_16x16(); // R = C = 16, bs = 16, acc_latency 4
                                                 // 64 rows, 32 columns, 4 blocks of K: passes = (64/16)·(32/16) = 8; 16 + 8·64 + 31 + 4.
        let g = Gemm::dense(64, 32, 4, true);
        assert_eq!(gemm_passes(&cfg, &g), 8);
        assert_eq!(gemm_cycles(&cfg, &g), 16 + 8 * 64 + 31 + 4);
        // Few rows: each pass still takes P_min = C + acc_latency + 2 = 22 cycles (accumulator write-back).
        assert_eq!(min_pass_cycles(&cfg), 22);
        let g = Gemm::dense(3, 16, 1, true);
        assert_eq!(gemm_cycles(&cfg, &g), 16 + 22 + 31 + 4);
        assert_eq!(gemm_macs(&cfg, &g), 3 * 16 * 16);
    }

    #[test]
    fn dma_cost_counts_both_planes_and_padding() {
        let cfg = EngineConfig::default_16x16(); // MSFP16: 16 + 1 bytes per block, 64 B/cycle, latency 64
        let l = Load {
            buffer: Buffer::Act,
            sram_base: 0,
            y_size: 4,
            x_size: 8,
            x_stride: 8,
            dram_addr: 0,
            exp_addr: 0,
            pad: [1, 1, 1, 1],
        };
        // 6 rows of 10 entries: 10 exponent bytes (1 beat) and 160 mantissa bytes (3 beats).
        assert_eq!(load_cycles(&cfg, &l), 64 + 6 * 4);
        let acc = Load { buffer: Buffer::Acc, pad: [0; 4], ..l };
        // 4 rows of 8 f32 = 32 bytes → 1 beat.
        assert_eq!(load_cycles(&cfg, &acc), 64 + 4);
    }

    #[test]
    fn shortest_pass_covers_the_write_back() {
        // tiny: R = C = 4 < bs = 16: carried sums need R + C + 2 = 10; accumulators C + 4 + 2 = 10.
        assert_eq!(min_pass_cycles(&EngineConfig::tiny()), 10);
        // 32x32 MXINT8 (bs 32): C + acc_latency + 2 = 38.
        assert_eq!(min_pass_cycles(&EngineConfig::large_32x32()), 38);
        // 32x32 MSFP16 (bs 16, two segments): R − S + C + 4 + 2 = 54.
        let cfg = EngineConfig::large_32x32().with_format(crate::BfpFormat::MSFP16);
        assert_eq!(min_pass_cycles(&cfg), 54);
        assert_eq!(pass_cycles(&cfg, 100), 100);
    }

    #[test]
    fn post_reads_the_bias_once_per_column_run() {
        let cfg = EngineConfig::tiny(); // C = 4, bs = 16, post_latency 4
        let p = Post { m_size: 8, n_blocks: 1, bias: true, ..Post::default() };
        assert_eq!(post_cycles(&cfg, &p), 4 + 9 * 4);
        assert_eq!(post_cycles(&cfg, &Post { bias: false, ..p }), 4 + 8 * 4);
        assert_eq!(post_cycles(&cfg, &Post { m_size: 0, ..p }), 4);
    }
}
