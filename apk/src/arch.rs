//! The architectures we build for, under their apk, OCI, Go and GNU names.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A target architecture. apk names are canonical; OCI names parse too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
    Armv7,
    S390x,
    Ppc64le,
}

impl Arch {
    /// Every architecture, in the order `all` expands to.
    pub const ALL: [Arch; 5] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Armv7,
        Arch::S390x,
        Arch::Ppc64le,
    ];

    /// The apk name (`A:` in indexes, directory names in repositories).
    pub fn apk(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64le",
        }
    }

    /// OCI platform `architecture` and `variant`.
    pub fn oci(self) -> (&'static str, Option<&'static str>) {
        match self {
            Arch::X86_64 => ("amd64", None),
            Arch::Aarch64 => ("arm64", None),
            Arch::Armv7 => ("arm", Some("v7")),
            Arch::S390x => ("s390x", None),
            Arch::Ppc64le => ("ppc64le", None),
        }
    }

    /// `GOARCH` (melange's `build.goarch`).
    pub fn goarch(self) -> &'static str {
        match self {
            Arch::Armv7 => "arm",
            other => other.oci().0,
        }
    }

    /// The GNU triplet's CPU part, as Debian's cross compilers name it.
    fn gnu_cpu(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "arm",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "powerpc64le",
        }
    }

    /// GNU triplet for a C library, e.g. `aarch64-linux-gnu`, `arm-linux-gnueabihf`,
    /// `x86_64-linux-musl`. The glibc ones are Debian's `gcc-<triplet>` names.
    pub fn gnu_triplet(self, libc: Libc) -> String {
        let abi = match (self, libc) {
            (Arch::Armv7, Libc::Glibc) => "gnueabihf",
            (Arch::Armv7, Libc::Musl) => "musleabihf",
            (_, Libc::Glibc) => "gnu",
            (_, Libc::Musl) => "musl",
        };
        format!("{}-linux-{abi}", self.gnu_cpu())
    }

    /// Rust target triple, e.g. `aarch64-unknown-linux-musl`, `armv7-unknown-linux-gnueabihf`.
    pub fn rust_triplet(self, libc: Libc) -> String {
        let cpu = match self {
            Arch::Armv7 => "armv7",
            Arch::Ppc64le => "powerpc64le",
            other => other.gnu_cpu(),
        };
        let abi = match (self, libc) {
            (Arch::Armv7, Libc::Glibc) => "gnueabihf",
            (Arch::Armv7, Libc::Musl) => "musleabihf",
            (_, Libc::Glibc) => "gnu",
            (_, Libc::Musl) => "musl",
        };
        format!("{cpu}-unknown-linux-{abi}")
    }

    /// ELF `e_machine` of binaries for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
            Arch::Armv7 => 40,
            Arch::S390x => 22,
            Arch::Ppc64le => 21,
        }
    }

    /// The architecture this program runs on, if it is one of ours.
    pub fn host() -> Option<Arch> {
        std::env::consts::ARCH.parse().ok()
    }

    /// Parse a comma- or space-separated list; `all` means every architecture.
    pub fn parse_list(text: &str) -> Result<Vec<Arch>, Error> {
        let mut out = Vec::new();
        for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            if item == "all" {
                out.extend(Arch::ALL);
            } else {
                out.push(item.parse()?);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The C library a triplet targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libc {
    Glibc,
    Musl,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.apk())
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// apk names, OCI names (`amd64`, `arm64`, `arm/v7`, `linux/arm64`), and the Rust
    /// spelling of the host (`powerpc64le`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.strip_prefix("linux/").unwrap_or(s);
        Ok(match name {
            "x86_64" | "amd64" => Arch::X86_64,
            "aarch64" | "arm64" | "arm64/v8" => Arch::Aarch64,
            "armv7" | "arm/v7" => Arch::Armv7,
            "s390x" => Arch::S390x,
            "ppc64le" | "powerpc64le" => Arch::Ppc64le,
            _ => {
                return Err(Error::BadArch {
                    text: s.to_string(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apk_and_oci_names_parse_to_the_same_arch() {
        for arch in Arch::ALL {
            assert_eq!(arch.apk().parse::<Arch>().unwrap(), arch);
            let (oci, variant) = arch.oci();
            let full = variant.map_or(oci.to_string(), |v| format!("{oci}/{v}"));
            assert_eq!(full.parse::<Arch>().unwrap(), arch, "{full}");
        }
    }

    #[test]
    fn all_expands_and_lists_dedupe() {
        assert_eq!(Arch::parse_list("all").unwrap(), Arch::ALL);
        assert_eq!(
            Arch::parse_list("amd64,x86_64 aarch64").unwrap(),
            [Arch::X86_64, Arch::Aarch64]
        );
        let err = Arch::parse_list("x86_64,riscv64").unwrap_err().to_string();
        assert!(err.contains("riscv64"), "{err}");
    }

    #[test]
    fn triplets_match_debian_cross_compilers() {
        assert_eq!(Arch::Armv7.gnu_triplet(Libc::Glibc), "arm-linux-gnueabihf");
        assert_eq!(
            Arch::Ppc64le.gnu_triplet(Libc::Glibc),
            "powerpc64le-linux-gnu"
        );
        assert_eq!(Arch::Aarch64.gnu_triplet(Libc::Musl), "aarch64-linux-musl");
        assert_eq!(
            Arch::Armv7.rust_triplet(Libc::Musl),
            "armv7-unknown-linux-musleabihf"
        );
        assert_eq!(Arch::Armv7.goarch(), "arm");
    }
}
