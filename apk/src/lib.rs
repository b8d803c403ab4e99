//! The apk v2 format and model, as apk-tools 2.14 reads and writes it.
//!
//! Data flows: staged files + [`PackageInfo`] -> [`package::PackageBuilder`] -> signed
//! `.apk` -> [`package::Package::read`] -> [`index::IndexEntry`] -> signed APKINDEX.

pub mod arch;
pub mod checksum;
pub mod data;
pub mod dependency;
pub mod error;
pub mod extract;
pub mod fsutil;
pub mod gzip;
pub mod index;
pub mod installed;
pub mod key;
pub mod package;
pub mod pkginfo;
pub mod sbom;
pub mod signature;
pub mod solver;
pub mod tarball;
pub mod version;

pub use arch::Arch;
pub use checksum::Checksum;
pub use dependency::{Constraint, Dependency};
pub use error::{Error, Result};
pub use key::{Keyring, SignatureAlgorithm, SigningKey};
pub use pkginfo::PackageInfo;
pub use version::Version;
