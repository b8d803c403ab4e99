//! The signature member that precedes a package's control member or an index:
//! a gzipped tar, without end-of-archive, of `.SIGN.<TYPE>.<keyname>` files.

use crate::error::{Error, Result};
use crate::gzip;
use crate::key::{Keyring, SignatureAlgorithm, SignatureError, SigningKey};
use crate::tarball::{self, Entry, Kind, Magic, Owner, TarWriter};

/// One `.SIGN.*` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: SignatureAlgorithm,
    pub key_name: String,
    pub bytes: Vec<u8>,
}

/// Sign `message` once per algorithm and pack the signatures into a gzip member.
/// apk uses the first entry whose key it has, so order is the caller's preference.
pub fn build_member(
    key: &SigningKey,
    algorithms: &[SignatureAlgorithm],
    message: &[u8],
    mtime: u64,
) -> Result<Vec<u8>> {
    let root = Owner::root();
    let mut tar = TarWriter::new(Vec::new(), Magic::Ustar);
    for &algorithm in algorithms {
        let sig = key.sign(algorithm, message)?;
        let name = algorithm.entry_name(key.name());
        let entry = Entry {
            path: &name,
            kind: Kind::File {
                size: sig.len() as u64,
            },
            mode: 0o644,
            owner: &root,
            mtime,
            sha1: None,
        };
        tar.append(&entry, &sig[..])
            .expect("writing to a Vec cannot fail");
    }
    Ok(gzip::compress(&tar.finish_cut(), gzip::SMALL_MEMBER_LEVEL))
}

/// The signatures in an unpacked first member, or `None` when it is not a signature
/// member (an unsigned file starts with its control or index tar).
pub fn parse_member(unpacked: &[u8]) -> Result<Option<Vec<Signature>>> {
    let parsed = tarball::parse(unpacked)?;
    let Some(first) = parsed.entries.first() else {
        return Ok(None);
    };
    if !first.path.starts_with(".SIGN.") {
        return Ok(None);
    }
    // Entries of unknown types (DSA, future ones) are skipped as apk skips them.
    let sigs = parsed
        .entries
        .iter()
        .filter_map(|e| {
            let (algorithm, key_name) = SignatureAlgorithm::parse_entry_name(&e.path)?;
            Some(Signature {
                algorithm,
                key_name: key_name.to_string(),
                bytes: e.data.to_vec(),
            })
        })
        .collect();
    Ok(Some(sigs))
}

/// Verify like apk: the first signature whose key is in the keyring decides.
pub fn verify<'a>(
    signatures: &'a [Signature],
    keyring: &Keyring,
    message: &[u8],
) -> Result<&'a Signature> {
    if signatures.is_empty() {
        return Err(Error::Unsigned);
    }
    let Some(sig) = signatures.iter().find(|s| keyring.contains(&s.key_name)) else {
        return Err(Error::UnknownKey {
            keys: signatures.iter().map(|s| s.key_name.clone()).collect(),
        });
    };
    match keyring.verify(&sig.key_name, sig.algorithm, message, &sig.bytes) {
        Ok(()) => Ok(sig),
        Err(SignatureError::UnknownKey) => unreachable!("the key was found above"),
        Err(SignatureError::Mismatch) => Err(Error::BadSignature {
            key: sig.key_name.clone(),
        }),
        Err(SignatureError::BadKey(reason)) => Err(Error::Key {
            path: sig.key_name.clone().into(),
            reason,
        }),
    }
}
