//! One deterministic image layer from installed packages.
//!
//! A [`Tree`] is the image's filesystem: the data of every package in install order (with
//! apk-tools' file-conflict and directory rules), the apk database apko writes, then the
//! image's own files ([`Extra`]: accounts, `paths`). Its metadata is in memory; package
//! file contents are spooled to temporary files and read back as the layer is written, so
//! memory does not grow with the image. It is written as one gzip-compressed tar (deflated
//! on every core, [`apk::gzip::ParallelEncoder`]) whose compressed digest, `diff_id` and
//! size are hashed on the way out; the uncompressed tar never touches the disk.
//!
//! Choices, each for a reason:
//! - Entries are in byte order of their paths, as abuild sorts a package (`LC_ALL=C sort`):
//!   a directory comes before what it holds, and a package's hard link still follows its
//!   target. apko walks directories instead (`fs.WalkDir`); both orders are valid tars.
//! - Every mtime is the caller's (`SOURCE_DATE_EPOCH`); uid, gid, uname and gname are the
//!   package's own; modes are explicit. Nothing comes from the build host.
//! - The `APK-TOOLS.checksum.SHA1` PAX records of package files are not carried over
//!   (apko keeps them). No OCI tool reads them, GNU tar warns about each one, and they
//!   cost a header block per file; the same checksums are in the installed database
//!   (`Z:` lines), which is where apk and scanners look. A PAX header is written only
//!   for a path or link target longer than 100 bytes.
//! - Extended attributes (`SCHILY.xattr.*`) are not carried into the layer yet; each one
//!   dropped is reported in [`Tree::notes`]. Device nodes of packages are kept; the
//!   `/dev` nodes apko's `InitDB` makes are not (runtimes mount their own `/dev`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apk::data::{DataEntry, DataTar};
use apk::gzip::{DeflateMemo, ParallelEncoder};
use apk::installed::{file_claim, FileClaim, InstalledDb, InstalledPackage};
use apk::package::Package;
use apk::tarball::{Entry, Kind, Magic, Owner, TarWriter};
use apk::Arch;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Where the installed database goes (apk-tools 2.14 reads `lib/apk/db`). When `lib` or
/// `lib/apk` is a symlink (a merged-usr base), the database goes where it points.
pub const DB_DIR: &str = apk::installed::DB_DIR;

/// Directories apko's `InitDB` makes before any package (`baseDirectories`), made here
/// after the packages and only where no package put anything, which gives the same tree.
const BASE_DIRS: [(&str, u32); 7] = [
    ("dev", 0o755),
    ("etc", 0o755),
    ("opt", 0o755),
    ("proc", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("var", 0o755),
];

/// apko's `initDirectories`, with the database under `lib/apk` as apk-tools 2.14 has it.
const APK_DIRS: [&str; 7] = [
    "etc/apk",
    "etc/apk/keys",
    "lib/apk/db",
    "lib/apk/exec",
    "var/cache",
    "var/cache/apk",
    "var/cache/misc",
];

/// Something the layer cannot be made of.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{package}: {source}")]
    Package {
        package: String,
        #[source]
        source: apk::Error,
    },
    #[error(
        "/{path} is installed by both {first} and {second}, and neither replaces the other: \
         add `replaces` to one of them, or leave one out of the image"
    )]
    FileConflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("/{path}: {new} installs {new_kind} where {existing} has {existing_kind}")]
    TypeConflict {
        path: String,
        new: String,
        new_kind: &'static str,
        existing: String,
        existing_kind: &'static str,
    },
    #[error(
        "{package}: /{path} has no entry for its directory earlier in the archive \
         (apk: no dirent in archive); rebuild the package"
    )]
    NoDirent { package: String, path: String },
    #[error(
        "{package}: hard link /{path} points at {target:?}, which is not an earlier file \
         of the same package"
    )]
    BadHardlink {
        package: String,
        path: String,
        target: String,
    },
    #[error("{package}: /{path} has tar type {typeflag:?}, which apk does not install")]
    UnsupportedType {
        package: String,
        path: String,
        typeflag: char,
    },
    #[error("path {path:?}: {reason}")]
    Path { path: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LayerError {
    let path = path.into();
    move |source| LayerError::Io { path, source }
}

/// A package to install: its parsed (and already verified) metadata, its `.apk` bytes,
/// and the tag of the repository it came from (`s:` in the installed database).
#[derive(Clone, Copy, Debug)]
pub struct PackageInput<'a> {
    pub package: &'a Package,
    pub bytes: &'a [u8],
    pub tag: Option<&'a str>,
}

/// A package ready to install: its verified metadata, its data unpacked and spooled to a
/// temporary file (nothing for a virtual package, which apk does not unpack), and the tag
/// of its repository.
pub struct Unpacked {
    package: Package,
    data: Option<Spooled>,
    tag: Option<String>,
}

impl Unpacked {
    /// Unpack the data of `package`, whose `.apk` file is `bytes`.
    pub fn new(package: Package, bytes: &[u8], tag: Option<String>) -> Result<Self, LayerError> {
        if package.info.installed_size == 0 {
            return Ok(Unpacked {
                package,
                data: None,
                tag,
            });
        }
        let data = DataTar::read(bytes).map_err(|source| LayerError::Package {
            package: package.info.file_stem(),
            source,
        })?;
        Unpacked::spool(package, data, tag)
    }

    /// Read the `.apk` file `bytes` of the package `name` (checked as [`Package::read`]
    /// does) and unpack its data, inflating it once.
    pub fn read(bytes: &[u8], name: &str, tag: Option<String>) -> Result<Self, LayerError> {
        let (package, data) =
            Package::read_with_data(bytes).map_err(|source| LayerError::Package {
                package: name.to_string(),
                source,
            })?;
        Unpacked::spool(package, data, tag)
    }

    fn spool(package: Package, data: DataTar, tag: Option<String>) -> Result<Self, LayerError> {
        let data = (package.info.installed_size != 0)
            .then(|| Spooled::new(&data))
            .transpose()?;
        Ok(Unpacked { package, data, tag })
    }
}

/// The apk configuration files written into the image (apko: world, repositories and
/// runtime keys; `etc/apk/arch` comes from the tree's architecture).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApkFiles {
    /// `etc/apk/world`: the requested constraints; written sorted and deduplicated.
    pub world: Vec<String>,
    /// `etc/apk/repositories`: one per line, in the given order.
    pub repositories: Vec<String>,
    /// `etc/apk/keys/<name>`: public keys, by file name.
    pub keys: BTreeMap<String, Vec<u8>>,
}

/// What an [`Extra`] does at its path, after the packages (apko's `paths` and the files
/// it generates, such as `/etc/passwd` from `accounts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtraKind {
    /// Make the directory and any missing parents (`MkdirAll`); `recursive` also gives
    /// everything below it the same mode and owner, as apko does.
    Directory { recursive: bool },
    /// A regular file with this content, replacing any file there (`empty-file` is an
    /// empty one). Without an explicit mode or owner, a replaced file keeps its own.
    File(Vec<u8>),
    /// A symbolic link to this target; the path must not exist yet.
    Symlink(String),
    /// A hard link to this existing regular file, replacing any file at the path.
    Hardlink(String),
    /// Change the mode and owner of an existing path (and below it, if `recursive`).
    Permissions { recursive: bool },
}

/// One path the image adds or changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extra {
    /// Absolute or relative to the root; symlinks in its parents are followed.
    pub path: String,
    pub kind: ExtraKind,
    /// Permission bits; `None` keeps what is there, or the default for something new
    /// (0755 directories, 0644 files, 0777 symlinks).
    pub mode: Option<u32>,
    /// `None` keeps the owner of what is there; new paths are root's.
    pub owner: Option<Owner>,
}

impl Extra {
    /// A generated regular file, e.g. `/etc/passwd`.
    pub fn file(path: impl Into<String>, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        Extra {
            path: path.into(),
            kind: ExtraKind::File(content.into()),
            mode: Some(mode),
            owner: None,
        }
    }
}

/// Who put a path in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Index of the package in install order.
    Package(usize),
    /// The base directories, the apk database, and the extras.
    Image,
}

/// A regular file's bytes: a slice of a package's data tar, or a blob the image made.
/// Two paths with the same content reference are hard links of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ContentRef {
    Package {
        pkg: usize,
        start: usize,
        end: usize,
    },
    Blob(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NodeKind {
    Dir,
    File {
        content: ContentRef,
        sha1: Option<[u8; 20]>,
    },
    Symlink {
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

impl NodeKind {
    fn describe(&self) -> &'static str {
        match self {
            NodeKind::Dir => "a directory",
            NodeKind::File { .. } => "a file",
            NodeKind::Symlink { .. } => "a symlink",
            NodeKind::CharDevice { .. } | NodeKind::BlockDevice { .. } => "a device node",
            NodeKind::Fifo => "a fifo",
        }
    }
}

#[derive(Clone, Debug)]
struct Node {
    kind: NodeKind,
    mode: u32,
    owner: Owner,
    origin: Origin,
}

/// The image's filesystem before it becomes a layer.
pub struct Tree {
    arch: Arch,
    /// Relative path without a trailing `/` to what is there. Byte order of the paths is
    /// the order of the layer.
    nodes: BTreeMap<String, Node>,
    /// Each package's data; `None` for virtual packages (installed size 0), which apk
    /// does not unpack.
    data: Vec<Option<Spooled>>,
    /// `name-version` of each package, for messages.
    names: Vec<String>,
    blobs: Vec<Vec<u8>>,
    db: InstalledDb,
    notes: Vec<String>,
}

/// How a path claimed twice is settled (apk-tools 2.14 `apk_db_install_archive_entry`).
enum Claim {
    Overwrite,
    KeepOld,
}

impl Tree {
    /// Install `packages` in order, then make the base directories and write the apk
    /// database and configuration (`lib/apk/db/{installed,scripts.tar,triggers,lock}`,
    /// `etc/apk/{world,repositories,arch,keys/*}`). Package data is unpacked in
    /// parallel; everything that decides the result runs in order.
    pub fn install(
        arch: Arch,
        packages: &[PackageInput<'_>],
        apk_files: &ApkFiles,
    ) -> Result<Tree, LayerError> {
        let unpacked = packages
            .par_iter()
            .map(|p| Unpacked::new(p.package.clone(), p.bytes, p.tag.map(str::to_string)))
            .collect::<Result<Vec<_>, _>>()?;
        Tree::install_unpacked(arch, unpacked, apk_files)
    }

    /// [`Tree::install`] of packages already unpacked, so that the caller never holds
    /// more `.apk` bytes than it is unpacking at once.
    pub fn install_unpacked(
        arch: Arch,
        packages: Vec<Unpacked>,
        apk_files: &ApkFiles,
    ) -> Result<Tree, LayerError> {
        let names: Vec<String> = packages
            .iter()
            .map(|p| p.package.info.file_stem())
            .collect();
        let db = InstalledDb {
            packages: packages
                .iter()
                .map(|p| InstalledPackage::from_package(&p.package, p.tag.clone()))
                .collect(),
        };
        let (packages, data): (Vec<Package>, Vec<Option<Spooled>>) =
            packages.into_iter().map(|p| (p.package, p.data)).unzip();
        let mut tree = Tree {
            arch,
            nodes: BTreeMap::new(),
            data,
            names,
            blobs: Vec::new(),
            db,
            notes: Vec::new(),
        };
        for (i, p) in packages.iter().enumerate() {
            tree.install_package(i, p)?;
        }
        tree.write_apk_files(apk_files)?;
        Ok(tree)
    }

    /// The installed database as written into the layer: each file is listed under the
    /// package that owns it at the end, as apk records a replaced file.
    pub fn installed_db(&self) -> &InstalledDb {
        &self.db
    }

    /// What was settled without an error but deserves a word: directories whose owners
    /// disagree, files kept or replaced through `replaces`, attributes left out.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The content of the regular file at `path` (absolute or relative), if there is one.
    /// Lets the caller compose files such as `/etc/passwd` from what a package ships.
    pub fn file(&self, path: &str) -> Result<Option<Cow<'_, [u8]>>, LayerError> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        match self.nodes.get(path).map(|n| &n.kind) {
            Some(NodeKind::File { content, .. }) => self.content(content).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether anything (of any kind) is at `path`.
    pub fn contains(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        self.nodes.contains_key(path)
    }

    fn content(&self, content: &ContentRef) -> Result<Cow<'_, [u8]>, LayerError> {
        let mut bytes = Vec::new();
        match self.reader(content) {
            ContentReader::Blob(b) => return Ok(Cow::Borrowed(b)),
            mut spooled => spooled
                .read_to_end(&mut bytes)
                .map_err(io_at("spooled package data"))?,
        };
        Ok(Cow::Owned(bytes))
    }

    fn reader(&self, content: &ContentRef) -> ContentReader<'_> {
        match *content {
            ContentRef::Package { pkg, start, end } => {
                let data = self.data[pkg]
                    .as_ref()
                    .expect("content refers to an unpacked package");
                ContentReader::Spooled {
                    file: &data.file,
                    at: start as u64..end as u64,
                }
            }
            ContentRef::Blob(i) => ContentReader::Blob(&self.blobs[i]),
        }
    }

    fn who(&self, origin: Origin) -> String {
        match origin {
            Origin::Package(i) => self.names[i].clone(),
            Origin::Image => "the image".to_string(),
        }
    }

    fn install_package(&mut self, i: usize, package: &Package) -> Result<(), LayerError> {
        let Some(data) = self.data[i].take() else {
            return Ok(());
        };
        let result = self.install_entries(i, package, &data);
        self.data[i] = Some(data);
        result
    }

    fn install_entries(
        &mut self,
        i: usize,
        package: &Package,
        data: &Spooled,
    ) -> Result<(), LayerError> {
        let name = self.names[i].clone();
        // What this package's own archive has shown so far: apk needs each file's
        // directory, and each hard link's target, earlier in the same archive.
        let mut own_dirs: HashSet<&str> = HashSet::new();
        let mut own_files: HashMap<&str, (ContentRef, Option<[u8; 20]>)> = HashMap::new();
        for e in &data.entries {
            if !e.installed_by_apk() {
                continue;
            }
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                if !own_dirs.contains(parent) {
                    return Err(LayerError::NoDirent {
                        package: name,
                        path: e.path.clone(),
                    });
                }
            }
            for key in e.pax.keys().filter(|k| k.starts_with("SCHILY.xattr.")) {
                self.notes.push(format!(
                    "{name}: /{}: extended attribute {} is not carried into the layer",
                    e.path,
                    &key["SCHILY.xattr.".len()..]
                ));
            }
            let kind = match e.typeflag {
                b'5' => {
                    own_dirs.insert(&e.path);
                    self.put_package_dir(i, e)?;
                    continue;
                }
                b'0' | b'7' | 0 => {
                    let content = ContentRef::Package {
                        pkg: i,
                        start: e.data.start,
                        end: e.data.end,
                    };
                    own_files.insert(&e.path, (content, e.sha1));
                    NodeKind::File {
                        content,
                        sha1: e.sha1,
                    }
                }
                b'1' => {
                    let target = e.link.trim_start_matches('/').trim_end_matches('/');
                    let Some(&(content, sha1)) = own_files.get(target) else {
                        return Err(LayerError::BadHardlink {
                            package: name,
                            path: e.path.clone(),
                            target: e.link.clone(),
                        });
                    };
                    own_files.insert(&e.path, (content, sha1));
                    NodeKind::File { content, sha1 }
                }
                b'2' => NodeKind::Symlink {
                    target: e.link.clone(),
                },
                b'3' => NodeKind::CharDevice {
                    major: e.devmajor,
                    minor: e.devminor,
                },
                b'4' => NodeKind::BlockDevice {
                    major: e.devmajor,
                    minor: e.devminor,
                },
                b'6' => NodeKind::Fifo,
                other => {
                    return Err(LayerError::UnsupportedType {
                        package: name,
                        path: e.path.clone(),
                        typeflag: other as char,
                    })
                }
            };
            let node = Node {
                kind,
                mode: e.mode,
                owner: owner_of(e),
                origin: Origin::Package(i),
            };
            self.put_package_file(i, package, &e.path, node)?;
        }
        Ok(())
    }

    /// A directory of package `i`. Several packages may own one directory; apk-tools 2.14
    /// (`apk_db_dir_apply_diri_permissions`) gives it the owner with the lowest uid:gid,
    /// and intersects the modes of owners with the same uid:gid.
    fn put_package_dir(&mut self, i: usize, e: &DataEntry) -> Result<(), LayerError> {
        let new_owner = owner_of(e);
        let Some(existing) = self.nodes.get(&e.path) else {
            self.nodes.insert(
                e.path.clone(),
                Node {
                    kind: NodeKind::Dir,
                    mode: e.mode,
                    owner: new_owner,
                    origin: Origin::Package(i),
                },
            );
            return Ok(());
        };
        if existing.kind != NodeKind::Dir {
            return Err(LayerError::TypeConflict {
                path: e.path.clone(),
                new: self.names[i].clone(),
                new_kind: "a directory",
                existing: self.who(existing.origin),
                existing_kind: existing.kind.describe(),
            });
        }
        let old = (existing.owner.uid, existing.owner.gid, existing.mode);
        let new = (new_owner.uid, new_owner.gid, e.mode);
        if old == new {
            return Ok(());
        }
        let first = self.who(existing.origin);
        let node = self.nodes.get_mut(&e.path).expect("looked up above");
        if (new.0, new.1) < (old.0, old.1) {
            node.owner = new_owner;
            node.mode = e.mode;
        } else if (new.0, new.1) == (old.0, old.1) {
            node.mode &= e.mode;
        }
        let kept = format!("{}:{}:{:o}", node.owner.uid, node.owner.gid, node.mode);
        self.notes.push(format!(
            "directory /{}: {first} has {}:{}:{:o}, {} has {}:{}:{:o}; the layer has {kept} \
             (apk: the lowest uid:gid wins, equal owners intersect their modes)",
            e.path, old.0, old.1, old.2, self.names[i], new.0, new.1, new.2
        ));
        Ok(())
    }

    /// Anything but a directory, from package `i`.
    fn put_package_file(
        &mut self,
        i: usize,
        package: &Package,
        path: &str,
        node: Node,
    ) -> Result<(), LayerError> {
        let Some(existing) = self.nodes.get(path) else {
            self.nodes.insert(path.to_string(), node);
            return Ok(());
        };
        if existing.kind == NodeKind::Dir {
            return Err(LayerError::TypeConflict {
                path: path.to_string(),
                new: self.names[i].clone(),
                new_kind: node.kind.describe(),
                existing: self.who(existing.origin),
                existing_kind: "a directory",
            });
        }
        let Origin::Package(o) = existing.origin else {
            self.nodes.insert(path.to_string(), node);
            return Ok(());
        };
        let existing = existing.clone();
        let claim = if o == i {
            Claim::Overwrite
        } else {
            self.settle(o, i, package, &existing, &node, path)?
        };
        match claim {
            Claim::Overwrite => {
                self.db.packages[o].disown(path);
                self.nodes.insert(path.to_string(), node);
            }
            Claim::KeepOld => self.db.packages[i].disown(path),
        }
        Ok(())
    }

    /// apk-tools 2.14: a package may overwrite a file of a package with the same name or
    /// origin; otherwise `replaces` decides, and the old owner keeps the file only if it
    /// replaces the new package with a higher `replaces_priority`. apko also lets
    /// identical content through. Anything else is a conflict.
    fn settle(
        &mut self,
        o: usize,
        i: usize,
        package: &Package,
        existing: &Node,
        node: &Node,
        path: &str,
    ) -> Result<Claim, LayerError> {
        match file_claim(&self.db.packages[o].entry.info, &package.info) {
            FileClaim::SameOrigin => return Ok(Claim::Overwrite),
            FileClaim::KeptByOld { priority } => {
                self.notes.push(format!(
                    "/{path}: {} keeps it over {} (replaces, priority {priority})",
                    self.names[o], self.names[i]
                ));
                return Ok(Claim::KeepOld);
            }
            FileClaim::Replaced => {
                self.notes.push(format!(
                    "/{path}: {} replaces the one from {}",
                    self.names[i], self.names[o]
                ));
                return Ok(Claim::Overwrite);
            }
            FileClaim::Conflict => {}
        }
        if self.same_content(&existing.kind, &node.kind)? {
            return Ok(Claim::Overwrite);
        }
        Err(LayerError::FileConflict {
            path: path.to_string(),
            first: self.names[o].clone(),
            second: self.names[i].clone(),
        })
    }

    fn same_content(&self, a: &NodeKind, b: &NodeKind) -> Result<bool, LayerError> {
        Ok(match (a, b) {
            (
                NodeKind::File {
                    content: ca,
                    sha1: sa,
                },
                NodeKind::File {
                    content: cb,
                    sha1: sb,
                },
            ) => match (sa, sb) {
                (Some(x), Some(y)) => x == y,
                _ => self.content(ca)? == self.content(cb)?,
            },
            (a, b) => a == b,
        })
    }

    /// Follow symlinks in `path` as the kernel would inside the image. The last
    /// component is followed only if `follow_last`.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<String, LayerError> {
        let mut parts: Vec<String> = Vec::new();
        let mut rest: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(c) = rest.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    parts.pop();
                    continue;
                }
                _ => parts.push(c),
            }
            if rest.iter().all(|r| r.is_empty()) && !follow_last {
                break;
            }
            let here = parts.join("/");
            if let Some(Node {
                kind: NodeKind::Symlink { target, .. },
                ..
            }) = self.nodes.get(&here)
            {
                hops += 1;
                if hops > 40 {
                    return Err(LayerError::Path {
                        path: path.to_string(),
                        reason: "too many levels of symbolic links".into(),
                    });
                }
                parts.pop();
                if target.starts_with('/') {
                    parts.clear();
                }
                rest.extend(target.split('/').rev().map(str::to_string));
            }
        }
        if parts.is_empty() {
            return Err(LayerError::Path {
                path: path.to_string(),
                reason: "names the root directory".into(),
            });
        }
        Ok(parts.join("/"))
    }

    /// Make `path` and its missing parents as directories of the image.
    fn ensure_dirs(&mut self, path: &str, mode: u32) -> Result<(), LayerError> {
        let mut at = 0;
        loop {
            let end = path[at..].find('/').map_or(path.len(), |n| at + n);
            let prefix = &path[..end];
            match self.nodes.get(prefix) {
                None => {
                    self.nodes
                        .insert(prefix.to_string(), image_node(NodeKind::Dir, mode));
                }
                Some(n) if n.kind == NodeKind::Dir => {}
                Some(n) => {
                    return Err(LayerError::TypeConflict {
                        path: prefix.to_string(),
                        new: "the image".into(),
                        new_kind: "a directory",
                        existing: self.who(n.origin),
                        existing_kind: n.kind.describe(),
                    })
                }
            }
            if end == path.len() {
                return Ok(());
            }
            at = end + 1;
        }
    }

    fn add_blob(&mut self, bytes: Vec<u8>) -> ContentRef {
        self.blobs.push(bytes);
        ContentRef::Blob(self.blobs.len() - 1)
    }

    /// A file the image generates; it replaces a package's file at that path.
    fn put_generated(&mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Result<(), LayerError> {
        let path = self.resolve(path, false)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            let parent = parent.to_string();
            self.ensure_dirs(&parent, 0o755)?;
        }
        if let Some(n) = self.nodes.get(&path) {
            if n.kind == NodeKind::Dir {
                return Err(LayerError::TypeConflict {
                    path,
                    new: "the image".into(),
                    new_kind: "a file",
                    existing: self.who(n.origin),
                    existing_kind: "a directory",
                });
            }
            if let Origin::Package(o) = n.origin {
                self.notes.push(format!(
                    "/{path}: the image writes its own, replacing the one from {}",
                    self.names[o]
                ));
            }
        }
        let content = self.add_blob(bytes);
        let node = image_node(
            NodeKind::File {
                content,
                sha1: None,
            },
            mode,
        );
        self.nodes.insert(path, node);
        Ok(())
    }

    fn write_apk_files(&mut self, apk_files: &ApkFiles) -> Result<(), LayerError> {
        for (dir, mode) in BASE_DIRS {
            if !self.nodes.contains_key(dir) {
                self.nodes
                    .insert(dir.to_string(), image_node(NodeKind::Dir, mode));
            }
        }
        for dir in APK_DIRS {
            let dir = self.resolve(dir, true)?;
            self.ensure_dirs(&dir, 0o755)?;
        }
        let db_dir = self.resolve(DB_DIR, true)?;
        let mut world: Vec<&str> = apk_files.world.iter().map(String::as_str).collect();
        world.sort_unstable();
        world.dedup();
        let lines = |items: &[&str]| items.iter().map(|l| format!("{l}\n")).collect::<String>();
        let repositories: Vec<&str> = apk_files.repositories.iter().map(String::as_str).collect();
        let files = [
            (
                "etc/apk/world".to_string(),
                lines(&world).into_bytes(),
                0o644,
            ),
            (
                "etc/apk/repositories".to_string(),
                lines(&repositories).into_bytes(),
                0o644,
            ),
            (
                "etc/apk/arch".to_string(),
                format!("{}\n", self.arch.apk()).into_bytes(),
                0o644,
            ),
            (
                format!("{db_dir}/installed"),
                self.db.installed_text().into_bytes(),
                0o644,
            ),
            (
                format!("{db_dir}/scripts.tar"),
                self.db.scripts_tar(),
                0o644,
            ),
            (
                format!("{db_dir}/triggers"),
                self.db.triggers_text().into_bytes(),
                0o644,
            ),
            (format!("{db_dir}/lock"), Vec::new(), 0o600),
        ];
        for (path, bytes, mode) in files {
            self.put_generated(&path, bytes, mode)?;
        }
        for (name, key) in &apk_files.keys {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(LayerError::Path {
                    path: name.clone(),
                    reason: "a key's file name must be a plain name".into(),
                });
            }
            self.put_generated(&format!("etc/apk/keys/{name}"), key.clone(), 0o644)?;
        }
        Ok(())
    }

    /// Apply one of the image's own paths, after the packages.
    pub fn apply(&mut self, extra: &Extra) -> Result<(), LayerError> {
        let bad = |reason: &str| LayerError::Path {
            path: extra.path.clone(),
            reason: reason.to_string(),
        };
        let trimmed = extra.path.trim_start_matches('/');
        let checked = apk::extract::checked_path(trimmed).map_err(|e| bad(&e.to_string()))?;
        let path = self.resolve(checked, false)?;
        let parent = path.rsplit_once('/').map(|(p, _)| p.to_string());
        let existing = self.nodes.get(&path).cloned();
        let refuse_dir = |tree: &Tree, n: &Node, new_kind| LayerError::TypeConflict {
            path: path.clone(),
            new: "the image".into(),
            new_kind,
            existing: tree.who(n.origin),
            existing_kind: "a directory",
        };
        match &extra.kind {
            ExtraKind::Directory { .. } => {
                // Go's MkdirAll (apko) would give the parents it makes the directory's
                // own mode; 0755 keeps a 0700 home from closing off `/home`.
                self.ensure_dirs(&path, 0o755)?;
            }
            ExtraKind::File(bytes) => {
                if let Some(n) = existing.as_ref().filter(|n| n.kind == NodeKind::Dir) {
                    return Err(refuse_dir(self, n, "a file"));
                }
                if let Some(p) = &parent {
                    self.ensure_dirs(p, 0o755)?;
                }
                let content = self.add_blob(bytes.clone());
                let mut node = image_node(
                    NodeKind::File {
                        content,
                        sha1: None,
                    },
                    0o644,
                );
                // A replaced file keeps its mode and owner unless the extra sets them; this
                // path alone gets the new content, even if it was hard linked.
                if let Some(old) = existing.as_ref() {
                    if matches!(old.kind, NodeKind::File { .. }) {
                        node.mode = old.mode;
                        node.owner = old.owner.clone();
                    }
                }
                self.nodes.insert(path.clone(), node);
            }
            ExtraKind::Symlink(target) => {
                if existing.is_some() {
                    return Err(bad("a symlink cannot replace what is already there"));
                }
                if target.is_empty() {
                    return Err(bad("a symlink needs a target"));
                }
                if let Some(p) = &parent {
                    self.ensure_dirs(p, 0o755)?;
                }
                let node = image_node(
                    NodeKind::Symlink {
                        target: target.clone(),
                    },
                    0o777,
                );
                self.nodes.insert(path.clone(), node);
            }
            ExtraKind::Hardlink(source) => {
                let source = self.resolve(source.trim_start_matches('/'), true)?;
                let Some(src) = self.nodes.get(&source).cloned() else {
                    return Err(bad(&format!("hard link source /{source} does not exist")));
                };
                if !matches!(src.kind, NodeKind::File { .. }) {
                    return Err(bad(&format!(
                        "hard link source /{source} is {}, not a file",
                        src.kind.describe()
                    )));
                }
                if let Some(n) = existing.as_ref().filter(|n| n.kind == NodeKind::Dir) {
                    return Err(refuse_dir(self, n, "a hard link"));
                }
                if let Some(p) = &parent {
                    self.ensure_dirs(p, 0o755)?;
                }
                let node = Node {
                    origin: Origin::Image,
                    ..src
                };
                self.nodes.insert(path.clone(), node);
            }
            ExtraKind::Permissions { .. } => {
                if existing.is_none() {
                    return Err(bad("does not exist"));
                }
            }
        }
        let recursive = matches!(
            extra.kind,
            ExtraKind::Directory { recursive: true } | ExtraKind::Permissions { recursive: true }
        );
        self.set_meta(&path, extra.mode, extra.owner.as_ref(), recursive);
        Ok(())
    }

    /// Set the mode and owner of `path` (and below it, if `recursive`). Hard links of a
    /// file share its inode, so they change with it.
    fn set_meta(&mut self, path: &str, mode: Option<u32>, owner: Option<&Owner>, recursive: bool) {
        if mode.is_none() && owner.is_none() {
            return;
        }
        let mut targets = vec![path.to_string()];
        if recursive {
            let prefix = format!("{path}/");
            targets.extend(
                self.nodes
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, _)| p.clone()),
            );
        }
        let mut contents = HashSet::new();
        for t in &targets {
            if let Some(NodeKind::File { content, .. }) = self.nodes.get(t).map(|n| &n.kind) {
                contents.insert(*content);
            }
        }
        for (p, node) in self.nodes.iter_mut() {
            let linked =
                matches!(&node.kind, NodeKind::File { content, .. } if contents.contains(content));
            if linked || targets.binary_search(p).is_ok() {
                if let Some(m) = mode {
                    node.mode = m & 0o7777;
                }
                if let Some(o) = owner {
                    node.owner = o.clone();
                }
            }
        }
    }

    /// Write the layer: a gzip-compressed tar in a temporary file in `dir` (put it beside
    /// the blob it will become, so that a rename moves it there). Every entry is dated
    /// `mtime`. The same tree gives the same bytes, whatever the thread count and whether
    /// or not the deflated chunks come from `memo` (shared by one image's architectures).
    pub fn write_layer(
        &self,
        dir: &Path,
        mtime: u64,
        memo: Option<&Arc<DeflateMemo>>,
    ) -> Result<Layer, LayerError> {
        let tmp = tempfile::Builder::new()
            .prefix(".layer-")
            .suffix(".tar.gz")
            .tempfile_in(dir)
            .map_err(io_at(dir))?;
        let (file, temp_path) = tmp.into_parts();
        let at = temp_path.to_path_buf();
        let compressed = Hashing::new(BufWriter::new(file));
        let mut gz = ParallelEncoder::new(compressed, apk::gzip::DATA_LEVEL);
        if let Some(memo) = memo {
            gz = gz.with_memo(Arc::clone(memo));
        }
        let mut tar = TarWriter::new(Hashing::new(gz), Magic::Ustar);
        // A content seen a second time is a hard link to the first path that had it.
        let mut leaders: HashMap<ContentRef, &str> = HashMap::new();
        for (path, node) in &self.nodes {
            let dir_path;
            let none = ContentReader::Blob(&[]);
            let (name, kind, body): (&str, Kind, ContentReader) = match &node.kind {
                NodeKind::Dir => {
                    dir_path = format!("{path}/");
                    (&dir_path, Kind::Dir, none)
                }
                NodeKind::File { content, .. } => match leaders.get(content) {
                    Some(leader) => {
                        let target = leader.to_string();
                        (path, Kind::Hardlink { target }, none)
                    }
                    None => {
                        leaders.insert(*content, path);
                        let body = self.reader(content);
                        let size = body.len();
                        (path, Kind::File { size }, body)
                    }
                },
                NodeKind::Symlink { target } => {
                    let target = target.clone();
                    (path, Kind::Symlink { target }, none)
                }
                &NodeKind::CharDevice { major, minor } => {
                    (path, Kind::CharDevice { major, minor }, none)
                }
                &NodeKind::BlockDevice { major, minor } => {
                    (path, Kind::BlockDevice { major, minor }, none)
                }
                NodeKind::Fifo => (path, Kind::Fifo, none),
            };
            let entry = Entry {
                path: name,
                kind,
                mode: node.mode & 0o7777,
                owner: &node.owner,
                mtime,
                sha1: None,
            };
            // Entries start chunks where they can, so that every architecture's layer cuts
            // the same files into the same chunks.
            let len = match entry.kind {
                Kind::File { size } => size,
                _ => 0,
            };
            tar.get_mut()
                .inner
                .entry_boundary(len)
                .map_err(io_at(&at))?;
            tar.append(&entry, body).map_err(io_at(&at))?;
        }
        let uncompressed = tar.finish().map_err(io_at(&at))?;
        let (gz, diff_id, _) = uncompressed.done();
        let compressed = gz.finish().map_err(io_at(&at))?;
        let (buffered, digest, size) = compressed.done();
        let file = buffered
            .into_inner()
            .map_err(|e| io_at(&at)(e.into_error()))?;
        file.sync_all().map_err(io_at(&at))?;
        Ok(Layer {
            file: temp_path,
            digest: format!("sha256:{digest}"),
            diff_id: format!("sha256:{diff_id}"),
            size,
            notes: self.notes.clone(),
        })
    }
}

fn owner_of(e: &DataEntry) -> Owner {
    Owner {
        uid: e.uid,
        gid: e.gid,
        uname: e.uname.clone(),
        gname: e.gname.clone(),
    }
}

fn image_node(kind: NodeKind, mode: u32) -> Node {
    Node {
        kind,
        mode,
        owner: Owner::root(),
        origin: Origin::Image,
    }
}

/// Counts and hashes what goes through to `inner`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The writer, the hex SHA-256 and the length of everything written.
    fn done(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A package's unpacked data tar, spooled to an unnamed temporary file: the tree keeps
/// only the entries in memory, and reads a file's bytes back when the layer is written,
/// so that memory does not grow with the size of the image.
struct Spooled {
    entries: Vec<DataEntry>,
    file: fs::File,
}

impl Spooled {
    fn new(data: &DataTar) -> Result<Self, LayerError> {
        let mut file = tempfile::tempfile().map_err(io_at(std::env::temp_dir()))?;
        file.write_all(data.bytes())
            .map_err(io_at("spooled package data"))?;
        Ok(Spooled {
            entries: data.entries().to_vec(),
            file,
        })
    }
}

/// The bytes of a regular file of the tree, read as they are written out.
enum ContentReader<'a> {
    Blob(&'a [u8]),
    /// A range of a spooled data tar.
    Spooled {
        file: &'a fs::File,
        at: Range<u64>,
    },
}

impl ContentReader<'_> {
    fn len(&self) -> u64 {
        match self {
            ContentReader::Blob(b) => b.len() as u64,
            ContentReader::Spooled { at, .. } => at.end - at.start,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ContentReader::Blob(b) => b.read(buf),
            ContentReader::Spooled { file, at } => {
                let want = buf.len().min((at.end - at.start) as usize);
                let n = file.read_at(&mut buf[..want], at.start)?;
                at.start += n as u64;
                Ok(n)
            }
        }
    }
}

/// A written layer: a temporary file (removed on drop unless persisted) and its
/// descriptors.
#[derive(Debug)]
pub struct Layer {
    file: tempfile::TempPath,
    /// `sha256:<hex>` of the compressed bytes: the blob's name and the manifest's digest.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// The tree's [`Tree::notes`], for the caller to report.
    pub notes: Vec<String>,
}

impl Layer {
    /// Where the compressed layer is now.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Move the layer to `to`; across file systems it is copied.
    pub fn persist(self, to: &Path) -> Result<(), LayerError> {
        match self.file.persist(to) {
            Ok(()) => Ok(()),
            Err(e) => {
                let from = e.path;
                fs::copy(&from, to).map_err(io_at(to))?;
                drop(from);
                Ok(())
            }
        }
    }
}

/// Everything that makes one architecture's layer.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec<'a> {
    pub arch: Arch,
    /// In install order (dependencies first), as the solver gives them.
    pub packages: &'a [PackageInput<'a>],
    pub apk_files: &'a ApkFiles,
    /// Applied in order, after the packages and the apk database.
    pub extras: &'a [Extra],
    /// `SOURCE_DATE_EPOCH`: the time of every entry.
    pub mtime: u64,
}

/// Install, apply the extras and write the layer into a temporary file in `dir`.
pub fn build(spec: &LayerSpec<'_>, dir: &Path) -> Result<Layer, LayerError> {
    let mut tree = Tree::install(spec.arch, spec.packages, spec.apk_files)?;
    for extra in spec.extras {
        tree.apply(extra)?;
    }
    tree.write_layer(dir, spec.mtime, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apk::package::{Content, PackageBuilder, Staged, StagedEntry};
    use apk::PackageInfo;

    struct Built {
        package: Package,
        bytes: Vec<u8>,
    }

    fn dir(path: &str, mode: u32) -> StagedEntry {
        StagedEntry::new(path, Kind::Dir, mode, Content::None)
    }

    fn file(path: &str, body: &str, mode: u32) -> StagedEntry {
        StagedEntry::new(
            path,
            Kind::File {
                size: body.len() as u64,
            },
            mode,
            Content::Bytes(body.as_bytes().to_vec()),
        )
    }

    fn pkg(name: &str, edit: impl FnOnce(&mut PackageInfo), entries: Vec<StagedEntry>) -> Built {
        let mut info = PackageInfo::new(name, "1.0-r0".parse().unwrap(), "x86_64");
        edit(&mut info);
        let mut bytes = Vec::new();
        PackageBuilder::new(info, 1_700_000_000)
            .write(&Staged::new(entries).unwrap(), &mut bytes)
            .unwrap();
        Built {
            package: Package::read(&bytes).unwrap(),
            bytes,
        }
    }

    fn install(built: &[&Built]) -> Result<Tree, LayerError> {
        install_for(Arch::X86_64, built)
    }

    fn install_for(arch: Arch, built: &[&Built]) -> Result<Tree, LayerError> {
        let inputs: Vec<_> = built
            .iter()
            .map(|b| PackageInput {
                package: &b.package,
                bytes: &b.bytes,
                tag: None,
            })
            .collect();
        Tree::install(arch, &inputs, &ApkFiles::default())
    }

    fn bin(name: &str, body: &str) -> Vec<StagedEntry> {
        vec![
            dir("usr", 0o755),
            dir("usr/bin", 0o755),
            file(&format!("usr/bin/{name}"), body, 0o755),
        ]
    }

    #[test]
    fn a_file_claimed_twice_names_both_packages() {
        let a = pkg("alpha", |_| {}, bin("tool", "a"));
        let b = pkg("beta", |_| {}, bin("tool", "b"));
        let err = install(&[&a, &b]).err().expect("a conflict").to_string();
        assert!(
            err.contains("/usr/bin/tool")
                && err.contains("alpha-1.0-r0")
                && err.contains("beta-1.0-r0"),
            "{err}"
        );
    }

    #[test]
    fn replaces_lets_the_later_package_win_and_moves_ownership() {
        let a = pkg("alpha", |_| {}, bin("tool", "a"));
        let b = pkg(
            "beta",
            |i| i.replaces = vec![apk::Dependency::new("alpha")],
            bin("tool", "b"),
        );
        let tree = install(&[&a, &b]).unwrap();
        assert_eq!(
            tree.file("/usr/bin/tool").unwrap().as_deref(),
            Some(&b"b"[..])
        );
        let text = tree.installed_db().installed_text();
        let alpha = text.split("\n\n").find(|s| s.contains("P:alpha")).unwrap();
        assert!(!alpha.contains("R:tool"), "{alpha}");
        let beta = text.split("\n\n").find(|s| s.contains("P:beta")).unwrap();
        assert!(beta.contains("R:tool"), "{beta}");
    }

    #[test]
    fn an_earlier_package_with_higher_replaces_priority_keeps_the_file() {
        let a = pkg(
            "alpha",
            |i| {
                i.replaces = vec![apk::Dependency::new("beta")];
                i.replaces_priority = Some(10);
            },
            bin("tool", "a"),
        );
        let b = pkg(
            "beta",
            |i| i.replaces = vec![apk::Dependency::new("alpha")],
            bin("tool", "b"),
        );
        let tree = install(&[&a, &b]).unwrap();
        assert_eq!(
            tree.file("usr/bin/tool").unwrap().as_deref(),
            Some(&b"a"[..])
        );
    }

    #[test]
    fn identical_files_may_be_shared() {
        let a = pkg("alpha", |_| {}, bin("tool", "same"));
        let b = pkg("beta", |_| {}, bin("tool", "same"));
        install(&[&a, &b]).unwrap();
    }

    #[test]
    fn a_file_where_a_directory_is_is_an_error() {
        let a = pkg("alpha", |_| {}, bin("tool", "a"));
        let b = pkg(
            "beta",
            |_| {},
            vec![dir("usr", 0o755), file("usr/bin", "x", 0o644)],
        );
        let err = install(&[&a, &b]).err().expect("a conflict").to_string();
        assert!(
            err.contains("/usr/bin") && err.contains("a directory") && err.contains("beta"),
            "{err}"
        );
    }

    #[test]
    fn shared_directories_follow_apk_rules() {
        let a = pkg("alpha", |_| {}, vec![dir("srv", 0o755)]);
        let b = pkg("beta", |_| {}, vec![dir("srv", 0o750)]);
        let tree = install(&[&a, &b]).unwrap();
        assert_eq!(tree.nodes["srv"].mode, 0o750);
        assert!(tree.notes().iter().any(|n| n.contains("/srv")));
    }

    #[test]
    fn database_follows_a_merged_usr_lib_symlink() {
        let a = pkg(
            "layout",
            |_| {},
            vec![
                dir("usr", 0o755),
                dir("usr/lib", 0o755),
                StagedEntry {
                    path: "lib".into(),
                    kind: Kind::Symlink {
                        target: "usr/lib".into(),
                    },
                    mode: 0o777,
                    owner: Owner::root(),
                    content: Content::None,
                },
            ],
        );
        let tree = install(&[&a]).unwrap();
        assert!(tree.file("usr/lib/apk/db/installed").unwrap().is_some());
        assert!(!tree.contains("lib/apk"));
    }

    #[test]
    fn extras_replace_files_and_keep_hard_links_together() {
        let a = pkg("alpha", |_| {}, bin("tool", "a"));
        let mut tree = install(&[&a]).unwrap();
        tree.apply(&Extra::file(
            "/etc/passwd",
            "root:x:0:0::/root:/bin/sh\n",
            0o644,
        ))
        .unwrap();
        tree.apply(&Extra {
            path: "/usr/bin/tool2".into(),
            kind: ExtraKind::Hardlink("/usr/bin/tool".into()),
            mode: Some(0o4755),
            owner: None,
        })
        .unwrap();
        assert_eq!(tree.nodes["usr/bin/tool"].mode, 0o4755);
        let err = tree
            .apply(&Extra {
                path: "/usr/bin".into(),
                kind: ExtraKind::Symlink("x".into()),
                mode: None,
                owner: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("already there"), "{err}");
        let out = tempfile::tempdir().unwrap();
        let layer = tree.write_layer(out.path(), 0, None).unwrap();
        let tar = flate2_unpack(&fs::read(layer.path()).unwrap());
        let parsed = apk::tarball::parse(&tar).unwrap();
        let link = parsed
            .entries
            .iter()
            .find(|e| e.path == "usr/bin/tool2")
            .unwrap();
        assert_eq!((link.typeflag, link.link.as_str()), (b'1', "usr/bin/tool"));
        let paths: Vec<_> = parsed
            .entries
            .iter()
            .map(|e| e.path.trim_end_matches('/').to_string())
            .collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(
            format!("sha256:{}", apk::checksum::sha256_hex(&tar)),
            layer.diff_id
        );
    }

    /// Two architectures' trees sharing a data package (many files and one large) beside
    /// a program of their own: the second layer takes most chunks from the memo the first
    /// filled, and both layers are the bytes written without a memo. GNU tar reads them.
    #[test]
    fn a_memo_shares_deflated_chunks_between_arches_without_changing_bytes() {
        let text = |seed: usize, len: usize| -> String {
            let mut out = String::new();
            for k in 0.. {
                if out.len() >= len {
                    break;
                }
                out += &format!("line {k} of {seed}: package version {}\n", k * seed % 977);
            }
            out.truncate(len);
            out
        };
        let mut shared = vec![dir("usr", 0o755), dir("usr/share", 0o755)];
        let names: Vec<String> = (0..60).map(|k| format!("usr/share/doc-{k:02}")).collect();
        for (k, name) in names.iter().enumerate() {
            shared.push(file(name, &text(k + 1, 9_000 + k * 311), 0o644));
        }
        shared.push(file("usr/share/zz-large", &text(7, 900_000), 0o644));
        let data = pkg("data", |i| i.arch = "noarch".into(), shared);
        let trees: Vec<Tree> = [Arch::X86_64, Arch::Aarch64]
            .into_iter()
            .map(|arch| {
                let program = pkg(
                    "program",
                    |i| i.arch = arch.apk().into(),
                    bin("program", &text(arch.apk().len() * 1000, 150_000)),
                );
                install_for(arch, &[&data, &program]).unwrap()
            })
            .collect();
        let out = tempfile::tempdir().unwrap();
        let memo = Arc::new(DeflateMemo::new_in(out.path()).unwrap());
        for tree in &trees {
            let alone = tree.write_layer(out.path(), 0, None).unwrap();
            let shared = tree.write_layer(out.path(), 0, Some(&memo)).unwrap();
            assert_eq!(alone.digest, shared.digest);
            let listed = std::process::Command::new("tar")
                .arg("-tzf")
                .arg(shared.path())
                .output()
                .unwrap();
            assert!(listed.status.success());
            assert!(String::from_utf8_lossy(&listed.stdout).contains("usr/share/zz-large"));
        }
        let (hits, misses) = memo.counts();
        assert!(
            hits * 3 >= misses * 2,
            "{hits} chunks shared, {misses} deflated"
        );
    }

    fn flate2_unpack(gz: &[u8]) -> Vec<u8> {
        apk::gzip::split_members(gz, 1 << 30)
            .unwrap()
            .into_iter()
            .flat_map(|m| m.unpacked)
            .collect()
    }
}
