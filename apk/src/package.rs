//! `.apk` files: three gzip members (signature, control, data), written deterministically
//! and read back with every check apk-tools makes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::checksum::Checksum;
use crate::data::DataTar;
use crate::error::{io_at, malformed, Error, Result};
use crate::gzip;
use crate::key::{Keyring, SignatureAlgorithm, SigningKey};
use crate::pkginfo::PackageInfo;
use crate::signature::{self, Signature};
use crate::tarball::{self, Entry, Kind, Magic, Owner, TarWriter};

/// Control-tar scripts apk knows (`apk_script_types[]`), in the order we write them.
pub const SCRIPT_NAMES: [&str; 7] = [
    ".pre-install",
    ".post-install",
    ".pre-deinstall",
    ".post-deinstall",
    ".pre-upgrade",
    ".post-upgrade",
    ".trigger",
];

/// Where a staged file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    None,
    Bytes(Vec<u8>),
    Path(PathBuf),
}

/// One entry of a package's data tar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedEntry {
    /// Relative path, no `./`, no trailing `/`.
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub owner: Owner,
    pub content: Content,
}

impl StagedEntry {
    /// An entry owned by root, as packages stage their files.
    pub fn new(path: impl Into<String>, kind: Kind, mode: u32, content: Content) -> Self {
        StagedEntry {
            path: path.into(),
            kind,
            mode,
            owner: Owner::root(),
            content,
        }
    }
}

/// The files of a package, sorted by path bytes like abuild's `LC_ALL=C sort`, which
/// puts each directory before what it holds.
#[derive(Clone, Debug, Default)]
pub struct Staged {
    entries: Vec<StagedEntry>,
}

impl Staged {
    pub fn new(mut entries: Vec<StagedEntry>) -> Result<Self> {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        for pair in entries.windows(2) {
            if pair[0].path == pair[1].path {
                return Err(malformed(format!("duplicate path {:?}", pair[0].path)));
            }
        }
        let staged = Staged { entries };
        staged.check_parents()?;
        Ok(staged)
    }

    /// Walk a staged directory tree. Ownership is root's; modes are kept; a regular
    /// file seen again under another name becomes a hard link to the first.
    pub fn from_dir(root: &Path) -> Result<Self> {
        let mut entries = Vec::new();
        let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            let mut children: Vec<_> = fs::read_dir(&dir)
                .map_err(io_at(&dir))?
                .collect::<io::Result<_>>()
                .map_err(io_at(&dir))?;
            children.sort_by_key(|c| c.file_name());
            for child in children {
                let rel_path = rel.join(child.file_name());
                let path = root.join(&rel_path);
                let Some(name) = rel_path.to_str().map(str::to_string) else {
                    return Err(malformed(format!("{}: path is not UTF-8", path.display())));
                };
                let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
                let ft = meta.file_type();
                let mode = meta.mode() & 0o7777;
                let (kind, content) = if ft.is_dir() {
                    stack.push(rel_path.clone());
                    (Kind::Dir, Content::None)
                } else if ft.is_symlink() {
                    let target = fs::read_link(&path).map_err(io_at(&path))?;
                    let target = target.to_str().map(str::to_string).ok_or_else(|| {
                        malformed(format!("{}: link target is not UTF-8", path.display()))
                    })?;
                    (Kind::Symlink { target }, Content::None)
                } else if ft.is_file() {
                    match inodes.get(&(meta.dev(), meta.ino())) {
                        Some(first) if meta.nlink() > 1 => (
                            Kind::Hardlink {
                                target: first.clone(),
                            },
                            Content::None,
                        ),
                        _ => {
                            inodes.insert((meta.dev(), meta.ino()), name.clone());
                            (Kind::File { size: meta.len() }, Content::Path(path.clone()))
                        }
                    }
                } else if ft.is_fifo() {
                    (Kind::Fifo, Content::None)
                } else if ft.is_char_device() || ft.is_block_device() {
                    let dev = meta.rdev();
                    let (major, minor) = (libc_major(dev), libc_minor(dev));
                    if ft.is_char_device() {
                        (Kind::CharDevice { major, minor }, Content::None)
                    } else {
                        (Kind::BlockDevice { major, minor }, Content::None)
                    }
                } else {
                    return Err(malformed(format!(
                        "{}: sockets cannot be packaged",
                        path.display()
                    )));
                };
                entries.push(StagedEntry::new(name, kind, mode, content));
            }
        }
        // A walk is in directory order; hard link targets must come first in *tar* order,
        // so re-point each link group at its first path in sorted order.
        let staged = Staged::new(entries)?;
        Ok(staged.with_hardlinks_to_first())
    }

    pub fn entries(&self) -> &[StagedEntry] {
        &self.entries
    }

    /// Sum of regular file sizes (hard links once), as abuild computes `size`.
    pub fn installed_size(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                Kind::File { size } => size,
                _ => 0,
            })
            .sum()
    }

    fn check_parents(&self) -> Result<()> {
        let dirs: std::collections::HashSet<&str> = self
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .map(|e| e.path.as_str())
            .collect();
        for e in &self.entries {
            if e.path.is_empty() || e.path.starts_with('/') || e.path.starts_with("./") {
                return Err(malformed(format!(
                    "path {:?} must be relative without ./",
                    e.path
                )));
            }
            if e.path
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
            {
                return Err(malformed(format!(
                    "path {:?} has an empty, . or .. component",
                    e.path
                )));
            }
            // apk: "no dirent in archive" unless every parent directory has its own entry.
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return Err(malformed(format!(
                        "{:?} has no entry for its directory {parent:?}",
                        e.path
                    )));
                }
            }
        }
        Ok(())
    }

    fn with_hardlinks_to_first(mut self) -> Self {
        // Group by the content path (the inode's first walked name); the first in sorted
        // order becomes the file, the others link to it.
        let mut first_of: HashMap<String, usize> = HashMap::new();
        for i in 0..self.entries.len() {
            let key = match &self.entries[i].kind {
                Kind::Hardlink { target } => target.clone(),
                Kind::File { .. } => self.entries[i].path.clone(),
                _ => continue,
            };
            match first_of.get(&key) {
                None => {
                    first_of.insert(key.clone(), i);
                    if let Kind::Hardlink { .. } = self.entries[i].kind {
                        // The original file sorts later: swap roles.
                        let original = self
                            .entries
                            .iter()
                            .position(|e| e.path == key)
                            .expect("a hard link's target was walked");
                        let file = self.entries[original].clone();
                        self.entries[i].kind = file.kind;
                        self.entries[i].content = file.content;
                    }
                }
                Some(&first) => {
                    let target = self.entries[first].path.clone();
                    self.entries[i].kind = Kind::Hardlink { target };
                    self.entries[i].content = Content::None;
                }
            }
        }
        self
    }
}

fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

/// Builds one package: metadata, scripts, files and the signing key.
pub struct PackageBuilder<'k> {
    pub info: PackageInfo,
    /// Script name (e.g. `.post-install`) to its text.
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// Timestamp of every entry (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    pub signer: Option<(&'k SigningKey, Vec<SignatureAlgorithm>)>,
    /// Written into the `# Generated by` line of `.PKGINFO`.
    pub generator: String,
}

/// What a build produced, for the index.
#[derive(Clone, Debug)]
pub struct Built {
    /// The final `.PKGINFO` values (size and datahash filled in).
    pub info: PackageInfo,
    /// `Q1` identity: SHA-1 of the control member.
    pub checksum: Checksum,
    /// Size of the `.apk` file.
    pub size: u64,
}

impl<'k> PackageBuilder<'k> {
    pub fn new(info: PackageInfo, mtime: u64) -> Self {
        PackageBuilder {
            info,
            scripts: BTreeMap::new(),
            mtime,
            signer: None,
            generator: concat!("apk-rs ", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }

    /// Write the package to `out`.
    pub fn write(&self, staged: &Staged, mut out: impl Write) -> Result<Built> {
        for name in self.scripts.keys() {
            if !SCRIPT_NAMES.contains(&name.as_str()) {
                return Err(malformed(format!(
                    "unknown script {name:?}; apk knows {}",
                    SCRIPT_NAMES.join(" ")
                )));
            }
        }
        // The data member goes to a temporary file first: its hash belongs in the
        // control member, which the signature covers, and all of them precede it.
        let mut data = tempfile::tempfile().map_err(io_at(std::env::temp_dir()))?;
        let datahash = write_data(staged, self.mtime, &mut data)?;
        let data_len = data.stream_position().map_err(io_at("data member"))?;

        let mut info = self.info.clone();
        info.installed_size = staged.installed_size();
        if info.installed_size == 0 && (!staged.entries.is_empty() || !self.scripts.is_empty()) {
            // apk2 treats size 0 as a virtual package and extracts nothing.
            info.installed_size = 1;
        }
        info.datahash = Some(datahash);
        let control = self.control_member(&info);
        let sig_member = match &self.signer {
            Some((key, algs)) => signature::build_member(key, algs, &control, self.mtime)?,
            None => Vec::new(),
        };
        out.write_all(&sig_member)
            .map_err(io_at("package output"))?;
        out.write_all(&control).map_err(io_at("package output"))?;
        data.rewind().map_err(io_at("data member"))?;
        io::copy(&mut data, &mut out).map_err(io_at("package output"))?;
        Ok(Built {
            info,
            checksum: Checksum::sha1_of(&control),
            size: (sig_member.len() + control.len()) as u64 + data_len,
        })
    }

    /// Write the package atomically to `path`.
    pub fn write_to(&self, staged: &Staged, path: &Path) -> Result<Built> {
        let mut built = None;
        let mut error = None;
        crate::fsutil::write_atomic_with(path, 0o644, |f| {
            match self.write(staged, io::BufWriter::new(f)) {
                Ok(b) => built = Some(b),
                Err(e) => {
                    let msg = e.to_string();
                    error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
            Ok(())
        })
        .map_err(|e| error.take().unwrap_or(e))?;
        Ok(built.expect("set when the write succeeded"))
    }

    fn control_member(&self, info: &PackageInfo) -> Vec<u8> {
        let root = Owner::root();
        let pkginfo = info.to_pkginfo(&self.generator);
        let mut files: Vec<(&str, &[u8], u32)> = vec![(".PKGINFO", pkginfo.as_bytes(), 0o644)];
        for name in SCRIPT_NAMES {
            if let Some(body) = self.scripts.get(name) {
                files.push((name, body, 0o755));
            }
        }
        let mut tar = TarWriter::new(Vec::new(), Magic::Ustar);
        for (path, body, mode) in files {
            let entry = Entry {
                path,
                kind: Kind::File {
                    size: body.len() as u64,
                },
                mode,
                owner: &root,
                mtime: self.mtime,
                sha1: None,
            };
            tar.append(&entry, body)
                .expect("writing to a Vec cannot fail");
        }
        gzip::compress(&tar.finish_cut(), gzip::SMALL_MEMBER_LEVEL)
    }
}

/// Write the data member; returns the hex SHA-256 of its compressed bytes (`datahash`).
fn write_data(staged: &Staged, mtime: u64, out: &mut fs::File) -> Result<String> {
    // Hash file contents in parallel; the tar itself is written in sorted order, so the
    // bytes do not depend on the thread count.
    let sums: Vec<Option<[u8; 20]>> = staged
        .entries
        .par_iter()
        .map(|e| entry_sha1(e).transpose())
        .map(Option::transpose)
        .collect::<Result<_>>()?;
    let hashing = HashingWriter {
        inner: io::BufWriter::new(out),
        hasher: Sha256::new(),
    };
    let mut tar = TarWriter::new(
        gzip::ParallelEncoder::new(hashing, gzip::DATA_LEVEL),
        Magic::Ustar,
    );
    for (e, sha1) in staged.entries.iter().zip(sums) {
        let dir_path;
        let path = if e.kind == Kind::Dir {
            dir_path = format!("{}/", e.path);
            &dir_path
        } else {
            &e.path
        };
        let entry = Entry {
            path,
            kind: e.kind.clone(),
            mode: e.mode,
            owner: &e.owner,
            mtime,
            sha1,
        };
        let at = |p: &Path| io_at(p.to_path_buf());
        match &e.content {
            Content::None => tar.append(&entry, io::empty()),
            Content::Bytes(b) => tar.append(&entry, &b[..]),
            Content::Path(p) => {
                let f = fs::File::open(p).map_err(at(p))?;
                tar.append(&entry, io::BufReader::new(f))
            }
        }
        .map_err(io_at(&e.path))?;
    }
    let gz = tar.finish().map_err(io_at("data member"))?;
    let mut hashing = gz.finish().map_err(io_at("data member"))?;
    hashing.inner.flush().map_err(io_at("data member"))?;
    Ok(hex::encode(hashing.hasher.finalize()))
}

/// The `APK-TOOLS.checksum.SHA1` of an entry: content for files, target for symlinks.
fn entry_sha1(e: &StagedEntry) -> Result<Option<[u8; 20]>> {
    Ok(match (&e.kind, &e.content) {
        (Kind::Symlink { target }, _) => Some(Sha1::digest(target.as_bytes()).into()),
        (Kind::File { .. }, Content::Bytes(b)) => Some(Sha1::digest(b).into()),
        (Kind::File { .. }, Content::Path(p)) => {
            let mut f = fs::File::open(p).map_err(io_at(p))?;
            let mut h = Sha1::new();
            io::copy(&mut f, &mut h).map_err(io_at(p))?;
            Some(h.finalize().into())
        }
        (Kind::File { .. }, Content::None) => Some(Sha1::digest(b"").into()),
        _ => None,
    })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A package cut into its gzip members.
pub(crate) struct Members<'a> {
    pub signatures: Vec<Signature>,
    pub control: gzip::Member<'a>,
    /// The data member (apk reads any further members as more data).
    pub data: Vec<gzip::Member<'a>>,
}

impl<'a> Members<'a> {
    pub fn split(bytes: &'a [u8]) -> Result<Self> {
        let (head, mut reader) = Head::split(bytes)?;
        let mut data = Vec::new();
        let mut total = 0u64;
        let bound = gzip::MAX_DATA_UNPACKED;
        while let Some(member) = reader.next_member(bound - total, bound) {
            let member = member?;
            total += member.unpacked.len() as u64;
            data.push(member);
        }
        if data.is_empty() {
            return Err(malformed("no data member after the control member"));
        }
        Ok(Members {
            signatures: head.signatures,
            control: head.control,
            data,
        })
    }
}

/// A package's signature and control members, and where its data starts: all that its
/// identity and `datahash` need, without inflating the data.
pub(crate) struct Head<'a> {
    pub signatures: Vec<Signature>,
    pub control: gzip::Member<'a>,
    pub data_offset: usize,
}

impl<'a> Head<'a> {
    /// The head, and a reader positioned at the data.
    fn split(bytes: &'a [u8]) -> Result<(Self, gzip::MemberReader<'a>)> {
        let mut reader = gzip::MemberReader::new(bytes);
        let mut small = |what: &str| {
            reader
                .next_member(gzip::MAX_CONTROL_UNPACKED, gzip::MAX_CONTROL_UNPACKED)
                .ok_or_else(|| malformed(what))?
        };
        let first = small("empty file")?;
        let (signatures, control) = match signature::parse_member(&first.unpacked)? {
            Some(sigs) => (sigs, small("no control member after the signature")?),
            None => (Vec::new(), first),
        };
        let data_offset = control.offset + control.compressed.len();
        if data_offset == bytes.len() {
            return Err(malformed("no data member after the control member"));
        }
        let head = Head {
            signatures,
            control,
            data_offset,
        };
        Ok((head, reader))
    }
}

/// What a package's control member says, checked against its data member.
pub(crate) struct Control {
    pub info: PackageInfo,
    pub scripts: BTreeMap<String, Vec<u8>>,
    pub checksum: Checksum,
    /// The bytes the signature covers.
    pub signed_message: Vec<u8>,
}

impl Control {
    /// Parse the `control` member of the package `bytes` and check `datahash` against
    /// the data from `data_offset` on.
    pub fn read(bytes: &[u8], control: &gzip::Member<'_>, data_offset: usize) -> Result<Self> {
        let control_tar = tarball::parse(&control.unpacked)?;
        if control_tar.has_eoa {
            // apk stops at the second zero block anywhere: the data would never be read.
            return Err(malformed("control tar ends with end-of-archive blocks"));
        }
        let mut pkginfo = None;
        let mut scripts = BTreeMap::new();
        for e in &control_tar.entries {
            if !e.path.starts_with('.') || e.path.contains('/') {
                return Err(malformed(format!(
                    "{:?} in the control member is not a control file",
                    e.path
                )));
            }
            match e.path.as_str() {
                ".PKGINFO" => {
                    let text = std::str::from_utf8(e.data)
                        .map_err(|_| malformed(".PKGINFO is not UTF-8"))?;
                    pkginfo = Some(PackageInfo::parse_pkginfo(text, ".PKGINFO")?);
                }
                name if SCRIPT_NAMES.contains(&name) => {
                    scripts.insert(name.to_string(), e.data.to_vec());
                }
                _ => {} // .INSTALL and unknown dot files: apk warns and ignores them
            }
        }
        let info = pkginfo.ok_or_else(|| malformed("control member has no .PKGINFO"))?;

        let data_bytes = &bytes[data_offset..];
        let (checksum, signed_message) = match &info.datahash {
            Some(expected) => {
                let actual = crate::checksum::sha256_hex(data_bytes);
                if !expected.eq_ignore_ascii_case(&actual) {
                    return Err(Error::DatahashMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                (
                    Checksum::sha1_of(control.compressed),
                    control.compressed.to_vec(),
                )
            }
            // Legacy packages: identity and signature cover control and data.
            None => {
                let both = &bytes[control.offset..];
                (Checksum::sha1_of(both), both.to_vec())
            }
        };
        Ok(Control {
            info,
            scripts,
            checksum,
            signed_message,
        })
    }
}

/// The unpacked data tar of a package's data members (no copy for the usual one member).
pub(crate) fn data_tar(data: Vec<gzip::Member<'_>>) -> Vec<u8> {
    let mut members = data.into_iter();
    let mut tar = members.next().map(|m| m.unpacked).unwrap_or_default();
    for m in members {
        tar.extend_from_slice(&m.unpacked);
    }
    tar
}

/// One entry of a package's data, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub path: String,
    /// Tar typeflag: `0` file, `1` hard link, `2` symlink, `5` directory, ...
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    pub size: u64,
    /// Symlink or hard link target.
    pub link: String,
    /// The PAX `APK-TOOLS.checksum.SHA1`.
    pub sha1: Option<[u8; 20]>,
}

/// A package read from its bytes: structure checked, `datahash` checked. The signature
/// is checked separately with [`Package::verify`], against a keyring.
#[derive(Clone, Debug)]
pub struct Package {
    pub info: PackageInfo,
    pub checksum: Checksum,
    /// Size of the `.apk` file in bytes.
    pub size: u64,
    pub signatures: Vec<Signature>,
    /// Script name (`.post-install`, ...) to its text.
    pub scripts: BTreeMap<String, Vec<u8>>,
    pub files: Vec<FileRecord>,
    /// The bytes the signature covers.
    signed_message: Vec<u8>,
}

impl Package {
    pub fn read_file(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(io_at(path))?;
        Self::read(&bytes).map_err(|e| e.in_file(path))
    }

    /// Split the members, parse the control and data tars, and check `datahash`.
    pub fn read(bytes: &[u8]) -> Result<Self> {
        Self::read_with_data(bytes).map(|(package, _)| package)
    }

    /// [`Package::read`], also returning the data tar: what installing needs, from one
    /// inflating of the data.
    pub fn read_with_data(bytes: &[u8]) -> Result<(Self, DataTar)> {
        let members = Members::split(bytes)?;
        let Control {
            info,
            scripts,
            checksum,
            signed_message,
        } = Control::read(bytes, &members.control, members.data[0].offset)?;
        let (data, files) = DataTar::parse(data_tar(members.data))?;
        let package = Package {
            info,
            checksum,
            size: bytes.len() as u64,
            signatures: members.signatures,
            scripts,
            files,
            signed_message,
        };
        Ok((package, data))
    }

    /// The package's `C:` identity, with its control member parsed and `datahash`
    /// checked, without inflating the data: what a repository client checks a download
    /// against its index with.
    pub fn read_checksum(bytes: &[u8]) -> Result<Checksum> {
        let (head, _) = Head::split(bytes)?;
        Ok(Control::read(bytes, &head.control, head.data_offset)?.checksum)
    }

    /// Check the signature as apk does: the first `.SIGN.*` whose key is in `keyring`.
    pub fn verify(&self, keyring: &Keyring) -> Result<&Signature> {
        signature::verify(&self.signatures, keyring, &self.signed_message)
    }
}
