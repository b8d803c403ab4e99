//! RSA keys and signatures, in the shape abuild and melange use them.
//!
//! A signature is raw PKCS#1 v1.5 over a digest (`openssl dgst -sha256 -sign`), stored as
//! `.SIGN.<TYPE>.<keyname>` where `<keyname>` is the public key's file name in the keys dir.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::error::{io_at, Error, Result};

pub const DEFAULT_KEY_BITS: usize = 4096;

/// The digest under the RSA signature; the name is the `<TYPE>` in `.SIGN.<TYPE>.`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SignatureAlgorithm {
    /// `.SIGN.RSA.`: SHA-1, what abuild writes and apk-tools before 2.12 reads.
    Sha1,
    /// `.SIGN.RSA256.`: SHA-256, melange's default and ours.
    #[default]
    Sha256,
    /// `.SIGN.RSA512.`
    Sha512,
}

impl SignatureAlgorithm {
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Sha1 => "RSA",
            Self::Sha256 => "RSA256",
            Self::Sha512 => "RSA512",
        }
    }

    /// Parse a signature entry name `.SIGN.<TYPE>.<keyname>` into algorithm and key name.
    pub fn parse_entry_name(name: &str) -> Option<(Self, &str)> {
        let rest = name.strip_prefix(".SIGN.")?;
        let (ty, key) = rest.split_once('.')?;
        let alg = match ty {
            "RSA" => Self::Sha1,
            "RSA256" => Self::Sha256,
            "RSA512" => Self::Sha512,
            _ => return None,
        };
        (!key.is_empty()).then_some((alg, key))
    }

    pub fn entry_name(self, keyname: &str) -> String {
        format!(".SIGN.{}.{keyname}", self.type_name())
    }

    fn digest(self, message: &[u8]) -> (Pkcs1v15Sign, Vec<u8>) {
        match self {
            Self::Sha1 => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(message).to_vec()),
            Self::Sha256 => (
                Pkcs1v15Sign::new::<Sha256>(),
                Sha256::digest(message).to_vec(),
            ),
            Self::Sha512 => (
                Pkcs1v15Sign::new::<Sha512>(),
                Sha512::digest(message).to_vec(),
            ),
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A private signing key and the file name its public half is published under.
#[derive(Clone)]
pub struct SigningKey {
    key: RsaPrivateKey,
    /// File name of the public key in keys dirs, e.g. `packager.rsa.pub`.
    name: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate(bits: usize, name: impl Into<String>) -> Result<Self> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(|e| Error::Key {
            path: PathBuf::new(),
            reason: format!("cannot generate a {bits}-bit RSA key: {e}"),
        })?;
        Ok(Self {
            key,
            name: name.into(),
        })
    }

    /// Load a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    /// As melange does, its public key is known as `<file name>.pub`.
    pub fn load(path: &Path) -> Result<Self> {
        let pem = fs::read_to_string(path).map_err(io_at(path))?;
        let key = RsaPrivateKey::from_pkcs1_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
            .map_err(|e| Error::Key {
                path: path.to_path_buf(),
                reason: format!("not a PEM RSA private key (PKCS#1 or PKCS#8): {e}"),
            })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            key,
            name: format!("{file_name}.pub"),
        })
    }

    /// Write the private key to `path` (PKCS#1 PEM, mode 0600) and the public key to
    /// `path.pub` (PKIX PEM), each atomically.
    pub fn write_pair(&self, path: &Path) -> Result<PathBuf> {
        let private = self
            .key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| Error::Key {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let public_path = public_path_for(path);
        crate::fsutil::write_atomic(path, private.as_bytes(), 0o600)?;
        crate::fsutil::write_atomic(&public_path, self.public_pem().as_bytes(), 0o644)?;
        Ok(public_path)
    }

    pub fn public_pem(&self) -> String {
        self.key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("an RSA public key always encodes")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sign(&self, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>> {
        let (scheme, digest) = algorithm.digest(message);
        self.key.sign(scheme, &digest).map_err(|e| Error::Key {
            path: PathBuf::from(&self.name),
            reason: format!("signing failed: {e}"),
        })
    }
}

/// `KEY` -> `KEY.pub`, the convention of `melange keygen` and `abuild-keygen`.
pub fn public_path_for(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Trusted public keys by file name, like `/etc/apk/keys`.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    /// A file that is not a public key stays here with the reason, so that a signature
    /// naming it fails with that reason rather than as "unknown key".
    keys: BTreeMap<String, std::result::Result<RsaPublicKey, String>>,
}

impl Keyring {
    /// Load every regular file in `dir`. Like apk, which opens only the key a signature
    /// names, a file that is not a public key fails only the signatures naming it.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let mut ring = Keyring::default();
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_at(dir))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io_at(dir))?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            if path.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let parsed = fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|pem| parse_public_pem(&pem));
                ring.keys.insert(name, parsed);
            }
        }
        Ok(ring)
    }

    /// Add one public key file; its name in the ring is its file name.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let pem = fs::read_to_string(path).map_err(io_at(path))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.add_pem(&name, &pem).map_err(|e| match e {
            Error::Key { reason, .. } => Error::Key {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    pub fn add_pem(&mut self, name: &str, pem: &str) -> Result<()> {
        let key = parse_public_pem(pem).map_err(|reason| Error::Key {
            path: PathBuf::from(name),
            reason,
        })?;
        self.keys.insert(name.to_string(), Ok(key));
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Check `signature` over `message` with the key called `name`.
    pub fn verify(
        &self,
        name: &str,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let key = match self.keys.get(name) {
            None => return Err(SignatureError::UnknownKey),
            Some(Err(reason)) => return Err(SignatureError::BadKey(reason.clone())),
            Some(Ok(key)) => key,
        };
        let (scheme, digest) = algorithm.digest(message);
        key.verify(scheme, &digest, signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

fn parse_public_pem(pem: &str) -> std::result::Result<RsaPublicKey, String> {
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not a PEM RSA public key: {e}"))
}

/// Why a signature check failed; the caller adds what was being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    UnknownKey,
    /// The key file exists but is not a public key.
    BadKey(String),
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_each_algorithm() {
        let key = SigningKey::generate(1024, "t.rsa.pub").unwrap();
        let mut ring = Keyring::default();
        ring.add_pem(key.name(), &key.public_pem()).unwrap();
        for alg in [
            SignatureAlgorithm::Sha1,
            SignatureAlgorithm::Sha256,
            SignatureAlgorithm::Sha512,
        ] {
            let sig = key.sign(alg, b"message").unwrap();
            assert_eq!(ring.verify("t.rsa.pub", alg, b"message", &sig), Ok(()));
            assert_eq!(
                ring.verify("t.rsa.pub", alg, b"messagf", &sig),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(
                ring.verify("other.rsa.pub", alg, b"message", &sig),
                Err(SignatureError::UnknownKey)
            );
        }
    }

    #[test]
    fn parses_signature_entry_names() {
        assert_eq!(
            SignatureAlgorithm::parse_entry_name(
                ".SIGN.RSA.alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"
            ),
            Some((
                SignatureAlgorithm::Sha1,
                "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"
            ))
        );
        assert_eq!(
            SignatureAlgorithm::parse_entry_name(".SIGN.RSA256.melange.rsa.pub"),
            Some((SignatureAlgorithm::Sha256, "melange.rsa.pub"))
        );
        assert_eq!(
            SignatureAlgorithm::parse_entry_name(".SIGN.DSA.k.pub"),
            None
        );
        assert_eq!(SignatureAlgorithm::parse_entry_name(".PKGINFO"), None);
    }

    #[test]
    fn key_pair_files_round_trip_with_private_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.rsa");
        let key = SigningKey::generate(1024, "ignored").unwrap();
        let public = key.write_pair(&path).unwrap();
        assert_eq!(public, dir.path().join("me.rsa.pub"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let private = fs::read_to_string(&path).unwrap();
        assert!(private.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));

        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.name(), "me.rsa.pub");
        let mut ring = Keyring::default();
        ring.add_file(&public).unwrap();
        let sig = loaded.sign(SignatureAlgorithm::Sha256, b"x").unwrap();
        ring.verify("me.rsa.pub", SignatureAlgorithm::Sha256, b"x", &sig)
            .unwrap();
    }
}
