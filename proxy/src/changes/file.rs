//! A change's way into `routes.yaml`: written atomically when the file can
//! be written, and otherwise kept as an override, re-applied on every
//! reload of a file older than the change, so that a reload cannot silently
//! undo a rollback. When the disk no longer holds what is served (someone
//! edited it since), the change is made on what is on disk, so nobody's
//! work is overwritten.

use std::path::Path;
use std::sync::Mutex;

use log::warn;
use rollback::atomic::{WriteError, is_read_only, write_atomically};
use rollback::edit::{Edit, apply_all};

use super::{FileOutcome, now_ms};
use crate::config;
use crate::live::digest;

/// A change that the file does not (yet) contain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    created_at_ms: i64,
    /// A whole text that replaces the file's (a restored version).
    text: Option<String>,
    edits: Vec<Edit>,
}

/// The changes applied live that the file does not hold.
#[derive(Debug, Default)]
pub struct Overrides(Mutex<Vec<Override>>);

impl Overrides {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Override>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file's text (written at `file_time_ms`) with the changes it does
    /// not contain yet re-applied.
    pub fn apply_to(&self, file_text: &str, file_time_ms: i64) -> String {
        let mut overrides = self.lock();
        // A file written after a change already reflects it, or was edited
        // on purpose since: the file wins.
        overrides.retain(|o| o.created_at_ms > file_time_ms);
        let mut text = file_text.to_string();
        overrides.retain(
            |o| match apply_all(o.text.as_deref().unwrap_or(&text), &o.edits) {
                Ok(t) => {
                    text = t;
                    true
                }
                Err(e) => {
                    warn!("a change not in the file no longer applies ({e}); dropped");
                    false
                }
            },
        );
        text
    }

    /// The edits of every pending override, oldest first.
    fn pending_edits(&self) -> Vec<Edit> {
        self.lock().iter().flat_map(|o| o.edits.clone()).collect()
    }

    fn keep_edits(&self, edits: &[Edit]) {
        self.lock().push(Override {
            created_at_ms: now_ms(),
            text: None,
            edits: edits.to_vec(),
        });
    }

    /// A whole text replaces the file: earlier overrides are moot.
    fn replace_with(&self, text: Option<&str>) {
        let mut overrides = self.lock();
        overrides.clear();
        if let Some(t) = text {
            overrides.push(Override {
                created_at_ms: now_ms(),
                text: Some(t.to_string()),
                edits: Vec::new(),
            });
        }
    }
}

/// Writes edits that are live (serving `new_text`, made from the served
/// text whose digest is `served_digest`) into the file at `path`; what
/// cannot be written is kept in `overrides`.
pub fn write_edits(
    path: &Path,
    overrides: &Overrides,
    served_digest: &str,
    new_text: &str,
    edits: &[Edit],
) -> FileOutcome {
    let outcome = edits_into_file(path, overrides, served_digest, new_text, edits);
    if let FileOutcome::NotWritten(why) = &outcome {
        warn!(
            "change applied live but not written to {}: {why}",
            path.display()
        );
        overrides.keep_edits(edits);
    }
    outcome
}

fn edits_into_file(
    path: &Path,
    overrides: &Overrides,
    served_digest: &str,
    new_text: &str,
    edits: &[Edit],
) -> FileOutcome {
    if is_read_only(path) {
        return FileOutcome::NotWritten(format!("{} is read-only", path.display()));
    }
    let disk = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return FileOutcome::NotWritten(format!("cannot read {}: {e}", path.display()));
        }
    };
    let target = if digest(&disk) == served_digest {
        new_text.to_string()
    } else {
        let mut pending = overrides.pending_edits();
        pending.extend(edits.iter().cloned());
        match apply_all(&disk, &pending) {
            Ok(t) if config::parse_in(&t, "disk", &config::config_dir(path)).is_ok() => t,
            Ok(_) => {
                return FileOutcome::NotWritten(format!(
                    "{} on disk has errors; fix it, the change stays live meanwhile",
                    path.display()
                ));
            }
            Err(e) => {
                return FileOutcome::NotWritten(format!("cannot edit the file on disk: {e}"));
            }
        }
    };
    match write_atomically(path, &target) {
        Ok(_) => FileOutcome::Written,
        Err(WriteError::ReadOnly(p)) => {
            FileOutcome::NotWritten(format!("{} is read-only", p.display()))
        }
        Err(e) => FileOutcome::NotWritten(e.to_string()),
    }
}

/// Writes a whole served text (a restored version) into the file; kept as
/// an override when it cannot be.
pub fn write_whole(path: &Path, overrides: &Overrides, text: &str) -> FileOutcome {
    match write_atomically(path, text) {
        Ok(_) => {
            overrides.replace_with(None);
            FileOutcome::Written
        }
        Err(e) => {
            overrides.replace_with(Some(text));
            FileOutcome::NotWritten(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(percent: &str) -> Edit {
        Edit::SetCanary {
            route: "orders".into(),
            percent: percent.into(),
        }
    }

    const FILE: &str = "routes:\n  - name: orders\n    canary: 40\n";

    #[test]
    fn a_change_the_file_lacks_is_reapplied_until_the_file_is_newer() {
        let overrides = Overrides::default();
        overrides.keep_edits(&[canary("0")]);
        let made = overrides.lock()[0].created_at_ms;
        // A file older than the change: the change is put back.
        assert!(overrides.apply_to(FILE, made - 1).contains("canary: 0"));
        // A file written after it (by a person, on purpose): the file wins,
        // and the override is gone for good.
        assert!(overrides.apply_to(FILE, made + 1).contains("canary: 40"));
        assert!(overrides.apply_to(FILE, made - 1).contains("canary: 40"));
    }

    #[test]
    fn a_restored_text_replaces_the_file_and_earlier_overrides() {
        let overrides = Overrides::default();
        overrides.keep_edits(&[canary("0")]);
        overrides.replace_with(Some("routes:\n  - name: orders\n    canary: 5\n"));
        let old_file = 0;
        let text = overrides.apply_to(FILE, old_file);
        assert!(text.contains("canary: 5"), "{text}");
        overrides.replace_with(None);
        assert_eq!(overrides.apply_to(FILE, old_file), FILE);
    }

    #[test]
    fn an_override_that_no_longer_applies_is_dropped() {
        let overrides = Overrides::default();
        overrides.keep_edits(&[canary("0")]);
        let made = overrides.lock()[0].created_at_ms;
        // The route is gone from the file: the edit fails and is dropped.
        let other = "routes:\n  - name: users\n    canary: 1\n";
        assert_eq!(overrides.apply_to(other, made - 1), other);
        assert!(overrides.lock().is_empty());
    }
}
