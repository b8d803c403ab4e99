//! Package identities and file checksums as apk prints them (`Q1` + base64 of a SHA-1).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::{DecodeSliceError, Engine};
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};

/// A checksum as it appears in `C:` and `Z:` lines.
///
/// apk-tools writes SHA-1 as `Q1`+base64; it also parses `X1`+hex and, for very old
/// indexes, 32 hex digits of MD5 (`apk_blob_pull_csum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checksum {
    Sha1([u8; 20]),
    Md5([u8; 16]),
}

impl Checksum {
    pub fn sha1_of(data: &[u8]) -> Self {
        Checksum::Sha1(Sha1::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Checksum::Sha1(b) => b,
            Checksum::Md5(b) => b,
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::Sha1(b) => write!(f, "Q1{}", BASE64.encode(b)),
            Checksum::Md5(b) => f.write_str(&hex::encode(b)),
        }
    }
}

impl FromStr for Checksum {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::BadChecksum {
            text: s.to_string(),
            reason: reason.to_string(),
        };
        // Decoded into arrays, not Vecs: an index has one checksum per package.
        if let Some(b64) = s.strip_prefix("Q1") {
            let mut sum = [0u8; 20];
            match BASE64.decode_slice(b64, &mut sum) {
                Ok(20) => Ok(Checksum::Sha1(sum)),
                Ok(_) | Err(DecodeSliceError::OutputSliceTooSmall) => {
                    Err(bad("a SHA-1 has 20 bytes"))
                }
                Err(DecodeSliceError::DecodeError(e)) => Err(bad(&e.to_string())),
            }
        } else if let Some(hx) = s.strip_prefix("X1") {
            if hx.len() != 40 {
                return Err(bad("a SHA-1 has 20 bytes"));
            }
            let mut sum = [0u8; 20];
            hex::decode_to_slice(hx, &mut sum).map_err(|e| bad(&e.to_string()))?;
            Ok(Checksum::Sha1(sum))
        } else if s.len() == 32 {
            let mut sum = [0u8; 16];
            hex::decode_to_slice(s, &mut sum).map_err(|e| bad(&e.to_string()))?;
            Ok(Checksum::Md5(sum))
        } else {
            Err(bad("expected Q1<base64>, X1<hex> or 32 hex digits"))
        }
    }
}

/// Lowercase hex SHA-256, as `.PKGINFO` writes `datahash`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q1_round_trips() {
        let text = "Q1ZHEpaEOiteoTRO1dl94WdfCY1Rw=";
        let c: Checksum = text.parse().unwrap();
        assert_eq!(c.to_string(), text);
    }

    #[test]
    fn x1_hex_is_the_same_sha1() {
        let c = Checksum::sha1_of(b"hello");
        let x1 = format!("X1{}", hex::encode(c.as_bytes()));
        assert_eq!(x1.parse::<Checksum>().unwrap(), c);
    }

    #[test]
    fn rejects_short_q1() {
        let err = "Q1AAAA".parse::<Checksum>().unwrap_err();
        assert!(err.to_string().contains("Q1AAAA"), "{err}");
    }

    #[test]
    fn rejects_long_and_bad_digests() {
        let long = format!("Q1{}", BASE64.encode([7u8; 21]));
        let err = long.parse::<Checksum>().unwrap_err().to_string();
        assert!(err.contains("20 bytes"), "{err}");
        let err = "Q1ZHEpaEOiteoTRO1dl94WdfCY1R!="
            .parse::<Checksum>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("Invalid"), "{err}");
        let err = format!("X1{}", "ab".repeat(19))
            .parse::<Checksum>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("20 bytes"), "{err}");
        let err = "zz".repeat(16).parse::<Checksum>().unwrap_err().to_string();
        assert!(err.contains("Invalid character"), "{err}");
    }
}
