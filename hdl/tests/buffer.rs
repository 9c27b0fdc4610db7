//! The on-chip buffers (`hdl::buffer`) in rust-hdl simulation against a plain software memory.
//!
//! Each test drives random cycles: a random number of write lanes at consecutive addresses from a random base
//! (so every lane↔bank rotation occurs), random per-lane enables, and reads on random lanes, some of the
//! address just written (which must return the old entry) and some of the address written in the previous
//! cycle (which must return the new one). Read data is checked in the cycle after the read.

// Lane `l` indexes several parallel vectors (enables, addresses, data, the model's expectations).
#![allow(clippy::needless_range_loop)]

use arch::isa::Buffer;
use arch::EngineConfig;
use hdl::buffer::{acc_buffer, BankedRam, BfpBuffer, BufferLanes};
use hdl::harness::Harness;
use rand::{Rng, SeedableRng};
use rust_hdl::prelude::*;

/// One cycle's lane activity: `(enable, address)` per lane.
fn lanes(rng: &mut impl Rng, n: usize, entries: usize, consecutive: bool) -> Vec<(bool, usize)> {
    let base = rng.gen_range(0..=entries - n);
    (0..n).map(|l| (rng.gen_bool(0.7), if consecutive { base + l } else { rng.gen_range(0..entries) })).collect()
}

#[test]
fn acc_buffer_lanes_rotate_over_banks() {
    // The tiny preset's accumulator buffer (A = 4 lanes and banks), then a 16-lane one.
    for (cfg, cycles) in
        [(EngineConfig::tiny(), 600), (EngineConfig { acc_entries: 256, ..EngineConfig::default_16x16() }, 200)]
    {
        let a = BufferLanes::for_config(&cfg).a;
        let mut h = Harness::new(Box::new(acc_buffer(&cfg)), |b: &mut BankedRam<Bits<32>>| &mut b.clock).unwrap();
        let entries = cfg.acc_entries;
        let mut model = vec![0u32; entries];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut expect: Vec<Option<u32>> = vec![None; a];
        let mut previous_writes: Vec<usize> = Vec::new();
        for t in 0..cycles {
            // Outputs of reads issued last cycle (and held since).
            for (l, e) in expect.iter_mut().enumerate() {
                if let Some(v) = e.take() {
                    assert_eq!(h.uut.rd_data[l].val().to_u64() as u32, v, "{cfg}: cycle {t}, read lane {l}");
                }
            }
            let w = lanes(&mut rng, a, entries, true);
            let data: Vec<u32> = (0..a).map(|_| rng.gen()).collect();
            let mut r = lanes(&mut rng, a, entries, true);
            // Sometimes read what was written last cycle, or what is being written now.
            if rng.gen_bool(0.3) && !previous_writes.is_empty() {
                let base = previous_writes[0].min(entries - a);
                r = (0..a).map(|l| (true, base + l)).collect();
            } else if rng.gen_bool(0.2) {
                r = w.iter().map(|&(_, addr)| (true, addr)).collect();
            }
            for l in 0..a {
                h.uut.wr_en[l].next = w[l].0;
                h.uut.wr_addr[l].next = (w[l].1 as u64).into();
                h.uut.wr_data[l].next = (data[l] as u64).into();
                h.uut.rd_en[l].next = r[l].0;
                h.uut.rd_addr[l].next = (r[l].1 as u64).into();
                if r[l].0 {
                    expect[l] = Some(model[r[l].1]);
                }
            }
            previous_writes = w.iter().filter(|x| x.0).map(|x| x.1).collect();
            for l in 0..a {
                if w[l].0 {
                    model[w[l].1] = data[l];
                }
            }
            h.cycle();
        }
        for (i, &v) in model.iter().enumerate() {
            assert_eq!(h.uut.peek(i).to_u64() as u32, v, "{cfg}: entry {i} at the end");
        }
    }
}

/// Random cycles on a BFP buffer of mantissa width `M` built for `cfg`'s buffer `which`.
fn bfp_random<const M: usize>(cfg: &EngineConfig, which: Buffer, cycles: usize) {
    let buf = BfpBuffer::<M>::for_config(cfg, which).expect("a BFP buffer");
    let (entries, bs) = (buf.entries(), cfg.format.block_size());
    let (nr, nw) = (buf.rd_en.len(), buf.wr_en.len());
    let mut h = Harness::new(Box::new(buf), |b: &mut BfpBuffer<M>| &mut b.clock).unwrap();
    let (lo, hi) = (cfg.format.min_mantissa_code(), cfg.format.max_mantissa());
    let mut model: Vec<(u8, Vec<i32>)> = vec![(0, vec![0; bs]); entries];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let mut expect: Vec<Option<(u8, Vec<i32>)>> = vec![None; nr];
    for t in 0..cycles {
        for (l, e) in expect.iter_mut().enumerate() {
            if let Some((code, mant)) = e.take() {
                assert_eq!(h.uut.rd_exp[l].val().to_u64() as u8, code, "{which:?}: cycle {t}, lane {l} exponent");
                for (i, &m) in mant.iter().enumerate() {
                    let got = h.uut.rd_mant[l * bs + i].val().inner().to_u64() as i64;
                    let got = if got >= 1 << (M - 1) { got - (1 << M) } else { got } as i32;
                    assert_eq!(got, m, "{which:?}: cycle {t}, lane {l} mantissa {i}");
                }
            }
        }
        let w = lanes(&mut rng, nw, entries, true);
        let r = if rng.gen_bool(0.2) { w[..nr.min(nw)].to_vec() } else { lanes(&mut rng, nr, entries, true) };
        let mut new = Vec::new();
        for l in 0..nw {
            let code: u8 = rng.gen();
            let mant: Vec<i32> = (0..bs).map(|_| rng.gen_range(lo..=hi)).collect();
            h.uut.wr_en[l].next = w[l].0;
            h.uut.wr_addr[l].next = (w[l].1 as u64).into();
            h.uut.wr_exp[l].next = (code as u64).into();
            for (i, &m) in mant.iter().enumerate() {
                h.uut.wr_mant[l * bs + i].next = Signed::<M>::from(m as i64);
            }
            new.push((code, mant));
        }
        for l in 0..nr {
            h.uut.rd_en[l].next = false;
        }
        for l in 0..r.len() {
            h.uut.rd_en[l].next = r[l].0;
            h.uut.rd_addr[l].next = (r[l].1 as u64).into();
            if r[l].0 {
                expect[l] = Some(model[r[l].1].clone());
            }
        }
        for l in 0..nw {
            if w[l].0 {
                model[w[l].1] = new[l].clone();
            }
        }
        h.cycle();
    }
    for (i, e) in model.iter().enumerate() {
        assert_eq!(&h.uut.peek(i), e, "{which:?}: entry {i} at the end");
    }
}

#[test]
fn bfp_buffers_of_the_tiny_preset() {
    // Q = 1: one bank, one lane each way.
    bfp_random::<8>(&EngineConfig::tiny(), Buffer::Act, 400);
}

#[test]
fn bfp_buffers_with_four_lanes() {
    // The 16x16 preset's Q = 4 (shrunk buffers): LOAD's 4 write lanes into ACT, STORE's 4 read lanes from OUT.
    let cfg = EngineConfig { act_entries: 64, out_entries: 64, ..EngineConfig::default_16x16() };
    assert_eq!(BufferLanes::for_config(&cfg).q, 4);
    bfp_random::<8>(&cfg, Buffer::Act, 300);
    bfp_random::<8>(&cfg, Buffer::Out, 300);
    // MSFP12 (4-bit mantissas): Q = 8 on a 64-byte port.
    let cfg: EngineConfig =
        EngineConfig { wgt_entries: 64, ..EngineConfig::default_16x16() }.with_format(arch::BfpFormat::MSFP12);
    bfp_random::<4>(&cfg, Buffer::Wgt, 200);
}

#[test]
fn lane_counts_of_the_presets() {
    let q_a = |c: &EngineConfig| (BufferLanes::for_config(c).q, BufferLanes::for_config(c).a);
    assert_eq!(q_a(&EngineConfig::tiny()), (1, 4));
    assert_eq!(q_a(&EngineConfig::default_16x16()), (4, 16));
    assert_eq!(q_a(&EngineConfig::large_32x32()), (2, 32));
}
