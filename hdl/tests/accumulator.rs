//! The accumulator adder in RTL against `arch::accum::accumulate`, bit for bit.

mod common;

use arch::accum::{accumulate, Term};
use hdl::accum::{AccumulateCore, Accumulator, EXP_BIAS};
use rand::{Rng, SeedableRng};
use rust_hdl::prelude::*;

/// Operand pairs at the edges of the rule: zeros, ties, carries, flush, saturation, cancellation, alignment.
fn extreme_pairs() -> Vec<(f32, Term)> {
    let t = |mantissa: i32, exponent: i32| Term { mantissa, exponent };
    let one_ulp_below_max = f32::from_bits(f32::MAX.to_bits() - 1);
    let mut v = vec![
        (0.0, t(0, 0)),
        (0.0, t(0, -266)),
        (1.5, t(0, 100)),
        (0.0, t(1, -24)),
        (0.0, t(-(1 << 23), -150)),
        (0.0, t((1 << 24) - 1, -149)),
        (0.0, t(-((1 << 24) - 1), 104)),
        (0.0, t(1, 128)),
        (1.0, t(1, -24)),  // tie to even: stays 1
        (1.0, t(3, -24)),  // tie to even: 1 + 2^-22
        (1.0, t(-1, -25)), // below half an ulp below 1: stays 1
        (1.0, t(-1, -24)), // exactly representable 1 - 2^-24
        (0.0, t(-1, -127)),
        (0.0, t(1, -126)),
        (0.0, t(-1, -126)),
        (0.0, t((1 << 24) - 1, -150)), // rounds up to 2^-126: survives
        (f32::MIN_POSITIVE, t(-1, -151)),
        (f32::MIN_POSITIVE, t(-1, -150)),
        (-f32::MIN_POSITIVE, t(1, -150)),
        (f32::MIN_POSITIVE, t(-1, -126)), // exact cancellation
        (-2.5, Term::from_f32(2.5)),
        (123.456, Term::from_f32(-123.456)),
        (f32::MAX, t(1, 104)),
        (f32::MAX, t(1, 102)),
        (f32::MAX, t(1, 103)),
        (-f32::MAX, t(-(1 << 20), 200)),
        (one_ulp_below_max, t(1, 103)),
        (f32::MAX, Term::from_f32(-f32::MAX)),
        (f32::MAX, t(-(1 << 23), 104)),
        (-f32::MAX, t(64 * 128 * 128, 242)),
        (3.0, t(-64 * 128 * 128, -266)),
    ];
    // Alignment distances around the window edges (d = 0, 1, 25..28, 48..52, 60), both orders and signs.
    for d in [0, 1, 2, 25, 26, 27, 28, 48, 49, 50, 51, 52, 60] {
        for m in [1, 3, 0x7f_ffff, 0xff_ffff, 0x80_0001] {
            for sign in [1, -1] {
                v.push((1.0, t(sign * m, -23 - d)));
                v.push((-1.0 - f32::EPSILON, t(sign * m, -23 - d)));
                v.push((f32::from_bits(0x0080_0001 << 2), t(sign * m, d - 126)));
            }
        }
    }
    v
}

fn random_pair(rng: &mut impl Rng, i: usize) -> (f32, Term) {
    let acc = match rng.gen_range(0..10) {
        0 => 0.0,
        1 => f32::MIN_POSITIVE * rng.gen_range(1.0f32..4.0) * if rng.gen() { 1.0 } else { -1.0 },
        2 => f32::MAX * rng.gen_range(0.5f32..1.0) * if rng.gen() { 1.0 } else { -1.0 },
        _ => f32::from_bits(rng.gen::<u32>() & 0x807f_ffff | rng.gen_range(1u32..255) << 23),
    };
    let anchor = if acc == 0.0 { 0 } else { ((acc.to_bits() >> 23) & 0xff) as i32 - 127 };
    if i % 5 == 4 && acc != 0.0 {
        // Nearly the accumulator's negation: the sum cancels to a few bits (or exactly), at distances 0 and 1.
        let a = Term::from_f32(acc);
        let shift = rng.gen_range(0..2);
        let mantissa = ((-a.mantissa >> shift) + rng.gen_range(-4..=4)).clamp(-(1 << 24) + 1, (1 << 24) - 1);
        return (acc, Term { mantissa, exponent: a.exponent + shift });
    }
    let mantissa = match rng.gen_range(0..4) {
        0 => rng.gen_range(-(1 << 20)..=(1 << 20)), // block products
        1 => rng.gen_range(-((1 << 24) - 1)..(1 << 24)),
        2 => rng.gen_range(-16..=16),
        _ => rng.gen_range(-(1 << 14)..(1 << 14)),
    };
    let exponent = match i % 3 {
        0 => anchor - 21 + rng.gen_range(-30..30), // near the accumulator: ties and carries
        _ => rng.gen_range(-266..=254),            // anywhere in the engine's range
    };
    (acc, Term { mantissa, exponent })
}

fn drive_core(core: &mut AccumulateCore, acc: f32, term: Term) {
    core.acc.next = (acc.to_bits() as u64).into();
    core.mant.next = (term.mantissa as u32 as u64).into();
    core.exp.next = ((term.exponent + EXP_BIAS) as u64).into();
}

#[test]
fn combinational_adder_matches_arch_accumulate_on_extremes_and_random_pairs() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xACC);
    let mut pairs = extreme_pairs();
    pairs.extend((0..20_000).map(|i| random_pair(&mut rng, i)));
    let mut core = Box::new(AccumulateCore::default());
    core.connect_all();
    check_all(core.as_ref()).expect("the adder passes rust-hdl's checks");
    let (mut saturated, mut flushed) = (0, 0);
    for (acc, term) in pairs.iter().copied() {
        drive_core(&mut core, acc, term);
        assert!(simulate(core.as_mut(), 1000), "the adder settles");
        let want = accumulate(acc, term);
        let got = (core.sum.val().to_u32(), core.saturated.val());
        assert_eq!(got, (want.value.to_bits(), want.saturated), "acc {acc:e} ({:#x}) + {term:?}", acc.to_bits());
        saturated += want.saturated as usize;
        flushed += (want.value == 0.0 && term.mantissa != 0) as usize;
    }
    println!("{} pairs, {saturated} saturated, {flushed} zero results", pairs.len());
    assert!(saturated > 50 && flushed > 20, "the sample reaches saturation and zero results");
}

/// Streams the extreme pairs and `random` random ones through an [`Accumulator`] of `latency` cycles in the
/// rust-hdl simulation (a clock, and a testbench thread presenting one pair per cycle, with gaps) and checks
/// each result and its `valid` exactly `latency` cycles later.
fn check_pipelined_accumulator(latency: usize, random: usize, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = extreme_pairs();
    pairs.extend((0..random).map(|i| random_pair(&mut rng, i)));
    let total = pairs.len();
    let mut sim = Simulation::new();
    sim.add_clock(5, |x: &mut Box<Accumulator>| x.clock.next = !x.clock.val());
    sim.add_testbench(move |mut sim: Sim<Accumulator>| {
        let mut x = sim.init()?;
        let mut sent: std::collections::VecDeque<Option<(f32, Term)>> = Default::default();
        let mut checked = 0;
        let mut next = 0;
        let mut cycle = 0usize;
        while checked < total {
            // Present the next pair (every seventh cycle idles, so `valid` gaps are exercised).
            let input = (cycle % 7 != 6 && next < total).then(|| {
                next += 1;
                pairs[next - 1]
            });
            if let Some((acc, term)) = input {
                x.acc.next = (acc.to_bits() as u64).into();
                x.mant.next = (term.mantissa as u32 as u64).into();
                x.exp.next = ((term.exponent + EXP_BIAS) as u64).into();
            }
            x.valid.next = input.is_some();
            sent.push_back(input);
            wait_clock_true!(sim, clock, x);
            wait_clock_false!(sim, clock, x);
            cycle += 1;
            // After the edge, the result of the input presented `latency` cycles ago is on the outputs.
            if sent.len() == latency {
                let expect = sent.pop_front().expect("queued");
                sim_assert_eq!(sim, x.valid_out.val(), expect.is_some(), x);
                if let Some((acc, term)) = expect {
                    let want = accumulate(acc, term);
                    sim_assert_eq!(sim, x.sum.val().to_u32(), want.value.to_bits(), x);
                    sim_assert_eq!(sim, x.saturated.val(), want.saturated, x);
                    checked += 1;
                }
            }
        }
        sim.done(x)
    });
    let uut = Box::new(Accumulator::new(latency));
    sim.run(uut, 100_000_000).expect("the simulation passes");
}

#[test]
fn pipelined_accumulator_matches_arch_in_rust_hdl_simulation() {
    // The presets' latency, 4: a register after every stage.
    check_pipelined_accumulator(4, 1200, 0x5EED);
}

#[test]
fn every_pipeline_depth_keeps_the_arithmetic_and_the_latency() {
    // 1: the result registered only; 2 and 3: the cuts that fit; 5 and 8: every cut and delay registers after.
    for latency in [1, 2, 3, 5, 8] {
        check_pipelined_accumulator(latency, 300, 0xACC0 + latency as u64);
    }
}
