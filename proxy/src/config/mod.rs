//! `routes.yaml`: reading, validating and describing it.
//!
//! The file is read in two steps, as in River: [`raw`] mirrors the file format
//! in serde types, [`compile`] checks it and builds the [`model`] the engine
//! uses. All errors are collected, each with its place ([`error::Place`]).
//! What an absent key means is in [`defaults`]; [`precedence`] orders routes
//! for both the router and the compiler. Nothing in this module resolves a
//! name or opens a socket.

pub mod compile;
pub mod defaults;
pub mod error;
pub mod model;
pub mod path_index;
pub mod positions;
pub mod precedence;
pub mod raw;
pub mod topology;
pub mod units;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, Place};
pub use model::*;

/// Parses and validates a configuration from text. `source_name` (usually the
/// file path) heads the error report; relative paths in it (certificate
/// files) are taken from the working directory.
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    parse_in(text, source_name, Path::new(""))
}

/// [`parse`] with relative paths taken from `base`. Every error carries its
/// line and column in `text`.
pub fn parse_in(text: &str, source_name: &str, base: &Path) -> Result<Config, ConfigErrors> {
    parse_unlocated(text, source_name, base).map_err(|mut errors| {
        positions::Positions::of(text).locate(&mut errors.errors);
        errors
    })
}

fn parse_unlocated(text: &str, source_name: &str, base: &Path) -> Result<Config, ConfigErrors> {
    if text.trim().is_empty() {
        let mut errors = ConfigErrors::single(
            source_name,
            Place::root(),
            "the file is empty (expected version: 1, backends, default and routes)",
        );
        errors.errors[0].line = Some(1);
        errors.errors[0].column = Some(1);
        return Err(errors);
    }
    // The common case, a file that checks, in one pass; anything else is
    // read again below so that every error is found and placed.
    if let Some(raw) = raw::decode_strict::<raw::RawConfig>(text) {
        if let Ok(config) = compile::compile(raw, base) {
            return Ok(config);
        }
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let mut error = ConfigError::new(Place::root(), yaml_syntax_message(&e));
        error.line = e.location().map(|l| l.line());
        error.column = e.location().map(|l| l.column());
        ConfigErrors {
            source_name: source_name.to_string(),
            errors: vec![error],
        }
    })?;
    if !matches!(value, serde_yaml::Value::Mapping(_)) {
        return Err(ConfigErrors::single(
            source_name,
            Place::root(),
            "the file must be a mapping (version: 1, backends: ..., routes: ...)",
        ));
    }
    let decoded = raw::decode_collecting::<raw::RawConfig>(&value);
    // Only a file with errors needs its places in order.
    let order = || DocumentOrder::of(&value);
    let mut errors = decoded.errors;
    let result = match decoded.value {
        Some(raw) => compile::compile(raw, base),
        None => Err(Vec::new()),
    };
    match result {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors {
            source_name: source_name.to_string(),
            errors: order().sort(errors),
        }),
        Err(more) => {
            // A value with a shape error was set aside; the "missing" or
            // "empty" that compiling then finds at the same place is not news.
            let shape_places: Vec<Place> = errors.iter().map(|e| e.place.clone()).collect();
            errors.extend(
                more.into_iter()
                    .filter(|e| !shape_places.contains(&e.place)),
            );
            Err(ConfigErrors {
                source_name: source_name.to_string(),
                errors: order().sort(errors),
            })
        }
    }
}

/// The order in which places appear in the document, so errors are listed
/// top to bottom as the file reads: each place's position, and for each
/// place the last position within it (where a missing key sorts).
struct DocumentOrder {
    position: std::collections::HashMap<Place, usize>,
    last_within: std::collections::HashMap<Place, usize>,
}

impl DocumentOrder {
    fn of(value: &serde_yaml::Value) -> DocumentOrder {
        fn walk(value: &serde_yaml::Value, place: Place, out: &mut Vec<Place>) {
            out.push(place.clone());
            match value {
                serde_yaml::Value::Mapping(m) => {
                    for (k, v) in m {
                        if let Some(k) = k.as_str() {
                            walk(v, place.key(k.to_owned()), out);
                        }
                    }
                }
                serde_yaml::Value::Sequence(s) => {
                    for (i, v) in s.iter().enumerate() {
                        walk(v, place.index(i), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(value, Place::root(), &mut out);
        let mut order = DocumentOrder {
            position: std::collections::HashMap::with_capacity(out.len()),
            last_within: std::collections::HashMap::new(),
        };
        for (i, place) in out.into_iter().enumerate() {
            let mut within = Some(place.clone());
            while let Some(p) = within {
                within = p.parent();
                order.last_within.insert(p, i);
            }
            order.position.entry(place).or_insert(i);
        }
        order
    }

    /// Position of a place; a missing key sorts at the end of its parent's
    /// part of the file. Stable for equal positions.
    fn sort(&self, mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
        let position = |place: &Place| {
            if let Some(i) = self.position.get(place) {
                return 2 * i;
            }
            let mut p = place.parent();
            while let Some(q) = p {
                if let Some(last) = self.last_within.get(&q) {
                    return 2 * last + 1;
                }
                p = q.parent();
            }
            0
        };
        errors.sort_by_cached_key(|e| position(&e.place));
        errors
    }
}

fn yaml_syntax_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    // serde_yaml appends "at line L column C"; the position is reported
    // separately, in front, like every other error's.
    let text = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    format!("not valid YAML: {text}")
}

/// Reads and validates a file; returns the configuration and the exact text it
/// came from (the text is what history records and what edits start from).
pub fn load(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        // Most often a command run from another directory: say how to point
        // it at the file.
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (run from the directory holding it, or give --config FILE or STRANGLER_CONFIG=FILE; the Debian package's is /etc/strangler/routes.yaml)"
        } else {
            ""
        };
        ConfigErrors::single(
            &name,
            Place::root(),
            format!("cannot read the file: {e}{hint}"),
        )
    })?;
    let config = parse_file(&text, path)?;
    Ok((config, text))
}

/// [`parse`] for the text of the file at `path`: paths in it (a relative
/// `sqlite://` store, certificate files) are taken from the file's
/// directory, as nginx takes them from its prefix, so `serve` and every
/// command agree on one store wherever they run from.
pub fn parse_file(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let dir = config_dir(path);
    let mut config = parse_in(text, &path.display().to_string(), &dir)?;
    config.store = config.store.relative_to(&dir);
    Ok(config)
}

/// The absolute directory of a configuration file.
pub fn config_dir(path: &Path) -> std::path::PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests;
