//! APKINDEX: the repository index, a tar of `DESCRIPTION` and `APKINDEX` text, optionally
//! preceded by a signature member over the whole unsigned index file.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::Path;

use crate::checksum::Checksum;
use crate::dependency;
use crate::error::{io_at, malformed, Error, Result};
use crate::gzip;
use crate::key::{Keyring, SignatureAlgorithm, SigningKey};
use crate::package::Package;
use crate::pkginfo::PackageInfo;
use crate::signature::{self, Signature};
use crate::tarball::{self, Entry, Kind, Magic, Owner, TarWriter};
use crate::version::Version;

/// Longest line accepted in an APKINDEX or a `.PKGINFO`: real lines are a few kilobytes
/// (the longest in Alpine v3.16 main is 3,122 bytes); a longer one is refused, not parsed.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The error for a line past [`MAX_LINE_BYTES`].
pub(crate) fn line_too_long(len: usize) -> String {
    format!("line of {len} bytes is longer than {MAX_LINE_BYTES}, the bound for index and .PKGINFO lines")
}

/// One package stanza: what `.PKGINFO` says plus the file's identity and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub checksum: Checksum,
    /// Size of the `.apk` file (`S:`).
    pub size: u64,
    pub info: PackageInfo,
}

impl IndexEntry {
    pub fn from_package(pkg: &Package) -> Self {
        IndexEntry {
            checksum: pkg.checksum,
            size: pkg.size,
            info: pkg.info.clone(),
        }
    }

    /// Write the stanza lines in apk-tools' order (`apk_pkg_write_index_header`):
    /// `C P V A S I T U L [o] [m] [t] [c] [k] [D] [p] [i]`, without the blank line.
    pub fn write_stanza(&self, out: &mut String) {
        let i = &self.info;
        let _ = write!(
            out,
            "C:{}\nP:{}\nV:{}\nA:{}\nS:{}\nI:{}\nT:{}\nU:{}\nL:{}\n",
            self.checksum,
            i.name,
            i.version,
            i.arch,
            self.size,
            i.installed_size,
            i.description,
            i.url,
            i.license
        );
        let mut line = |letter: char, value: &str| {
            let _ = writeln!(out, "{letter}:{value}");
        };
        if let Some(o) = &i.origin {
            line('o', o);
        }
        if let Some(m) = &i.maintainer {
            line('m', m);
        }
        if i.build_time != 0 {
            line('t', &i.build_time.to_string());
        }
        if let Some(c) = &i.commit {
            line('c', c);
        }
        if let Some(k) = i.provider_priority.filter(|&k| k != 0) {
            line('k', &k.to_string());
        }
        for (letter, list) in [('D', &i.depends), ('p', &i.provides), ('i', &i.install_if)] {
            if !list.is_empty() {
                line(letter, &dependency::format_list(list));
            }
        }
    }
}

/// Order of packages in an index and in the installed db (`apk_pkg_cmp_display`):
/// name case-insensitively, then byte-wise, then version ascending.
pub fn display_order(a: &PackageInfo, b: &PackageInfo) -> Ordering {
    fn fold(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().map(|c| c.to_ascii_lowercase())
    }
    fold(&a.name)
        .cmp(fold(&b.name))
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.version.cmp(&b.version))
}

/// Parser state for one stanza; shared with the installed database, whose stanzas start
/// with the same lines.
#[derive(Default)]
pub(crate) struct StanzaBuilder {
    checksum: Option<Checksum>,
    name: Option<String>,
    version: Option<Version>,
    size: u64,
    info: Option<PackageInfo>,
}

impl StanzaBuilder {
    fn info(&mut self) -> &mut PackageInfo {
        self.info.get_or_insert_with(unnamed)
    }

    /// Take one `X:value` line. Returns false for letters it does not know, so that the
    /// caller may handle its own (the installed db's `F:`, `R:`...).
    pub(crate) fn line(&mut self, letter: u8, value: &str) -> std::result::Result<bool, String> {
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{}: not a number: {v:?}", letter as char))
        };
        let deps = |v: &str| dependency::parse_list(v).map_err(|e| e.to_string());
        match letter {
            b'C' => self.checksum = Some(value.parse().map_err(|e: Error| e.to_string())?),
            b'P' => self.name = Some(value.to_string()),
            b'V' => self.version = Some(value.parse().map_err(|e: Error| e.to_string())?),
            b'A' => self.info().arch = value.to_string(),
            b'S' => self.size = number(value)?,
            b'I' => self.info().installed_size = number(value)?,
            b'T' => self.info().description = value.to_string(),
            b'U' => self.info().url = value.to_string(),
            b'L' => self.info().license = value.to_string(),
            b'o' => self.info().origin = Some(value.to_string()),
            b'm' => self.info().maintainer = Some(value.to_string()),
            b't' => self.info().build_time = number(value)?,
            b'c' => self.info().commit = Some(value.to_string()),
            b'k' => self.info().provider_priority = Some(number(value)?),
            b'q' => self.info().replaces_priority = Some(number(value)?),
            b'D' => self.info().depends = deps(value)?,
            b'p' => self.info().provides = deps(value)?,
            b'i' => self.info().install_if = deps(value)?,
            b'r' => self.info().replaces = deps(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.checksum.is_none() && self.name.is_none() && self.info.is_none()
    }

    pub(crate) fn finish(mut self) -> std::result::Result<IndexEntry, String> {
        let mut info = self.info.take().unwrap_or_else(unnamed);
        info.name = self.name.ok_or("stanza has no P: (name)")?;
        info.version = self.version.ok_or("stanza has no V: (version)")?;
        let checksum = self.checksum.ok_or("stanza has no C: (checksum)")?;
        Ok(IndexEntry {
            checksum,
            size: self.size,
            info,
        })
    }
}

/// The record a stanza fills in before its `P:` and `V:` are known; allocates nothing.
fn unnamed() -> PackageInfo {
    PackageInfo::new("", Version::new_unchecked(""), "")
}

/// The lines of `text` as [`str::lines`] cuts them (`\n` or `\r\n`), found with a vectorised
/// `memchr`: the line walk is a sizeable part of reading a large index.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, after) = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(at) => {
                let line = &rest[..at];
                (line.strip_suffix('\r').unwrap_or(line), &rest[at + 1..])
            }
            None => (rest, ""),
        };
        rest = after;
        Some(line)
    })
}

/// A repository index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub description: Option<String>,
    pub entries: Vec<IndexEntry>,
}

/// An index read from an `APKINDEX.tar.gz`, with the signatures found before it.
#[derive(Clone, Debug)]
pub struct SignedIndex {
    pub index: Index,
    pub signatures: Vec<Signature>,
    /// The unsigned index file: what the signatures cover.
    unsigned: Vec<u8>,
}

impl SignedIndex {
    pub fn verify(&self, keyring: &Keyring) -> Result<&Signature> {
        signature::verify(&self.signatures, keyring, &self.unsigned)
    }

    /// The index file without its signature member.
    pub fn unsigned_bytes(&self) -> &[u8] {
        &self.unsigned
    }
}

impl Index {
    /// Parse APKINDEX text. Unknown lowercase letters are ignored as apk ignores them;
    /// unknown uppercase ones make apk refuse the package, so they are errors here.
    pub fn parse_text(text: &str) -> Result<Vec<IndexEntry>> {
        let mut entries = Vec::new();
        let mut stanza = StanzaBuilder::default();
        let mut stanza_line = 1;
        for (n, line) in lines(text).enumerate() {
            let bad = |reason: String| Error::BadIndex {
                line: n + 1,
                reason,
            };
            if line.len() > MAX_LINE_BYTES {
                return Err(bad(line_too_long(line.len())));
            }
            if line.is_empty() {
                if !stanza.is_empty() {
                    entries.push(std::mem::take(&mut stanza).finish().map_err(|r| {
                        Error::BadIndex {
                            line: stanza_line,
                            reason: r,
                        }
                    })?);
                }
                stanza_line = n + 2;
                continue;
            }
            let (letter, value) = match line.as_bytes() {
                [l, b':', ..] => (*l, &line[2..]),
                _ => {
                    return Err(bad(format!(
                        "expected `X:value`, found {:?}",
                        truncate(line)
                    )))
                }
            };
            if !stanza.line(letter, value).map_err(bad)? && letter.is_ascii_uppercase() {
                return Err(bad(format!(
                    "unknown field {}: apk refuses packages with unknown uppercase fields",
                    letter as char
                )));
            }
        }
        if !stanza.is_empty() {
            entries.push(stanza.finish().map_err(|r| Error::BadIndex {
                line: stanza_line,
                reason: r,
            })?);
        }
        Ok(entries)
    }

    /// APKINDEX text: sorted stanzas, each followed by a blank line.
    pub fn to_text(&self) -> String {
        let mut sorted: Vec<&IndexEntry> = self.entries.iter().collect();
        sorted.sort_by(|a, b| display_order(&a.info, &b.info));
        let mut out = String::new();
        for e in sorted {
            e.write_stanza(&mut out);
            out.push('\n');
        }
        out
    }

    /// The unsigned `APKINDEX.tar.gz`: one gzip member holding a GNU tar of
    /// `DESCRIPTION` (if any) then `APKINDEX`, with end-of-archive, as `apk index` writes.
    pub fn to_archive(&self, mtime: u64) -> Vec<u8> {
        let root = Owner::root();
        let text = self.to_text();
        let mut tar = TarWriter::new(Vec::new(), Magic::Gnu);
        let description = self
            .description
            .as_deref()
            .map(|d| ("DESCRIPTION", d.as_bytes()));
        for (path, body) in description
            .into_iter()
            .chain([("APKINDEX", text.as_bytes())])
        {
            let entry = Entry {
                path,
                kind: Kind::File {
                    size: body.len() as u64,
                },
                mode: 0o644,
                owner: &root,
                mtime,
                sha1: None,
            };
            tar.append(&entry, body)
                .expect("writing to a Vec cannot fail");
        }
        let tar = tar.finish().expect("writing to a Vec cannot fail");
        gzip::compress(&tar, gzip::SMALL_MEMBER_LEVEL)
    }

    /// Read an `APKINDEX.tar.gz`, signed or not.
    pub fn read(bytes: &[u8]) -> Result<SignedIndex> {
        let members = gzip::split_members(bytes, gzip::MAX_INDEX_UNPACKED)?;
        let first = members.first().ok_or_else(|| malformed("empty file"))?;
        let (signatures, rest) = match signature::parse_member(&first.unpacked)? {
            Some(sigs) => (sigs, &members[1..]),
            None => (Vec::new(), &members[..]),
        };
        let start = rest
            .first()
            .map(|m| m.offset)
            .ok_or_else(|| malformed("no index after the signature"))?;
        // The tar is almost always one member: parse it in place rather than copy it.
        let unpacked: Cow<[u8]> = match rest {
            [one] => Cow::Borrowed(&one.unpacked),
            many => Cow::Owned(
                many.iter()
                    .map(|m| &m.unpacked[..])
                    .collect::<Vec<_>>()
                    .concat(),
            ),
        };
        let mut index = Index::default();
        let mut text = None;
        for e in tarball::parse(&unpacked)?.entries {
            let body = || {
                std::str::from_utf8(e.data)
                    .map_err(|_| malformed(format!("{} is not UTF-8", e.path)))
            };
            match e.path.as_str() {
                "DESCRIPTION" => index.description = Some(body()?.to_string()),
                "APKINDEX" => text = Some(body()?),
                _ => {}
            }
        }
        let text = text.ok_or_else(|| malformed("no APKINDEX file in the archive"))?;
        index.entries = Index::parse_text(text)?;
        Ok(SignedIndex {
            index,
            signatures,
            unsigned: bytes[start..].to_vec(),
        })
    }

    pub fn read_file(path: &Path) -> Result<SignedIndex> {
        let bytes = std::fs::read(path).map_err(io_at(path))?;
        Index::read(&bytes).map_err(|e| e.in_file(path))
    }
}

/// Prepend a signature member to an unsigned index file.
pub fn sign(
    unsigned: &[u8],
    key: &SigningKey,
    algorithms: &[SignatureAlgorithm],
    mtime: u64,
) -> Result<Vec<u8>> {
    let sig = signature::build_member(key, algorithms, unsigned, mtime)?;
    Ok([sig.as_slice(), unsigned].concat())
}

fn truncate(line: &str) -> &str {
    let mut end = line.len().min(80);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANZA: &str = "C:Q1ZHEpaEOiteoTRO1dl94WdfCY1Rw=\nP:hello\nV:1.0-r0\nA:x86_64\nS:10\n\
I:20\nT:says hello\nU:https://example.org\nL:MIT\nD:so:libc.musl-x86_64.so.1 /bin/sh\n\
p:cmd:hello=1.0-r0\n";

    fn error_of(text: &str) -> String {
        Index::parse_text(text).unwrap_err().to_string()
    }

    #[test]
    fn crlf_lines_and_a_missing_final_newline_read_like_lf() {
        let lf =
            Index::parse_text(&format!("{STANZA}\n{}", STANZA.replace("hello", "bye"))).unwrap();
        let crlf = format!("{STANZA}\n{}", STANZA.replace("hello", "bye")).replace('\n', "\r\n");
        assert_eq!(Index::parse_text(&crlf).unwrap(), lf);
        assert_eq!(Index::parse_text(STANZA.trim_end()).unwrap(), lf[..1]);
        assert_eq!(lf[1].info.name, "bye");
        assert_eq!(lf[0].info.depends.len(), 2);
        assert_eq!(lf[0].info.provides[0].to_string(), "cmd:hello=1.0-r0");
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let second = |line: &str| format!("{STANZA}\n{line}\n");
        // Line 13 is the first of the second stanza.
        let err = error_of(&second("X:what"));
        assert!(
            err.contains("line 13") && err.contains("unknown field X"),
            "{err}"
        );
        let err = error_of(&second("S:many"));
        assert!(
            err.contains("line 13") && err.contains("S: not a number"),
            "{err}"
        );
        let err = error_of(&second("V:1.0-x"));
        assert!(err.contains("line 13") && err.contains("1.0-x"), "{err}");
        let err = error_of(&second("D:a b<"));
        assert!(
            err.contains("line 13") && err.contains("missing version"),
            "{err}"
        );
        let err = error_of(&second("C:Q1AAAA"));
        assert!(err.contains("line 13") && err.contains("20 bytes"), "{err}");
        let err = error_of(&second("no colon"));
        assert!(err.contains("line 13") && err.contains("X:value"), "{err}");
        let err = error_of(&second(&format!("T:{}", "x".repeat(MAX_LINE_BYTES))));
        assert!(
            err.contains("line 13") && err.contains("longer than"),
            "{err}"
        );
        let err = error_of(&format!("{STANZA}\nP:nameless\n"));
        assert!(err.contains("line 13") && err.contains("no V:"), "{err}");
        // Unknown lowercase fields are ignored, as apk ignores them.
        assert_eq!(Index::parse_text(&second("")).unwrap().len(), 1);
        let with_unknown = STANZA.replace("S:10\n", "S:10\nz:future\n");
        assert_eq!(Index::parse_text(&with_unknown).unwrap().len(), 1);
    }

    #[test]
    fn a_tar_split_over_gzip_members_reads_whole() {
        let index = Index {
            description: Some("split".into()),
            entries: Index::parse_text(STANZA).unwrap(),
        };
        let one = index.to_archive(0);
        let members = gzip::split_members(&one, u64::MAX).unwrap();
        let tar = &members[0].unpacked;
        let (head, tail) = tar.split_at(700);
        let two = [
            gzip::compress(head, gzip::SMALL_MEMBER_LEVEL),
            gzip::compress(tail, gzip::SMALL_MEMBER_LEVEL),
        ]
        .concat();
        let read = Index::read(&two).unwrap();
        assert_eq!(read.index, index);
        assert_eq!(read.unsigned_bytes(), &two[..]);
    }
}
