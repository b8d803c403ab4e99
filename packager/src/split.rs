//! The `split/*` pipelines, done natively: move the files a subpackage takes from the
//! main package's output tree into the subpackage's, keeping their relative paths.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a `split/<kind>` pipeline takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKind {
    Dev,
    Static,
    Lib,
    Bin,
    Manpages,
    Infodir,
    Locales,
    Alldocs,
}

impl SplitKind {
    /// The kind for a `uses:` name, e.g. `split/dev`.
    pub fn from_uses(uses: &str) -> Option<Self> {
        Some(match uses.strip_prefix("split/")? {
            "dev" => Self::Dev,
            "static" => Self::Static,
            "lib" => Self::Lib,
            "bin" => Self::Bin,
            "manpages" => Self::Manpages,
            "infodir" => Self::Infodir,
            "locales" => Self::Locales,
            "alldocs" => Self::Alldocs,
            _ => return None,
        })
    }

    /// Whether a path (relative to the package root) belongs to this split.
    /// `patterns` narrows `split/lib` to libraries named `<pattern>.so.*`.
    fn takes(self, rel: &str, is_symlink: bool, patterns: &[String]) -> bool {
        let under = |dirs: &[&str]| {
            dirs.iter()
                .any(|d| rel == *d || rel.starts_with(&format!("{d}/")))
        };
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let in_libdir = matches!(dir, "lib" | "usr/lib" | "usr/local/lib");
        match self {
            Self::Dev => {
                under(&[
                    "usr/include",
                    "usr/lib/pkgconfig",
                    "usr/share/pkgconfig",
                    "usr/share/aclocal",
                    "usr/lib/cmake",
                    "usr/share/cmake",
                    "usr/share/gettext",
                    "usr/share/vala",
                    "usr/share/gir-1.0",
                ]) || (in_libdir && (name.ends_with(".a") || name.ends_with(".o") || name.ends_with(".la")))
                    || (matches!(dir, "usr/bin" | "bin") && name.ends_with("-config"))
                    // Unversioned .so links are for the linker, not for running.
                    || (in_libdir && is_symlink && name.ends_with(".so"))
            }
            Self::Static => in_libdir && name.ends_with(".a"),
            Self::Lib => {
                in_libdir
                    && if patterns.is_empty() {
                        name.contains(".so.")
                    } else {
                        patterns
                            .iter()
                            .any(|p| name.starts_with(&format!("{p}.so.")))
                    }
            }
            Self::Bin => under(&["usr/bin", "usr/sbin", "bin", "sbin"]),
            Self::Manpages => under(&["usr/share/man", "usr/man"]),
            Self::Infodir => under(&["usr/share/info"]),
            Self::Locales => under(&["usr/share/locale", "usr/lib/locale"]),
            Self::Alldocs => under(&[
                "usr/share/doc",
                "usr/share/man",
                "usr/share/info",
                "usr/share/gtk-doc",
                "usr/share/help",
                "usr/share/devhelp",
            ]),
        }
    }
}

/// Move what `kind` takes from `from` to `to`. Returns the moved paths, sorted.
pub fn split(
    kind: SplitKind,
    from: &Path,
    to: &Path,
    patterns: &[String],
) -> io::Result<Vec<String>> {
    let mut moved = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = from.join(&rel_dir);
        let mut entries: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd.collect::<io::Result<_>>()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel = rel_dir.join(entry.file_name());
            let rel_str = rel.to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(entry.path())?;
            let is_symlink = meta.file_type().is_symlink();
            if kind.takes(&rel_str, is_symlink, patterns) {
                let dest = to.join(&rel);
                if let Some(parent) = dest.parent() {
                    create_dirs_like(from, to, parent.strip_prefix(to).unwrap_or(Path::new("")))?;
                }
                fs::rename(entry.path(), &dest)?;
                moved.push(rel_str);
            } else if meta.is_dir() {
                stack.push(rel);
            }
        }
    }
    moved.sort();
    Ok(moved)
}

/// Create `to/rel` and its parents with the modes the same directories have in `from`.
fn create_dirs_like(from: &Path, to: &Path, rel: &Path) -> io::Result<()> {
    let mut acc = PathBuf::new();
    for part in rel.components() {
        acc.push(part);
        let dest = to.join(&acc);
        if !dest.exists() {
            fs::create_dir_all(&dest)?;
            if let Ok(meta) = fs::metadata(from.join(&acc)) {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&dest, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(root: &Path) {
        for d in [
            "usr/include/foo",
            "usr/lib/pkgconfig",
            "usr/bin",
            "usr/share/man/man1",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "usr/include/foo/foo.h",
            "usr/lib/pkgconfig/foo.pc",
            "usr/lib/libfoo.so.1.2",
            "usr/lib/libfoo.a",
            "usr/bin/foo",
            "usr/bin/foo-config",
            "usr/share/man/man1/foo.1",
        ] {
            fs::write(root.join(f), f).unwrap();
        }
        symlink("libfoo.so.1.2", root.join("usr/lib/libfoo.so")).unwrap();
        symlink("libfoo.so.1.2", root.join("usr/lib/libfoo.so.1")).unwrap();
    }

    #[test]
    fn dev_takes_headers_pc_static_config_and_unversioned_links() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        tree(src.path());
        let moved = split(SplitKind::Dev, src.path(), dst.path(), &[]).unwrap();
        assert_eq!(
            moved,
            [
                "usr/bin/foo-config",
                "usr/include",
                "usr/lib/libfoo.a",
                "usr/lib/libfoo.so",
                "usr/lib/pkgconfig",
            ]
        );
        assert!(dst.path().join("usr/include/foo/foo.h").is_file());
        assert!(
            src.path().join("usr/lib/libfoo.so.1.2").is_file(),
            "runtime library stays"
        );
        assert!(src.path().join("usr/bin/foo").is_file());
    }

    #[test]
    fn lib_takes_versioned_libraries_by_pattern() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        tree(src.path());
        let moved = split(SplitKind::Lib, src.path(), dst.path(), &["libfoo".into()]).unwrap();
        assert_eq!(moved, ["usr/lib/libfoo.so.1", "usr/lib/libfoo.so.1.2"]);
        let none = split(SplitKind::Lib, src.path(), dst.path(), &["libbar".into()]).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn manpages_and_missing_sources_are_fine() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        tree(src.path());
        assert_eq!(
            split(SplitKind::Manpages, src.path(), dst.path(), &[]).unwrap(),
            ["usr/share/man"]
        );
        let empty = split(SplitKind::Bin, &src.path().join("nope"), dst.path(), &[]).unwrap();
        assert!(empty.is_empty());
    }
}
