//! Tar as apk writes and reads it: deterministic headers, PAX records carrying
//! `APK-TOOLS.checksum.SHA1`, and members that may end without end-of-archive blocks.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use crate::error::{Error, Result};

pub const BLOCK: usize = 512;
const PAX_CHECKSUM: &str = "APK-TOOLS.checksum.SHA1";

/// Which magic a writer puts in its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// POSIX `ustar\0` `00` with PAX extended headers: signature, control and data tars.
    Ustar,
    /// GNU `ustar  \0` with `L` long names: what `apk index` and the installed db write.
    Gnu,
}

/// Ownership and time of an entry; explicit so that nothing leaks from the build host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
}

impl Owner {
    pub fn root() -> Self {
        Owner {
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
        }
    }
}

/// What an entry is, with what each kind needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// Hard link to an earlier entry of the same archive.
    Hardlink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl Kind {
    fn typeflag(&self) -> u8 {
        match self {
            Kind::File { .. } => b'0',
            Kind::Hardlink { .. } => b'1',
            Kind::Symlink { .. } => b'2',
            Kind::CharDevice { .. } => b'3',
            Kind::BlockDevice { .. } => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }

    fn link(&self) -> Option<&str> {
        match self {
            Kind::Symlink { target } | Kind::Hardlink { target } => Some(target),
            _ => None,
        }
    }
}

/// One entry to write.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Relative path without `./`; directories may end in `/`.
    pub path: &'a str,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    pub owner: &'a Owner,
    pub mtime: u64,
    /// SHA-1 for the `APK-TOOLS.checksum.SHA1` PAX record (files: content; symlinks: target).
    pub sha1: Option<[u8; 20]>,
}

/// Writes tar entries with fully specified headers. Nothing comes from the environment.
pub struct TarWriter<W: Write> {
    out: W,
    magic: Magic,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, magic: Magic) -> Self {
        TarWriter { out, magic }
    }

    /// The writer the archive goes to, e.g. to give it a hint between entries.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Append one entry; a regular file's `size` bytes are copied from `content`.
    pub fn append(&mut self, entry: &Entry<'_>, content: impl Read) -> io::Result<()> {
        let link = entry.kind.link();
        match self.magic {
            Magic::Ustar => {
                let mut records = Vec::new();
                if entry.path.len() > 100 {
                    pax_record(&mut records, "path", entry.path.as_bytes());
                }
                if link.is_some_and(|l| l.len() > 100) {
                    pax_record(
                        &mut records,
                        "linkpath",
                        link.unwrap_or_default().as_bytes(),
                    );
                }
                if let Some(sha1) = entry.sha1 {
                    pax_record(&mut records, PAX_CHECKSUM, hex::encode(sha1).as_bytes());
                }
                if !records.is_empty() {
                    let name = pax_header_name(entry.path);
                    let pax = Entry {
                        path: &name,
                        kind: Kind::File {
                            size: records.len() as u64,
                        },
                        mode: 0o644,
                        sha1: None,
                        ..entry.clone()
                    };
                    self.write_header(&pax, b'x')?;
                    self.write_padded(&mut &records[..], records.len() as u64)?;
                }
            }
            Magic::Gnu => {
                // GNU long names: an `L` (or `K` for link names) entry holding the NUL-ended name.
                for (flag, long) in [(b'L', Some(entry.path)), (b'K', link)] {
                    if let Some(long) = long.filter(|l| l.len() > 100) {
                        let data = [long.as_bytes(), b"\0"].concat();
                        let ll = Entry {
                            path: "././@LongLink",
                            kind: Kind::File {
                                size: data.len() as u64,
                            },
                            mode: 0o644,
                            sha1: None,
                            ..entry.clone()
                        };
                        self.write_header(&ll, flag)?;
                        self.write_padded(&mut &data[..], data.len() as u64)?;
                    }
                }
            }
        }
        self.write_header(entry, entry.kind.typeflag())?;
        if let Kind::File { size } = entry.kind {
            self.write_padded(&mut content.take(size), size)?;
        }
        Ok(())
    }

    /// Finish with the two zero blocks of a complete archive (data tars, indexes).
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }

    /// Finish without end-of-archive blocks: apk stops at the second zero block anywhere
    /// in the stream, so signature and control tars must not have them.
    pub fn finish_cut(self) -> W {
        self.out
    }

    fn write_header(&mut self, entry: &Entry<'_>, typeflag: u8) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        put_str(&mut h[0..100], entry.path);
        put_octal(&mut h[100..108], u64::from(entry.mode & 0o7777));
        put_octal(&mut h[108..116], u64::from(entry.owner.uid));
        put_octal(&mut h[116..124], u64::from(entry.owner.gid));
        let size = match entry.kind {
            Kind::File { size } => size,
            _ => 0,
        };
        put_octal(&mut h[124..136], size);
        put_octal(&mut h[136..148], entry.mtime);
        h[156] = typeflag;
        if typeflag != b'x' && typeflag != b'L' && typeflag != b'K' {
            if let Some(link) = entry.kind.link() {
                put_str(&mut h[157..257], link);
            }
        }
        match self.magic {
            Magic::Ustar => h[257..265].copy_from_slice(b"ustar\x0000"),
            Magic::Gnu => h[257..265].copy_from_slice(b"ustar  \x00"),
        }
        put_str(&mut h[265..297], &entry.owner.uname);
        put_str(&mut h[297..329], &entry.owner.gname);
        if let Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } = entry.kind {
            put_octal(&mut h[329..337], u64::from(major));
            put_octal(&mut h[337..345], u64::from(minor));
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        self.out.write_all(&h)
    }

    fn write_padded(&mut self, content: &mut impl Read, size: u64) -> io::Result<()> {
        let copied = io::copy(content, &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file changed while archiving: expected {size} bytes, read {copied}"),
            ));
        }
        let pad = (BLOCK - (size as usize % BLOCK)) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }
}

/// `<dir>/PaxHeaders/<file>`, as GNU tar names them for abuild (truncated to fit).
fn pax_header_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let (dir, file) = trimmed.rsplit_once('/').unwrap_or((".", trimmed));
    let mut name = format!("{dir}/PaxHeaders/{file}");
    while name.len() > 100 {
        name.pop();
    }
    name
}

/// A PAX record `"<len> key=value\n"` where len counts the whole record, itself included.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Zero-padded octal ending in NUL, as GNU tar writes numeric fields.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() <= digits {
        field[..digits].copy_from_slice(text.as_bytes());
    } else {
        // Too large for octal: base-256 (GNU), high bit set in the first byte.
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = bytes.len().min(field.len() - 1);
        let start = field.len() - n;
        field[start..].copy_from_slice(&bytes[bytes.len() - n..]);
    }
}

/// One entry read from a tar stream, with PAX and GNU long names applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEntry<'a> {
    pub path: String,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    pub mtime: u64,
    pub link: String,
    pub devmajor: u32,
    pub devminor: u32,
    pub data: &'a [u8],
    /// The `APK-TOOLS.checksum.SHA1` record, if any.
    pub sha1: Option<[u8; 20]>,
    /// Other PAX records (`SCHILY.xattr.*` and the like), by key.
    pub pax: BTreeMap<String, Vec<u8>>,
}

/// A tar stream cut into entries the way apk's `apk_tar_parse` does it.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub entries: Vec<ReadEntry<'a>>,
    /// Whether the stream ended with zero blocks (end-of-archive) rather than at its end.
    pub has_eoa: bool,
}

/// Parse a whole unpacked tar stream. apk stops at the second zero block anywhere in the
/// stream, so a single zero block followed by more entries is not an end here.
pub fn parse(tar: &[u8]) -> Result<Parsed<'_>> {
    let bad = |offset: usize, reason: String| Error::Malformed {
        reason: format!("tar header at byte {offset}: {reason}"),
    };
    let mut parsed = Parsed::default();
    let mut pos = 0;
    let mut zero_blocks = 0;
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    while pos < tar.len() {
        let Some(h) = tar.get(pos..pos + BLOCK) else {
            return Err(bad(pos, "truncated header block".into()));
        };
        if h.iter().all(|&b| b == 0) {
            zero_blocks += 1;
            pos += BLOCK;
            if zero_blocks == 2 {
                parsed.has_eoa = true;
                break;
            }
            continue;
        }
        if &h[257..262] != b"ustar" {
            return Err(bad(pos, "no ustar magic".into()));
        }
        let stored: u64 = parse_number(&h[148..156]).map_err(|e| bad(pos, e))?;
        let mut sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        sum = sum - h[148..156].iter().map(|&b| u64::from(b)).sum::<u64>() + 8 * u64::from(b' ');
        if sum != stored {
            return Err(bad(pos, "header checksum mismatch".into()));
        }
        let header_at = pos;
        let num = |r: std::ops::Range<usize>| parse_number(&h[r]).map_err(|e| bad(header_at, e));
        let size = num(124..136)?;
        let data_start = pos + BLOCK;
        let data_end = usize::try_from(size)
            .ok()
            .and_then(|s| data_start.checked_add(s))
            .filter(|&end| end <= tar.len())
            .ok_or_else(|| bad(pos, format!("size {size} runs past the end of the archive")))?;
        let data = &tar[data_start..data_end];
        pos = data_start + (size as usize).div_ceil(BLOCK) * BLOCK;
        let typeflag = h[156];
        match typeflag {
            b'x' => {
                parse_pax(data, &mut pax).map_err(|e| bad(data_start - BLOCK, e))?;
                continue;
            }
            b'g' => continue,
            b'L' => {
                long_name = Some(name_of(data).map_err(|e| bad(header_at, e))?);
                continue;
            }
            b'K' => {
                long_link = Some(name_of(data).map_err(|e| bad(header_at, e))?);
                continue;
            }
            _ => {}
        }
        let field = |r: std::ops::Range<usize>| name_of(&h[r]).map_err(|e| bad(header_at, e));
        let mut path = match long_name.take() {
            Some(long) => long,
            None => {
                let name = field(0..100)?;
                let prefix = field(345..500)?;
                if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
                    format!("{prefix}/{name}")
                } else {
                    name
                }
            }
        };
        let mut link = match long_link.take() {
            Some(long) => long,
            None => field(157..257)?,
        };
        let mut sha1 = None;
        let mut records = std::mem::take(&mut pax);
        if let Some(p) = records.remove("path") {
            path = name_of(&p).map_err(|e| bad(header_at, e))?;
        }
        if let Some(l) = records.remove("linkpath") {
            link = name_of(&l).map_err(|e| bad(header_at, e))?;
        }
        if let Some(hexsum) = records.remove(PAX_CHECKSUM) {
            let mut out = [0u8; 20];
            hex::decode_to_slice(&hexsum, &mut out)
                .map_err(|_| bad(data_start - BLOCK, format!("bad {PAX_CHECKSUM} record")))?;
            sha1 = Some(out);
        }
        parsed.entries.push(ReadEntry {
            path,
            typeflag,
            mode: num(100..108)? as u32,
            uid: num(108..116)? as u32,
            gid: num(116..124)? as u32,
            uname: c_string(&h[265..297]),
            gname: c_string(&h[297..329]),
            mtime: num(136..148)?,
            link,
            devmajor: num(329..337)? as u32,
            devminor: num(337..345)? as u32,
            data,
            sha1,
            pax: records,
        });
    }
    Ok(parsed)
}

/// A path or link name up to its NUL. Names must be UTF-8: a lossy decoding could make
/// two different names one, and image layers and the installed database are UTF-8.
fn name_of(field: &[u8]) -> std::result::Result<String, String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).map_err(|_| {
        format!(
            "name {:?} is not UTF-8",
            String::from_utf8_lossy(&field[..end])
        )
    })
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn parse_number(field: &[u8]) -> std::result::Result<u64, String> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // GNU base-256
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or("numeric field overflows")?;
        }
        return Ok(v);
    }
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim_matches(' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| format!("bad octal field {text:?}"))
}

/// Parse PAX records, checking that each length is what it says.
fn parse_pax(mut data: &[u8], into: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(format!("PAX record length {len} does not fit the record"));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("PAX record without '='")?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        into.insert(key, record[eq + 1..].to_vec());
        data = &data[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    fn sample(magic: Magic, long: bool) -> Vec<u8> {
        let root = Owner::root();
        let mut w = TarWriter::new(Vec::new(), magic);
        let deep = format!("usr/{}", "d".repeat(120));
        let file_path = if long {
            format!("{deep}/file")
        } else {
            "usr/file".into()
        };
        let body = b"hello\n";
        let mut entry = Entry {
            path: "usr/",
            kind: Kind::Dir,
            mode: 0o755,
            owner: &root,
            mtime: 1_700_000_000,
            sha1: None,
        };
        w.append(&entry, io::empty()).unwrap();
        entry.path = &file_path;
        entry.kind = Kind::File {
            size: body.len() as u64,
        };
        entry.mode = 0o4755;
        entry.sha1 = Some(Sha1::digest(body).into());
        w.append(&entry, &body[..]).unwrap();
        entry.path = "usr/link";
        entry.kind = Kind::Symlink {
            target: "file".into(),
        };
        entry.mode = 0o777;
        entry.sha1 = Some(Sha1::digest(b"file").into());
        w.append(&entry, io::empty()).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_back_what_it_writes_with_pax_checksums() {
        for long in [false, true] {
            let tar = sample(Magic::Ustar, long);
            let parsed = parse(&tar).unwrap();
            assert!(parsed.has_eoa);
            let e = &parsed.entries;
            assert_eq!(e.len(), 3);
            assert_eq!(e[0].path, "usr/");
            assert_eq!(e[1].path.len() > 100, long);
            assert_eq!(e[1].data, b"hello\n");
            assert_eq!(e[1].mode, 0o4755);
            assert_eq!(e[1].sha1, Some(Sha1::digest(b"hello\n").into()));
            assert_eq!(e[2].typeflag, b'2');
            assert_eq!(e[2].link, "file");
            assert_eq!(e[2].uname, "root");
            assert_eq!(e[2].mtime, 1_700_000_000);
        }
    }

    #[test]
    fn gnu_long_names_round_trip() {
        let tar = sample(Magic::Gnu, true);
        assert_eq!(&tar[257..265], b"ustar  \0");
        let parsed = parse(&tar).unwrap();
        assert!(parsed.entries[1].path.ends_with("/file") && parsed.entries[1].path.len() > 100);
    }

    /// GNU tar, an independent reader, agrees with our headers and PAX records.
    #[test]
    fn gnu_tar_lists_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        std::fs::write(&path, sample(Magic::Ustar, true)).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("-rwsr-xr-x root/root"), "{listing}");
        assert!(listing.contains("usr/link -> file"), "{listing}");
        assert!(
            listing.contains(&format!("{}/file", "d".repeat(120))),
            "{listing}"
        );
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut r = Vec::new();
        pax_record(&mut r, "path", &[b'a'; 95]);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 path="));
        let mut r = Vec::new();
        pax_record(&mut r, "k", b"v");
        assert_eq!(r, b"6 k=v\n");
    }

    #[test]
    fn cut_archive_has_no_end_blocks() {
        let root = Owner::root();
        let mut w = TarWriter::new(Vec::new(), Magic::Ustar);
        let e = Entry {
            path: ".PKGINFO",
            kind: Kind::File { size: 3 },
            mode: 0o644,
            owner: &root,
            mtime: 0,
            sha1: None,
        };
        w.append(&e, &b"abc"[..]).unwrap();
        let tar = w.finish_cut();
        assert_eq!(tar.len(), 2 * BLOCK);
        assert!(!parse(&tar).unwrap().has_eoa);
    }

    #[test]
    fn rejects_pax_records_that_lie_about_their_length() {
        let mut out = BTreeMap::new();
        assert!(parse_pax(b"99 path=x\n", &mut out).is_err());
        assert!(parse_pax(b"3 path=x\n", &mut out).is_err());
    }
}
