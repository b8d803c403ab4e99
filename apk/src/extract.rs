//! Unpacking a package's files into a root directory, refusing anything that would land
//! outside it: apk-tools' "ignoring malicious file" cases are errors here.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::data::DataTar;
use crate::error::{io_at, malformed, Result};

/// A data entry's path, checked: relative, no `.`/`..` components, no control
/// characters, no `./` prefix. Returns it without a trailing `/`.
pub fn checked_path(name: &str) -> Result<&str> {
    let trimmed = name.trim_end_matches('/');
    let bad = |why: &str| Err(malformed(format!("malicious file name {name:?}: {why}")));
    if trimmed.is_empty() {
        return bad("empty");
    }
    if trimmed.starts_with('/') {
        return bad("absolute path");
    }
    if trimmed.chars().any(char::is_control) {
        return bad("control character");
    }
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, . or .. component");
    }
    Ok(trimmed)
}

/// Make sure no existing component of `rel` under `root` is a symlink, so that a
/// package cannot write "through" a link it (or another package) planted.
fn check_no_symlink_parents(root: &Path, rel: &Path) -> Result<()> {
    let mut at = root.to_path_buf();
    let parents: Vec<Component> = rel.components().collect();
    for part in &parents[..parents.len().saturating_sub(1)] {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(malformed(format!(
                    "{}: writes through the symlink {}",
                    rel.display(),
                    at.strip_prefix(root).unwrap_or(&at).display()
                )))
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(malformed(format!(
                    "{}: {} is not a directory",
                    rel.display(),
                    at.display()
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(io_at(&at)(e)),
        }
    }
    Ok(())
}

/// Unpack the data of the package in `bytes` under `root`. Directories must come before
/// what they hold (apk's "no dirent in archive"); hard links must point at an earlier
/// file of the same package. Device nodes are skipped: an unprivileged build root needs
/// none. Returns the paths written.
pub fn extract(bytes: &[u8], root: &Path) -> Result<Vec<String>> {
    let data = DataTar::read(bytes)?;
    let mut written = Vec::new();
    let mut files_seen: HashSet<String> = HashSet::new();
    for e in data.entries() {
        let rel = e.path.as_str();
        let rel_path = PathBuf::from(rel);
        check_no_symlink_parents(root, &rel_path)?;
        let dest = root.join(&rel_path);
        let mode = fs::Permissions::from_mode(e.mode & 0o7777);
        match e.typeflag {
            b'5' => {
                match fs::symlink_metadata(&dest) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(malformed(format!("{rel}: exists and is not a directory")))
                    }
                    Err(_) => fs::create_dir(&dest).map_err(io_at(&dest))?,
                }
                fs::set_permissions(&dest, mode).map_err(io_at(&dest))?;
            }
            b'0' | b'7' => {
                remove_existing(&dest)?;
                let mut f = fs::File::create(&dest).map_err(io_at(&dest))?;
                f.write_all(data.content(e)).map_err(io_at(&dest))?;
                f.set_permissions(mode).map_err(io_at(&dest))?;
                files_seen.insert(rel.to_string());
            }
            b'2' => {
                remove_existing(&dest)?;
                symlink(&e.link, &dest).map_err(io_at(&dest))?;
            }
            b'1' => {
                let target = checked_path(&e.link)?;
                if !files_seen.contains(target) {
                    return Err(malformed(format!(
                        "{rel}: hard link to {target:?}, which is not an earlier file of this package"
                    )));
                }
                remove_existing(&dest)?;
                fs::hard_link(root.join(target), &dest).map_err(io_at(&dest))?;
            }
            b'3' | b'4' | b'6' => continue,
            other => {
                return Err(malformed(format!(
                    "{rel}: unsupported tar entry type {:?}",
                    other as char
                )))
            }
        }
        written.push(rel.to_string());
    }
    Ok(written)
}

fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(malformed(format!(
            "{}: a directory is in the way",
            path.display()
        ))),
        Ok(_) => fs::remove_file(path).map_err(io_at(path)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{Content, PackageBuilder, Staged, StagedEntry};
    use crate::tarball::Kind;
    use crate::PackageInfo;

    fn package(entries: Vec<StagedEntry>) -> Vec<u8> {
        let info = PackageInfo::new("t", "1-r0".parse().unwrap(), "x86_64");
        let mut out = Vec::new();
        PackageBuilder::new(info, 0)
            .write(&Staged::new(entries).unwrap(), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn extracts_files_dirs_links_and_modes() {
        let pkg = package(vec![
            StagedEntry::new("usr", Kind::Dir, 0o755, Content::None),
            StagedEntry::new("usr/bin", Kind::Dir, 0o755, Content::None),
            StagedEntry::new(
                "usr/bin/a",
                Kind::File { size: 2 },
                0o4755,
                Content::Bytes(b"hi".to_vec()),
            ),
            StagedEntry::new(
                "usr/bin/b",
                Kind::Hardlink {
                    target: "usr/bin/a".into(),
                },
                0o4755,
                Content::None,
            ),
            StagedEntry::new(
                "usr/bin/c",
                Kind::Symlink { target: "a".into() },
                0o777,
                Content::None,
            ),
        ]);
        let root = tempfile::tempdir().unwrap();
        let written = extract(&pkg, root.path()).unwrap();
        assert_eq!(
            written,
            ["usr", "usr/bin", "usr/bin/a", "usr/bin/b", "usr/bin/c"]
        );
        let a = root.path().join("usr/bin/a");
        assert_eq!(fs::read(&a).unwrap(), b"hi");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o7777,
            0o4755
        );
        assert_eq!(
            fs::read_link(root.path().join("usr/bin/c")).unwrap(),
            Path::new("a")
        );
        assert_eq!(fs::read(root.path().join("usr/bin/b")).unwrap(), b"hi");
    }

    #[test]
    fn rejects_writing_through_a_symlink_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        // Another package planted `etc -> <outside>`; this one writes etc/passwd.
        symlink(outside.path(), root.path().join("etc")).unwrap();
        let pkg = package(vec![
            StagedEntry::new("etc", Kind::Dir, 0o755, Content::None),
            StagedEntry::new(
                "etc/passwd",
                Kind::File { size: 1 },
                0o644,
                Content::Bytes(b"x".to_vec()),
            ),
        ]);
        let err = extract(&pkg, root.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a directory") || err.contains("symlink"),
            "{err}"
        );
        assert!(!outside.path().join("passwd").exists());
    }

    #[test]
    fn checked_path_refuses_hostile_names() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "./x",
            "a//b",
            "a/\u{1b}b",
            "",
        ] {
            assert!(checked_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(checked_path("usr/bin/").unwrap(), "usr/bin");
    }
}
