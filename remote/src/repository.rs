//! Repositories: where indexes and packages come from (a local directory or an http(s)
//! URL, laid out as `<repo>/<arch>/APKINDEX.tar.gz`), and the checks they pass before a
//! byte of them is used.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use apk::index::{Index, IndexEntry};
use apk::package::Package;
use apk::{Arch, Keyring};
use rayon::prelude::*;

use crate::cache::{CacheError, Kind};
use crate::client::{Fetched, HttpError};
use crate::{is_url, Remote, Settings};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{location}: {reason}")]
    Fetch { location: String, reason: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{url}: not in the cache {} and the network is off (--offline)", cache.display())]
    Offline { url: String, cache: PathBuf },
    #[error("{location}: {cause}")]
    Format { location: String, cause: apk::Error },
    #[error("{location}: the index is not signed by a trusted key ({cause}); give its key in contents.keyring, or --allow-untrusted")]
    Untrusted { location: String, cause: apk::Error },
    #[error("{location}: {name}-{version} does not match its index: the index says {expected}, the file is {actual}")]
    Identity {
        location: String,
        name: String,
        version: String,
        expected: String,
        actual: String,
    },
}

/// A repository line: `[@tag ]location`, as in `/etc/apk/repositories`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSpec {
    pub tag: Option<String>,
    pub location: String,
}

impl FromStr for RepoSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.strip_prefix('@') {
            Some(rest) => {
                let (tag, location) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("{s:?}: expected `@tag location`"))?;
                Ok(RepoSpec {
                    tag: Some(tag.to_string()),
                    location: location.trim().to_string(),
                })
            }
            None if s.is_empty() => Err("empty repository".into()),
            None => Ok(RepoSpec {
                tag: None,
                location: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for RepoSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "@{tag} {}", self.location),
            None => f.write_str(&self.location),
        }
    }
}

/// A repository's index for one architecture.
#[derive(Clone, Debug)]
pub struct LoadedRepo {
    pub spec: RepoSpec,
    pub arch: Arch,
    pub index: Index,
    /// Who signed the index, or `None` when untrusted indexes were allowed.
    pub signed_by: Option<String>,
}

/// Reads repositories: local paths relative to `base` directly, http(s) through the
/// shared client and cache.
pub struct Fetcher {
    base: PathBuf,
    remote: Remote,
}

/// A wanted package: read and checked; to be downloaded from `url` and cached at
/// `path`; or downloaded, to be checked.
enum Found {
    Ready(Vec<u8>),
    Missing {
        url: String,
        path: PathBuf,
    },
    Downloaded {
        url: String,
        path: PathBuf,
        body: Result<Vec<u8>, HttpError>,
    },
}

impl Fetcher {
    pub fn new(base: &Path, settings: &Settings) -> Result<Self, RepoError> {
        Ok(Fetcher {
            base: base.to_path_buf(),
            remote: Remote::new(settings)?,
        })
    }

    /// The cache and client this fetcher uses.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    fn local_path(&self, location: &str) -> String {
        self.base.join(location).display().to_string()
    }

    fn read_local(&self, location: &str) -> Result<(String, Vec<u8>), RepoError> {
        let full = self.local_path(location);
        let bytes = std::fs::read(&full).map_err(|e| RepoError::Fetch {
            location: full.clone(),
            reason: e.to_string(),
        })?;
        Ok((full, bytes))
    }

    fn offline_miss(&self, url: &str) -> RepoError {
        RepoError::Offline {
            url: url.to_string(),
            cache: self.remote.cache.root().to_path_buf(),
        }
    }

    /// A document (index, key) at `location`, passed through `check`: a local file is
    /// read; a URL comes from the cache when the server says it is current (or when
    /// offline), else is downloaded, checked and then cached. A cached copy is checked
    /// again on every read: an index cached under --allow-untrusted is not trusted later
    /// without its signature.
    fn document<T>(
        &self,
        kind: Kind,
        location: &str,
        check: impl Fn(&str, &[u8]) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        if !is_url(location) {
            let (full, bytes) = self.read_local(location)?;
            return check(&full, &bytes);
        }
        let url = location;
        let cache = &self.remote.cache;
        let _lock = cache.lock_document(kind, url)?;
        let cached = cache.read_document(kind, url)?;
        if self.remote.offline {
            let doc = cached.ok_or_else(|| self.offline_miss(url))?;
            return check(url, &doc.body);
        }
        let usable = cached.and_then(|doc| check(url, &doc.body).ok().map(|t| (doc, t)));
        let mut body = Vec::new();
        let client = &self.remote.client;
        let known = usable.as_ref().map(|(doc, _)| &doc.validators);
        match client.get_if_changed(url, known, client.options().max_bytes, &mut body)? {
            Fetched::NotModified => Ok(usable.expect("validators came from a cached copy").1),
            Fetched::Body(validators) => {
                let checked = check(url, &body)?;
                cache.store_document(kind, url, &body, &validators)?;
                Ok(checked)
            }
        }
    }

    /// Read and verify `spec`'s index for `arch`.
    pub fn load_index(
        &self,
        spec: &RepoSpec,
        arch: Arch,
        keyring: &Keyring,
        allow_untrusted: bool,
    ) -> Result<LoadedRepo, RepoError> {
        let location = join(&spec.location, &format!("{}/APKINDEX.tar.gz", arch.apk()));
        self.document(Kind::Index, &location, |location, bytes| {
            let read = Index::read(bytes).map_err(|cause| RepoError::Format {
                location: location.to_string(),
                cause,
            })?;
            let signed_by = match read.verify(keyring) {
                Ok(sig) => Some(sig.key_name.clone()),
                Err(_) if allow_untrusted => None,
                Err(cause) => {
                    return Err(RepoError::Untrusted {
                        location: location.to_string(),
                        cause,
                    })
                }
            };
            Ok(LoadedRepo {
                spec: spec.clone(),
                arch,
                index: read.index,
                signed_by,
            })
        })
    }

    /// Download a package and check it against its index entry.
    pub fn fetch_package(
        &self,
        repo: &LoadedRepo,
        entry: &IndexEntry,
    ) -> Result<Vec<u8>, RepoError> {
        Ok(self
            .fetch_packages(&[(repo, entry)])?
            .pop()
            .expect("one package asked, one returned"))
    }

    /// The packages, in order, each checked against its index entry: the `C:` identity
    /// (the SHA-1 of the control member, which covers `datahash`) and the data's
    /// `datahash`. Packages of http(s) repositories come from the cache, keyed by that
    /// identity, else are downloaded concurrently and cached once they pass the check.
    pub fn fetch_packages(
        &self,
        wanted: &[(&LoadedRepo, &IndexEntry)],
    ) -> Result<Vec<Vec<u8>>, RepoError> {
        // Local files and cache hits first, checked in parallel.
        let found: Vec<Found> = wanted
            .par_iter()
            .map(|(repo, entry)| self.find_package(repo, entry))
            .collect::<Result<_, _>>()?;
        let urls: Vec<String> = found
            .iter()
            .filter_map(|f| match f {
                Found::Missing { url, .. } => Some(url.clone()),
                _ => None,
            })
            .collect();
        let mut downloads = self.remote.client.get_all(&urls).into_iter();
        let found: Vec<Found> = found
            .into_iter()
            .map(|f| match f {
                Found::Missing { url, path } => Found::Downloaded {
                    url,
                    path,
                    body: downloads.next().expect("one body per URL"),
                },
                ready => ready,
            })
            .collect();
        found
            .into_par_iter()
            .zip(wanted)
            .map(|(found, (_, entry))| match found {
                Found::Ready(bytes) => Ok(bytes),
                Found::Downloaded { url, path, body } => {
                    let bytes = body?;
                    check_identity(&url, &bytes, entry)?;
                    // Two processes may store the same package at once: each renames a
                    // complete, checked file into place, and the last one wins.
                    self.remote.cache.store(&path, &bytes)?;
                    Ok(bytes)
                }
                Found::Missing { .. } => unreachable!("every missing package was downloaded"),
            })
            .collect()
    }

    /// Download, concurrently, the packages of http(s) repositories that the cache lacks,
    /// and store each once it passes its identity check, without keeping the bytes:
    /// `fetch_package` then reads them one at a time, so that composing an image holds
    /// one package in memory rather than all of them. Offline, it does nothing (the
    /// misses are reported by `fetch_package`).
    pub fn prefetch_packages(
        &self,
        wanted: &[(&LoadedRepo, &IndexEntry)],
    ) -> Result<(), RepoError> {
        if self.remote.offline {
            return Ok(());
        }
        let cache = &self.remote.cache;
        let missing: Vec<(String, PathBuf, &IndexEntry)> = wanted
            .iter()
            .map(|(repo, entry)| (package_location(repo, entry), *entry))
            .filter(|(location, _)| is_url(location))
            .map(|(url, entry)| (url, cache.package_path(&entry.checksum), entry))
            .filter(|(_, path, _)| !path.exists())
            .collect();
        let urls: Vec<String> = missing.iter().map(|(url, _, _)| url.clone()).collect();
        let bodies = self.remote.client.get_all(&urls);
        for ((url, path, entry), body) in missing.into_iter().zip(bodies) {
            let bytes = body?;
            check_identity(&url, &bytes, entry)?;
            cache.store(&path, &bytes)?;
        }
        Ok(())
    }

    /// A package from a local repository or the cache, checked; else what to download.
    fn find_package(&self, repo: &LoadedRepo, entry: &IndexEntry) -> Result<Found, RepoError> {
        let location = package_location(repo, entry);
        if !is_url(&location) {
            let (full, bytes) = self.read_local(&location)?;
            check_identity(&full, &bytes, entry)?;
            return Ok(Found::Ready(bytes));
        }
        let cache = &self.remote.cache;
        let path = cache.package_path(&entry.checksum);
        if let Some(bytes) = cache.read(&path)? {
            match check_identity(&path.display().to_string(), &bytes, entry) {
                Ok(()) => return Ok(Found::Ready(bytes)),
                Err(damaged) if self.remote.offline => return Err(damaged),
                // Damaged on disk (only checked files are stored): download it again.
                Err(_) => cache.remove(&path)?,
            }
        }
        if self.remote.offline {
            return Err(self.offline_miss(&location));
        }
        Ok(Found::Missing {
            url: location,
            path,
        })
    }

    /// The bytes of a key file: a path relative to the base, or a URL (cached like an
    /// index: revalidated online, served from the cache offline).
    fn key(&self, location: &str) -> Result<(String, String), RepoError> {
        self.document(Kind::Key, location, |location, bytes| {
            let pem = String::from_utf8(bytes.to_vec()).map_err(|_| RepoError::Fetch {
                location: location.to_string(),
                reason: "not a PEM text file".into(),
            })?;
            // Parsed here so that what is cached is a key.
            Keyring::default()
                .add_pem("key", &pem)
                .map_err(|cause| RepoError::Format {
                    location: location.to_string(),
                    cause,
                })?;
            Ok((location.to_string(), pem))
        })
    }
}

fn check_identity(location: &str, bytes: &[u8], entry: &IndexEntry) -> Result<(), RepoError> {
    let checksum = Package::read_checksum(bytes).map_err(|cause| RepoError::Format {
        location: location.to_string(),
        cause,
    })?;
    if checksum != entry.checksum {
        return Err(RepoError::Identity {
            location: location.to_string(),
            name: entry.info.name.clone(),
            version: entry.info.version.to_string(),
            expected: entry.checksum.to_string(),
            actual: checksum.to_string(),
        });
    }
    Ok(())
}

/// Where a repository keeps a package: `<repo>/<arch>/<name>-<version>.apk`.
fn package_location(repo: &LoadedRepo, entry: &IndexEntry) -> String {
    let rel = format!("{}/{}.apk", repo.arch.apk(), entry.info.file_stem());
    join(&repo.spec.location, &rel)
}

fn join(location: &str, rel: &str) -> String {
    format!("{}/{rel}", location.trim_end_matches('/'))
}

/// Load keys for `contents.keyring`: files (relative to `base`) or http(s) URLs. A key is
/// known by its file name, which is what `.SIGN.*.<name>` entries refer to.
pub fn load_keyring(fetcher: &Fetcher, keys: &[String]) -> Result<Keyring, RepoError> {
    let mut ring = Keyring::default();
    for key in keys {
        let (location, pem) = fetcher.key(key)?;
        let name = key.rsplit('/').next().unwrap_or(key);
        ring.add_pem(name, &pem)
            .map_err(|cause| RepoError::Format { location, cause })?;
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(rel)
    }

    #[test]
    fn repository_lines_parse_with_and_without_tags() {
        let tagged: RepoSpec = "@local /srv/repo".parse().unwrap();
        assert_eq!(tagged.tag.as_deref(), Some("local"));
        assert_eq!(tagged.location, "/srv/repo");
        assert_eq!(tagged.to_string(), "@local /srv/repo");
        let plain: RepoSpec = "https://dl.example.org/main".parse().unwrap();
        assert_eq!(plain.tag, None);
        assert!("@lonely".parse::<RepoSpec>().is_err());
    }

    #[test]
    fn melange_repo_loads_verified_and_packages_match_their_identity() {
        let fetcher = Fetcher::new(&fixture(""), &Settings::default()).unwrap();
        let ring = load_keyring(&fetcher, &["melange-repo/melange.rsa.pub".to_string()]).unwrap();
        let spec: RepoSpec = "melange-repo".parse().unwrap();
        let repo = fetcher
            .load_index(&spec, Arch::Aarch64, &ring, false)
            .unwrap();
        assert_eq!(repo.signed_by.as_deref(), Some("melange.rsa.pub"));
        for entry in &repo.index.entries {
            fetcher.fetch_package(&repo, entry).unwrap();
        }
        // A wrong identity in the index is caught before the package is used.
        let mut forged = repo.index.entries[0].clone();
        forged.checksum = apk::Checksum::sha1_of(b"something else");
        let err = fetcher
            .fetch_package(&repo, &forged)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match its index"), "{err}");
    }

    #[test]
    fn untrusted_index_is_refused_unless_allowed() {
        let fetcher = Fetcher::new(&fixture(""), &Settings::default()).unwrap();
        let spec: RepoSpec = "melange-repo".parse().unwrap();
        let err = fetcher
            .load_index(&spec, Arch::X86_64, &Keyring::default(), false)
            .unwrap_err();
        assert!(err.to_string().contains("--allow-untrusted"), "{err}");
        let repo = fetcher
            .load_index(&spec, Arch::X86_64, &Keyring::default(), true)
            .unwrap();
        assert_eq!(repo.signed_by, None);
    }
}
