//! `strangler check`: validate files like `nginx -t`.

use crate::cli::CheckArgs;
use crate::config::{self, ConfigError, ConfigErrors, Place};

/// Prints a verdict per file; returns the process exit code.
pub fn run(args: &CheckArgs) -> i32 {
    let mut failed = 0;
    for file in &args.files {
        match check_file(file, args.resolve) {
            Ok(summary) => println!("{}: ok ({summary})", file.display()),
            Err(errors) => {
                failed += 1;
                eprintln!("{errors}");
            }
        }
    }
    if failed > 0 { 1 } else { 0 }
}

fn check_file(file: &std::path::Path, resolve: bool) -> Result<String, ConfigErrors> {
    let (config, _) = config::load(file)?;
    for w in config.warnings() {
        eprintln!("WARNING {}: {w}", file.display());
    }
    if resolve {
        let mut errors = Vec::new();
        for b in &config.backends {
            for (i, e) in b.endpoints.iter().enumerate() {
                if let Err(msg) = crate::live::upstream::resolve_endpoint(e) {
                    let place = Place::root().key("backends").key(b.name.as_str());
                    let place = if b.endpoints.len() == 1 {
                        place.key("url")
                    } else {
                        place.key("urls").index(i)
                    };
                    errors.push(ConfigError::new(place, msg));
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors {
                source_name: file.display().to_string(),
                errors,
            });
        }
    }
    Ok(format!(
        "{} route{}, {} backend{}",
        config.routes.len(),
        if config.routes.len() == 1 { "" } else { "s" },
        config.backends.len(),
        if config.backends.len() == 1 { "" } else { "s" },
    ))
}
