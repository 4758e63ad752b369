//! The file read again: on a change of the file, a SIGHUP or `POST /reload`.
//! The text served is the file's with the changes it does not hold yet
//! re-applied ([`super::file::Overrides`]); a text the same as the one served
//! is not a new version. An invalid file changes nothing: the old table
//! keeps serving and the error is counted.

use log::{info, warn};
use rollback::history::ChangeSource;

use super::record::Reuse;
use super::{ChangeMeta, Changes};
use crate::config::{Config, ConfigErrors, Place};
use crate::live::{StartupSettings, digest, mtime_ms};

/// What started a reload; logged and shown in `/routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    Startup,
    FileChanged,
    Signal,
    Admin,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::Startup => "startup",
            ReloadTrigger::FileChanged => "file change",
            ReloadTrigger::Signal => "SIGHUP",
            ReloadTrigger::Admin => "POST /reload",
        }
    }
}

/// The result of a successful reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub version: u64,
    /// False when the file was the same as the version being served.
    pub changed: bool,
    /// Settings that changed but only take effect after a restart.
    pub restart_required: Vec<String>,
}

impl Changes {
    /// Re-reads the configuration file and serves it if it is valid.
    /// Blocking (file I/O, DNS, the history store): call it from a blocking
    /// context.
    pub fn reload(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, ConfigErrors> {
        let _one = self.one_at_a_time();
        let result = self.reload_file(trigger);
        let metrics = self.live.metrics();
        let path = self.live.config_path();
        match &result {
            Ok(outcome) => {
                metrics.config_reloads.with_label_values(&["ok"]).inc();
                metrics.config_last_reload_successful.set(1);
                if outcome.changed {
                    info!(
                        "configuration version {} loaded from {} ({})",
                        outcome.version,
                        path.display(),
                        trigger.as_str()
                    );
                }
                for setting in &outcome.restart_required {
                    warn!("{setting} changed; the new value takes effect after a restart");
                }
            }
            Err(errors) => {
                metrics.config_reloads.with_label_values(&["error"]).inc();
                metrics.config_last_reload_successful.set(0);
                warn!(
                    "reload ({}) rejected, still serving version {}: {errors}",
                    trigger.as_str(),
                    self.live.current().version
                );
            }
        }
        result
    }

    fn reload_file(&self, trigger: ReloadTrigger) -> Result<ReloadOutcome, ConfigErrors> {
        let path = self.live.config_path();
        let name = path.display().to_string();
        let file_text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(&name, Place::root(), format!("cannot read the file: {e}"))
        })?;
        let text = self.overrides.apply_to(&file_text, mtime_ms(path));
        let config = self.live.parse(&text)?;
        let current = self.live.current();
        if digest(&text) == current.digest {
            return Ok(ReloadOutcome {
                version: current.version,
                changed: false,
                restart_required: Vec::new(),
            });
        }
        let restart_required = restart_required(self.live.startup(), &config);
        let meta = ChangeMeta {
            actor: "file".into(),
            source: ChangeSource::File,
            reason: trigger.as_str().to_string(),
            summary: format!("{} reloaded", path.display()),
        };
        let version = self.install(config, &text, &meta, Reuse::IfNewer)?;
        Ok(ReloadOutcome {
            version,
            changed: true,
            restart_required,
        })
    }
}

/// Settings read once at start that differ in `config`.
fn restart_required(startup: &StartupSettings, config: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    if config.listen != startup.listen {
        changed.push("listen".to_string());
    }
    if config.tls != startup.tls {
        changed.push("tls".to_string());
    }
    if config.admin.listen != startup.admin_listen {
        changed.push("admin.listen".to_string());
    }
    if config.store != startup.store {
        changed.push("store".to_string());
    }
    changed
}
