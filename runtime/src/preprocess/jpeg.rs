//! A structural completeness check for JPEG data.
//!
//! The `image` crate decodes JPEG with `zune-jpeg` in its lenient mode: when the entropy-coded data stops
//! early it fills the rest of the picture with grey and reports success, as browsers do. For inference that
//! is the wrong answer (a half-grey photo is classified without complaint), so before decoding we walk the
//! marker structure of the file and refuse data that ends before its end-of-image marker, which is what
//! libjpeg (and so PIL) reports as "image file is truncated".
//!
//! The walk follows the JPEG syntax (ITU T.81, annex B): marker segments carry a 16-bit length and are
//! skipped whole (so an EXIF thumbnail, itself a complete JPEG inside an APP1 segment, cannot end the walk
//! early); after a start-of-scan segment the entropy-coded data runs until the next marker that is not a
//! stuffed zero (`FF 00`), a restart marker (`FF D0`..`FF D7`) or fill bytes (`FF FF`). Bytes after the
//! end-of-image marker are ignored, as every decoder ignores them.

/// Where a JPEG's structure ends too early, as a human-readable description.
pub(super) fn check_complete(data: &[u8]) -> Result<(), String> {
    // The caller has recognised the format by its SOI marker (FF D8); anything else is left to the decoder.
    if data.len() < 2 || data[0] != 0xFF || data[1] != 0xD8 {
        return Ok(());
    }
    let len = data.len();
    let mut pos = 2usize;
    loop {
        // Expect a marker: one or more 0xFF bytes followed by the marker code. Stray bytes between segments
        // are tolerated (libjpeg warns about "extraneous bytes" and carries on), so skip to the next 0xFF.
        while pos < len && data[pos] != 0xFF {
            pos += 1;
        }
        while pos < len && data[pos] == 0xFF {
            pos += 1;
        }
        let Some(&code) = data.get(pos) else {
            return Err(format!("the data ends at byte {len} before the end-of-image marker"));
        };
        pos += 1;
        match code {
            // EOI: the image is complete.
            0xD9 => return Ok(()),
            // Markers without a length field: SOI, TEM, RST0..RST7 (0x00 cannot follow a fill 0xFF here).
            0xD8 | 0x01 | 0xD0..=0xD7 | 0x00 => {}
            _ => {
                let segment = read_segment_length(data, pos, code)?;
                pos += segment;
                if code == 0xDA {
                    pos = skip_entropy_coded_data(data, pos)?;
                }
            }
        }
    }
}

/// The length of the marker segment whose length field starts at `pos` (the length counts its own two bytes).
fn read_segment_length(data: &[u8], pos: usize, code: u8) -> Result<usize, String> {
    let (Some(&hi), Some(&lo)) = (data.get(pos), data.get(pos + 1)) else {
        return Err(format!("the data ends at byte {} inside the header of marker FF {code:02X}", data.len()));
    };
    let length = usize::from(u16::from_be_bytes([hi, lo]));
    if length < 2 {
        return Err(format!("marker FF {code:02X} at byte {} has an invalid segment length {length}", pos - 2));
    }
    if pos + length > data.len() {
        return Err(format!(
            "marker FF {code:02X} at byte {} declares {length} bytes but the data ends at byte {}",
            pos - 2,
            data.len()
        ));
    }
    Ok(length)
}

/// The position of the marker that ends the entropy-coded data starting at `pos`.
fn skip_entropy_coded_data(data: &[u8], mut pos: usize) -> Result<usize, String> {
    let len = data.len();
    while pos < len {
        if data[pos] != 0xFF {
            pos += 1;
            continue;
        }
        match data.get(pos + 1) {
            // Stuffed zero or restart marker: still inside the scan.
            Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
            // Fill byte: look at the next one.
            Some(0xFF) => pos += 1,
            // Any other marker ends the scan; the caller parses it.
            Some(_) => return Ok(pos),
            None => break,
        }
    }
    Err(format!("the data ends at byte {len} inside the compressed image data (no end-of-image marker)"))
}
