//! Configuration errors: every problem found in a `routes.yaml`, each with the
//! place it was found (`routes[2].canary`), collected so that one run of
//! `strangler check` reports all of them.

use std::borrow::Cow;
use std::fmt;

use smallvec::SmallVec;

/// One step of a [`Place`]: a key in a mapping or an index in a list. Most
/// keys are the format's own (`routes`, `match`), borrowed rather than copied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Key(Cow<'static, str>),
    Index(usize),
}

/// Where in the file a problem is, printed as `routes[2].shadow.timeout`.
///
/// Compiling makes a place for every part it checks, error or not (10,000
/// routes make about 200,000), so a place as deep as the format goes is
/// held inline and a step with a key of the format costs no allocation:
/// with a vector of owned keys, making places was 8% of a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Place(SmallVec<[Step; 6]>);

impl Place {
    pub fn root() -> Place {
        Place(SmallVec::new())
    }

    pub fn key(&self, key: impl Into<Cow<'static, str>>) -> Place {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.into()));
        Place(steps)
    }

    pub fn index(&self, index: usize) -> Place {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        Place(steps)
    }

    pub fn join(&self, other: &Place) -> Place {
        let mut steps = self.0.clone();
        steps.extend(other.0.iter().cloned());
        Place(steps)
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    pub fn starts_with(&self, prefix: &Place) -> bool {
        self.0.starts_with(&prefix.0)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn parent(&self) -> Option<Place> {
        if self.0.is_empty() {
            None
        } else {
            Some(Place(self.0[..self.0.len() - 1].iter().cloned().collect()))
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                // An empty key (`"": ...`) would print as nothing at all.
                Step::Key(k) if k.is_empty() && i == 0 => f.write_str("\"\"")?,
                Step::Key(k) if k.is_empty() => f.write_str(".\"\"")?,
                Step::Key(k) if i == 0 => f.write_str(k)?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub place: Place,
    pub message: String,
    /// 1-based line in the file, when it could be found (see
    /// [`super::positions`]); absent when there is no text, e.g. an
    /// unreadable file.
    pub line: Option<usize>,
    /// 1-based column, in characters, set with `line`.
    pub column: Option<usize>,
}

impl ConfigError {
    pub fn new(place: Place, message: impl Into<String>) -> ConfigError {
        ConfigError {
            place,
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

impl ConfigError {
    /// `{line, column, place, message}`, as `check --format json` and the
    /// admin API's `POST /reload` give it; `line` and `column` are null when
    /// unknown.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "line": self.line,
            "column": self.column,
            "place": self.place.to_string(),
            "message": self.message,
        })
    }
}

/// `place: message`; the file and position are written by [`ConfigErrors`],
/// which knows the file.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// All problems found in one file. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub source_name: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn single(source_name: &str, place: Place, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors {
            source_name: source_name.to_string(),
            errors: vec![ConfigError::new(place, message)],
        }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// One error as compilers print it, `file:line:column: place: message`
    /// (`file: place: message` when its position is unknown), the form
    /// editors and CI annotators parse.
    pub fn line_of(&self, error: &ConfigError) -> String {
        match (error.line, error.column) {
            (Some(line), Some(column)) => {
                format!("{}:{line}:{column}: {error}", self.source_name)
            }
            (Some(line), None) => format!("{}:{line}: {error}", self.source_name),
            _ => format!("{}: {error}", self.source_name),
        }
    }
}

/// A count line, then one line per error (see [`ConfigErrors::line_of`]).
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{}: {n} error{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n{}", self.line_of(e))?;
        }
        Ok(())
    }
}

/// Accumulates errors while a configuration is compiled. Every part of the
/// compiler records into one sink, so a single run reports every problem.
#[derive(Debug, Default)]
pub struct ErrorSink {
    errors: Vec<ConfigError>,
}

/// A point in an [`ErrorSink`]'s record, for asking later whether a part
/// checked after it was clean (see [`ErrorSink::clean_since`]).
#[derive(Debug, Clone, Copy)]
pub struct ErrorMark(usize);

impl ErrorSink {
    pub fn push(&mut self, place: Place, message: impl Into<String>) {
        self.errors.push(ConfigError::new(place, message));
    }

    pub fn push_error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Records errors found while a part was decoded on its own (their places
    /// relative to it), under the part's place in the file.
    pub fn push_under(&mut self, place: &Place, errors: &[ConfigError]) {
        for e in errors {
            self.push_error(ConfigError::new(place.join(&e.place), e.message.clone()));
        }
    }

    /// Records `Err` results and hands back the `Ok` value.
    pub fn check<T>(&mut self, place: &Place, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.push(place.clone(), message);
                None
            }
        }
    }

    /// The value of an optional key of the part at `place`: `default` when
    /// the key is absent, else what `parse` makes of it (its error recorded
    /// at the key).
    pub fn optional<R: ?Sized, T>(
        &mut self,
        place: &Place,
        key: &'static str,
        raw: Option<&R>,
        default: T,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match raw.map(parse) {
            None => Some(default),
            Some(Ok(value)) => Some(value),
            Some(Err(message)) => {
                self.push(place.key(key), message);
                None
            }
        }
    }

    pub fn mark(&self) -> ErrorMark {
        ErrorMark(self.errors.len())
    }

    /// True when nothing was recorded after `mark`: a part that reported a
    /// problem yields no value, even where the problem left a usable one.
    pub fn clean_since(&self, mark: ErrorMark) -> bool {
        self.errors.len() == mark.0
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_prints_like_a_path() {
        let p = Place::root().key("routes").index(2).key("canary");
        assert_eq!(p.to_string(), "routes[2].canary");
        assert_eq!(
            ConfigError::new(p, "130 is over 100").to_string(),
            "routes[2].canary: 130 is over 100"
        );
    }

    /// Found by fuzz/fuzz_targets/config.rs: the file `'':` was reported as
    /// `: unknown key ""`, with no place at all.
    #[test]
    fn an_empty_key_prints_as_quotes() {
        assert_eq!(Place::root().key("").to_string(), "\"\"");
        let p = Place::root().key("backends").key("").key("url");
        assert_eq!(p.to_string(), "backends.\"\".url");
        let errors = crate::config::parse("'':", "f.yaml").unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("\nf.yaml:1:1: \"\": unknown key \"\""),
            "{errors}"
        );
    }
}
