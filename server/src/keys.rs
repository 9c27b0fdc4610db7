//! The service's primary and secondary keys: read from a file, compared in constant time, rotated without a
//! restart.
//!
//! The keys file holds the primary key on its first line and the secondary key on its second (blank lines
//! and lines starting with `#` are skipped). A client sends either key in the `authorization` header, bare
//! (the C# and Go clients) or as `Bearer <key>` (the Python client). To rotate: move clients to the
//! secondary key, write a new primary (`systole keys regenerate --which primary FILE`), move clients back,
//! regenerate the secondary. The server re-reads the file when its contents change (checked every second,
//! which also follows a Kubernetes Secret's symlink swap) and on SIGHUP; a file that does not parse is
//! logged and the keys in force stay.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::ServeError;

/// The two keys in force.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// The primary key.
    pub primary: String,
    /// The secondary key.
    pub secondary: String,
}

impl std::fmt::Debug for Keys {
    /// Never prints the keys themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { primary: <redacted>, secondary: <redacted> }")
    }
}

/// Which of the two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The first line of the file.
    Primary,
    /// The second line.
    Secondary,
}

/// Shortest key accepted: 16 characters. Shorter keys are guessable.
pub const MIN_KEY_LEN: usize = 16;

impl Keys {
    /// Parses a keys file's text: the primary key, then the secondary key.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        let [primary, secondary] = lines.as_slice() else {
            return Err(format!(
                "a keys file has two keys, the primary and the secondary, one per line; this one has {}",
                lines.len()
            ));
        };
        for (name, key) in [("primary", primary), ("secondary", secondary)] {
            if key.len() < MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "the {name} key must be at least {MIN_KEY_LEN} printable characters without spaces"
                ));
            }
        }
        if primary == secondary {
            return Err("the primary and secondary keys are the same: rotation needs two keys".into());
        }
        Ok(Keys { primary: primary.to_string(), secondary: secondary.to_string() })
    }

    /// Reads and parses a keys file.
    pub fn read(path: &Path) -> Result<Keys, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading keys file {}: {e}", path.display()))?;
        Keys::parse(&text).map_err(|e| format!("keys file {}: {e}", path.display()))
    }

    /// Two fresh random keys.
    pub fn generate() -> Keys {
        Keys { primary: generate_key(), secondary: generate_key() }
    }

    /// The file's text for these keys.
    pub fn to_file_text(&self) -> String {
        format!("# systole service keys: primary, then secondary\n{}\n{}\n", self.primary, self.secondary)
    }

    /// Writes the keys to `path` atomically (a temporary file renamed over it), readable by the owner only.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let fail = |e: std::io::Error| format!("writing keys file {}: {e}", path.display());
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(fail)?;
            f.write_all(self.to_file_text().as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, path).map_err(fail)
    }

    /// These keys with one of them replaced by a fresh random key.
    pub fn regenerate(&self, which: Which) -> Keys {
        let mut keys = self.clone();
        match which {
            Which::Primary => keys.primary = generate_key(),
            Which::Secondary => keys.secondary = generate_key(),
        }
        keys
    }

    /// Whether `presented` is one of the keys. Both comparisons always run and each takes time independent
    /// of where the strings differ, so the timing reveals neither which key matched nor how much of one did.
    pub fn accepts(&self, presented: &str) -> bool {
        let p = presented.as_bytes();
        let primary = p.ct_eq(self.primary.as_bytes());
        let secondary = p.ct_eq(self.secondary.as_bytes());
        bool::from(primary | secondary)
    }
}

/// A fresh key: 32 random bytes from the operating system's generator, as 64 hexadecimal digits.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a request presents in its `authorization` header: the value itself, or what follows `Bearer `.
pub fn presented_key(header: &str) -> &str {
    let h = header.trim();
    match h.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => h[7..].trim_start(),
        _ => h,
    }
}

/// The keys the server checks requests against; `None` inside means authentication is off.
#[derive(Debug)]
pub struct KeyStore {
    path: Option<PathBuf>,
    keys: RwLock<Option<Arc<Keys>>>,
}

impl KeyStore {
    /// No keys: every request is accepted (the server warns loudly at start).
    pub fn open() -> KeyStore {
        KeyStore { path: None, keys: RwLock::new(None) }
    }

    /// The keys in `path`, which [`watch`](Self::watch) keeps re-reading.
    pub fn from_file(path: &Path) -> Result<KeyStore, String> {
        let keys = Keys::read(path)?;
        Ok(KeyStore { path: Some(path.to_path_buf()), keys: RwLock::new(Some(Arc::new(keys))) })
    }

    /// Whether requests need a key.
    pub fn enabled(&self) -> bool {
        self.current().is_some()
    }

    /// The keys in force.
    pub fn current(&self) -> Option<Arc<Keys>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks a request's `authorization` header value (`None`: no header).
    pub fn check(&self, header: Option<&str>) -> Result<(), ServeError> {
        let Some(keys) = self.current() else { return Ok(()) };
        match header {
            None => Err(ServeError::Unauthenticated(
                "no key: send the primary or secondary key in the 'authorization' header".into(),
            )),
            Some(h) if keys.accepts(presented_key(h)) => Ok(()),
            Some(_) => Err(ServeError::Unauthenticated("the key is neither the primary nor the secondary key".into())),
        }
    }

    /// Re-reads the keys file now. On error the keys in force stay and the error is returned.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.path else { return Ok(false) };
        let keys = Keys::read(path)?;
        let mut slot = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let changed = slot.as_deref() != Some(&keys);
        if changed {
            *slot = Some(Arc::new(keys));
        }
        Ok(changed)
    }

    /// Keeps the keys in step with the file: re-reads it every `every` and on SIGHUP, logging each rotation
    /// and each unreadable file. Returns at once when the store has no file. Runs until the runtime stops.
    pub fn watch(self: Arc<Self>, every: Duration, reloads: prometheus::IntCounter) {
        if self.path.is_none() {
            return;
        }
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(every);
            loop {
                #[cfg(unix)]
                let reason = match hangup.as_mut() {
                    Some(h) => tokio::select! { _ = tick.tick() => "change", _ = h.recv() => "SIGHUP" },
                    None => {
                        tick.tick().await;
                        "change"
                    }
                };
                #[cfg(not(unix))]
                let reason = {
                    tick.tick().await;
                    "change"
                };
                match self.reload() {
                    Ok(true) => {
                        reloads.inc();
                        tracing::info!(reason, "keys file re-read: new keys in force")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(reason, "{e}; the previous keys stay in force"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_two_keys_and_refuses_bad_files() {
        let k = Keys::parse("# comment\n\n0123456789abcdef\nfedcba9876543210\n").unwrap();
        assert_eq!((k.primary.as_str(), k.secondary.as_str()), ("0123456789abcdef", "fedcba9876543210"));
        assert!(Keys::parse("0123456789abcdef\n").unwrap_err().contains("has 1"));
        assert!(Keys::parse("short\nfedcba9876543210").unwrap_err().contains("primary key must be"));
        assert!(Keys::parse("0123456789abcdef\n0123456789abcdef").unwrap_err().contains("the same"));
        assert!(format!("{k:?}").contains("redacted") && !format!("{k:?}").contains("0123"));
    }

    #[test]
    fn accepts_either_key_bare_or_bearer() {
        let keys = Keys::generate();
        assert_eq!(keys.primary.len(), 64);
        assert_ne!(keys.primary, keys.secondary);
        let store = KeyStore { path: None, keys: RwLock::new(Some(Arc::new(keys.clone()))) };
        assert!(store.check(Some(&keys.primary)).is_ok());
        assert!(store.check(Some(&format!("Bearer {}", keys.secondary))).is_ok());
        assert!(store.check(Some(&format!("bearer  {}", keys.primary))).is_ok());
        let wrong = store.check(Some(&keys.primary[1..])).unwrap_err();
        assert_eq!(wrong.grpc_code(), tonic::Code::Unauthenticated);
        assert!(store.check(None).unwrap_err().to_string().contains("no key"));
        assert!(KeyStore::open().check(None).is_ok());
    }

    #[test]
    fn reload_rotates_and_keeps_old_keys_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.txt");
        let first = Keys::generate();
        first.write(&path).unwrap();
        let store = KeyStore::from_file(&path).unwrap();
        assert_eq!(store.reload(), Ok(false));
        let second = first.regenerate(Which::Primary);
        assert_eq!(second.secondary, first.secondary);
        second.write(&path).unwrap();
        assert_eq!(store.reload(), Ok(true));
        assert!(store.check(Some(&second.primary)).is_ok() && store.check(Some(&first.primary)).is_err());
        std::fs::write(&path, "garbage").unwrap();
        assert!(store.reload().is_err());
        assert!(store.check(Some(&second.primary)).is_ok(), "a bad file leaves the keys in force");
    }
}
