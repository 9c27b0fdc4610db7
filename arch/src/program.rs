//! Building engine programs: a DMA-window image and a tiled, double-buffered matrix multiply.
//!
//! This is the smallest complete "compiler" for the engine: it lays out operands in host memory, tiles the
//! rows of a matrix product to fit the on-chip buffers, double-buffers the tiles so that loads, compute and
//! stores overlap, and places the dependency tokens that make the overlap safe. The runtime's scheduler
//! (convolutions, whole networks) builds on the same pieces; the CLI demo, the benchmarks and the tests
//! use it directly.

use std::collections::HashMap;
use std::sync::Mutex;

use thiserror::Error;

use crate::bfp::{BfpError, BfpFormat, BfpTensor};
use crate::config::EngineConfig;
use crate::isa::{Activation, Buffer, Deps, Gemm, Instruction, Load, Op, Post, Store};

/// Why a program could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProgramError {
    /// Operands do not fit the engine or each other.
    #[error("{0}")]
    Shape(String),
    /// An operand's BFP data is inconsistent with the engine's format.
    #[error(transparent)]
    Bfp(#[from] BfpError),
}

/// Where a BFP tensor's two planes live in the DMA window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfpPlanes {
    /// Byte offset of the mantissa plane.
    pub mantissas: u32,
    /// Byte offset of the exponent plane.
    pub exponents: u32,
    /// Number of blocks.
    pub blocks: usize,
}

/// A host-memory image for the engine's DMA window, filled by a bump allocator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DmaWindow {
    /// The window's bytes; offset 0 is the window's base (`DMA_BASE`).
    pub bytes: Vec<u8>,
}

impl DmaWindow {
    /// Reserves `len` zeroed bytes aligned to `align` (a power of two) and returns their offset.
    pub fn alloc(&mut self, len: usize, align: usize) -> Result<u32, ProgramError> {
        let start = self.bytes.len().next_multiple_of(align);
        let end = start + len;
        if end > u32::MAX as usize {
            return Err(ProgramError::Shape(format!("DMA window would exceed 4 GiB ({end} bytes)")));
        }
        self.bytes.resize(end, 0);
        Ok(start as u32)
    }

    /// Copies `data` in, aligned to 64 bytes, and returns its offset.
    pub fn put(&mut self, data: &[u8]) -> Result<u32, ProgramError> {
        let at = self.alloc(data.len(), 64)?;
        self.bytes[at as usize..at as usize + data.len()].copy_from_slice(data);
        Ok(at)
    }

    /// Writes a BFP tensor as its two planes.
    pub fn put_bfp(&mut self, t: &BfpTensor) -> Result<BfpPlanes, ProgramError> {
        Ok(BfpPlanes {
            mantissas: self.put(&t.pack_mantissas())?,
            exponents: self.put(t.exponent_codes())?,
            blocks: t.num_blocks(),
        })
    }

    /// Writes `f32` values (little-endian).
    pub fn put_f32(&mut self, v: &[f32]) -> Result<u32, ProgramError> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(&bytes)
    }

    /// Reads a BFP tensor's planes back.
    pub fn get_bfp(&self, format: BfpFormat, p: BfpPlanes) -> Result<BfpTensor, ProgramError> {
        let m = p.mantissas as usize;
        let e = p.exponents as usize;
        let mant = self.bytes.get(m..m + p.blocks * format.mantissa_bytes());
        let exp = self.bytes.get(e..e + p.blocks);
        match (mant, exp) {
            (Some(mant), Some(exp)) => Ok(BfpTensor::unpack(format, mant, exp)?),
            _ => Err(ProgramError::Shape("BFP planes lie outside the DMA window".into())),
        }
    }

    /// Reads `len` `f32` values at `offset`.
    pub fn get_f32(&self, offset: u32, len: usize) -> Result<Vec<f32>, ProgramError> {
        let o = offset as usize;
        let bytes = self
            .bytes
            .get(o..o + 4 * len)
            .ok_or_else(|| ProgramError::Shape("f32 data lies outside the DMA window".into()))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
}

/// How the product's result leaves the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Re-quantized to BFP blocks along N (N must be a multiple of the block size).
    Bfp,
    /// Raw `f32` values (after bias and activation), e.g. for logits.
    F32,
}

/// Where a built matmul program leaves its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLocation {
    /// `M × N/bs` blocks, row-major.
    Bfp(BfpPlanes),
    /// `M × N` values, row-major, at this byte offset.
    F32(u32),
}

/// A built program with its host-memory image.
#[derive(Clone, Debug)]
pub struct MatmulProgram {
    /// The instructions, ending with FINISH.
    pub program: Vec<Instruction>,
    /// The DMA window holding operands and room for the result.
    pub window: DmaWindow,
    /// Where the result is.
    pub output: OutputLocation,
    /// Rows per tile.
    pub tile_rows: usize,
}

/// Builds `out[M×N] = act(A[M×K] · Wᵀ + bias)` where `a` holds `M` rows of `K/bs` blocks and `w` holds `N`
/// rows (one per output column) of `K/bs` blocks.
///
/// The weights and bias are loaded once; rows are processed in tiles that use half of each buffer, so that
/// tile `t+1` loads while tile `t` computes and tile `t−1` stores. See [`matmul`] for a residual operand.
#[allow(clippy::too_many_arguments)] // one argument per part of the layer; a builder would add nothing
pub fn dense_matmul(
    cfg: &EngineConfig,
    a: &BfpTensor,
    w: &BfpTensor,
    m: usize,
    n: usize,
    bias: Option<&[f32]>,
    activation: Activation,
    output: OutputKind,
) -> Result<MatmulProgram, ProgramError> {
    matmul(cfg, &Matmul { a, w, m, n, bias, residual: None, activation, output })
}

/// One matrix product with its fused epilogue: `out[M×N] = act(A[M×K] · Wᵀ + bias + residual)`.
#[derive(Clone, Copy, Debug)]
pub struct Matmul<'a> {
    /// `M` rows of `K/bs` blocks.
    pub a: &'a BfpTensor,
    /// `N` rows (one per output column) of `K/bs` blocks.
    pub w: &'a BfpTensor,
    /// Rows of `A` and of the result.
    pub m: usize,
    /// Output columns (a multiple of the block size).
    pub n: usize,
    /// One `f32` per output column, added by POST.
    pub bias: Option<&'a [f32]>,
    /// `M` rows of `N/bs` blocks (a residual connection), loaded beside each tile of `A` and added by POST.
    pub residual: Option<&'a BfpTensor>,
    /// Applied by POST last.
    pub activation: Activation,
    /// How the result leaves the engine.
    pub output: OutputKind,
}

/// Builds the program of one [`Matmul`], of any size that fits the 16-bit fields.
///
/// The output columns are split into chunks whose weights fit half of the weight buffer (the whole buffer
/// when all of `W` fits at once), and the rows into tiles that fit half of the activation, accumulator and
/// output buffers. The program walks the chunks, and within each chunk the row tiles; each such step loads
/// its `A` tile (with its residual rows behind it, if any) and, at a chunk's first tile, the chunk's weights,
/// into the halves the step before last used, so that step `s+1` loads while step `s` computes and step
/// `s−1` stores. The bias is loaded once, at the top of the accumulator buffer.
pub fn matmul(cfg: &EngineConfig, spec: &Matmul) -> Result<MatmulProgram, ProgramError> {
    let &Matmul { a, w, m, n, bias, residual, activation, output } = spec;
    let bs = cfg.format.block_size();
    let shape = |s: String| Err(ProgramError::Shape(s));
    if a.format() != cfg.format || w.format() != cfg.format {
        return shape(format!("operands are {} and {}, the engine computes in {}", a.format(), w.format(), cfg.format));
    }
    if m == 0 || n == 0 || !a.num_blocks().is_multiple_of(m) {
        return shape(format!("A has {} blocks, not a whole number per each of {m} rows", a.num_blocks()));
    }
    let kb = a.num_blocks() / m;
    if w.num_blocks() != n * kb {
        return shape(format!("W has {} blocks, expected N·K/bs = {n}·{kb}", w.num_blocks()));
    }
    if !n.is_multiple_of(bs) {
        // POST works on whole blocks of columns; a compiler pads N with zero weight columns.
        return shape(format!("N = {n} must be a multiple of the block size {bs}"));
    }
    if let Some(b) = bias {
        if b.len() != n {
            return shape(format!("bias has {} values, expected N = {n}", b.len()));
        }
    }
    let nb = n / bs;
    if let Some(r) = residual {
        if r.format() != cfg.format || r.num_blocks() != m * nb {
            return shape(format!(
                "residual has {} blocks of {}, expected M·N/bs = {m}·{nb} of {}",
                r.num_blocks(),
                r.format(),
                cfg.format
            ));
        }
    }
    let bias_len = if bias.is_some() { n } else { 0 };
    if bias_len >= cfg.acc_entries {
        return shape(format!("the bias ({n} values) does not fit the accumulator buffer"));
    }
    let geometry = Geometry { m, kb, n, bias: bias.is_some(), residual: residual.is_some(), activation, output };
    let tiling = best_tiling(cfg, &geometry)?;

    let mut window = DmaWindow::default();
    let a_planes = window.put_bfp(a)?;
    let w_planes = window.put_bfp(w)?;
    let bias_addr = bias.map(|b| window.put_f32(b)).transpose()?;
    let res_planes = residual.map(|r| window.put_bfp(r)).transpose()?;
    let out = match output {
        OutputKind::Bfp => {
            let blocks = m * nb;
            OutputLocation::Bfp(BfpPlanes {
                mantissas: window.alloc(blocks * cfg.format.mantissa_bytes(), 64)?,
                exponents: window.alloc(blocks, 64)?,
                blocks,
            })
        }
        OutputKind::F32 => OutputLocation::F32(window.alloc(m * n * 4, 64)?),
    };
    let layout = Layout { a: a_planes, w: w_planes, bias: bias_addr, residual: res_planes, out };
    let program = emit(cfg, &geometry, &layout, tiling)?;
    Ok(MatmulProgram { program, window, output: out, tile_rows: tiling.tile })
}

/// The sizes of a [`Matmul`] that its program's shape depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Geometry {
    m: usize,
    kb: usize,
    n: usize,
    bias: bool,
    residual: bool,
    activation: Activation,
    output: OutputKind,
}

/// How a [`Matmul`] is cut: output columns per chunk and rows per tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiling {
    /// Output columns per chunk (a multiple of the block size; the last chunk may be smaller).
    pub chunk: usize,
    /// Rows per tile (the last tile may be smaller).
    pub tile: usize,
}

/// Where a [`Matmul`]'s operands lie in the DMA window.
struct Layout {
    a: BfpPlanes,
    w: BfpPlanes,
    bias: Option<u32>,
    residual: Option<BfpPlanes>,
    out: OutputLocation,
}

/// The largest tile that fits half of each buffer for chunks of `chunk` columns (0 if none does).
fn max_tile(cfg: &EngineConfig, g: &Geometry, chunk: usize) -> usize {
    let bs = cfg.format.block_size();
    let bias_len = if g.bias { g.n } else { 0 };
    let acc_half = (cfg.acc_entries - bias_len) / 2;
    // A tile's activation rows hold its K blocks and, with a residual, the chunk's residual blocks.
    let res_blocks = if g.residual { chunk / bs } else { 0 };
    let mut tile = (cfg.act_entries / 2 / (g.kb + res_blocks)).min(acc_half / chunk).min(u16::MAX as usize).min(g.m);
    if g.output == OutputKind::Bfp {
        tile = tile.min(cfg.out_entries / 2 / (chunk / bs));
    }
    tile
}

/// The tilings worth comparing: column chunks that fit the weight buffer (all of N at once, or halves of it
/// for double buffering, in a few sizes), each with the largest tile, the largest tile balanced over the
/// rows, and whole multiples of the array's rows.
fn candidate_tilings(cfg: &EngineConfig, g: &Geometry) -> Vec<Tiling> {
    let bs = cfg.format.block_size();
    let half_cap = (cfg.wgt_entries / 2 / g.kb / bs) * bs;
    let mut chunks = Vec::new();
    if g.n * g.kb <= cfg.wgt_entries {
        chunks.push(g.n);
    }
    for parts in 2..=8 {
        chunks.push(g.n.div_ceil(parts).next_multiple_of(bs));
    }
    chunks.extend([half_cap, (half_cap / 2 / bs) * bs]);
    // A chunk smaller than N must fit half the buffer (the halves alternate); N itself may use all of it.
    chunks.retain(|&c| c > 0 && c <= g.n && (c == g.n && g.n * g.kb <= cfg.wgt_entries || c <= half_cap));
    chunks.sort_unstable();
    chunks.dedup();
    let mut out = Vec::new();
    for chunk in chunks {
        let max = max_tile(cfg, g, chunk);
        if max == 0 {
            continue;
        }
        let balanced = |t: usize| g.m.div_ceil(g.m.div_ceil(t));
        let rows_multiple = (max / cfg.rows) * cfg.rows;
        for tile in [max, balanced(max), rows_multiple, balanced(rows_multiple.max(1))] {
            if tile > 0 && !out.contains(&Tiling { chunk, tile }) {
                out.push(Tiling { chunk, tile });
            }
        }
    }
    out
}

/// The tiling whose program the cycle model ([`crate::timing`]) predicts to finish first (ties: the first
/// candidate, i.e. the larger chunks). The choice depends only on the configuration and the geometry, so it
/// is remembered: every image of a network reuses its layers' choices.
fn best_tiling(cfg: &EngineConfig, g: &Geometry) -> Result<Tiling, ProgramError> {
    static CHOSEN: Mutex<Option<HashMap<(EngineConfig, Geometry), Tiling>>> = Mutex::new(None);
    let key = (*cfg, *g);
    if let Some(t) = CHOSEN.lock().ok().and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied())) {
        return Ok(t);
    }
    let unplaced = BfpPlanes { mantissas: 0, exponents: 0, blocks: 0 };
    let layout = Layout {
        a: unplaced,
        w: unplaced,
        bias: g.bias.then_some(0),
        residual: g.residual.then_some(unplaced),
        out: match g.output {
            OutputKind::Bfp => OutputLocation::Bfp(unplaced),
            OutputKind::F32 => OutputLocation::F32(0),
        },
    };
    let mut best: Option<(u64, Tiling)> = None;
    let mut last_error = None;
    for t in candidate_tilings(cfg, g) {
        match emit(cfg, g, &layout, t) {
            Ok(program) => {
                let cycles = crate::timing::program_cycles(cfg, &program);
                if best.is_none_or(|(c, _)| cycles < c) {
                    best = Some((cycles, t));
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some((_, tiling)) = best else {
        let bs = cfg.format.block_size();
        let why = if g.n * g.kb > cfg.wgt_entries && cfg.wgt_entries / 2 < bs * g.kb {
            format!(
                "W needs {} blocks and the weight buffer holds {}: a chunk of {bs} output columns ({} blocks) \
                 must fit half of it",
                g.n * g.kb,
                cfg.wgt_entries,
                bs * g.kb
            )
        } else {
            format!("one row (K = {} blocks) does not fit half of the activation and accumulator buffers", g.kb)
        };
        return Err(last_error.unwrap_or(ProgramError::Shape(why)));
    };
    if let Ok(mut m) = CHOSEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, tiling);
    }
    Ok(tiling)
}

/// The instructions of a [`Matmul`] of geometry `g` with operands at `layout`, cut by `tiling`.
fn emit(cfg: &EngineConfig, g: &Geometry, layout: &Layout, tiling: Tiling) -> Result<Vec<Instruction>, ProgramError> {
    let &Geometry { m, kb, n, activation, output, .. } = g;
    let Tiling { chunk, tile } = tiling;
    let bs = cfg.format.block_size();
    let nb = n / bs;
    let chunks = n.div_ceil(chunk);
    let wgt_half = if chunks == 1 { 0 } else { cfg.wgt_entries / 2 };
    let bias_len = if g.bias { n } else { 0 };
    let acc_half = (cfg.acc_entries - bias_len) / 2;
    let fits16 = |v: usize, what: &str| {
        u16::try_from(v).map_err(|_| ProgramError::Shape(format!("{what} = {v} does not fit a 16-bit field")))
    };
    let (kb16, n16, nb16) = (fits16(kb, "K blocks")?, fits16(n, "N")?, fits16(nb, "N blocks")?);
    let (a_planes, w_planes, bias_addr, res_planes, out) =
        (layout.a, layout.w, layout.bias, layout.residual, layout.out);
    let bias = bias_addr;
    let mb = cfg.format.mantissa_bytes() as u32;
    // The bias sits at the top of the accumulator buffer (unused, and 0, without a bias).
    let bias_base = if g.bias { cfg.acc_entries - bias_len } else { 0 };
    let mut p = Vec::new();
    if let Some(addr) = bias_addr {
        p.push(Instruction::new(Op::Load(Load {
            buffer: Buffer::Acc,
            sram_base: fits16(bias_base, "bias base")?,
            y_size: 1,
            x_size: n16,
            x_stride: n16,
            dram_addr: addr,
            exp_addr: 0,
            pad: [0; 4],
        })));
    }
    let tiles = m.div_ceil(tile);
    let steps = chunks * tiles;
    for s in 0..steps {
        let (c, t) = (s / tiles, s % tiles);
        let half = s % 2;
        let (col0, cols) = (c * chunk, chunk.min(n - c * chunk));
        let (blk0, cols16, cblocks16) = (col0 / bs, fits16(cols, "chunk columns")?, fits16(cols / bs, "chunk blocks")?);
        let row0 = t * tile;
        let rows = fits16(tile.min(m - row0), "tile rows")?;
        let reuse_later = s + 2 < steps;
        let act_base = half * (cfg.act_entries / 2);
        let res_base = fits16(act_base + rows as usize * kb, "residual base")?;
        let act_base = fits16(act_base, "act base")?;
        let wgt_base = fits16((c % 2) * wgt_half, "weight base")?;
        let acc_base = fits16(half * acc_half, "acc base")?;
        let out_base = fits16(half * (cfg.out_entries / 2), "out base")?;
        // Loads of this step: the chunk's weights at its first tile, the A tile, the residual rows. The
        // first waits until compute has released the halves (step s−2 used them: compute runs in order, so
        // the weights of chunk c−2, used at the latest by step s−2, are free too); the last tells compute the
        // step is ready.
        let mut loads = Vec::new();
        if t == 0 {
            loads.push(Load {
                buffer: Buffer::Wgt,
                sram_base: wgt_base,
                y_size: cols16,
                x_size: kb16,
                x_stride: kb16,
                dram_addr: w_planes.mantissas + (col0 * kb) as u32 * mb,
                exp_addr: w_planes.exponents + (col0 * kb) as u32,
                pad: [0; 4],
            });
        }
        loads.push(Load {
            buffer: Buffer::Act,
            sram_base: act_base,
            y_size: rows,
            x_size: kb16,
            x_stride: kb16,
            dram_addr: a_planes.mantissas + (row0 * kb) as u32 * mb,
            exp_addr: a_planes.exponents + (row0 * kb) as u32,
            pad: [0; 4],
        });
        if let Some(r) = res_planes {
            loads.push(Load {
                buffer: Buffer::Act,
                sram_base: res_base,
                y_size: rows,
                x_size: cblocks16,
                x_stride: nb16,
                dram_addr: r.mantissas + (row0 * nb + blk0) as u32 * mb,
                exp_addr: r.exponents + (row0 * nb + blk0) as u32,
                pad: [0; 4],
            });
        }
        let last = loads.len() - 1;
        for (i, load) in loads.into_iter().enumerate() {
            let deps = Deps { pop_next: i == 0 && s >= 2, push_next: i == last, ..Deps::NONE };
            p.push(Instruction::new(Op::Load(load)).with_deps(deps));
        }
        // The store of step s−2 reads this half of OUT (BFP output) or of ACC (f32 output): the first
        // compute instruction that overwrites it waits for the store's token. The activation half is
        // released by the last compute instruction reading it: GEMM, or POST when it adds the residual.
        let wait_store = s >= 2;
        let gemm = Gemm { act_base, wgt_base, acc_base, ..Gemm::dense(rows, cols16, kb16, true) };
        p.push(Instruction::new(Op::Gemm(gemm)).with_deps(Deps {
            pop_prev: true,
            pop_next: wait_store && output == OutputKind::F32,
            push_prev: reuse_later && res_planes.is_none(),
            ..Deps::NONE
        }));
        p.push(
            Instruction::new(Op::Post(Post {
                activation,
                bias: bias.is_some(),
                residual: res_planes.is_some(),
                to_acc: output == OutputKind::F32,
                round_away: false,
                acc_base,
                out_base,
                m_size: rows,
                n_blocks: cblocks16,
                acc_m_stride: cols16,
                out_m_stride: cblocks16,
                bias_base: if bias.is_some() { fits16(bias_base + col0, "bias base")? } else { 0 },
                res_base: if res_planes.is_some() { res_base } else { 0 },
                res_m_stride: if res_planes.is_some() { cblocks16 } else { 0 },
            }))
            .with_deps(Deps {
                pop_next: wait_store && output == OutputKind::Bfp,
                push_next: true,
                push_prev: reuse_later && res_planes.is_some(),
                ..Deps::NONE
            }),
        );
        let store = match out {
            OutputLocation::Bfp(planes) => Store {
                buffer: Buffer::Out,
                sram_base: out_base,
                y_size: rows,
                x_size: cblocks16,
                x_stride: nb16,
                dram_addr: planes.mantissas + (row0 * nb + blk0) as u32 * mb,
                exp_addr: planes.exponents + (row0 * nb + blk0) as u32,
            },
            OutputLocation::F32(addr) => Store {
                buffer: Buffer::Acc,
                sram_base: acc_base,
                y_size: rows,
                x_size: cols16,
                x_stride: n16,
                dram_addr: addr + ((row0 * n + col0) * 4) as u32,
                exp_addr: 0,
            },
        };
        p.push(Instruction::new(Op::Store(store)).with_deps(Deps {
            pop_prev: true,
            push_prev: reuse_later,
            ..Deps::NONE
        }));
    }
    p.push(Instruction::new(Op::Finish));
    Ok(p)
}
