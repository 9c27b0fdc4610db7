//! The model package container: a round trip through `PackageWriter` and `Package::open`, and every kind
//! of damaged or hostile file producing its own error that names the file and the entry.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use runtime::package::{
    sha256_hex, EntryInfo, Limits, Manifest, Package, PackageError, PackageWriter, FORMAT, MANIFEST_NAME, VERSION,
};
use serde_json::json;

/// Model bytes that are neither trivial nor all alike (so compression and checksums have something to do).
fn model_bytes() -> Vec<u8> {
    (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn labels() -> Vec<u8> {
    b"tench\ngoldfish\ngreat white shark\n".to_vec()
}

/// A valid three-stage package with one extra entry.
fn writer() -> PackageWriter {
    let mut w = PackageWriter::new("resnet50-imagenet");
    w.add_stage("preprocess", "preprocess.json", br#"{"size":224}"#.to_vec(), json!({"mean": [0.485, 0.456, 0.406]}))
        .add_stage("model", "weights/model.bin", model_bytes(), json!({"format": "msfp16"}))
        .add_stage("labels", "labels.txt", labels(), serde_json::Value::Null)
        .add_entry("LICENSE", b"Apache-2.0".to_vec());
    w
}

/// The files of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

/// A zip archive of `files`, in order, written with the zip crate's writer.
fn zip_of(files: &[(String, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A valid package, rebuilt after `edit` changed its manifest and files (the manifest is re-serialised
/// into the first file unless `edit` removed or moved it).
fn rebuilt(edit: impl FnOnce(&mut Manifest, &mut Vec<(String, Vec<u8>)>)) -> Vec<u8> {
    let mut files = unzip(&writer().to_bytes().unwrap());
    assert_eq!(files[0].0, MANIFEST_NAME);
    let mut manifest: Manifest = serde_json::from_slice(&files[0].1).unwrap();
    files[0].1.clear();
    edit(&mut manifest, &mut files);
    for (name, data) in files.iter_mut() {
        if name == MANIFEST_NAME && data.is_empty() {
            *data = serde_json::to_vec_pretty(&manifest).unwrap();
        }
    }
    zip_of(&files, zip::CompressionMethod::Stored)
}

/// Writes `bytes` to a file in a fresh temporary directory and opens it as a package.
fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, Result<Package, PackageError>) {
    open_bytes_with(bytes, &Limits::default())
}

fn open_bytes_with(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, PathBuf, Result<Package, PackageError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.systole");
    std::fs::write(&path, bytes).unwrap();
    let result = Package::open_with_limits(&path, limits);
    (dir, path, result)
}

/// The error of opening `bytes`, with a check that its message names the file.
fn open_err(bytes: &[u8]) -> PackageError {
    let (_dir, path, result) = open_bytes(bytes);
    let err = result.expect_err("a damaged package must be refused");
    assert!(err.to_string().contains(&path.display().to_string()), "message does not name the file: {err}");
    err
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet50.systole");
    writer().write(&path).unwrap();
    assert_eq!(file_names(dir.path()), ["resnet50.systole"], "no temporary file is left behind");

    let raw = std::fs::read(&path).unwrap();
    let files = unzip(&raw);
    assert_eq!(files[0].0, MANIFEST_NAME, "the manifest comes first");
    assert_eq!(files.len(), 5);

    let p = Package::open(&path).unwrap();
    assert_eq!(p.path(), path);
    let m = p.manifest();
    assert_eq!((m.format.as_str(), m.version, m.name.as_str()), (FORMAT, VERSION, "resnet50-imagenet"));
    assert_eq!(m.created_by, format!("systole {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(m.stages.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(), ["preprocess", "model", "labels"]);
    assert_eq!(
        m.entries["weights/model.bin"],
        EntryInfo { sha256: sha256_hex(&model_bytes()), bytes: model_bytes().len() as u64 }
    );
    assert_eq!(m.entries.len(), 4);

    let model = p.stage("model").unwrap();
    assert_eq!(model.entry, "weights/model.bin");
    assert_eq!(model.params, json!({"format": "msfp16"}));
    assert_eq!(p.stage_bytes("model").unwrap(), model_bytes().as_slice());
    assert_eq!(p.stage_bytes("labels").unwrap(), labels().as_slice());
    assert_eq!(p.stage("labels").unwrap().params, serde_json::Value::Null);
    assert_eq!(p.entry("LICENSE"), Some(&b"Apache-2.0"[..]));
    assert_eq!(p.entry("nothing"), None);
    assert!(p.stage("classify").is_none());
    match p.stage_bytes("classify") {
        Err(e @ PackageError::MissingStage { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("'classify'") && msg.contains("preprocess, model, labels"), "{msg}");
        }
        other => panic!("expected MissingStage, got {other:?}"),
    }

    // Writing again replaces the file; an uncompressed package reads the same.
    let mut stored = writer();
    stored.compress(false);
    stored.write(&path).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > raw.len() as u64, "stored is larger than deflated");
    let q = Package::open(&path).unwrap();
    assert_eq!(q.manifest(), p.manifest());
    assert_eq!(q.stage_bytes("model").unwrap(), model_bytes().as_slice());
    assert_eq!(file_names(dir.path()), ["resnet50.systole"]);

    // The same package from memory.
    let r = Package::from_bytes(&writer().to_bytes().unwrap(), &Limits::default()).unwrap();
    assert_eq!(r.manifest(), p.manifest());
    assert_eq!(r.path(), Path::new("<memory>"));
}

#[test]
fn stages_may_share_an_identical_entry() {
    let mut w = PackageWriter::new("shared");
    w.add_stage("model", "m.bin", vec![1, 2, 3], json!(null)).add_stage("featurizer", "m.bin", vec![1, 2, 3], json!(1));
    let p = Package::from_bytes(&w.to_bytes().unwrap(), &Limits::default()).unwrap();
    assert_eq!(p.manifest().entries.len(), 1);
    assert_eq!(p.stage_bytes("featurizer").unwrap(), &[1, 2, 3]);
}

#[test]
fn writer_refuses_bad_input_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.systole");
    let cases: Vec<(PackageWriter, &str)> = vec![
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_entry("../evil", vec![1]);
                w
            },
            "'..'",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_entry("/etc/passwd", vec![1]);
                w
            },
            "absolute",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_entry("a\\b", vec![1]);
                w
            },
            "backslash",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_entry(MANIFEST_NAME, vec![1]);
                w
            },
            "reserved",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_entry("a", vec![1]).add_entry("a", vec![2]);
                w
            },
            "different contents",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_stage("model", "a", vec![1], json!(null)).add_stage("model", "b", vec![2], json!(null));
                w
            },
            "more than once",
        ),
        (
            {
                let mut w = PackageWriter::new("x");
                w.add_stage("", "a", vec![1], json!(null));
                w
            },
            "empty kind",
        ),
    ];
    for (w, expected) in cases {
        let err = w.write(&path).expect_err(expected);
        let msg = err.to_string();
        assert!(msg.contains(expected) && msg.contains("x.systole"), "{msg}");
        assert!(file_names(dir.path()).is_empty(), "nothing written for {expected}");
    }
    // A directory that does not exist is an I/O error naming the path.
    let missing = dir.path().join("no/such/dir/x.systole");
    match writer().write(&missing) {
        Err(PackageError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn altered_entry_is_a_checksum_error_naming_it() {
    let bytes = rebuilt(|_, files| {
        let model = files.iter_mut().find(|(n, _)| n == "weights/model.bin").unwrap();
        model.1[1000] ^= 0x40;
    });
    match open_err(&bytes) {
        PackageError::Checksum { entry, expected, actual, .. } => {
            assert_eq!(entry, "weights/model.bin");
            assert_eq!(expected, sha256_hex(&model_bytes()));
            assert_ne!(actual, expected);
        }
        other => panic!("expected Checksum, got {other:?}"),
    }
}

#[test]
fn flipped_byte_in_the_file_is_refused_naming_the_entry() {
    // Stored, so that the byte lands in the entry's data rather than breaking the deflate stream.
    let mut w = writer();
    w.compress(false);
    let mut bytes = w.to_bytes().unwrap();
    let files = unzip(&bytes);
    let model = &files.iter().find(|(n, _)| n == "weights/model.bin").unwrap().1;
    let at = bytes.windows(64).position(|win| win == &model[5000..5064]).unwrap();
    bytes[at] ^= 0x01;
    let err = open_err(&bytes);
    assert!(
        matches!(&err, PackageError::Io { entry: Some(e), .. } | PackageError::Checksum { entry: e, .. } if e == "weights/model.bin"),
        "expected an error naming the entry, got {err:?}"
    );
    assert!(err.to_string().contains("weights/model.bin"), "{err}");
}

#[test]
fn wrong_size_is_a_size_error() {
    let bytes = rebuilt(|m, _| m.entries.get_mut("labels.txt").unwrap().bytes += 1);
    match open_err(&bytes) {
        PackageError::Size { entry, expected, actual, .. } => {
            assert_eq!(entry, "labels.txt");
            assert_eq!((expected, actual), (labels().len() as u64 + 1, labels().len() as u64));
        }
        other => panic!("expected Size, got {other:?}"),
    }
}

#[test]
fn listed_but_missing_entry() {
    let bytes = rebuilt(|_, files| files.retain(|(n, _)| n != "LICENSE"));
    match open_err(&bytes) {
        PackageError::MissingEntry { entry, .. } => assert_eq!(entry, "LICENSE"),
        other => panic!("expected MissingEntry, got {other:?}"),
    }
    // A stage naming an entry the manifest does not list.
    let bytes = rebuilt(|m, _| m.stages[1].entry = "weights/other.bin".into());
    match open_err(&bytes) {
        PackageError::MissingEntry { entry, .. } => assert_eq!(entry, "weights/other.bin"),
        other => panic!("expected MissingEntry, got {other:?}"),
    }
}

#[test]
fn extra_entry_is_unlisted() {
    let bytes = rebuilt(|_, files| files.push(("extra.bin".into(), vec![0; 10])));
    match open_err(&bytes) {
        PackageError::UnlistedEntry { entry, .. } => assert_eq!(entry, "extra.bin"),
        other => panic!("expected UnlistedEntry, got {other:?}"),
    }
    // A directory entry is refused too.
    let bytes = rebuilt(|_, files| files.push(("weights/".into(), Vec::new())));
    match open_err(&bytes) {
        PackageError::BadName { name, reason, .. } => assert_eq!(
            (name.as_str(), reason.as_str()),
            ("weights/", "empty path components (a trailing '/', or '//') are not allowed")
        ),
        other => panic!("expected BadName, got {other:?}"),
    }
}

#[test]
fn unsafe_names_are_refused() {
    for (name, reason) in [
        ("../evil", "'..'"),
        ("weights/../../evil", "'..'"),
        ("/etc/passwd", "absolute"),
        ("weights\\model.bin", "backslash"),
        ("C:/evil", "drive letter"),
        ("./model.bin", "'.'"),
        ("a//b", "empty path component"),
        ("bell\u{7}", "control"),
    ] {
        // In the archive and the manifest alike.
        let data = vec![7u8; 3];
        let bytes = rebuilt(|m, files| {
            m.entries.insert(name.into(), EntryInfo { sha256: sha256_hex(&data), bytes: 3 });
            files.push((name.into(), data.clone()));
        });
        match open_err(&bytes) {
            PackageError::BadName { name: n, reason: r, .. } => {
                assert_eq!(n, name);
                assert!(r.contains(reason), "{name}: {r}");
            }
            other => panic!("{name}: expected BadName, got {other:?}"),
        }
        // Only in the archive: still refused for its name, before being reported as unlisted.
        let bytes = rebuilt(|_, files| files.push((name.into(), vec![1])));
        assert!(matches!(open_err(&bytes), PackageError::BadName { name: n, .. } if n == name), "{name}");
    }
}

#[test]
fn duplicate_names_in_the_archive_are_refused() {
    // The zip writer refuses duplicate names, so write two same-length names and make them equal in the
    // local headers and the central directory alike (the name is not covered by the CRC).
    let good = writer().to_bytes().unwrap();
    let mut files = unzip(&good);
    files.push(("labels.txu".into(), labels()));
    let mut bytes = zip_of(&files, zip::CompressionMethod::Stored);
    let mut patched = 0;
    for i in 0..bytes.len() - 10 {
        if &bytes[i..i + 10] == b"labels.txu" {
            bytes[i + 9] = b't';
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "local header and central directory");
    match open_err(&bytes) {
        PackageError::BadName { name, reason, .. } => {
            assert_eq!(name, "labels.txt");
            assert!(reason.contains("more than one"), "{reason}");
        }
        other => panic!("expected BadName, got {other:?}"),
    }
}

#[test]
fn duplicate_names_in_the_manifest_are_refused() {
    let bytes = rebuilt(|_, files| {
        let json = String::from_utf8(unzip(&writer().to_bytes().unwrap())[0].1.clone()).unwrap();
        let entry = format!("\"LICENSE\": {{ \"sha256\": \"{}\", \"bytes\": 10 }},", sha256_hex(b"Apache-2.0"));
        let doubled = json.replacen("\"entries\": {", &format!("\"entries\": {{ {entry}"), 1);
        assert_ne!(doubled, json);
        files[0].1 = doubled.into_bytes();
    });
    match open_err(&bytes) {
        PackageError::Manifest { message, .. } => assert!(message.contains("'LICENSE' is listed twice"), "{message}"),
        other => panic!("expected Manifest, got {other:?}"),
    }
}

#[test]
fn wrong_version_and_format() {
    let bytes = rebuilt(|m, _| m.version = 2);
    match open_err(&bytes) {
        PackageError::Version { found, supported, .. } => assert_eq!((found, supported), (2, VERSION)),
        other => panic!("expected Version, got {other:?}"),
    }
    // A newer version is reported as such even if its schema has changed.
    let bytes =
        rebuilt(|_, files| files[0].1 = br#"{"format": "systole-package", "version": 7, "pipeline": []}"#.to_vec());
    assert!(matches!(open_err(&bytes), PackageError::Version { found: 7, .. }));
    let bytes = rebuilt(|m, _| m.format = "other-package".into());
    match open_err(&bytes) {
        PackageError::NotAPackage { reason, .. } => assert!(reason.contains("other-package"), "{reason}"),
        other => panic!("expected NotAPackage, got {other:?}"),
    }
}

#[test]
fn malformed_manifests() {
    let cases: [(&[u8], &str); 7] = [
        (b"{ not json", "key must be a string"),
        (b"[\"systole-package\", 1]", "not a JSON object"),
        (br#"{"format": "systole-package", "version": "1"}"#, "version must be an integer"),
        (br#"{"format": "systole-package"}"#, "missing field `version`"),
        (br#"{"format": "systole-package", "version": 1, "name": "x"}"#, "missing field"),
        (
            br#"{"format": "systole-package", "version": 1, "name": "x", "created_by": "y", "stages": [], "entries": {}, "extra": 1}"#,
            "unknown field `extra`",
        ),
        (
            br#"{"format": "systole-package", "version": 1, "name": "x", "created_by": "y", "stages": [], "entries": {"a": {"sha256": "zz", "bytes": 1}}}"#,
            "64 hex digits",
        ),
    ];
    for (json, expected) in cases {
        let bytes = rebuilt(|_, files| {
            files[0].1 = json.to_vec();
            files.truncate(1);
        });
        match open_err(&bytes) {
            PackageError::Manifest { message, .. } => assert!(message.contains(expected), "{expected}: {message}"),
            other => panic!("{expected}: expected Manifest, got {other:?}"),
        }
    }
    // Duplicate stage kinds.
    let bytes = rebuilt(|m, _| m.stages[2].kind = "model".into());
    assert!(
        matches!(open_err(&bytes), PackageError::Manifest { message, .. } if message.contains("'model' appears more than once"))
    );
}

#[test]
fn not_a_package() {
    // Not a zip at all.
    let err = open_err(b"this is an ONNX model, honest");
    assert!(matches!(err, PackageError::NotAPackage { .. }), "{err:?}");
    // A zip without a manifest.
    let err = open_err(&zip_of(&[("model.bin".into(), vec![1, 2, 3])], zip::CompressionMethod::Stored));
    assert!(matches!(&err, PackageError::NotAPackage { reason, .. } if reason.contains("no manifest.json")), "{err:?}");
    // A manifest that is not first.
    let bytes = rebuilt(|m, files| {
        let manifest = files.remove(0);
        files.push((manifest.0, serde_json::to_vec(m).unwrap()));
    });
    let err = open_err(&bytes);
    assert!(matches!(&err, PackageError::NotAPackage { reason, .. } if reason.contains("first")), "{err:?}");
    // A file that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let err = Package::open(dir.path().join("absent.systole")).unwrap_err();
    assert!(matches!(&err, PackageError::Io { entry: None, .. }) && err.to_string().contains("absent.systole"));
}

#[test]
fn truncated_file_is_refused() {
    let bytes = writer().to_bytes().unwrap();
    for keep in [0, 10, bytes.len() / 2, bytes.len() - 30, bytes.len() - 1] {
        let err = open_err(&bytes[..keep]);
        assert!(matches!(err, PackageError::NotAPackage { .. } | PackageError::Io { .. }), "{keep}: {err:?}");
    }
}

#[test]
fn size_limits() {
    let bytes = writer().to_bytes().unwrap();
    let small = Limits { max_entry_bytes: 100_000, ..Limits::default() };
    match open_bytes_with(&bytes, &small).2 {
        Err(PackageError::TooLarge { entry, size, limit, .. }) => {
            assert_eq!((entry.as_str(), size, limit), ("weights/model.bin", 200_000, 100_000));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let tiny_manifest = Limits { max_manifest_bytes: 64, ..Limits::default() };
    assert!(
        matches!(open_bytes_with(&bytes, &tiny_manifest).2, Err(PackageError::TooLarge { entry, .. }) if entry == MANIFEST_NAME)
    );
    let tiny_total = Limits { max_total_bytes: 150_000, ..Limits::default() };
    assert!(
        matches!(open_bytes_with(&bytes, &tiny_total).2, Err(PackageError::TooLarge { entry, .. }) if entry == "all entries")
    );

    // A decompression bomb whose manifest understates its size: 64 MiB of zeros deflate to a few KiB; the
    // reader stops at the limit (here the zip's own size field gives it away first).
    let bomb = vec![0u8; 64 << 20];
    let mut files = unzip(&writer().to_bytes().unwrap());
    let mut manifest: Manifest = serde_json::from_slice(&files[0].1).unwrap();
    manifest.entries.insert("bomb.bin".into(), EntryInfo { sha256: sha256_hex(b"x"), bytes: 1 });
    files[0].1 = serde_json::to_vec(&manifest).unwrap();
    files.push(("bomb.bin".into(), bomb));
    let zipped = zip_of(&files, zip::CompressionMethod::Deflated);
    assert!(zipped.len() < 1 << 20, "the bomb is small on disk");
    let limits = Limits { max_entry_bytes: 1 << 20, ..Limits::default() };
    match open_bytes_with(&zipped, &limits).2 {
        Err(PackageError::TooLarge { entry, limit, .. }) => assert_eq!((entry.as_str(), limit), ("bomb.bin", 1 << 20)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A manifest declaring an entry over the limit is refused before anything is read.
    let bytes = rebuilt(|m, _| m.entries.get_mut("LICENSE").unwrap().bytes = 3 << 30);
    assert!(
        matches!(open_err(&bytes), PackageError::TooLarge { entry, size, .. } if entry == "LICENSE" && size == 3 << 30)
    );
}

#[test]
fn lying_zip_sizes_do_not_get_past_the_limit() {
    // The same bomb, with the zip's own size fields patched to claim 1 byte: only the bounded read stops it.
    let bomb = vec![0u8; 64 << 20];
    let mut files = unzip(&writer().to_bytes().unwrap());
    let mut manifest: Manifest = serde_json::from_slice(&files[0].1).unwrap();
    manifest.entries.insert("bomb.bin".into(), EntryInfo { sha256: sha256_hex(b"x"), bytes: 1 });
    files[0].1 = serde_json::to_vec(&manifest).unwrap();
    files.push(("bomb.bin".into(), bomb));
    let mut zipped = zip_of(&files, zip::CompressionMethod::Deflated);
    let mut patched = 0;
    for i in 0..zipped.len() - 8 {
        if &zipped[i..i + 8] == b"bomb.bin" {
            // Local header: name at 30, uncompressed size at 22; central directory: name at 46, size at 24.
            let size_at =
                if i >= 46 && zipped[i - 46..i - 42] == [0x50, 0x4b, 0x01, 0x02] { i - 46 + 24 } else { i - 30 + 22 };
            zipped[size_at..size_at + 4].copy_from_slice(&1u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2);
    let limits = Limits { max_entry_bytes: 1 << 20, ..Limits::default() };
    let err = open_bytes_with(&zipped, &limits).2.unwrap_err();
    match err {
        PackageError::TooLarge { entry, size, limit, .. } => {
            assert_eq!((entry.as_str(), size, limit), ("bomb.bin", (1 << 20) + 1, 1 << 20), "read stopped at the limit")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
