//! Atomic file writes: a temporary file in the destination directory, then a rename.
//! A failed or interrupted run leaves the previous file intact.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{io_at, Result};

/// Write `data` to `path` atomically with the given permission bits.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(data))
}

/// Create `path` atomically from what `fill` writes into the temporary file.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    fill(tmp.as_file_mut()).map_err(io_at(path))?;
    let file = tmp.as_file();
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))?;
    tmp.persist(path).map_err(|e| io_at(path)(e.error))?;
    Ok(())
}
