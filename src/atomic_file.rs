//! Atomic file writes in the state directory: a reader sees the old content or the new,
//! never a torn file (temp file, fsync, rename, fsync of the directory). Owns how a file
//! is replaced; must not know what the file holds.

use std::io::Write;
use std::path::Path;

/// Writes `dir/name` so that a reader sees the old content or the new, never a torn file.
pub fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> std::io::Result<()> {
    write_atomically_with(dir, name, |file| file.write_all(content))
}

/// `write_atomically` of what `write` puts into the temporary file, for content made as
/// it is written.
pub fn write_atomically_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
