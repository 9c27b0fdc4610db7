//! Loaders for the real labelled test images in the project's data folder (`../shared/data`, or
//! `$SYSTOLE_DATA`), shared by the integration tests and the examples.

use std::io;
use std::path::Path;

use ndarray::Array4;

/// Per-channel (R, G, B) mean of the CIFAR-10 ResNet-20's preprocessing.
pub const CIFAR10_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Per-channel (R, G, B) standard deviation of the CIFAR-10 ResNet-20's preprocessing.
pub const CIFAR10_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Loads the 200 real CIFAR-10 test images of `dir` (the data folder's `cifar10-ic01/`: one 3072-byte `.bin` per
/// image, uint8 RGB 32×32 in height, width, channel order, listed in `y_labels.csv` as `file,10,label`), in the
/// order of `y_labels.csv`.
///
/// Returns the images preprocessed for `resnet20-cifar10.onnx` (`x/255`, then per channel `(x − mean)/std` with
/// [`CIFAR10_MEAN`] and [`CIFAR10_STD`]) as an `[N, 3, 32, 32]` NCHW batch, and their labels (0..=9).
///
/// Errors if a file cannot be read, a line of `y_labels.csv` is malformed or an image is not 3072 bytes.
pub fn cifar10_ic01(dir: &Path) -> io::Result<(Array4<f32>, Vec<usize>)> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let csv = std::fs::read_to_string(dir.join("y_labels.csv"))?;
    let mut rows = Vec::new();
    for line in csv.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let label = fields.get(2).and_then(|f| f.trim().parse::<usize>().ok()).filter(|&l| l < 10);
        match label {
            Some(label) => rows.push((fields[0].trim().to_string(), label)),
            None => return Err(invalid(format!("y_labels.csv: malformed line {line:?}"))),
        }
    }
    let mut x = Array4::<f32>::zeros((rows.len(), 3, 32, 32));
    for (i, (file, _)) in rows.iter().enumerate() {
        let bytes = std::fs::read(dir.join(file))?;
        if bytes.len() != 3 * 32 * 32 {
            return Err(invalid(format!("{file}: {} bytes, expected 3072", bytes.len())));
        }
        for (p, &b) in bytes.iter().enumerate() {
            let (y, xx, c) = (p / 96, (p / 3) % 32, p % 3);
            x[[i, c, y, xx]] = (b as f32 / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
        }
    }
    Ok((x, rows.into_iter().map(|(_, label)| label).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar10_ic01_decodes_hwc_bytes_into_normalised_nchw() {
        let dir = std::env::temp_dir().join(format!("systole-datasets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Image a: every byte is its position mod 256; image b: all 255.
        let a: Vec<u8> = (0..3072).map(|p| (p % 256) as u8).collect();
        std::fs::write(dir.join("a.bin"), &a).unwrap();
        std::fs::write(dir.join("b.bin"), vec![255u8; 3072]).unwrap();
        std::fs::write(dir.join("y_labels.csv"), "a.bin,10,7\nb.bin,10,0\n\n").unwrap();

        let (x, labels) = cifar10_ic01(&dir).unwrap();
        assert_eq!(labels, vec![7, 0]);
        assert_eq!(x.shape(), &[2, 3, 32, 32]);
        // Pixel (y=1, x=2) channel 1 is byte 1*96 + 2*3 + 1 = 103.
        let want = (103.0 / 255.0 - CIFAR10_MEAN[1]) / CIFAR10_STD[1];
        assert!((x[[0, 1, 1, 2]] - want).abs() < 1e-6);
        for c in 0..3 {
            let want = (1.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c];
            assert!(x.index_axis(ndarray::Axis(0), 1).index_axis(ndarray::Axis(0), c).iter().all(|&v| v == want));
        }

        std::fs::write(dir.join("b.bin"), vec![0u8; 100]).unwrap();
        assert_eq!(cifar10_ic01(&dir).unwrap_err().kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
