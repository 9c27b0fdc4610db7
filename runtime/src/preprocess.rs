//! Image preprocessing: encoded photo bytes → normalised NCHW `f32` tensor, as the models expect them.
//!
//! The pipeline is the one torchvision's ImageNet evaluation transform (and the Brainwave seed) applies:
//!
//! 1. **Decode** JPEG, PNG, GIF, BMP or WebP from bytes with the `image` crate ([`decode_rgb8`]), under
//!    [`DecodeLimits`] that are checked against the dimensions in the file's header *before* any pixel buffer
//!    is allocated (decompression bombs). Grey, grey+alpha, RGBA, 16-bit and CMYK (JPEG) images are converted
//!    to 8-bit RGB; alpha is dropped without compositing (as PIL's `convert("RGB")` does). EXIF orientation is
//!    **not** applied, as neither PIL's `Image.open` nor torchvision apply it. A JPEG whose data ends before its
//!    end-of-image marker is refused (the `image` crate's decoder would silently fill the missing part with
//!    grey; libjpeg and so PIL refuse it too).
//! 2. **Resize** so that the shorter side is [`PreprocessConfig::resize_shorter`] (default 256), keeping the
//!    aspect ratio; the longer side is `floor(resize_shorter · long / short)`, exactly torchvision's
//!    `Resize(256)`. The filter is the `image` crate's [`FilterType::Triangle`]: a separable triangle (tent,
//!    i.e. bilinear) kernel whose support is widened by the scale factor when shrinking, so it averages every
//!    source pixel under the output pixel. That is the same filter as PIL's `Image.BILINEAR`, which is what
//!    torchvision uses for PIL images (PIL always antialiases, and torchvision's `antialias=True` default
//!    gives the same for tensors); both also place sample centres at `(i + 0.5)·scale` and renormalise the
//!    weights at the borders. The remaining differences are numerical: PIL filters horizontally first and
//!    rounds the intermediate image to 8 bits, with 22-bit fixed-point weights, while the `image` crate filters
//!    vertically first and keeps an `f32` intermediate. Measured against Pillow on the test photos, the
//!    resamplers alone differ by at most 1 level on 11–16% of the values; with the JPEG decoders' own
//!    differences (zune-jpeg vs libjpeg-turbo, up to 4 levels before resizing) the 224×224 crops differ by at
//!    most 2 levels, 0.035 in the ImageNet-normalised tensor (`tests/preprocess.rs`, `matches_pil_reference`).
//! 3. **Centre-crop** to [`PreprocessConfig::crop_width`] × [`PreprocessConfig::crop_height`] (default 224×224)
//!    with torchvision's offsets: `round((size − crop) / 2)` with Python's round-half-to-even.
//! 4. **Normalise** each 8-bit value per channel with the model's [`Normalization`] in `f32` arithmetic, in the
//!    model's [`ChannelOrder`], into an `ndarray::Array4<f32>` of shape `[1, 3, crop_height, crop_width]`.
//!
//! Fixed-size raw images without resizing (the CIFAR-10 `.bin` files: 32×32×3 `u8`, height × width × channel)
//! go through [`hwc_u8_to_nchw`] instead.
//!
//! No function here panics on any input: every failure is a [`PreprocessError`] that says what is wrong.

mod jpeg;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};
use ndarray::Array4;

/// The ImageNet per-channel mean of `x/255`, in R, G, B order (torchvision's constants).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];

/// The ImageNet per-channel standard deviation of `x/255`, in R, G, B order (torchvision's constants).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The per-channel mean on 0..255 values subtracted by the Brainwave seed (TF-slim / Caffe ResNet-50), in
/// R, G, B order.
pub const CAFFE_MEAN_RGB: [f32; 3] = [123.68, 116.779, 103.939];

/// The largest resize or crop size a [`PreprocessConfig`] accepts, to bound what a configuration can allocate.
pub const MAX_OUTPUT_SIDE: u32 = 8192;

/// The image formats [`decode_rgb8`] accepts, by the `image` crate's name for them.
pub const SUPPORTED_FORMATS: [ImageFormat; 5] =
    [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP];

/// Everything that can go wrong while preprocessing an image.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The input holds no bytes at all.
    #[error("empty input: zero bytes were given where an encoded image (JPEG, PNG, GIF, BMP or WebP) was expected")]
    Empty,
    /// The bytes do not start with the signature of any image format the `image` crate knows.
    #[error(
        "unknown image format: the data does not start with the signature of JPEG, PNG, GIF, BMP or WebP \
         (first bytes: {first_bytes})"
    )]
    UnknownFormat {
        /// The first (up to 8) bytes of the input, in hexadecimal.
        first_bytes: String,
    },
    /// The data is an image format that this build does not decode, or a feature of a format it does not
    /// support.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// The data is corrupt or truncated: the decoder refused it.
    #[error("corrupt or truncated {format} data: {detail}")]
    Corrupt {
        /// The format the data claims to be.
        format: &'static str,
        /// What the decoder (or the structure check) found.
        detail: String,
    },
    /// The header claims dimensions beyond [`DecodeLimits::max_width`] or [`DecodeLimits::max_height`].
    #[error(
        "image too large: the {format} header claims {width}×{height} pixels, more than the limit of \
         {max_width}×{max_height}"
    )]
    TooLarge {
        /// The format of the data.
        format: &'static str,
        /// The width the header claims.
        width: u32,
        /// The height the header claims.
        height: u32,
        /// The width limit in force.
        max_width: u32,
        /// The height limit in force.
        max_height: u32,
    },
    /// A stage would allocate more than [`DecodeLimits::max_alloc_bytes`].
    #[error("image needs too much memory: {what} needs {needed} bytes, more than the limit of {limit} bytes")]
    MemoryLimit {
        /// Which stage and why, e.g. "decoding a 8000×8000 RGBA image".
        what: String,
        /// The bytes that stage would need.
        needed: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The decoder refused the image under its resource limits ([`DecodeLimits`] passed to the `image` crate).
    #[error("image exceeds the decoder's resource limits: {format}: {detail}")]
    DecoderLimit {
        /// The format of the data.
        format: &'static str,
        /// The decoder's description of the limit hit.
        detail: String,
    },
    /// The image decodes to zero pixels.
    #[error("empty image: the {format} data decodes to {width}×{height} pixels")]
    ZeroSized {
        /// The format of the data.
        format: &'static str,
        /// The decoded width.
        width: u32,
        /// The decoded height.
        height: u32,
    },
    /// A raw HWC buffer does not have the length its dimensions require.
    #[error("raw image buffer has {actual} bytes, but {height}×{width}×3 (height × width × RGB) needs {expected}")]
    RawSize {
        /// The length given.
        actual: usize,
        /// The length required.
        expected: usize,
        /// The height given.
        height: usize,
        /// The width given.
        width: usize,
    },
    /// The preprocessing configuration itself is invalid.
    #[error("invalid preprocessing configuration: {0}")]
    InvalidConfig(String),
}

/// Shorthand for results of this module.
pub type Result<T, E = PreprocessError> = std::result::Result<T, E>;

/// The order of the three colour channels in the output tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (torchvision, ONNX model zoo, EfficientNet-Lite0, the seed's TF ResNet-50).
    #[default]
    Rgb,
    /// Blue, green, red (the Caffe convention, Keras `preprocess_input(mode="caffe")`).
    Bgr,
}

impl ChannelOrder {
    /// The colour (0 = red, 1 = green, 2 = blue) stored in output channel `channel` (0..3).
    pub fn colour_of_channel(self, channel: usize) -> usize {
        match self {
            ChannelOrder::Rgb => channel,
            ChannelOrder::Bgr => 2usize.saturating_sub(channel),
        }
    }
}

/// How a model wants 8-bit colour values `x` (0..=255) mapped to `f32`, per colour.
///
/// Every `mean` and `std` array is indexed by **colour** (red, green, blue), whatever the output
/// [`ChannelOrder`]: the red mean stays the red mean when the tensor is BGR. Each formula is evaluated in `f32`
/// in the order written, which reproduces torchvision (`ToTensor` then `Normalize`) bit for bit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// `(x/255 − mean) / std` (torchvision's `ToTensor` + `Normalize`; ImageNet models, the CIFAR ResNet-20).
    UnitMeanStd {
        /// Per-colour mean of `x/255`.
        mean: [f32; 3],
        /// Per-colour standard deviation of `x/255`.
        std: [f32; 3],
    },
    /// `(x − 255·mean) / (255·std)` (EfficientNet-Lite0's convention in the data README; equal to
    /// [`Normalization::UnitMeanStd`] up to `f32` rounding). `255·mean` and `255·std` are computed in `f32`.
    ByteMeanStd {
        /// Per-colour mean of `x/255` (multiplied by 255 before use).
        mean: [f32; 3],
        /// Per-colour standard deviation of `x/255` (multiplied by 255 before use).
        std: [f32; 3],
    },
    /// `x − mean` on 0..255 values, no scaling (the seed's Brainwave / TF-slim ResNet-50 and Caffe).
    MeanSubtraction {
        /// Per-colour mean on the 0..255 scale.
        mean: [f32; 3],
    },
}

impl Normalization {
    /// ImageNet mean/std on `x/255`: `(x/255 − (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`.
    pub fn imagenet() -> Self {
        Normalization::UnitMeanStd { mean: IMAGENET_MEAN, std: IMAGENET_STD }
    }

    /// EfficientNet-Lite0's `(x − 255·mean) / (255·std)` with the ImageNet mean and std.
    pub fn efficientnet_lite() -> Self {
        Normalization::ByteMeanStd { mean: IMAGENET_MEAN, std: IMAGENET_STD }
    }

    /// The seed's mean subtraction on 0..255 values: `x − (123.68, 116.779, 103.939)` for R, G, B.
    pub fn caffe() -> Self {
        Normalization::MeanSubtraction { mean: CAFFE_MEAN_RGB }
    }

    /// The normalised value of the 8-bit value `x` of colour `colour` (0 = red, 1 = green, 2 = blue; larger
    /// values are treated as blue).
    pub fn apply(&self, colour: usize, x: u8) -> f32 {
        let c = colour.min(2);
        let x = f32::from(x);
        match self {
            Normalization::UnitMeanStd { mean, std } => (x / 255.0 - mean[c]) / std[c],
            Normalization::ByteMeanStd { mean, std } => (x - 255.0 * mean[c]) / (255.0 * std[c]),
            Normalization::MeanSubtraction { mean } => x - mean[c],
        }
    }

    /// Checks that every constant is finite and every standard deviation positive.
    pub fn validate(&self) -> Result<()> {
        let (mean, std) = match self {
            Normalization::UnitMeanStd { mean, std } | Normalization::ByteMeanStd { mean, std } => (mean, Some(std)),
            Normalization::MeanSubtraction { mean } => (mean, None),
        };
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(PreprocessError::InvalidConfig(format!("normalisation mean {m} is not a finite number")));
        }
        if let Some(s) = std.and_then(|std| std.iter().find(|s| !(s.is_finite() && **s > 0.0))) {
            return Err(PreprocessError::InvalidConfig(format!(
                "normalisation standard deviation {s} is not a positive finite number"
            )));
        }
        Ok(())
    }

    /// A lookup table `[colour][x]` of [`Normalization::apply`] for every 8-bit value.
    fn table(&self) -> [[f32; 256]; 3] {
        let mut table = [[0.0f32; 256]; 3];
        for (colour, row) in table.iter_mut().enumerate() {
            for (x, out) in (0..=255u8).zip(row.iter_mut()) {
                *out = self.apply(colour, x);
            }
        }
        table
    }
}

/// How one model wants its input image prepared: sizes, channel order and normalisation.
///
/// This is a model property (it belongs in a model package); the resource limits of decoding are a separate
/// [`DecodeLimits`] value chosen by whoever serves the model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// The length of the shorter side after resizing (torchvision's `Resize(256)`).
    pub resize_shorter: u32,
    /// The width of the centre crop (at most `resize_shorter`).
    pub crop_width: u32,
    /// The height of the centre crop (at most `resize_shorter`).
    pub crop_height: u32,
    /// The order of the colour channels in the output tensor.
    pub channel_order: ChannelOrder,
    /// The mapping of 8-bit values to `f32`.
    pub normalization: Normalization,
}

impl Default for PreprocessConfig {
    /// The torchvision ImageNet evaluation transform: resize 256, centre-crop 224, RGB, ImageNet mean/std.
    fn default() -> Self {
        Self::imagenet()
    }
}

impl PreprocessConfig {
    /// torchvision's ImageNet evaluation transform: resize 256, centre-crop 224×224, RGB, ImageNet mean/std.
    pub fn imagenet() -> Self {
        PreprocessConfig {
            resize_shorter: 256,
            crop_width: 224,
            crop_height: 224,
            channel_order: ChannelOrder::Rgb,
            normalization: Normalization::imagenet(),
        }
    }

    /// EfficientNet-Lite0 (data README): resize 256, centre-crop 224×224, RGB, `(x − 255·mean)/(255·std)`.
    pub fn efficientnet_lite0() -> Self {
        PreprocessConfig { normalization: Normalization::efficientnet_lite(), ..Self::imagenet() }
    }

    /// CIFAR-10 classifiers such as the data folder's ResNet-20: resize to 32, centre-crop 32×32, RGB,
    /// ImageNet mean/std (the normalisation `resnet20-cifar10.onnx` was trained with).
    pub fn cifar10() -> Self {
        PreprocessConfig { resize_shorter: 32, crop_width: 32, crop_height: 32, ..Self::imagenet() }
    }

    /// The Brainwave seed's ResNet-50: resize 256, centre-crop 224×224, `x − (123.68, 116.779, 103.939)` on
    /// 0..255 values, in the given channel order (RGB for the seed's TF model, BGR for Caffe-converted ones).
    pub fn brainwave_resnet50(channel_order: ChannelOrder) -> Self {
        PreprocessConfig { channel_order, normalization: Normalization::caffe(), ..Self::imagenet() }
    }

    /// Checks the sizes (positive, at most [`MAX_OUTPUT_SIDE`], crop no larger than the resize) and the
    /// normalisation constants.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("resize_shorter", self.resize_shorter),
            ("crop_width", self.crop_width),
            ("crop_height", self.crop_height),
        ] {
            if value == 0 || value > MAX_OUTPUT_SIDE {
                return Err(PreprocessError::InvalidConfig(format!(
                    "{name} is {value}; it must be between 1 and {MAX_OUTPUT_SIDE}"
                )));
            }
        }
        if self.crop_width > self.resize_shorter || self.crop_height > self.resize_shorter {
            return Err(PreprocessError::InvalidConfig(format!(
                "the {}×{} crop is larger than the resized shorter side {}",
                self.crop_width, self.crop_height, self.resize_shorter
            )));
        }
        self.normalization.validate()
    }

    /// The shape of the tensor [`preprocess`] returns: `[1, 3, crop_height, crop_width]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [1, 3, self.crop_height as usize, self.crop_width as usize]
    }
}

/// Resource limits for decoding untrusted image bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    /// The largest accepted image width in pixels, checked against the header before decoding.
    pub max_width: u32,
    /// The largest accepted image height in pixels, checked against the header before decoding.
    pub max_height: u32,
    /// The most bytes one stage may allocate: the decoded image plus the decoder's own buffers, then the RGB
    /// conversion, then the resampling buffers. Checked before each allocation.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    /// 16384×16384 pixels and 512 MiB.
    fn default() -> Self {
        DecodeLimits { max_width: 16384, max_height: 16384, max_alloc_bytes: 512 * 1024 * 1024 }
    }
}

/// Decodes, resizes, crops and normalises an encoded image into a `[1, 3, crop_height, crop_width]` tensor,
/// with the default [`DecodeLimits`].
pub fn preprocess(bytes: &[u8], config: &PreprocessConfig) -> Result<Array4<f32>> {
    preprocess_with_limits(bytes, config, &DecodeLimits::default())
}

/// [`preprocess`] with explicit resource limits.
pub fn preprocess_with_limits(bytes: &[u8], config: &PreprocessConfig, limits: &DecodeLimits) -> Result<Array4<f32>> {
    config.validate()?;
    let image = decode_rgb8(bytes, limits)?;
    preprocess_rgb8(&image, config, limits)
}

/// Resizes, crops and normalises an already decoded 8-bit RGB image (steps 2 to 4 of the module description).
pub fn preprocess_rgb8(image: &RgbImage, config: &PreprocessConfig, limits: &DecodeLimits) -> Result<Array4<f32>> {
    config.validate()?;
    let resized = resize_shorter_side(image, config.resize_shorter, limits)?;
    let (width, height) = resized.dimensions();
    let left = centre_offset(width, config.crop_width);
    let top = centre_offset(height, config.crop_height);
    let (cw, ch) = (config.crop_width as usize, config.crop_height as usize);
    let table = config.normalization.table();
    let plane = cw * ch;
    let mut data = vec![0.0f32; 3 * plane];
    let raw = resized.as_raw();
    let row_stride = width as usize * 3;
    for y in 0..ch {
        let row_start = (top as usize + y) * row_stride + left as usize * 3;
        let Some(row) = raw.get(row_start..row_start + cw * 3) else {
            return Err(internal("the centre crop lies outside the resized image"));
        };
        for (x, pixel) in row.chunks_exact(3).enumerate() {
            for channel in 0..3 {
                let colour = config.channel_order.colour_of_channel(channel);
                data[channel * plane + y * cw + x] = table[colour][usize::from(pixel[colour])];
            }
        }
    }
    Array4::from_shape_vec((1, 3, ch, cw), data).map_err(|e| internal(&e.to_string()))
}

/// Normalises a raw 8-bit RGB image stored height × width × channel (e.g. a CIFAR-10 `.bin`: 32×32×3 bytes)
/// into a `[1, 3, height, width]` tensor, without resizing.
pub fn hwc_u8_to_nchw(
    data: &[u8],
    height: usize,
    width: usize,
    channel_order: ChannelOrder,
    normalization: &Normalization,
) -> Result<Array4<f32>> {
    normalization.validate()?;
    let expected = height.checked_mul(width).and_then(|n| n.checked_mul(3));
    if height == 0 || width == 0 || expected != Some(data.len()) {
        return Err(PreprocessError::RawSize {
            actual: data.len(),
            expected: expected.unwrap_or(usize::MAX),
            height,
            width,
        });
    }
    let table = normalization.table();
    let plane = height * width;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, pixel) in data.chunks_exact(3).enumerate() {
        for channel in 0..3 {
            let colour = channel_order.colour_of_channel(channel);
            out[channel * plane + i] = table[colour][usize::from(pixel[colour])];
        }
    }
    Array4::from_shape_vec((1, 3, height, width), out).map_err(|e| internal(&e.to_string()))
}

/// The image format of `bytes` by its signature, if it is one [`decode_rgb8`] accepts.
pub fn detect_format(bytes: &[u8]) -> Result<ImageFormat> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| PreprocessError::UnknownFormat {
        first_bytes: bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
    })?;
    if !SUPPORTED_FORMATS.contains(&format) {
        return Err(PreprocessError::Unsupported(format!(
            "{} images are not decoded by this build (supported: JPEG, PNG, GIF, BMP, WebP)",
            format_name(format)
        )));
    }
    Ok(format)
}

/// Decodes an encoded image (JPEG, PNG, GIF, BMP, WebP; the first frame of animations) to 8-bit RGB under
/// `limits`. The header's dimensions and the decoded size are checked before the pixel buffer is allocated.
pub fn decode_rgb8(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage> {
    let format = detect_format(bytes)?;
    let name = format_name(format);
    if format == ImageFormat::Jpeg {
        jpeg::check_complete(bytes).map_err(|detail| PreprocessError::Corrupt { format: name, detail })?;
    }
    // Third-party decoders should never panic, but a server must not go down if one does.
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_dynamic(bytes, format, limits))).unwrap_or_else(|_| {
        Err(PreprocessError::Corrupt { format: name, detail: "the decoder panicked on this data".to_string() })
    })?;
    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSized { format: name, width, height });
    }
    let rgb = match decoded {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => {
            let needed = u64::from(width) * u64::from(height) * 3 + other.as_bytes().len() as u64;
            check_alloc(needed, limits, || format!("converting the {width}×{height} {name} image to RGB"))?;
            other.into_rgb8()
        }
    };
    Ok(rgb)
}

/// Decodes with the `image` crate: header first, limits checked, then the pixels.
fn decode_dynamic(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Result<DynamicImage> {
    let name = format_name(format);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The decoder's own limits: the dimension limits are checked again below with a clearer message.
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    // Reading the header must not be refused for its dimensions before we can report them.
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(|e| map_image_error(e, name))?;
    let (width, height) = decoder.dimensions();
    if width > limits.max_width || height > limits.max_height {
        return Err(PreprocessError::TooLarge {
            format: name,
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let total = decoder.total_bytes();
    check_alloc(total, limits, || format!("decoding the {width}×{height} {name} image ({:?})", decoder.color_type()))?;
    // As `ImageReader::decode` does: the output buffer counts against the decoder's allocation budget.
    image_limits.reserve(total).map_err(|e| map_image_error(e, name))?;
    decoder.set_limits(image_limits).map_err(|e| map_image_error(e, name))?;
    DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, name))
}

/// Resizes `image` so that its shorter side is `shorter` (torchvision's `Resize(shorter)` size rule) with the
/// `image` crate's [`FilterType::Triangle`] (bilinear, antialiased when shrinking; see the module description).
pub fn resize_shorter_side(image: &RgbImage, shorter: u32, limits: &DecodeLimits) -> Result<RgbImage> {
    let (width, height) = image.dimensions();
    let (new_width, new_height) = resized_dimensions(width, height, shorter)?;
    // `imageops::resize` filters vertically into an RGBA f32 buffer (16 bytes per pixel) of
    // width × new_height, then horizontally into the 8-bit RGB output.
    let needed = u64::from(width) * u64::from(new_height) * 16 + u64::from(new_width) * u64::from(new_height) * 3;
    check_alloc(needed, limits, || {
        format!("resizing {width}×{height} to {new_width}×{new_height} (the aspect ratio is too extreme)")
    })?;
    Ok(image::imageops::resize(image, new_width, new_height, FilterType::Triangle))
}

/// The dimensions after resizing the shorter side of a `width`×`height` image to `shorter`:
/// the longer side becomes `floor(shorter · long / short)` (torchvision's rule).
pub fn resized_dimensions(width: u32, height: u32, shorter: u32) -> Result<(u32, u32)> {
    if width == 0 || height == 0 || shorter == 0 {
        return Err(PreprocessError::InvalidConfig(format!("cannot resize a {width}×{height} image to {shorter}")));
    }
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = u64::from(shorter) * u64::from(long) / u64::from(short);
    let new_long = u32::try_from(new_long).map_err(|_| PreprocessError::MemoryLimit {
        what: format!("resizing {width}×{height} so that the shorter side is {shorter}"),
        needed: new_long.saturating_mul(u64::from(shorter)).saturating_mul(3),
        limit: u64::from(u32::MAX),
    })?;
    Ok(if width <= height { (shorter, new_long) } else { (new_long, shorter) })
}

/// torchvision's centre-crop offset: `int(round((size − crop) / 2))`, Python rounding half to even.
pub fn centre_offset(size: u32, crop: u32) -> u32 {
    let d = size.saturating_sub(crop);
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// A short name for a format, for messages.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        ImageFormat::WebP => "WebP",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Avif => "AVIF",
        ImageFormat::Ico => "ICO",
        ImageFormat::Hdr => "Radiance HDR",
        ImageFormat::OpenExr => "OpenEXR",
        ImageFormat::Pnm => "PNM",
        ImageFormat::Tga => "TGA",
        ImageFormat::Dds => "DDS",
        ImageFormat::Farbfeld => "farbfeld",
        ImageFormat::Qoi => "QOI",
        _ => "image",
    }
}

/// Translates an `image` crate error into ours.
fn map_image_error(error: ImageError, format: &'static str) -> PreprocessError {
    match error {
        ImageError::Limits(e) => PreprocessError::DecoderLimit { format, detail: e.to_string() },
        ImageError::Unsupported(e) => PreprocessError::Unsupported(format!("{format}: {e}")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            PreprocessError::Corrupt { format, detail: format!("the data ends too early ({e})") }
        }
        other => PreprocessError::Corrupt { format, detail: other.to_string() },
    }
}

/// Refuses an allocation of `needed` bytes beyond the limit.
fn check_alloc(needed: u64, limits: &DecodeLimits, what: impl FnOnce() -> String) -> Result<()> {
    if needed > limits.max_alloc_bytes {
        return Err(PreprocessError::MemoryLimit { what: what(), needed, limit: limits.max_alloc_bytes });
    }
    Ok(())
}

/// An error for a broken internal invariant (never expected; reported instead of panicking).
fn internal(detail: &str) -> PreprocessError {
    PreprocessError::InvalidConfig(format!("internal error in preprocessing: {detail}"))
}
