//! Convolutions and matrix products on the emulated engine through the driver: accuracy against a plain f32
//! convolution, bit-identity between the golden model's two kernels, and clear errors.

use arch::config::EngineConfig;
use arch::golden::Kernel;
use arch::isa::Activation;
use driver::{Accelerator, EmuBackend};
use ndarray::{Array2, Array4};
use rand::{Rng, SeedableRng};
use runtime::engine::{conv2d, matmul, Conv2d, EngineError};

fn device(cfg: EngineConfig, kernel: Kernel) -> Accelerator<EmuBackend> {
    let mut emu = EmuBackend::new(cfg, 64 << 20).unwrap();
    emu.set_kernel(kernel);
    Accelerator::open(emu).unwrap()
}

fn random4(rng: &mut impl Rng, shape: (usize, usize, usize, usize), scale: f32) -> Array4<f32> {
    Array4::from_shape_fn(shape, |_| rng.gen_range(-1.0f32..1.0) * scale)
}

/// The convolution written out directly in f64: the independent reference.
fn conv_f64(x: &Array4<f32>, w: &Array4<f32>, bias: &[f32], c: &Conv2d, relu: bool) -> Array4<f32> {
    let (_, ci, h, wd) = x.dim();
    let (o, cg, kh, kw) = w.dim();
    let [pt, pl, pb, pr] = c.pads;
    let oh = (h + pt + pb - c.dilation[0] * (kh - 1) - 1) / c.stride[0] + 1;
    let ow = (wd + pl + pr - c.dilation[1] * (kw - 1) - 1) / c.stride[1] + 1;
    let og = o / c.group;
    let _ = ci;
    Array4::from_shape_fn((1, o, oh, ow), |(_, oc, y, xo)| {
        let g = oc / og;
        let mut s = bias[oc] as f64;
        for ch in 0..cg {
            for ky in 0..kh {
                for kx in 0..kw {
                    let iy = (y * c.stride[0] + ky * c.dilation[0]) as isize - pt as isize;
                    let ix = (xo * c.stride[1] + kx * c.dilation[1]) as isize - pl as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        s += x[[0, g * cg + ch, iy as usize, ix as usize]] as f64 * w[[oc, ch, ky, kx]] as f64;
                    }
                }
            }
        }
        let v = s as f32;
        if relu {
            v.max(0.0)
        } else {
            v
        }
    })
}

fn sqnr_db(reference: &Array4<f32>, got: &Array4<f32>) -> f64 {
    let signal: f64 = reference.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = reference.iter().zip(got).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    10.0 * (signal / noise.max(1e-300)).log10()
}

#[test]
fn convolutions_on_the_engine_match_f32_and_both_kernels_agree() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let cases = [
        // (input C, H, W), (O, KH, KW), geometry
        ((3, 16, 16), (16, 3, 3), Conv2d { pads: [1, 1, 1, 1], ..Conv2d::default() }),
        ((16, 9, 9), (32, 3, 3), Conv2d { stride: [2, 2], pads: [1, 1, 1, 1], ..Conv2d::default() }),
        ((32, 8, 8), (16, 1, 1), Conv2d::default()),
        ((8, 10, 10), (8, 3, 3), Conv2d { pads: [2, 2, 2, 2], dilation: [2, 2], ..Conv2d::default() }),
        // depthwise
        ((16, 7, 7), (16, 3, 3), Conv2d { pads: [1, 1, 1, 1], group: 16, ..Conv2d::default() }),
    ];
    for ((c, h, w), (o, kh, kw), geom) in cases {
        let x = random4(&mut rng, (1, c, h, w), 2.0);
        let wt = random4(&mut rng, (o, c / geom.group, kh, kw), 0.5);
        let bias: Vec<f32> = (0..o).map(|_| rng.gen_range(-0.5..0.5)).collect();
        let want = conv_f64(&x, &wt, &bias, &geom, true);
        let mut outs = Vec::new();
        for kernel in [Kernel::Fast, Kernel::Reference] {
            let mut acc = device(EngineConfig::tiny(), kernel);
            let (got, stats) = conv2d(&mut acc, x.view(), wt.view(), Some(&bias), &geom, Activation::Relu).unwrap();
            assert_eq!(got.dim(), want.dim());
            assert!(stats.counters.macs > 0 && stats.counters.cycles > 0);
            outs.push(got);
        }
        let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&outs[0]), bits(&outs[1]), "kernels differ for {geom:?}");
        let q = sqnr_db(&want, &outs[0]);
        assert!(q > 30.0, "MSFP16 SQNR {q:.1} dB for {geom:?}");
    }
}

#[test]
fn wide_layers_are_split_to_fit_the_buffers() {
    // 4×4 tiny engine with a small weight buffer: N = 96 with K = 256 needs several column chunks, each in one
    // half of the weight buffer while the other half computes.
    let cfg = EngineConfig { wgt_entries: 512, ..EngineConfig::tiny() };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let a = Array2::from_shape_fn((37, 250), |_| rng.gen_range(-1.0f32..1.0));
    let w = Array2::from_shape_fn((90, 250), |_| rng.gen_range(-1.0f32..1.0));
    let mut acc = device(cfg, Kernel::Fast);
    let (got, stats) = matmul(&mut acc, a.view(), w.view(), None, Activation::None).unwrap();
    // K padded to 256 (16 blocks): 16 columns per half of the weight buffer, so N = 90 takes 6 chunks, each
    // with its weight load, A load, GEMM, POST and STORE.
    assert!(stats.counters.instructions > 6 * 5, "{} instructions", stats.counters.instructions);
    // Splitting changes no bit: each output's accumulation does not depend on the chunking.
    let mut whole = device(EngineConfig::tiny(), Kernel::Fast);
    let (unsplit, _) = matmul(&mut whole, a.view(), w.view(), None, Activation::None).unwrap();
    assert_eq!(got, unsplit);
    let want = a.dot(&w.t());
    let signal: f32 = want.iter().map(|v| v * v).sum();
    let noise: f32 = (&got - &want).iter().map(|v| v * v).sum();
    let sqnr = 10.0 * (signal / noise).log10();
    assert!(sqnr > 35.0, "SQNR {sqnr:.1} dB");
}

#[test]
fn bad_layers_are_clear_errors() {
    let mut acc = device(EngineConfig::tiny(), Kernel::Fast);
    let x = Array4::<f32>::zeros((1, 3, 4, 4));
    let w = Array4::<f32>::zeros((8, 2, 3, 3));
    let err = conv2d(&mut acc, x.view(), w.view(), None, &Conv2d::default(), Activation::None).unwrap_err();
    assert!(matches!(err, EngineError::Shape(_)), "{err}");
    let w = Array4::<f32>::zeros((8, 3, 5, 5));
    let err = conv2d(&mut acc, x.view(), w.view(), None, &Conv2d::default(), Activation::None).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
    let mut a = Array2::<f32>::zeros((2, 16));
    a[[1, 3]] = f32::NAN;
    let err = matmul(&mut acc, a.view(), Array2::zeros((16, 16)).view(), None, Activation::None).unwrap_err();
    assert!(matches!(err, EngineError::Bfp(_)), "{err}");
}
