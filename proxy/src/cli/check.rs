//! `strangler check`: validate files like `nginx -t`, report like a compiler.
//!
//! Each error is one line, `file:line:column: place: message`, the form
//! editors (vim's errorformat, Emacs' compilation mode, VS Code problem
//! matchers) and CI annotators parse; `--format json` gives the same in one
//! document for programs.

use serde_json::{Value, json};

use crate::cli::CheckArgs;
use crate::config::{self, ConfigError, ConfigErrors, Place, positions::Positions};

/// How `check` writes its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `file: ok (…)` on stdout; errors on stderr, one per line.
    Text,
    /// One JSON document on stdout, nothing on stderr.
    Json,
}

/// The verdict on one file.
#[derive(Debug)]
struct FileReport {
    file: String,
    /// The `N routes, M backends` summary, or every error.
    outcome: Result<String, ConfigErrors>,
    /// Valid but dangerous settings, placed like errors.
    warnings: ConfigErrors,
}

/// Prints a verdict per file; returns the process exit code.
pub fn run(args: &CheckArgs) -> i32 {
    let reports: Vec<FileReport> = args
        .files
        .iter()
        .map(|file| check_file(file, args.resolve))
        .collect();
    match args.format {
        Format::Text => {
            for r in &reports {
                for w in &r.warnings.errors {
                    eprintln!("{}", warning_line(&r.warnings, w));
                }
                match &r.outcome {
                    Ok(summary) => println!("{}: ok ({summary})", r.file),
                    Err(errors) => eprintln!("{errors}"),
                }
            }
        }
        Format::Json => match serde_json::to_string_pretty(&to_json(&reports)) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("cannot write the report: {e}");
                return 1;
            }
        },
    }
    if reports.iter().any(|r| r.outcome.is_err()) {
        1
    } else {
        0
    }
}

/// The `--format json` document (its shape is in `docs/configuration.md`).
fn to_json(reports: &[FileReport]) -> Value {
    let files: Vec<Value> = reports
        .iter()
        .map(|r| {
            let (summary, errors) = match &r.outcome {
                Ok(summary) => (summary.clone(), Vec::new()),
                Err(errors) => (
                    count(errors.len(), "error"),
                    errors.errors.iter().map(ConfigError::to_json).collect(),
                ),
            };
            json!({
                "file": r.file,
                "ok": r.outcome.is_ok(),
                "errors": errors,
                "warnings": r.warnings.errors.iter().map(ConfigError::to_json).collect::<Vec<_>>(),
                "summary": summary,
            })
        })
        .collect();
    json!({
        "ok": reports.iter().all(|r| r.outcome.is_ok()),
        "files": files,
    })
}

/// `file:line:column: warning: place: message`, as compilers write a warning.
fn warning_line(warnings: &ConfigErrors, w: &ConfigError) -> String {
    let error_form = warnings.line_of(w);
    let head = error_form
        .strip_suffix(&w.to_string())
        .unwrap_or(&error_form);
    format!("{head}warning: {w}")
}

fn check_file(file: &std::path::Path, resolve: bool) -> FileReport {
    let name = file.display().to_string();
    let no_warnings = ConfigErrors {
        source_name: name.clone(),
        errors: Vec::new(),
    };
    let (config, text) = match config::load(file) {
        Ok(loaded) => loaded,
        Err(errors) => {
            return FileReport {
                file: name,
                outcome: Err(errors),
                warnings: no_warnings,
            };
        }
    };
    let mut warnings = no_warnings;
    warnings.errors = config.warnings_at();
    // Placing needs an index of the whole file: only built when there is
    // something to place.
    if !warnings.errors.is_empty() {
        Positions::of(&text).locate(&mut warnings.errors);
    }
    let mut errors = Vec::new();
    if resolve {
        for b in &config.backends {
            for (i, e) in b.endpoints.iter().enumerate() {
                if let Err(msg) = crate::live::upstream::resolve_endpoint(e) {
                    let place = Place::root()
                        .key("backends")
                        .key(b.name.as_str().to_owned());
                    let place = if b.endpoints.len() == 1 {
                        place.key("url")
                    } else {
                        place.key("urls").index(i)
                    };
                    errors.push(ConfigError::new(place, msg));
                }
            }
        }
    }
    let outcome = if errors.is_empty() {
        Ok(format!(
            "{}, {}",
            count(config.routes.len(), "route"),
            count(config.backends.len(), "backend")
        ))
    } else {
        Positions::of(&text).locate(&mut errors);
        Err(ConfigErrors {
            source_name: name.clone(),
            errors,
        })
    };
    FileReport {
        file: name,
        outcome,
        warnings,
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_reads_like_a_compiler_warning() {
        let mut w = ConfigError::new(Place::root().key("backends").key("b"), "careful");
        let warnings = ConfigErrors {
            source_name: "r.yaml".into(),
            errors: Vec::new(),
        };
        assert_eq!(
            warning_line(&warnings, &w),
            "r.yaml: warning: backends.b: careful"
        );
        (w.line, w.column) = (Some(3), Some(5));
        assert_eq!(
            warning_line(&warnings, &w),
            "r.yaml:3:5: warning: backends.b: careful"
        );
    }

    #[test]
    fn json_names_every_error_with_its_position() {
        let errors = config::parse(
            "version: 1\nbackends:\n  a: { url: \"http://127.0.0.1:1\" }\n  b: { url: \"http://127.0.0.1:2\" }\ndefault: a\nroutes:\n  - name: r\n    match: { path: /r }\n    new: b\n    canery: 5\n",
            "r.yaml",
        )
        .unwrap_err();
        let doc = to_json(&[
            FileReport {
                file: "ok.yaml".into(),
                outcome: Ok("1 route, 1 backend".into()),
                warnings: ConfigErrors {
                    source_name: "ok.yaml".into(),
                    errors: vec![ConfigError::new(Place::root().key("w"), "careful")],
                },
            },
            FileReport {
                file: "r.yaml".into(),
                outcome: Err(errors),
                warnings: ConfigErrors {
                    source_name: "r.yaml".into(),
                    errors: Vec::new(),
                },
            },
        ]);
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["files"][0]["ok"], true);
        assert_eq!(doc["files"][0]["warnings"][0]["place"], "w");
        assert_eq!(doc["files"][0]["warnings"][0]["message"], "careful");
        let bad = &doc["files"][1];
        assert_eq!(bad["summary"], "1 error");
        assert_eq!(bad["errors"][0]["line"], 10);
        assert_eq!(bad["errors"][0]["column"], 5);
        assert_eq!(bad["errors"][0]["place"], "routes[0].canery");
        assert!(
            bad["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("did you mean `canary`?"),
            "{bad}"
        );
    }
}
