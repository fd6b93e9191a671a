//! The data dir and the store file are the owner's only: the store holds API sources'
//! passwords, tokens and client-key paths in clear (Switchboard must send them), so
//! nobody else on the machine may read them.
//!
//! A data dir Switchboard creates is `0700`; one that already exists is left as it is
//! (it may be shared, e.g. `/var/lib`-style directories an init system prepares) but a
//! warning names it when others can enter it. The store file is Switchboard's own, so it
//! is created `0600` and tightened to `0600` at every start, with a warning when it was
//! looser.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a data dir Switchboard creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file that holds secrets.
pub const FILE_MODE: u32 = 0o600;

/// Bits that let anyone but the owner in.
const OTHERS: u32 = 0o077;

/// Creates `dir` (and missing parents) owner-only; warns about an existing one others
/// can read or enter.
pub fn data_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & OTHERS != 0 {
        tracing::warn!(
            data_dir = %dir.display(),
            mode = format!("{mode:o}"),
            "The data dir is open to other users; its store file is kept 0600, but make the dir 0700 (chmod 700) unless it must be shared"
        );
    }
    Ok(())
}

/// Makes sure `file` exists with mode `0600` before anything is written to it: created
/// so if missing, tightened (with a warning) if it was looser.
pub fn secret_file(file: &Path) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(file)?;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
    if mode != FILE_MODE {
        std::fs::set_permissions(file, Permissions::from_mode(FILE_MODE))?;
        tracing::warn!(
            file = %file.display(),
            was = format!("{mode:o}"),
            "The store file holds secrets in clear; tightened it to 0600"
        );
    }
    Ok(())
}

/// Writes `bytes` to `file`, owner-only (`0600`) from the moment it exists: a secret
/// Switchboard hands the operator, such as the bootstrap token. It is written to a new
/// file beside it, then renamed over it, so no handle opened on an older file (nor a
/// link planted in its place) ever sees the secret.
pub fn write_secret(file: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut name = file.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    let fresh = file.with_file_name(name);
    match std::fs::remove_file(&fresh) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut out = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(FILE_MODE)
        .open(&fresh)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    std::fs::rename(&fresh, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_dir_and_file_are_the_owners_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/data");
        data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&root.path().join("a")), DIR_MODE, "parents too");
        let file = dir.join("store");
        secret_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
    }

    #[test]
    fn an_existing_file_is_tightened_and_keeps_its_bytes() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("store");
        std::fs::write(&file, b"kept").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        secret_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
    }

    #[test]
    fn a_secret_is_written_owner_only_even_over_a_looser_file() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("secret");
        std::fs::write(&file, b"an older, longer secret").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        write_secret(&file, b"new").unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
    }

    #[test]
    fn an_existing_dir_is_left_as_it_is() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), Permissions::from_mode(0o755)).unwrap();
        data_dir(root.path()).unwrap();
        assert_eq!(mode(root.path()), 0o755);
    }
}
