//! Sources for the `fetch` pipeline: downloaded on the host (the sandbox has no
//! network), verified against the recipe's expected hash, and cached by that hash so
//! that a second build needs no network at all.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256, Sha512};

/// The hash a recipe pins a source to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    Sha256(String),
    Sha512(String),
}

impl Expected {
    fn algorithm(&self) -> &'static str {
        match self {
            Expected::Sha256(_) => "sha256",
            Expected::Sha512(_) => "sha512",
        }
    }

    fn hex(&self) -> &str {
        match self {
            Expected::Sha256(h) | Expected::Sha512(h) => h,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{uri}: checksum mismatch: expected {algorithm}:{expected}, got {algorithm}:{actual}; the download was discarded")]
    Mismatch {
        uri: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{uri}: {reason}")]
    Download { uri: String, reason: String },
    #[error("{uri}: not in the source cache {cache} and the network is off (--offline)")]
    Offline { uri: String, cache: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Upper bound on one source download, against runaway servers.
const MAX_SOURCE_BYTES: u64 = 8 << 30;

/// Downloaded sources by hash: `<dir>/<algorithm>/<hex>`.
#[derive(Clone, Debug)]
pub struct SourceCache {
    pub dir: PathBuf,
    pub offline: bool,
}

impl SourceCache {
    /// `$XDG_CACHE_HOME/pkgr/sources`, else `~/.cache/pkgr/sources`.
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("pkgr/sources")
    }

    /// The verified file for `uri`, from the cache or downloaded into it. `base` resolves
    /// relative `file:` URIs (the recipe's directory).
    pub fn get(&self, uri: &str, expected: &Expected, base: &Path) -> Result<PathBuf, FetchError> {
        let algo = expected.algorithm();
        let want = expected.hex().to_ascii_lowercase();
        let cached = self.dir.join(algo).join(&want);
        if cached.is_file() {
            return Ok(cached);
        }
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        let mut reader: Box<dyn Read> = if let Some(rest) = uri.strip_prefix("file://") {
            let path = base.join(rest);
            Box::new(fs::File::open(&path).map_err(io_err(&path))?)
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            if self.offline {
                return Err(FetchError::Offline {
                    uri: uri.into(),
                    cache: self.dir.clone(),
                });
            }
            Box::new(http_get(uri)?)
        } else {
            return Err(FetchError::Download {
                uri: uri.into(),
                reason: "unsupported scheme: use https://, http:// or file://".into(),
            });
        };

        let dir = cached.parent().expect("cache path has a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // Download beside the final name; only a verified file is renamed into place,
        // so the cache never holds a corrupt source.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
        let actual = copy_hashing(&mut reader, tmp.as_file_mut(), expected).map_err(|e| {
            FetchError::Download {
                uri: uri.into(),
                reason: e.to_string(),
            }
        })?;
        if actual != want {
            return Err(FetchError::Mismatch {
                uri: uri.into(),
                algorithm: algo,
                expected: want,
                actual,
            });
        }
        tmp.persist(&cached).map_err(|e| FetchError::Io {
            path: cached.clone(),
            source: e.error,
        })?;
        Ok(cached)
    }
}

fn http_get(uri: &str) -> Result<impl Read, FetchError> {
    let err = |reason: String| FetchError::Download {
        uri: uri.into(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let resp = client.get(uri).send().map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    Ok(resp)
}

fn copy_hashing(from: &mut dyn Read, to: &mut fs::File, expected: &Expected) -> io::Result<String> {
    let mut sha256 = Sha256::new();
    let mut sha512 = Sha512::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_SOURCE_BYTES {
            return Err(io::Error::other(format!(
                "larger than {MAX_SOURCE_BYTES} bytes"
            )));
        }
        match expected {
            Expected::Sha256(_) => sha256.update(&buf[..n]),
            Expected::Sha512(_) => sha512.update(&buf[..n]),
        }
        to.write_all(&buf[..n])?;
    }
    to.sync_all()?;
    Ok(match expected {
        Expected::Sha256(_) => hex::encode(sha256.finalize()),
        Expected::Sha512(_) => hex::encode(sha512.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_is_verified_and_cached_by_hash() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), b"source").unwrap();
        let cache = SourceCache {
            dir: src.path().join("cache"),
            offline: true,
        };
        let want = Expected::Sha256(hex::encode(Sha256::digest(b"source")));
        let got = cache.get("file://a.txt", &want, src.path()).unwrap();
        assert_eq!(std::fs::read(&got).unwrap(), b"source");
        // Served from the cache once the original is gone.
        std::fs::remove_file(src.path().join("a.txt")).unwrap();
        assert_eq!(cache.get("file://a.txt", &want, src.path()).unwrap(), got);
    }

    #[test]
    fn mismatch_is_an_error_and_leaves_nothing_in_the_cache() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), b"tampered").unwrap();
        let cache = SourceCache {
            dir: src.path().join("cache"),
            offline: true,
        };
        let want = Expected::Sha256(hex::encode(Sha256::digest(b"source")));
        let err = cache
            .get("file://a.txt", &want, src.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains("file://a.txt"),
            "{err}"
        );
        let leftovers: Vec<_> = walk(&src.path().join("cache"));
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn offline_http_miss_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SourceCache {
            dir: dir.path().to_path_buf(),
            offline: true,
        };
        let want = Expected::Sha512("00".repeat(64));
        let err = cache
            .get("https://example.org/x.tar.gz", &want, dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("--offline"), "{err}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.extend(walk(&e.path()));
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }
}
