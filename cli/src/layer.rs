//! The demo's layer: deterministic pseudo-random data, the f64 reference and the error statistics.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Standard deviation of the bias values: small next to the outputs, whose standard deviation is about 1.
pub const BIAS_STD: f64 = 0.1;

/// One dense layer `out[M×N] = act(A[M×K] · Wᵀ + bias)` in `f32`.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Rows of A and of the output.
    pub m: usize,
    /// Reduction length.
    pub k: usize,
    /// Output columns (rows of W).
    pub n: usize,
    /// `M × K`, row-major: K is contiguous, so BFP blocks run along K.
    pub a: Vec<f32>,
    /// `N × K`, row-major: one row per output column, K contiguous.
    pub w: Vec<f32>,
    /// `N` values.
    pub bias: Vec<f32>,
}

/// One draw from the standard normal distribution (Box–Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    // 1 − U lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.gen::<f64>();
    let u2 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Layer {
    /// A layer with the given shape and seed.
    ///
    /// Activations are `max(0, x)` with `x ~ N(0, 1)`, as after a ReLU (about half are zero); weights are
    /// `N(0, sqrt(2/K))` (He initialisation, so outputs have a standard deviation near 1); the bias is
    /// `N(0, BIAS_STD)`. The same seed always gives the same values.
    pub fn random(m: usize, k: usize, n: usize, seed: u64) -> Layer {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = (0..m * k).map(|_| normal(&mut rng).max(0.0) as f32).collect();
        let w_std = (2.0 / k as f64).sqrt();
        let w = (0..n * k).map(|_| (normal(&mut rng) * w_std) as f32).collect();
        let bias = (0..n).map(|_| (normal(&mut rng) * BIAS_STD) as f32).collect();
        Layer { m, k, n, a, w, bias }
    }
}

impl Layer {
    /// `act(a · wᵀ + bias)` with this layer's shape and bias, for `a` (`M × K`) and `w` (`N × K`) that are
    /// this layer's matrices or stand-ins of the same shape (e.g. their dequantized BFP versions);
    /// accumulated in `f64`, row-major `M × N`.
    pub fn reference(&self, a: &[f32], w: &[f32], activation: arch::isa::Activation) -> Vec<f64> {
        use arch::isa::Activation;
        let (m, k, n) = (self.m, self.k, self.n);
        assert!(a.len() == m * k && w.len() == n * k, "operands do not match the layer's shape");
        let mut out = Vec::with_capacity(m * n);
        for row in a.chunks_exact(k) {
            for (col, &b) in w.chunks_exact(k).zip(&self.bias) {
                let dot: f64 = row.iter().zip(col).map(|(&x, &y)| x as f64 * y as f64).sum();
                let x = dot + b as f64;
                out.push(match activation {
                    Activation::None => x,
                    Activation::Relu => x.max(0.0),
                    Activation::Relu6 => x.clamp(0.0, 6.0),
                });
            }
        }
        out
    }
}

/// How far an output is from its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorStats {
    /// Signal-to-quantization-noise ratio `10·log10(Σ ref² / Σ (ref − out)²)` in dB; `+inf` when exact.
    pub sqnr_db: f64,
    /// Largest `|ref − out|`.
    pub max_abs: f64,
    /// Mean `|ref − out|`.
    pub mean_abs: f64,
}

impl ErrorStats {
    /// Compares `out` with `reference` element by element (they must have the same length).
    pub fn compare(reference: &[f64], out: &[f32]) -> ErrorStats {
        assert_eq!(reference.len(), out.len(), "compared slices differ in length");
        let (mut signal, mut noise, mut max_abs, mut sum_abs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&r, &o) in reference.iter().zip(out) {
            let e = r - o as f64;
            signal += r * r;
            noise += e * e;
            max_abs = max_abs.max(e.abs());
            sum_abs += e.abs();
        }
        let sqnr_db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
        ErrorStats { sqnr_db, max_abs, mean_abs: if out.is_empty() { 0.0 } else { sum_abs / out.len() as f64 } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_deterministic_and_shaped_as_promised() {
        let l = Layer::random(4, 64, 16, 7);
        assert_eq!(l.a, Layer::random(4, 64, 16, 7).a);
        assert_ne!(l.a, Layer::random(4, 64, 16, 8).a);
        assert_eq!((l.a.len(), l.w.len(), l.bias.len()), (256, 1024, 16));
        assert!(l.a.iter().all(|&x| x >= 0.0));
        assert!(l.a.iter().any(|&x| x > 0.0) && l.w.iter().any(|&x| x < 0.0));
    }

    #[test]
    fn reference_applies_bias_and_activation() {
        use arch::isa::Activation;
        let l = Layer { m: 1, k: 2, n: 2, a: vec![1.0, 2.0], w: vec![3.0, -4.0, 1.0, 1.0], bias: vec![0.5, 10.0] };
        // Row · col0 = 3 − 8 = −5, +0.5 → −4.5; row · col1 = 3, +10 → 13.
        assert_eq!(l.reference(&l.a, &l.w, Activation::None), [-4.5, 13.0]);
        assert_eq!(l.reference(&l.a, &l.w, Activation::Relu), [0.0, 13.0]);
        assert_eq!(l.reference(&l.a, &l.w, Activation::Relu6), [0.0, 6.0]);
    }

    #[test]
    fn error_statistics() {
        let s = ErrorStats::compare(&[1.0, -1.0], &[1.0, -1.0]);
        assert_eq!(s.sqnr_db, f64::INFINITY);
        let s = ErrorStats::compare(&[1.0, 1.0], &[1.1, 0.9]);
        // Signal 2, noise 0.02 → 20 dB.
        assert!((s.sqnr_db - 20.0).abs() < 1e-3, "{s:?}");
        assert!((s.max_abs - 0.1).abs() < 1e-6 && (s.mean_abs - 0.1).abs() < 1e-6);
    }
}
