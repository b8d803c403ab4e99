//! A package's data: the files of its data tar with their bytes, for whoever writes
//! them somewhere other than a directory (an image layer).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use crate::error::{malformed, Result};
use crate::extract::checked_path;
use crate::package::{FileRecord, Package};
use crate::tarball;

/// One entry of a package's data tar. Its bytes are in the [`DataTar`] it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataEntry {
    /// Checked relative path ([`checked_path`]), without a trailing `/`.
    pub path: String,
    /// Tar typeflag: `0`/`7` file, `1` hard link, `2` symlink, `3`/`4` devices, `5` dir, `6` fifo.
    pub typeflag: u8,
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    /// Symlink or hard link target, as in the archive.
    pub link: String,
    pub devmajor: u32,
    pub devminor: u32,
    /// The `APK-TOOLS.checksum.SHA1` record (files: content; symlinks: target).
    pub sha1: Option<[u8; 20]>,
    /// Other PAX records, `SCHILY.xattr.*` among them.
    pub pax: BTreeMap<String, Vec<u8>>,
    /// Where the content is in [`DataTar::bytes`].
    pub data: Range<usize>,
}

impl DataEntry {
    pub fn is_dir(&self) -> bool {
        self.typeflag == b'5'
    }

    /// Whether apk-tools would install this entry at all (`apk_db_install_archive_entry`):
    /// names starting with `.` are skipped without a word in the data part, and files
    /// named `.keep_*` are never installed.
    pub fn installed_by_apk(&self) -> bool {
        if self.path.starts_with('.') {
            return false;
        }
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        self.is_dir() || !(name.len() > 6 && name.starts_with(".keep_"))
    }
}

/// The unpacked data tar of a package and its entries, in archive order.
#[derive(Clone, Debug)]
pub struct DataTar {
    bytes: Vec<u8>,
    entries: Vec<DataEntry>,
}

impl DataTar {
    /// Read the `.apk` in `bytes` as [`Package::read_with_data`] does (control member and
    /// `datahash` checked) and keep its data tar. Every entry is checked
    /// ([`check_entries`]): a package naming `/x`, `../x` or a control character is an
    /// error, not something to write into an image.
    pub fn read(bytes: &[u8]) -> Result<Self> {
        Package::read_with_data(bytes).map(|(_, data)| data)
    }

    /// Parse and check an unpacked data tar: its entries, and the same as a package's
    /// [`FileRecord`]s.
    pub(crate) fn parse(tar: Vec<u8>) -> Result<(Self, Vec<FileRecord>)> {
        let base = tar.as_ptr() as usize;
        let parsed = tarball::parse(&tar)?;
        check_entries(&parsed.entries)?;
        let mut entries = Vec::with_capacity(parsed.entries.len());
        let mut records = Vec::with_capacity(parsed.entries.len());
        for e in parsed.entries {
            let start = e.data.as_ptr() as usize - base;
            entries.push(DataEntry {
                path: checked_path(&e.path)?.to_string(),
                typeflag: e.typeflag,
                mode: e.mode & 0o7777,
                uid: e.uid,
                gid: e.gid,
                uname: e.uname.clone(),
                gname: e.gname.clone(),
                link: e.link.clone(),
                devmajor: e.devmajor,
                devminor: e.devminor,
                sha1: e.sha1,
                pax: e.pax,
                data: start..start + e.data.len(),
            });
            records.push(FileRecord {
                size: e.data.len() as u64,
                path: e.path,
                typeflag: e.typeflag,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                uname: e.uname,
                gname: e.gname,
                link: e.link,
                sha1: e.sha1,
            });
        }
        Ok((
            DataTar {
                bytes: tar,
                entries,
            },
            records,
        ))
    }

    pub fn entries(&self) -> &[DataEntry] {
        &self.entries
    }

    /// The content of an entry of this archive (empty for anything but regular files).
    pub fn content(&self, entry: &DataEntry) -> &[u8] {
        &self.bytes[entry.data.clone()]
    }

    /// The whole unpacked tar.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Refuse a data tar that apk-tools would not install, or that could do harm where it is
/// installed; checked on the whole archive, in archive order, before anything is written:
/// - every path passes [`checked_path`] (no `/x`, `..`, `./`, control characters);
/// - no path is listed twice;
/// - each entry apk installs (not a top-level `.name`) comes after its directory's own entry
///   (apk's "no dirent in archive"), so nothing is written through a symlink;
/// - a hard link points at an earlier regular file of the same package;
/// - no device nodes: an image or build root gets its devices from the runtime;
/// - setuid/setgid only on regular files that no one but their owner may rewrite (and
///   setgid on directories, for shared group directories): the bits are "declared" by
///   the package's signed headers, and nothing else may carry them.
pub(crate) fn check_entries(entries: &[tarball::ReadEntry<'_>]) -> Result<()> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut dirs: HashSet<&str> = HashSet::new();
    let mut files: HashSet<&str> = HashSet::new();
    for e in entries {
        let path = checked_path(&e.path)?;
        let bad = |why: String| Err(malformed(format!("{path}: {why}")));
        if !seen.insert(path) {
            return bad("listed twice in the data tar".into());
        }
        if !path.starts_with('.') {
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return bad(format!(
                        "no directory entry for {parent:?} before it (apk: no dirent in \
                         archive); a file under a symlink would be written through it"
                    ));
                }
            }
        }
        let special = e.mode & 0o6000;
        match e.typeflag {
            b'0' | b'7' | 0 => {
                files.insert(path);
            }
            b'1' => {
                let target = checked_path(&e.link)?;
                if !files.contains(target) {
                    return bad(format!(
                        "hard link to {target:?}, which is not an earlier regular file of this package"
                    ));
                }
                files.insert(path);
            }
            b'5' => {
                dirs.insert(path);
            }
            b'2' | b'6' => {}
            b'3' | b'4' => return bad("a device node; packages may not ship device nodes".into()),
            other => return bad(format!("unsupported tar entry type {:?}", other as char)),
        }
        let is_file = matches!(e.typeflag, b'0' | b'7' | 0 | b'1');
        if special != 0 {
            if e.typeflag == b'5' && special == 0o2000 {
                continue;
            }
            if !is_file {
                return bad(format!(
                    "setuid/setgid bits ({:o}) on something not a regular file",
                    e.mode & 0o7777
                ));
            }
            if e.mode & 0o022 != 0 {
                return bad(format!(
                    "setuid/setgid file (mode {:o}) writable by its group or others",
                    e.mode & 0o7777
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{Content, PackageBuilder, Staged, StagedEntry};
    use crate::tarball::Kind;
    use crate::PackageInfo;

    #[test]
    fn entries_carry_their_bytes_and_metadata() {
        let info = PackageInfo::new("t", "1-r0".parse().unwrap(), "x86_64");
        let staged = Staged::new(vec![
            StagedEntry::new("usr", Kind::Dir, 0o755, Content::None),
            StagedEntry::new(
                "usr/a",
                Kind::File { size: 5 },
                0o4755,
                Content::Bytes(b"hello".to_vec()),
            ),
            StagedEntry::new(
                "usr/b",
                Kind::Symlink { target: "a".into() },
                0o777,
                Content::None,
            ),
            StagedEntry::new(
                "usr/.keep_usr",
                Kind::File { size: 0 },
                0o644,
                Content::None,
            ),
        ])
        .unwrap();
        let mut apk = Vec::new();
        PackageBuilder::new(info, 0)
            .write(&staged, &mut apk)
            .unwrap();
        let data = DataTar::read(&apk).unwrap();
        let paths: Vec<_> = data.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["usr", "usr/.keep_usr", "usr/a", "usr/b"]);
        let a = &data.entries()[2];
        assert_eq!(data.content(a), b"hello");
        assert_eq!(a.mode, 0o4755);
        assert!(a.sha1.is_some());
        assert_eq!(data.entries()[3].link, "a");
        assert!(!data.entries()[1].installed_by_apk());
        assert!(data.entries()[0].installed_by_apk());
    }
}
