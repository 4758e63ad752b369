//! Writing `routes.yaml` so that a reader never sees half a file: a
//! temporary file in the same directory, fsync, rename over the original,
//! fsync of the directory. The previous content is kept beside it
//! (`routes.yaml.prev`). A file without write permission (for anyone) is
//! left alone: an operator made it read-only on purpose.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} is read-only")]
    ReadOnly(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The backup of `path`: `routes.yaml` -> `routes.yaml.prev`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    path.with_file_name(name)
}

/// True when the file exists and nobody may write it (mode bits), or the
/// file system refuses writes.
pub fn is_read_only(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o222 == 0,
        Err(_) => false,
    }
}

/// Replaces `path` with `text` atomically; returns the backup's path.
pub fn write_atomically(path: &Path, text: &str) -> Result<PathBuf, WriteError> {
    if is_read_only(path) {
        return Err(WriteError::ReadOnly(path.to_path_buf()));
    }
    // Follow a symlink (config maps, /etc alternatives) to the real file.
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let backup = backup_path(&target);
    let old = fs::read(&target).ok();
    let mode = fs::metadata(&target).map(|m| m.permissions().mode()).ok();

    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        if let Some(old) = &old {
            fs::write(&backup, old).map_err(io(&backup))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        if let Some(mode) = mode {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &target).map_err(io(&target))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(backup.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        if let Err(WriteError::Io { source, .. }) = &result {
            if source.raw_os_error() == Some(30) {
                // EROFS: a read-only file system.
                return Err(WriteError::ReadOnly(path.to_path_buf()));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rollback-atomic-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_keep_the_previous_version_and_the_mode() {
        let d = dir();
        let f = d.join("routes.yaml");
        fs::write(&f, "old\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let backup = write_atomically(&f, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "new\n");
        assert_eq!(fs::read_to_string(&backup).unwrap(), "old\n");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(
            fs::read_dir(&d).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-"))
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn read_only_files_are_left_alone() {
        let d = dir();
        let f = d.join("ro.yaml");
        fs::write(&f, "keep\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o444)).unwrap();
        assert!(matches!(
            write_atomically(&f, "x"),
            Err(WriteError::ReadOnly(_))
        ));
        assert_eq!(fs::read_to_string(&f).unwrap(), "keep\n");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn symlinks_are_followed() {
        let d = dir().join("link");
        fs::create_dir_all(&d).unwrap();
        let real = d.join("real.yaml");
        let link = d.join("routes.yaml");
        fs::write(&real, "a").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, "b").unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "b");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        fs::remove_dir_all(d).unwrap();
    }
}
