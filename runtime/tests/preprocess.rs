//! Tests of `runtime::preprocess`: real photos, a PIL reference, hostile inputs and every normalisation.
//!
//! The real photos come from the shared data folder (`$SYSTOLE_DATA`, default `../shared/data` beside the
//! workspace); tests that need it print why they skip when it is absent. The PIL comparison runs
//! `python3 -c` with Pillow and NumPy (`python3 -m pip install pillow numpy`); it skips with a printed reason
//! when they are missing, unless `SYSTOLE_REQUIRE_PIL=1` is set, which turns the skip into a failure.

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use ndarray::Array4;
use runtime::preprocess::{
    centre_offset, decode_rgb8, hwc_u8_to_nchw, preprocess, preprocess_with_limits, resize_shorter_side,
    resized_dimensions, ChannelOrder, DecodeLimits, Normalization, PreprocessConfig, PreprocessError, IMAGENET_MEAN,
    IMAGENET_STD,
};

const PHOTOS: [&str; 3] = ["parrot.jpg", "hot_dog.jpg", "cat_720p.jpg"];

/// The shared data folder: `$SYSTOLE_DATA`, else `../shared/data` relative to the workspace root.
fn data_dir() -> PathBuf {
    match std::env::var_os("SYSTOLE_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("data"),
    }
}

/// The bytes of every real photo, or `None` (with a printed reason) when the data folder is absent.
fn photos() -> Option<Vec<(&'static str, Vec<u8>)>> {
    let dir = data_dir().join("imagenet-photos");
    let mut out = Vec::new();
    for name in PHOTOS {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => out.push((name, bytes)),
            Err(e) => {
                println!("SKIP: cannot read {} ({e}); set SYSTOLE_DATA to the shared data folder", path.display());
                return None;
            }
        }
    }
    Some(out)
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encoding a test image");
    out.into_inner()
}

/// A deterministic xorshift generator, so that the fuzz-style tests are reproducible without dependencies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `f` and fails if it takes longer than `limit` (a generous bound: the point is "no runaway work").
fn timed<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    assert!(elapsed < limit, "{what} took {elapsed:?}, more than {limit:?}");
    (out, elapsed)
}

fn channel_stats(t: &Array4<f32>, c: usize) -> (f32, f32, f32, f32) {
    let plane = t.index_axis(ndarray::Axis(1), c);
    let n = plane.len() as f64;
    let mean = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = plane.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    let min = plane.iter().copied().fold(f32::INFINITY, f32::min);
    let max = plane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (mean as f32, var.sqrt() as f32, min, max)
}

// ---------------------------------------------------------------------------------------------------------
// Real photos

#[test]
fn real_photos_give_plausible_imagenet_tensors() {
    let Some(photos) = photos() else { return };
    let config = PreprocessConfig::imagenet();
    for (name, bytes) in &photos {
        let (tensor, elapsed) = timed(name, Duration::from_secs(10), || preprocess(bytes, &config));
        let tensor = tensor.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tensor.shape(), &[1, 3, 224, 224], "{name}");
        assert!(tensor.iter().all(|v| v.is_finite()), "{name}: non-finite values");
        for c in 0..3 {
            let (mean, std, min, max) = channel_stats(&tensor, c);
            let floor = (0.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] - 1e-5;
            let ceil = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c] + 1e-5;
            println!("{name}: channel {c}: mean {mean:+.3} std {std:.3} min {min:+.3} max {max:+.3}");
            assert!(min >= floor && max <= ceil, "{name}: channel {c} outside [{floor}, {ceil}]");
            // A natural photo: mean within the normalised range's middle, real contrast, not constant.
            assert!((-1.8..=1.8).contains(&mean), "{name}: channel {c} mean {mean} implausible");
            assert!((0.2..=1.8).contains(&std), "{name}: channel {c} std {std} implausible");
        }
        println!("{name}: {} bytes preprocessed in {elapsed:?}", bytes.len());
    }
}

#[test]
fn real_photos_under_every_model_convention() {
    let Some(photos) = photos() else { return };
    let (_, bytes) = &photos[0];
    let imagenet = preprocess(bytes, &PreprocessConfig::imagenet()).expect("imagenet");
    let lite = preprocess(bytes, &PreprocessConfig::efficientnet_lite0()).expect("efficientnet");
    let rgb = preprocess(bytes, &PreprocessConfig::brainwave_resnet50(ChannelOrder::Rgb)).expect("caffe rgb");
    let bgr = preprocess(bytes, &PreprocessConfig::brainwave_resnet50(ChannelOrder::Bgr)).expect("caffe bgr");
    let max_diff = imagenet.iter().zip(lite.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("ImageNet (x/255 - mean)/std vs EfficientNet (x - 255 mean)/(255 std): max abs diff {max_diff:e}");
    assert!(max_diff < 1e-5, "the two ImageNet conventions differ by {max_diff}");
    for c in 0..3 {
        let rgb_plane = rgb.index_axis(ndarray::Axis(1), c);
        let bgr_plane = bgr.index_axis(ndarray::Axis(1), 2 - c);
        assert_eq!(rgb_plane, bgr_plane, "BGR must be RGB with channels reversed");
        let (mean, _, min, max) = channel_stats(&rgb, c);
        assert!((-130.0..=160.0).contains(&mean) && min >= -124.0 && max <= 152.0, "caffe channel {c}: {mean}");
    }
}

#[test]
fn cifar_bins_through_the_raw_path() {
    let dir = data_dir().join("cifar10-ic01");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIP: cannot read {}; set SYSTOLE_DATA to the shared data folder", dir.display());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 100, "expected the 200 CIFAR-10 images in {}", dir.display());
    for path in files.iter().take(20) {
        let bytes = std::fs::read(path).expect("read .bin");
        let t = hwc_u8_to_nchw(&bytes, 32, 32, ChannelOrder::Rgb, &Normalization::imagenet()).expect("cifar");
        assert_eq!(t.shape(), &[1, 3, 32, 32]);
        // Spot check against the formula: pixel (y=5, x=7), every channel.
        for c in 0..3 {
            let x = f32::from(bytes[(5 * 32 + 7) * 3 + c]);
            let expected = (x / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert_eq!(t[[0, c, 5, 7]], expected, "{}", path.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// PIL reference

/// Torchvision's evaluation transform for PIL images, written out with PIL and NumPy. Prints the decoded
/// image's width and height (u32 little-endian), the decoded image (HWC), the 8-bit crop (HWC) and the
/// normalised float32 tensor (CHW).
const PIL_SCRIPT: &str = r#"
import sys
import numpy as np
from PIL import Image
path, mode = sys.argv[1], sys.argv[2]
im = Image.open(path).convert("RGB")
w, h = im.size
decoded = np.asarray(im, dtype=np.uint8)
s = 256
nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
im = im.resize((nw, nh), Image.BILINEAR)
top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
x = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.uint8)
mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
xf = x.astype(np.float32)
if mode == "imagenet":
    y = (xf / np.float32(255) - mean) / std
else:
    y = (xf - np.float32(255) * mean) / (np.float32(255) * std)
out = sys.stdout.buffer
out.write(np.array([w, h], dtype="<u4").tobytes())
out.write(decoded.tobytes())
out.write(x.tobytes())
out.write(np.ascontiguousarray(y.transpose(2, 0, 1)).astype("<f4").tobytes())
"#;

/// Tolerance against PIL, in 8-bit levels of the resized and cropped image. Two independent sources of
/// difference: the JPEG decoder (zune-jpeg vs PIL's libjpeg-turbo: IDCT and chroma-upsampling rounding) and the
/// resampler (PIL filters horizontally first and rounds that intermediate to 8 bits with 22-bit fixed-point
/// weights; the `image` crate filters vertically first into an f32 intermediate). Measured with Pillow 13.0:
/// decoders up to 4 levels (1–11% of values differ), resamplers alone at most 1 level (11–16% differ), end to
/// end at most 2 levels (cat_720p.jpg; 1 on the others). One level of margin is allowed for other
/// libjpeg-turbo builds; the resampler alone is held to 1 level. In the normalised tensor the tolerance is
/// `PIL_MAX_LEVELS / 255 / 0.224` (the smallest std): 0.0525.
const PIL_MAX_LEVELS: i32 = 3;

/// Largest absolute difference and how many values differ, between two 8-bit buffers.
fn level_diff(ours: &[u8], theirs: &[u8]) -> (i32, usize) {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).fold((0, 0), |(max, n), (&a, &b)| {
        let d = (i32::from(a) - i32::from(b)).abs();
        (max.max(d), n + usize::from(d != 0))
    })
}

/// The centre 224×224 crop of an image resized with our resampler, as HWC bytes.
fn our_crop(image: &RgbImage) -> Vec<u8> {
    let resized = resize_shorter_side(image, 256, &DecodeLimits::default()).expect("resize");
    let (left, top) = (centre_offset(resized.width(), 224), centre_offset(resized.height(), 224));
    image::imageops::crop_imm(&resized, left, top, 224, 224).to_image().into_raw()
}

#[test]
fn matches_pil_reference() {
    let Some(photos) = photos() else { return };
    let require = std::env::var("SYSTOLE_REQUIRE_PIL").is_ok_and(|v| v == "1");
    let probe = Command::new("python3").args(["-c", "import PIL, numpy"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = "python3 with Pillow and NumPy is not available (python3 -m pip install pillow numpy)";
        assert!(!require, "SYSTOLE_REQUIRE_PIL=1 but {why}");
        println!("SKIP: {why}");
        return;
    }
    let dir = data_dir().join("imagenet-photos");
    let n = 224 * 224 * 3;
    let pct = |k: usize, of: usize| 100.0 * k as f64 / of as f64;
    for (name, bytes) in &photos {
        for (mode, config) in
            [("imagenet", PreprocessConfig::imagenet()), ("efficientnet", PreprocessConfig::efficientnet_lite0())]
        {
            let output = Command::new("python3")
                .args(["-c", PIL_SCRIPT])
                .arg(dir.join(name))
                .arg(mode)
                .output()
                .expect("run python3");
            assert!(output.status.success(), "PIL script failed: {}", String::from_utf8_lossy(&output.stderr));
            let out = &output.stdout;
            let w = u32::from_le_bytes([out[0], out[1], out[2], out[3]]);
            let h = u32::from_le_bytes([out[4], out[5], out[6], out[7]]);
            let decoded_len = (w * h * 3) as usize;
            assert_eq!(out.len(), 8 + decoded_len + n + 4 * n, "PIL script output size");
            let (pil_decoded, rest) = out[8..].split_at(decoded_len);
            let (pil_crop, pil_f32) = rest.split_at(n);
            let pil: Vec<f32> = pil_f32.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();

            // 1. The decoders alone.
            let decoded = decode_rgb8(bytes, &DecodeLimits::default()).expect("decode");
            assert_eq!(decoded.dimensions(), (w, h), "{name}: dimensions");
            let (dec_max, dec_n) = level_diff(decoded.as_raw(), pil_decoded);
            // 2. The resamplers alone: ours applied to PIL's decoded pixels.
            let pil_image = RgbImage::from_raw(w, h, pil_decoded.to_vec()).expect("PIL image");
            let (res_max, res_n) = level_diff(&our_crop(&pil_image), pil_crop);
            // 3. End to end, 8-bit and normalised.
            let (e2e_max, e2e_n) = level_diff(&our_crop(&decoded), pil_crop);
            let ours = preprocess(bytes, &config).expect("preprocess");
            let ours = ours.as_slice().expect("standard layout");
            let max_abs = ours.iter().zip(&pil).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let mean_abs = ours.iter().zip(&pil).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / n as f64;
            println!(
                "{name} [{mode}] vs PIL: tensor max abs diff {max_abs:.6} (mean {mean_abs:.2e}); 8-bit: decoder max \
                 {dec_max} ({:.2}% differ), resampler max {res_max} ({:.2}%), end to end max {e2e_max} ({:.2}%)",
                pct(dec_n, decoded_len),
                pct(res_n, n),
                pct(e2e_n, n)
            );
            assert!(e2e_max <= PIL_MAX_LEVELS, "{name}: {e2e_max} levels from PIL");
            assert!(res_max <= 1, "{name}: the resampler alone is {res_max} levels from PIL's");
            // The normalised tolerance follows: levels / 255 / smallest std.
            let tolerance = PIL_MAX_LEVELS as f32 / 255.0 / 0.224 + 1e-5;
            assert!(max_abs <= tolerance, "{name}: max abs diff {max_abs} > {tolerance}");
            assert!(mean_abs < 0.01, "{name}: mean abs diff {mean_abs} from PIL");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hostile inputs

#[test]
fn empty_input_is_refused() {
    let err = preprocess(&[], &PreprocessConfig::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::Empty), "{err}");
    assert!(err.to_string().contains("empty input"), "{err}");
}

#[test]
fn unknown_and_unsupported_formats_are_refused() {
    let err = preprocess(b"hello, world", &PreprocessConfig::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("68 65 6c 6c 6f"), "{err}");
    // A TIFF signature: a format the image crate knows but this build does not decode.
    let err = preprocess(b"II*\0\x08\0\0\0\0\0", &PreprocessConfig::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("TIFF"), "{err}");
}

const SIGNATURES: [&[u8]; 6] = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
];

#[test]
fn random_bytes_give_errors_quickly() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let config = PreprocessConfig::imagenet();
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    for i in 0..3000 {
        let len = rng.below(2048);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Two thirds start with a real signature, so the decoders themselves see garbage.
        if i % 3 != 0 {
            let sig = SIGNATURES[rng.below(SIGNATURES.len())];
            bytes.splice(0..0, sig.iter().copied());
        }
        let (result, elapsed) = timed("a random input", Duration::from_secs(2), || preprocess(&bytes, &config));
        slowest = slowest.max(elapsed);
        let err = result.expect_err("random bytes decoded as an image");
        assert!(!err.to_string().is_empty());
    }
    println!("3000 random inputs: all refused in {:?}, slowest {slowest:?}", start.elapsed());
}

/// How many final bytes a cut may remove and still be accepted: trailers after the pixel data (PNG's IEND
/// chunk is 12 bytes; GIF's end-of-information code, block terminator and trailer take a few bytes).
const TRAILER_SLACK: usize = 16;

/// Cuts `bytes` at `offsets` and checks that each cut is refused, quickly. The only cuts that may be accepted
/// are within [`TRAILER_SLACK`] of the end, and only if they give exactly the untruncated result (the pixel
/// data was complete). Returns (cuts, cuts accepted).
fn check_cuts(what: &str, bytes: &[u8], offsets: impl Iterator<Item = usize>) -> (usize, usize) {
    let config = PreprocessConfig::imagenet();
    let full = preprocess(bytes, &config).unwrap_or_else(|e| panic!("{what} untruncated: {e}"));
    let (mut count, mut accepted) = (0, 0);
    for cut in offsets {
        let (result, _) = timed(what, Duration::from_secs(5), || preprocess(&bytes[..cut], &config));
        if let Ok(tensor) = result {
            let len = bytes.len();
            assert!(cut + TRAILER_SLACK >= len, "{what} cut at {cut} of {len} bytes was accepted");
            assert_eq!(tensor, full, "{what} cut at {cut} of {len} bytes gave a different image");
            accepted += 1;
        }
        count += 1;
    }
    (count, accepted)
}

#[test]
fn truncated_real_jpegs_give_errors() {
    let Some(photos) = photos() else { return };
    let start = Instant::now();
    let mut total = 0;
    for (name, bytes) in &photos {
        let len = bytes.len();
        // Every byte of the first kilobyte (the headers), 150 evenly spaced cuts, and the last 32 bytes.
        let offsets = (0..1024.min(len))
            .chain((1..150).map(|i| i * len / 150))
            .chain(len.saturating_sub(32)..len)
            .collect::<Vec<_>>();
        let (n, accepted) = check_cuts(name, bytes, offsets.into_iter());
        assert_eq!(accepted, 0, "{name}: a JPEG without its end-of-image marker was accepted");
        total += n;
    }
    println!("{total} truncated JPEGs refused in {:?}", start.elapsed());
}

/// A small real photo (or a synthetic gradient without the data folder) for encoding in other formats.
fn small_test_image() -> DynamicImage {
    let from_photo = photos().and_then(|p| decode_rgb8(&p[0].1, &DecodeLimits::default()).ok());
    let rgb = match from_photo {
        Some(rgb) => image::imageops::resize(&rgb, 40, 30, image::imageops::FilterType::Triangle),
        None => RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8])),
    };
    DynamicImage::ImageRgb8(rgb)
}

#[test]
fn truncated_pngs_gifs_bmps_webps_give_errors() {
    let image = small_test_image();
    let start = Instant::now();
    // Every cut of every file.
    for format in [ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP] {
        let bytes = encode(&image, format);
        let (n, accepted) = check_cuts(&format!("{format:?}"), &bytes, 0..bytes.len());
        println!(
            "{format:?}: {} bytes, {n} truncations: {} refused, {accepted} within the trailer accepted (identical pixels)",
            bytes.len(),
            n - accepted
        );
    }
    println!("took {:?}", start.elapsed());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG whose header claims `width`×`height` RGB pixels, with a tiny (deflate-stored) IDAT.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &[0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xff, 0x00, 0x00, 0x01, 0x00, 0x01]);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn decompression_bombs_are_refused_before_allocating() {
    let config = PreprocessConfig::imagenet();
    let (result, elapsed) = timed("the 100000×100000 PNG", Duration::from_millis(500), || {
        preprocess(&png_claiming(100_000, 100_000), &config)
    });
    let err = result.unwrap_err();
    println!("100000×100000 PNG refused in {elapsed:?}: {err}");
    assert!(
        matches!(err, PreprocessError::TooLarge { width: 100_000, height: 100_000, max_width: 16384, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("100000×100000"), "{err}");

    // Within the dimension limits but over the allocation limit: 16000×16000 RGB is 768 MB.
    let err = preprocess(&png_claiming(16_000, 16_000), &config).unwrap_err();
    assert!(matches!(err, PreprocessError::MemoryLimit { needed: 768_000_000, .. }), "{err}");

    // A JPEG header claiming 65535×65535.
    let mut jpeg = vec![0xff, 0xd8];
    jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x11, 0x00]);
    jpeg.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x00, 0xff, 0xd9]);
    let (result, elapsed) = timed("the 65535×65535 JPEG", Duration::from_millis(500), || preprocess(&jpeg, &config));
    let err = result.unwrap_err();
    println!("65535×65535 JPEG refused in {elapsed:?}: {err}");

    // Configurable limits, on a real image.
    let small = encode(&small_test_image(), ImageFormat::Png);
    let tight = DecodeLimits { max_width: 16, max_height: 16, ..DecodeLimits::default() };
    let err = preprocess_with_limits(&small, &config, &tight).unwrap_err();
    assert!(matches!(err, PreprocessError::TooLarge { width: 40, height: 30, .. }), "{err}");
    let tiny_budget = DecodeLimits { max_alloc_bytes: 1000, ..DecodeLimits::default() };
    let err = preprocess_with_limits(&small, &config, &tiny_budget).unwrap_err();
    assert!(matches!(err, PreprocessError::MemoryLimit { .. }), "{err}");
}

#[test]
fn extreme_aspect_ratio_is_refused_not_allocated() {
    // 16384×1: resizing the shorter side to 256 would make a 4194304×256 image (3 GiB).
    let wide = DynamicImage::ImageLuma8(GrayImage::from_pixel(16384, 1, image::Luma([7])));
    let bytes = encode(&wide, ImageFormat::Png);
    let (result, elapsed) =
        timed("the 16384×1 PNG", Duration::from_secs(2), || preprocess(&bytes, &PreprocessConfig::imagenet()));
    let err = result.unwrap_err();
    println!("16384×1 refused in {elapsed:?}: {err}");
    assert!(matches!(err, PreprocessError::MemoryLimit { .. }), "{err}");
    assert!(err.to_string().contains("aspect ratio"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Colour types and tiny images

#[test]
fn one_pixel_images_work() {
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP] {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([200, 100, 50])));
        let bytes = encode(&image, format);
        let t = preprocess(&bytes, &PreprocessConfig::brainwave_resnet50(ChannelOrder::Rgb))
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(t.shape(), &[1, 3, 224, 224]);
        // Lossless formats reproduce the pixel exactly everywhere (a constant image resizes to itself).
        if format != ImageFormat::Jpeg {
            assert!(t.index_axis(ndarray::Axis(1), 0).iter().all(|&v| v == 200.0 - 123.68), "{format:?}");
            assert!(t.index_axis(ndarray::Axis(1), 2).iter().all(|&v| v == 50.0 - 103.939), "{format:?}");
        }
    }
}

#[test]
fn grey_rgba_and_sixteen_bit_images_become_rgb() {
    let config = PreprocessConfig::brainwave_resnet50(ChannelOrder::Rgb);
    let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(3, 5, image::Luma([90])));
    let t = preprocess(&encode(&grey, ImageFormat::Png), &config).expect("grey");
    for (c, mean) in [123.68f32, 116.779, 103.939].into_iter().enumerate() {
        assert!(t.index_axis(ndarray::Axis(1), c).iter().all(|&v| v == 90.0 - mean));
    }
    // Alpha is dropped, not composited (as PIL's convert("RGB")).
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([10, 20, 30, 0])));
    let t = preprocess(&encode(&rgba, ImageFormat::Png), &config).expect("rgba");
    assert_eq!(t[[0, 0, 100, 100]], 10.0 - 123.68);
    assert_eq!(t[[0, 2, 100, 100]], 30.0 - 103.939);
    let wide = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(4, 4, Rgb([65535u16, 0, 32896])));
    let t = preprocess(&encode(&wide, ImageFormat::Png), &config).expect("16-bit");
    assert_eq!(t[[0, 0, 0, 0]], 255.0 - 123.68);
    assert_eq!(t[[0, 2, 0, 0]], 128.0 - 103.939);
}

/// A 16×8 CMYK JPEG written by PIL (`Image.new("CMYK", ...)`, `save(quality=95)`): left half CMYK
/// (0, 255, 255, 0) = red, right half (255, 255, 0, 0) = blue; PIL reads it back as (255, 0, 0) and (0, 0, 255).
const CMYK_JPEG: &[u8] = &[
    0xff, 0xd8, 0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
    0xdb, 0x00, 0x43, 0x00, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x04, 0x03, 0x02, 0x02, 0x02, 0x02, 0x05, 0x04, 0x04, 0x03, 0x04, 0x06, 0x05, 0x06, 0x06, 0x06, 0x05, 0x06, 0x06,
    0x06, 0x07, 0x09, 0x08, 0x06, 0x07, 0x09, 0x07, 0x06, 0x06, 0x08, 0x0b, 0x08, 0x09, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
    0x06, 0x08, 0x0b, 0x0c, 0x0b, 0x0a, 0x0c, 0x09, 0x0a, 0x0a, 0x0a, 0xff, 0xc0, 0x00, 0x14, 0x08, 0x00, 0x08, 0x00,
    0x10, 0x04, 0x43, 0x11, 0x00, 0x4d, 0x11, 0x00, 0x59, 0x11, 0x00, 0x4b, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x1f, 0x00,
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0xff, 0xc4, 0x00, 0xb5, 0x10, 0x00, 0x02, 0x01, 0x03, 0x03,
    0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7d, 0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12,
    0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1,
    0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
    0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
    0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8,
    0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9,
    0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa, 0xff, 0xda, 0x00, 0x0e, 0x04, 0x43, 0x00, 0x4d, 0x00, 0x59, 0x00, 0x4b, 0x00, 0x00, 0x3f, 0x00, 0xfd,
    0xfc, 0xaf, 0xe7, 0xfe, 0xbf, 0x9f, 0xfa, 0xfd, 0xfc, 0xaf, 0xe0, 0x0e, 0x8a, 0xfe, 0xff, 0x00, 0x28, 0xaf, 0xff,
    0xd9,
];

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    let rgb = decode_rgb8(CMYK_JPEG, &DecodeLimits::default()).expect("CMYK JPEG");
    assert_eq!(rgb.dimensions(), (16, 8));
    let left = rgb.get_pixel(2, 4).0;
    let right = rgb.get_pixel(13, 4).0;
    println!("CMYK JPEG: red half decodes to {left:?}, blue half to {right:?}");
    assert!(left[0] > 200 && left[1] < 60 && left[2] < 60, "red half: {left:?}");
    assert!(right[0] < 60 && right[1] < 60 && right[2] > 200, "blue half: {right:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Normalisations, by hand, on a 2×2 image

/// A 2×2 PNG: (0, 128, 255) (10, 20, 30) / (255, 0, 0) (1, 2, 3).
fn two_by_two() -> Vec<u8> {
    let pixels = [[0u8, 128, 255], [10, 20, 30], [255, 0, 0], [1, 2, 3]];
    let image = RgbImage::from_fn(2, 2, |x, y| Rgb(pixels[(y * 2 + x) as usize]));
    encode(&DynamicImage::ImageRgb8(image), ImageFormat::Png)
}

/// A config that keeps the 2×2 image as it is (resize to 2 = identity, crop 2×2).
fn identity(channel_order: ChannelOrder, normalization: Normalization) -> PreprocessConfig {
    PreprocessConfig { resize_shorter: 2, crop_width: 2, crop_height: 2, channel_order, normalization }
}

/// Compares the tensor's [c][y][x] values with hand-computed ones.
fn assert_close(t: &Array4<f32>, expected: [[[f32; 2]; 2]; 3], what: &str) {
    assert_eq!(t.shape(), &[1, 3, 2, 2]);
    for c in 0..3 {
        for y in 0..2 {
            for x in 0..2 {
                let (got, want) = (t[[0, c, y, x]], expected[c][y][x]);
                assert!((got - want).abs() <= 2e-6 * want.abs().max(1.0), "{what} [{c}][{y}][{x}]: {got} vs {want}");
            }
        }
    }
}

#[test]
fn imagenet_mean_std_by_hand() {
    let t = preprocess(&two_by_two(), &identity(ChannelOrder::Rgb, Normalization::imagenet())).expect("2x2");
    // (x/255 - mean)/std: red (0.485, 0.229), green (0.456, 0.224), blue (0.406, 0.225).
    // Values computed independently in f64 and rounded to 7 significant digits.
    let expected = [
        [[-2.117_904, -1.946_656], [2.248_908, -2.100_779]], // R: 0, 10 / 255, 1
        [[0.205_182_1, -1.685_574], [-2.035_714, -2.000_7]], // G: 128, 20 / 0, 2
        [[2.64, -1.281_569], [-1.804_444, -1.752_157]],      // B: 255, 30 / 0, 3
    ];
    assert_close(&t, expected, "imagenet");
}

#[test]
fn caffe_mean_subtraction_by_hand_rgb_and_bgr() {
    let t = preprocess(&two_by_two(), &identity(ChannelOrder::Rgb, Normalization::caffe())).expect("2x2");
    let expected = [
        [[-123.68, -113.68], [131.32, -122.68]],
        [[11.221, -96.779], [-116.779, -114.779]],
        [[151.061, -73.939], [-103.939, -100.939]],
    ];
    assert_close(&t, expected, "caffe rgb");
    let t = preprocess(&two_by_two(), &identity(ChannelOrder::Bgr, Normalization::caffe())).expect("2x2");
    assert_close(&t, [expected[2], expected[1], expected[0]], "caffe bgr");
}

#[test]
fn efficientnet_byte_mean_std_by_hand() {
    let t = preprocess(&two_by_two(), &identity(ChannelOrder::Rgb, Normalization::efficientnet_lite())).expect("2x2");
    // (x - 255 mean)/(255 std): red (123.675, 58.395), green (116.28, 57.12), blue (103.53, 57.375).
    // The same values as the ImageNet convention (it is the same map, rearranged).
    let expected = [
        [[-2.117_904, -1.946_656], [2.248_908, -2.100_779]],
        [[0.205_182_1, -1.685_574], [-2.035_714, -2.000_7]],
        [[2.64, -1.281_569], [-1.804_444, -1.752_157]],
    ];
    assert_close(&t, expected, "efficientnet");
    let a = preprocess(&two_by_two(), &identity(ChannelOrder::Rgb, Normalization::imagenet())).expect("2x2");
    let max = t.iter().zip(a.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max < 1e-6, "EfficientNet and ImageNet conventions differ by {max}");
}

#[test]
fn cifar_raw_hwc_by_hand() {
    let raw = [0u8, 128, 255, 10, 20, 30, 255, 0, 0, 1, 2, 3];
    let t = hwc_u8_to_nchw(&raw, 2, 2, ChannelOrder::Rgb, &Normalization::imagenet()).expect("raw");
    let from_png = preprocess(&two_by_two(), &identity(ChannelOrder::Rgb, Normalization::imagenet())).expect("png");
    assert_eq!(t, from_png, "raw HWC and the decoded PNG must agree");
    assert_eq!(t[[0, 1, 0, 0]], (128.0f32 / 255.0 - 0.456) / 0.224);
    let err = hwc_u8_to_nchw(&raw[..11], 2, 2, ChannelOrder::Rgb, &Normalization::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::RawSize { actual: 11, expected: 12, .. }), "{err}");
    let err = hwc_u8_to_nchw(&[], 0, 0, ChannelOrder::Rgb, &Normalization::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::RawSize { .. }), "{err}");
    let err = hwc_u8_to_nchw(&raw, usize::MAX, 3, ChannelOrder::Rgb, &Normalization::imagenet()).unwrap_err();
    assert!(matches!(err, PreprocessError::RawSize { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Geometry and configuration

#[test]
fn resize_and_crop_geometry_follows_torchvision() {
    assert_eq!(resized_dimensions(500, 375, 256).unwrap(), (341, 256));
    assert_eq!(resized_dimensions(375, 500, 256).unwrap(), (256, 341));
    assert_eq!(resized_dimensions(1280, 720, 256).unwrap(), (455, 256));
    assert_eq!(resized_dimensions(1, 1, 256).unwrap(), (256, 256));
    assert!(resized_dimensions(0, 5, 256).is_err());
    // round((size - crop) / 2) with Python's half-to-even rounding.
    assert_eq!(centre_offset(341, 224), 58); // 58.5 -> 58
    assert_eq!(centre_offset(343, 224), 60); // 59.5 -> 60
    assert_eq!(centre_offset(455, 224), 116); // 115.5 -> 116
    assert_eq!(centre_offset(256, 224), 16);
    assert_eq!(centre_offset(224, 224), 0);
}

#[test]
fn invalid_configurations_are_refused() {
    let bytes = two_by_two();
    let mut config = PreprocessConfig::imagenet();
    config.crop_width = 300;
    let err = preprocess(&bytes, &config).unwrap_err();
    assert!(matches!(err, PreprocessError::InvalidConfig(_)) && err.to_string().contains("crop"), "{err}");
    config = PreprocessConfig { resize_shorter: 0, ..PreprocessConfig::imagenet() };
    assert!(matches!(preprocess(&bytes, &config), Err(PreprocessError::InvalidConfig(_))));
    config = PreprocessConfig { resize_shorter: 1 << 20, ..PreprocessConfig::imagenet() };
    assert!(matches!(preprocess(&bytes, &config), Err(PreprocessError::InvalidConfig(_))));
    config = PreprocessConfig {
        normalization: Normalization::UnitMeanStd { mean: IMAGENET_MEAN, std: [0.2, 0.0, 0.2] },
        ..PreprocessConfig::imagenet()
    };
    let err = preprocess(&bytes, &config).unwrap_err();
    assert!(err.to_string().contains("standard deviation"), "{err}");
    assert_eq!(PreprocessConfig::default(), PreprocessConfig::imagenet());
    assert_eq!(PreprocessConfig::imagenet().output_shape(), [1, 3, 224, 224]);
}

#[test]
fn a_non_square_crop_and_resize() {
    let config =
        PreprocessConfig { resize_shorter: 64, crop_width: 48, crop_height: 32, ..PreprocessConfig::imagenet() };
    let t = preprocess(&encode(&small_test_image(), ImageFormat::Png), &config).expect("non-square");
    assert_eq!(t.shape(), &[1, 3, 32, 48]);
}
