//! The model package: one `.systole` file that holds a whole served pipeline (the "service definition").
//!
//! A package is a zip archive whose **first** entry is `manifest.json`, followed by named entries (weights,
//! preprocessing settings, class labels, …). The manifest says what the file is, which stages the pipeline
//! has and, for every other entry, its size and SHA-256:
//!
//! ```json
//! {
//!   "format": "systole-package",
//!   "version": 1,
//!   "name": "resnet50-imagenet",
//!   "created_by": "systole 0.1.0",
//!   "stages": [
//!     { "kind": "preprocess", "entry": "preprocess.json", "params": { "size": 224 } },
//!     { "kind": "model", "entry": "model.onnx", "params": null }
//!   ],
//!   "entries": { "model.onnx": { "sha256": "…", "bytes": 102442450 }, "preprocess.json": { … } }
//! }
//! ```
//!
//! This module is only the container: the stage kinds, entry contents and `params` are decided by the code
//! that builds and consumes pipelines. [`PackageWriter`] writes a package atomically; [`Package::open`]
//! reads one completely into memory and refuses anything it cannot vouch for: a file that is not a zip or
//! has no manifest first, an unknown format or version, malformed JSON, an entry whose size or SHA-256 does
//! not match, entries listed but missing or present but unlisted, unsafe or duplicate names, and anything
//! larger than the [`Limits`] (reads are bounded, so a decompression bomb costs at most the limit).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The manifest's `format` value: what identifies a file as a systole package.
pub const FORMAT: &str = "systole-package";
/// The package format version this build writes and reads.
pub const VERSION: u64 = 1;
/// The name of the manifest entry, always the archive's first entry.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The file extension of packages (without the dot).
pub const EXTENSION: &str = "systole";

/// The longest entry name accepted, in bytes.
const MAX_NAME_BYTES: usize = 1024;
/// The most bytes reserved up front for one entry; larger entries grow as they are read, so that a lying
/// header cannot make us allocate memory the data does not fill.
const MAX_PREALLOCATION: u64 = 64 << 20;

/// Size limits applied when reading (and writing) a package, so that a hostile file cannot exhaust memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest entry, declared or actual, in bytes (default 2 GiB).
    pub max_entry_bytes: u64,
    /// The largest `manifest.json`, in bytes (default 1 MiB).
    pub max_manifest_bytes: u64,
    /// The largest sum of all entries, in bytes (default 4 GiB): everything is held in memory.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    /// 2 GiB per entry, 1 MiB of manifest, 4 GiB in all.
    fn default() -> Self {
        Limits { max_entry_bytes: 2 << 30, max_manifest_bytes: 1 << 20, max_total_bytes: 4 << 30 }
    }
}

/// The package's table of contents, stored as `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version; this build reads [`VERSION`] only.
    pub version: u64,
    /// The package's (pipeline's) name, e.g. "resnet50-imagenet".
    pub name: String,
    /// The program that wrote the package, `systole <crate version>`.
    pub created_by: String,
    /// The pipeline's stages, in the order they run.
    pub stages: Vec<Stage>,
    /// Every entry of the archive other than the manifest, by name, with its size and checksum.
    #[serde(deserialize_with = "unique_entries")]
    pub entries: BTreeMap<String, EntryInfo>,
}

/// One stage of the pipeline: what it is, which entry holds its data and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// What the stage does, e.g. "preprocess", "model", "labels"; unique within a package.
    pub kind: String,
    /// The name of the entry holding the stage's data.
    pub entry: String,
    /// Stage settings, free-form: the code that runs the stage decides their schema.
    #[serde(default)]
    pub params: serde_json::Value,
}

/// Size and checksum of one entry, as the manifest records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryInfo {
    /// SHA-256 of the entry's (uncompressed) bytes, 64 hex digits.
    pub sha256: String,
    /// The entry's (uncompressed) size in bytes.
    pub bytes: u64,
}

/// Why a package could not be read or written. Every variant names the file, and the entry where one is
/// concerned.
#[derive(Debug, Error)]
pub enum PackageError {
    /// Reading or writing the file (or one of its entries) failed.
    #[error("{}: {source}", location(path, entry.as_deref()))]
    Io {
        /// The package file.
        path: PathBuf,
        /// The entry being read or written, if any.
        entry: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a systole package: not a zip archive, no `manifest.json` first, or another format.
    #[error("{}: not a systole package: {reason}", path.display())]
    NotAPackage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `manifest.json` is not valid JSON or does not follow the schema.
    #[error("{}: invalid {MANIFEST_NAME}: {message}", path.display())]
    Manifest {
        /// The package file.
        path: PathBuf,
        /// serde's (or the validator's) description of the problem.
        message: String,
    },
    /// The package uses a format version this build does not read.
    #[error("{}: package format version {found} is not supported (this build reads version {supported})", path.display())]
    Version {
        /// The package file.
        path: PathBuf,
        /// The version the manifest declares.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// An entry's SHA-256 differs from the manifest's: the entry is corrupt or was altered.
    #[error("{}: entry '{entry}' is corrupt: its SHA-256 is {actual}, the manifest says {expected}", path.display())]
    Checksum {
        /// The package file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// The SHA-256 the manifest records.
        expected: String,
        /// The SHA-256 of the bytes found.
        actual: String,
    },
    /// An entry's size differs from the manifest's.
    #[error("{}: entry '{entry}' has {actual} bytes, the manifest says {expected}", path.display())]
    Size {
        /// The package file.
        path: PathBuf,
        /// The entry.
        entry: String,
        /// The size the manifest records.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// The manifest lists an entry (or a stage names one) that the archive does not contain.
    #[error("{}: entry '{entry}' is listed in the manifest but missing from the archive", path.display())]
    MissingEntry {
        /// The package file.
        path: PathBuf,
        /// The missing entry.
        entry: String,
    },
    /// The archive contains an entry that the manifest does not list.
    #[error("{}: entry '{entry}' is in the archive but not listed in the manifest", path.display())]
    UnlistedEntry {
        /// The package file.
        path: PathBuf,
        /// The unlisted entry.
        entry: String,
    },
    /// An entry name is unsafe (`..`, absolute, backslashes, …), reserved or duplicated.
    #[error("{}: bad entry name {name:?}: {reason}", path.display())]
    BadName {
        /// The package file.
        path: PathBuf,
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry, the manifest or the whole package is larger than the [`Limits`] allow.
    #[error("{}: {entry} is too large: {size} bytes or more, over the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The package file.
        path: PathBuf,
        /// What is too large: an entry's name, "manifest.json" or "all entries".
        entry: String,
        /// Its size (declared, or as much as was read before stopping).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The package has no stage of the kind asked for.
    #[error("{}: the package has no '{kind}' stage (its stages: {available})", path.display())]
    MissingStage {
        /// The package file.
        path: PathBuf,
        /// The stage kind asked for.
        kind: String,
        /// The kinds the package has, comma-separated.
        available: String,
    },
}

/// "path" or "path: entry 'name'" for error messages.
fn location(path: &Path, entry: Option<&str>) -> String {
    match entry {
        Some(e) => format!("{}: entry '{e}'", path.display()),
        None => path.display().to_string(),
    }
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits, as the manifest records it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        use fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Deserializes the `entries` map, refusing a name listed twice (serde would silently keep the last).
fn unique_entries<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, EntryInfo>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = BTreeMap<String, EntryInfo>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map from entry names to {\"sha256\", \"bytes\"}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((name, info)) = map.next_entry::<String, EntryInfo>()? {
                if out.contains_key(&name) {
                    return Err(A::Error::custom(format!("entry '{name}' is listed twice")));
                }
                out.insert(name, info);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries)
}

/// Why `name` is not acceptable as an entry name, if it is not. Names are relative '/'-separated paths
/// without `.`/`..` components, backslashes, drive letters or control characters, so that unpacking a
/// package can never write outside its directory.
fn name_problem(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("the name is longer than 1024 bytes")
    } else if name.contains('\\') {
        Some("backslashes are not allowed")
    } else if name.starts_with('/') {
        Some("absolute paths are not allowed")
    } else if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        Some("drive letters are not allowed")
    } else if name.chars().any(char::is_control) {
        Some("control characters are not allowed")
    } else if name.split('/').any(|c| c == "..") {
        Some("'..' components are not allowed")
    } else if name.split('/').any(|c| c == ".") {
        Some("'.' components are not allowed")
    } else if name.split('/').any(str::is_empty) {
        Some("empty path components (a trailing '/', or '//') are not allowed")
    } else if name == MANIFEST_NAME {
        Some("the name is reserved for the manifest")
    } else {
        None
    }
}

/// Checks a manifest's content against the schema's rules that serde cannot express: names, checksums'
/// form, unique stage kinds, stages naming listed entries, declared sizes within the limits.
fn validate(manifest: &Manifest, path: &Path, limits: &Limits) -> Result<(), PackageError> {
    let manifest_error = |message: String| PackageError::Manifest { path: path.to_path_buf(), message };
    let mut total = 0u64;
    for (name, info) in &manifest.entries {
        if let Some(reason) = name_problem(name) {
            return Err(PackageError::BadName { path: path.to_path_buf(), name: name.clone(), reason: reason.into() });
        }
        if info.sha256.len() != 64 || !info.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(manifest_error(format!(
                "entry '{name}': sha256 must be 64 hex digits, found {:?}",
                truncate(&info.sha256, 80)
            )));
        }
        if info.bytes > limits.max_entry_bytes {
            return Err(PackageError::TooLarge {
                path: path.to_path_buf(),
                entry: name.clone(),
                size: info.bytes,
                limit: limits.max_entry_bytes,
            });
        }
        total = total.saturating_add(info.bytes);
    }
    if total > limits.max_total_bytes {
        return Err(PackageError::TooLarge {
            path: path.to_path_buf(),
            entry: "all entries".into(),
            size: total,
            limit: limits.max_total_bytes,
        });
    }
    let mut kinds = HashSet::new();
    for stage in &manifest.stages {
        if stage.kind.is_empty() {
            return Err(manifest_error(format!("the stage of entry '{}' has an empty kind", stage.entry)));
        }
        if !kinds.insert(stage.kind.as_str()) {
            return Err(manifest_error(format!("stage kind '{}' appears more than once", stage.kind)));
        }
        if !manifest.entries.contains_key(&stage.entry) {
            if let Some(reason) = name_problem(&stage.entry) {
                return Err(PackageError::BadName {
                    path: path.to_path_buf(),
                    name: stage.entry.clone(),
                    reason: reason.into(),
                });
            }
            return Err(PackageError::MissingEntry { path: path.to_path_buf(), entry: stage.entry.clone() });
        }
    }
    Ok(())
}

/// At most `max` characters of `s`, for quoting untrusted text in messages.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The path used in errors about packages read from or written to memory.
fn memory_path() -> PathBuf {
    PathBuf::from("<memory>")
}

// ---------------------------------------------------------------------------------------------------------
// Writing.

/// The entries a package will hold, by name, in the order they are written.
type Contents<'a> = Vec<(&'a str, &'a [u8])>;

/// Builds a package: stages and extra entries are collected in memory, then [`PackageWriter::write`] checks
/// them and writes the file atomically.
#[derive(Clone, Debug)]
pub struct PackageWriter {
    name: String,
    stages: Vec<Stage>,
    entries: Vec<(String, Vec<u8>)>,
    compress: bool,
}

impl PackageWriter {
    /// A writer for a package called `name`, with no stages yet. Entries are deflate-compressed unless
    /// [`PackageWriter::compress`] turns that off.
    pub fn new(name: impl Into<String>) -> Self {
        PackageWriter { name: name.into(), stages: Vec::new(), entries: Vec::new(), compress: true }
    }

    /// Appends a stage of kind `kind` whose data `bytes` is stored as the entry `entry_name`, with the
    /// stage's free-form `params`. Several stages may share an entry if they give it the same bytes.
    pub fn add_stage(
        &mut self,
        kind: impl Into<String>,
        entry_name: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
        params: serde_json::Value,
    ) -> &mut Self {
        let entry = entry_name.into();
        self.stages.push(Stage { kind: kind.into(), entry: entry.clone(), params });
        self.entries.push((entry, bytes.into()));
        self
    }

    /// Adds an entry no stage names (e.g. a licence or a README), or data a stage's params refer to.
    pub fn add_entry(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.entries.push((name.into(), bytes.into()));
        self
    }

    /// Whether entries are deflate-compressed (the default) or stored as they are (faster for large,
    /// incompressible weights). The manifest is always stored uncompressed.
    pub fn compress(&mut self, on: bool) -> &mut Self {
        self.compress = on;
        self
    }

    /// The manifest the package will carry, after checking names, duplicates, stage kinds and sizes
    /// against the default [`Limits`] (errors name `path`).
    fn checked(&self, path: &Path) -> Result<(Manifest, Contents<'_>), PackageError> {
        let mut entries: BTreeMap<String, EntryInfo> = BTreeMap::new();
        let mut order: Contents<'_> = Vec::new();
        for (name, bytes) in &self.entries {
            if let Some(reason) = name_problem(name) {
                return Err(PackageError::BadName {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    reason: reason.into(),
                });
            }
            if let Some(&(_, previous)) = order.iter().find(|(n, _)| n == name) {
                if previous != bytes.as_slice() {
                    return Err(PackageError::BadName {
                        path: path.to_path_buf(),
                        name: name.clone(),
                        reason: "added twice with different contents".into(),
                    });
                }
                continue;
            }
            entries.insert(name.clone(), EntryInfo { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 });
            order.push((name, bytes));
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            name: self.name.clone(),
            created_by: format!("systole {}", env!("CARGO_PKG_VERSION")),
            stages: self.stages.clone(),
            entries,
        };
        validate(&manifest, path, &Limits::default())?;
        Ok((manifest, order))
    }

    /// Writes the package as a zip archive to `out`.
    fn write_to<W: Write + Seek>(&self, out: W, path: &Path) -> Result<W, PackageError> {
        let (manifest, order) = self.checked(path)?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| PackageError::Manifest { path: path.to_path_buf(), message: e.to_string() })?;
        let io_error = |entry: &str, e: zip::result::ZipError| PackageError::Io {
            path: path.to_path_buf(),
            entry: Some(entry.to_string()),
            source: io::Error::other(e),
        };
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(false);
        let method = if self.compress { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let mut zip = zip::ZipWriter::new(out);
        zip.start_file(MANIFEST_NAME, stored).map_err(|e| io_error(MANIFEST_NAME, e))?;
        zip.write_all(&json).map_err(|e| PackageError::Io {
            path: path.to_path_buf(),
            entry: Some(MANIFEST_NAME.into()),
            source: e,
        })?;
        for (name, bytes) in order {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(method)
                .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
            zip.start_file(name, options).map_err(|e| io_error(name, e))?;
            zip.write_all(bytes).map_err(|e| PackageError::Io {
                path: path.to_path_buf(),
                entry: Some(name.into()),
                source: e,
            })?;
        }
        zip.finish().map_err(|e| PackageError::Io {
            path: path.to_path_buf(),
            entry: None,
            source: io::Error::other(e),
        })
    }

    /// The package as bytes, e.g. to send it over the network.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackageError> {
        Ok(self.write_to(Cursor::new(Vec::new()), &memory_path())?.into_inner())
    }

    /// Writes the package to `path` (conventionally ending in `.systole`). The file appears complete or
    /// not at all: the archive is written to a temporary file in the same directory, synced, then renamed
    /// over `path`. Nothing is written if the stages or entries are invalid.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), PackageError> {
        let path = path.as_ref();
        let io = |source: io::Error| PackageError::Io { path: path.to_path_buf(), entry: None, source };
        // Check everything before creating any file.
        self.checked(path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| io(io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")))?;
        let (tmp_path, tmp) = create_temp(&dir, file_name).map_err(io)?;
        let result = (|| {
            let out = self.write_to(BufWriter::new(tmp), path)?;
            let file = out.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
            drop(file);
            std::fs::rename(&tmp_path, path).map_err(io)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp_path);
        } else if let Ok(d) = File::open(&dir) {
            // Make the rename durable where the platform allows syncing a directory; best effort.
            let _ = d.sync_all();
        }
        result
    }
}

/// Creates a new, uniquely named temporary file in `dir` for `file_name`.
fn create_temp(dir: &Path, file_name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".tmp-{}-{nanos}-{attempt}", std::process::id()));
        let candidate = dir.join(name);
        match File::options().write(true).create_new(true).open(&candidate) {
            Ok(f) => return Ok((candidate, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "could not create a unique temporary file"))
}

// ---------------------------------------------------------------------------------------------------------
// Reading.

/// A package read completely into memory, with every entry's size and SHA-256 verified.
#[derive(Clone, Debug)]
pub struct Package {
    path: PathBuf,
    manifest: Manifest,
    entries: BTreeMap<String, Vec<u8>>,
}

impl Package {
    /// Opens and verifies the package at `path` with the default [`Limits`].
    pub fn open(path: impl AsRef<Path>) -> Result<Package, PackageError> {
        Package::open_with_limits(path, &Limits::default())
    }

    /// Opens and verifies the package at `path` with the given size limits.
    pub fn open_with_limits(path: impl AsRef<Path>, limits: &Limits) -> Result<Package, PackageError> {
        let path = path.as_ref();
        let file =
            File::open(path).map_err(|source| PackageError::Io { path: path.to_path_buf(), entry: None, source })?;
        Package::read(BufReader::new(file), path, limits)
    }

    /// Verifies a package held in memory (e.g. received over the network); errors name `<memory>`.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Package, PackageError> {
        Package::read(Cursor::new(bytes), &memory_path(), limits)
    }

    /// Reads and verifies a package from `reader`; `path` names it in errors.
    fn read<R: Read + Seek>(reader: R, path: &Path, limits: &Limits) -> Result<Package, PackageError> {
        let not_a_package = |reason: String| PackageError::NotAPackage { path: path.to_path_buf(), reason };
        let io = |entry: Option<&str>, source: io::Error| PackageError::Io {
            path: path.to_path_buf(),
            entry: entry.map(str::to_string),
            source,
        };
        let zip_error = |entry: Option<&str>, e: zip::result::ZipError| match e {
            zip::result::ZipError::Io(source) => io(entry, source),
            other => not_a_package(match entry {
                Some(entry) => format!("entry '{entry}': {other}"),
                None => format!("not a valid zip archive: {other}"),
            }),
        };

        // The zip crate keeps one of several entries with the same name, so look for duplicates in the
        // central directory itself before trusting its view of the archive.
        let archive = zip::ZipArchive::new(reader).map_err(|e| zip_error(None, e))?;
        if archive.offset() != 0 {
            return Err(not_a_package(format!("{} bytes of data precede the zip archive", archive.offset())));
        }
        let (cd_start, distinct) = (archive.central_directory_start(), archive.len());
        let mut reader = archive.into_inner();
        let records = central_directory_names(&mut reader, cd_start, distinct).map_err(|e| io(None, e))?;
        let mut seen = HashSet::new();
        for raw in &records {
            if !seen.insert(raw.as_slice()) {
                return Err(PackageError::BadName {
                    path: path.to_path_buf(),
                    name: String::from_utf8_lossy(raw).into_owned(),
                    reason: "the archive holds more than one entry of this name".into(),
                });
            }
        }
        if records.len() != distinct {
            return Err(not_a_package(format!(
                "the central directory has {} records but {distinct} distinct names",
                records.len()
            )));
        }
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| zip_error(None, e))?;

        // The manifest: present, first, bounded, valid.
        match archive.index_for_name(MANIFEST_NAME) {
            Some(0) => {}
            Some(_) => return Err(not_a_package(format!("{MANIFEST_NAME} is not the archive's first entry"))),
            None => return Err(not_a_package(format!("the archive has no {MANIFEST_NAME}"))),
        }
        let manifest_bytes = {
            let file = archive.by_index(0).map_err(|e| zip_error(Some(MANIFEST_NAME), e))?;
            read_bounded(file, MANIFEST_NAME, limits.max_manifest_bytes, path)?
        };
        let manifest = parse_manifest(&manifest_bytes, path)?;
        validate(&manifest, path, limits)?;

        // Every archive entry must have a safe name and be listed.
        for i in 0..archive.len() {
            let name = archive.name_for_index(i).unwrap_or_default().to_string();
            if i == 0 {
                continue;
            }
            let problem = name_problem(&name).or_else(|| name.ends_with('/').then_some("directories are not allowed"));
            if let Some(reason) = problem {
                return Err(PackageError::BadName { path: path.to_path_buf(), name, reason: reason.into() });
            }
            if !manifest.entries.contains_key(&name) {
                return Err(PackageError::UnlistedEntry { path: path.to_path_buf(), entry: name });
            }
        }

        // Every listed entry must be present, within the limits, of the right size and checksum.
        let mut entries = BTreeMap::new();
        let mut total = 0u64;
        for (name, info) in &manifest.entries {
            let Some(index) = archive.index_for_name(name) else {
                return Err(PackageError::MissingEntry { path: path.to_path_buf(), entry: name.clone() });
            };
            let file = archive.by_index(index).map_err(|e| zip_error(Some(name), e))?;
            let bytes = read_bounded(file, name, limits.max_entry_bytes, path)?;
            let actual = bytes.len() as u64;
            total = total.saturating_add(actual);
            if total > limits.max_total_bytes {
                return Err(PackageError::TooLarge {
                    path: path.to_path_buf(),
                    entry: "all entries".into(),
                    size: total,
                    limit: limits.max_total_bytes,
                });
            }
            if actual != info.bytes {
                return Err(PackageError::Size {
                    path: path.to_path_buf(),
                    entry: name.clone(),
                    expected: info.bytes,
                    actual,
                });
            }
            let sha = sha256_hex(&bytes);
            if !sha.eq_ignore_ascii_case(&info.sha256) {
                return Err(PackageError::Checksum {
                    path: path.to_path_buf(),
                    entry: name.clone(),
                    expected: info.sha256.clone(),
                    actual: sha,
                });
            }
            entries.insert(name.clone(), bytes);
        }
        Ok(Package { path: path.to_path_buf(), manifest, entries })
    }

    /// The file the package was read from (`<memory>` for [`Package::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The package's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The stage of kind `kind`, if the package has one.
    pub fn stage(&self, kind: &str) -> Option<&Stage> {
        self.manifest.stages.iter().find(|s| s.kind == kind)
    }

    /// The verified bytes of the entry `name`, if the package has it.
    pub fn entry(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(Vec::as_slice)
    }

    /// The verified bytes of the entry of the stage of kind `kind`; an error naming the stages the package
    /// does have if it has no such stage.
    pub fn stage_bytes(&self, kind: &str) -> Result<&[u8], PackageError> {
        let missing = || PackageError::MissingStage {
            path: self.path.clone(),
            kind: kind.to_string(),
            available: if self.manifest.stages.is_empty() {
                "none".into()
            } else {
                self.manifest.stages.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>().join(", ")
            },
        };
        let stage = self.stage(kind).ok_or_else(missing)?;
        // `open` checked that every stage's entry is present.
        self.entry(&stage.entry)
            .ok_or_else(|| PackageError::MissingEntry { path: self.path.clone(), entry: stage.entry.clone() })
    }
}

/// Reads a zip entry completely, but never more than `limit` bytes (a bigger declared or actual size is a
/// [`PackageError::TooLarge`]), so that a decompression bomb costs at most `limit` bytes of memory.
fn read_bounded<R: Read>(
    file: zip::read::ZipFile<'_, R>,
    name: &str,
    limit: u64,
    path: &Path,
) -> Result<Vec<u8>, PackageError> {
    let too_large =
        |size: u64| PackageError::TooLarge { path: path.to_path_buf(), entry: name.to_string(), size, limit };
    let declared = file.size();
    if declared > limit {
        return Err(too_large(declared));
    }
    let mut bytes = Vec::with_capacity(declared.min(MAX_PREALLOCATION) as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|source| PackageError::Io {
        path: path.to_path_buf(),
        entry: Some(name.to_string()),
        source,
    })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Parses `manifest.json`: first just its `format` and `version` (so that a newer version is reported as
/// such rather than as a schema error), then the whole schema.
fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Manifest, PackageError> {
    /// The two fields every version of the manifest has.
    #[derive(Deserialize)]
    struct Header {
        format: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    let manifest_error = |message: String| PackageError::Manifest { path: path.to_path_buf(), message };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(manifest_error("it is not a JSON object".into()));
    }
    let header: Header = serde_json::from_slice(bytes).map_err(|e| manifest_error(e.to_string()))?;
    match header.format {
        Some(serde_json::Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            return Err(PackageError::NotAPackage {
                path: path.to_path_buf(),
                reason: format!(
                    "{MANIFEST_NAME} declares format {}, not \"{FORMAT}\"",
                    truncate(&other.to_string(), 80)
                ),
            })
        }
        None => {
            return Err(PackageError::NotAPackage {
                path: path.to_path_buf(),
                reason: format!("{MANIFEST_NAME} has no \"format\": \"{FORMAT}\""),
            })
        }
    }
    match header.version {
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(VERSION) => {}
            Some(found) => return Err(PackageError::Version { path: path.to_path_buf(), found, supported: VERSION }),
            None => return Err(manifest_error(format!("version must be a positive integer, found {n}"))),
        },
        Some(other) => {
            return Err(manifest_error(format!(
                "version must be an integer, found {}",
                truncate(&other.to_string(), 80)
            )))
        }
        None => return Err(manifest_error("missing field `version`".into())),
    }
    serde_json::from_slice(bytes).map_err(|e| manifest_error(e.to_string()))
}

/// The raw names of the central directory's records, read from `start` (at most `expected + 1` records:
/// one more than the zip reader kept is enough to show a duplicate).
fn central_directory_names<R: Read + Seek>(reader: &mut R, start: u64, expected: usize) -> io::Result<Vec<Vec<u8>>> {
    const SIGNATURE: u32 = 0x0201_4b50;
    reader.seek(SeekFrom::Start(start))?;
    let mut names = Vec::with_capacity(expected.min(4096));
    let mut header = [0u8; 46];
    while names.len() <= expected {
        if read_full(reader, &mut header)? < header.len()
            || u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != SIGNATURE
        {
            break;
        }
        let field = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let mut name = vec![0u8; name_len as usize];
        if read_full(reader, &mut name)? < name.len() {
            break;
        }
        names.push(name);
        reader.seek(SeekFrom::Current((extra_len + comment_len) as i64))?;
    }
    Ok(names)
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
