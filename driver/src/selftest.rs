//! A known program run on a device and checked against the golden model: `systole device selftest`.

use arch::bfp::{BfpTensor, Rounding};
use arch::golden::{Counters, Engine};
use arch::isa::Activation;
use arch::program::{dense_matmul, OutputKind, OutputLocation};

use crate::{Accelerator, Backend, DriverError};

/// What a self-test found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelftestReport {
    /// Output bytes compared.
    pub bytes_compared: usize,
    /// Output bytes that differ from the golden model's (0 on a pass).
    pub mismatched_bytes: usize,
    /// The device's counters for the run.
    pub device: Counters,
    /// The golden model's counters for the same program.
    pub golden: Counters,
}

impl SelftestReport {
    /// True when the device produced the golden model's bits and cycle count.
    pub fn passed(&self) -> bool {
        self.mismatched_bytes == 0 && self.device == self.golden
    }
}

/// Runs a deterministic matrix product with bias, ReLU and BFP output (two row tiles, so double buffering and
/// every token path are exercised) on the device, and compares output bits and counters with the golden model.
pub fn selftest<B: Backend>(acc: &mut Accelerator<B>) -> Result<SelftestReport, DriverError> {
    let cfg = *acc.config();
    let f = cfg.format;
    let bs = f.block_size();
    let (k, n) = (2 * bs, bs);
    // Enough rows for at least two tiles on any configuration that fits this layer at all.
    let m = (cfg.act_entries / (k / bs)).clamp(8, 4096) + 3;
    // A simple deterministic pattern with both signs and a spread of magnitudes (no RNG dependency).
    let value = |i: usize, scale: f32| ((i * 7919 % 1999) as f32 / 999.5 - 1.0) * scale;
    let a: Vec<f32> = (0..m * k).map(|i| value(i, 3.0)).collect();
    let w: Vec<f32> = (0..n * k).map(|i| value(i + 17, 0.25)).collect();
    let bias: Vec<f32> = (0..n).map(|i| value(i + 5, 0.5)).collect();
    let quant = |v: &[f32]| BfpTensor::quantize(f, Rounding::NearestEven, v).expect("finite values");
    let built = dense_matmul(&cfg, &quant(&a), &quant(&w), m, n, Some(&bias), Activation::Relu, OutputKind::Bfp)
        .map_err(|e| DriverError::Selftest(format!("cannot build the self-test program for {cfg}: {e}")))?;
    let OutputLocation::Bfp(planes) = built.output else {
        return Err(DriverError::Selftest("the self-test program has no BFP output".into()));
    };

    let mut golden_mem = built.window.bytes.clone();
    let golden = Engine::try_new(cfg)?
        .run(&built.program, &mut golden_mem)
        .map_err(|e| DriverError::Selftest(format!("the golden model rejected the self-test program: {e}")))?;

    acc.write_data(&built.window.bytes)?;
    let stats = acc.run(&built.program)?;
    let ranges =
        [(planes.mantissas as usize, planes.blocks * f.mantissa_bytes()), (planes.exponents as usize, planes.blocks)];
    let data = acc.data();
    let mut compared = 0;
    let mut mismatched = 0;
    for (start, len) in ranges {
        let got = &data[start..start + len];
        let want = &golden_mem[start..start + len];
        compared += len;
        mismatched += got.iter().zip(want).filter(|(a, b)| a != b).count();
    }
    Ok(SelftestReport {
        bytes_compared: compared,
        mismatched_bytes: mismatched,
        device: stats.counters,
        golden: golden.counters,
    })
}
