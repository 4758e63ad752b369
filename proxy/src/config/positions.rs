//! Where a [`Place`] is in the text of a file: line and column, so that
//! every error reads `routes.yaml:12:5: routes[0].canery: ...` and editors
//! can jump to it.
//!
//! serde_yaml does not keep node positions, so the text is walked once more
//! with saphyr's event parser (as `rollback` does for its edits) and each
//! place is paired with the position of its key, or of the node itself for a
//! list element or the top level. A place that is not in the file (a missing
//! key) takes the position of the nearest enclosing place that is.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

use super::error::{ConfigError, Place};

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of every place of one document.
#[derive(Debug, Default)]
pub struct Positions(HashMap<Place, Position>);

impl Positions {
    /// Walks the first document of `text`. Text saphyr cannot read yields
    /// what was read before the fault: serde_yaml reports the fault itself
    /// with its own position.
    pub fn of(text: &str) -> Positions {
        let mut events = Vec::new();
        for item in Parser::new_from_str(text) {
            match item {
                Ok((Event::DocumentEnd, _)) => break,
                Ok((event, span)) => events.push((
                    event,
                    Position {
                        line: span.start.line(),
                        column: span.start.col() + 1,
                    },
                )),
                Err(_) => break,
            }
        }
        let mut walk = Walk {
            events,
            next: 0,
            map: HashMap::new(),
        };
        while walk.next < walk.events.len() {
            if matches!(
                walk.events[walk.next].0,
                Event::MappingStart(..) | Event::SequenceStart(..) | Event::Scalar(..)
            ) {
                walk.node(Place::root(), None, 0);
                break;
            }
            walk.next += 1;
        }
        Positions(walk.map)
    }

    /// The position of `place`, or of the nearest enclosing place in the
    /// file (for a key that is missing, the mapping that lacks it).
    pub fn find(&self, place: &Place) -> Option<Position> {
        let mut p = Some(place.clone());
        while let Some(q) = p {
            if let Some(pos) = self.0.get(&q) {
                return Some(*pos);
            }
            p = q.parent();
        }
        None
    }

    /// Sets the line and column of every error that has none yet.
    pub fn locate(&self, errors: &mut [ConfigError]) {
        for e in errors.iter_mut().filter(|e| e.line.is_none()) {
            if let Some(pos) = self.find(&e.place) {
                e.line = Some(pos.line);
                e.column = Some(pos.column);
            }
        }
    }
}

/// Deeper than serde_yaml reads (it refuses past 128 levels), so no error
/// has a place below it; stopping there keeps the recursion off the stack
/// limit of a reload's thread whatever the file holds.
const MAX_DEPTH: usize = 130;

struct Walk<'a> {
    events: Vec<(Event<'a>, Position)>,
    next: usize,
    map: HashMap<Place, Position>,
}

impl Walk<'_> {
    /// Reads one node at `place`. `at` is where the place was named (its key);
    /// without one the node's own start is used. The first occurrence of a
    /// place wins, as the first of two duplicate keys is the one reported.
    fn node(&mut self, place: Place, at: Option<Position>, depth: usize) {
        let Some((event, start)) = self.events.get(self.next) else {
            return;
        };
        let start = *start;
        self.map.entry(place.clone()).or_insert(at.unwrap_or(start));
        if depth >= MAX_DEPTH {
            self.skip();
            return;
        }
        self.next += 1;
        match event {
            Event::MappingStart(..) => loop {
                match self.events.get(self.next) {
                    None => return,
                    Some((Event::MappingEnd, _)) => {
                        self.next += 1;
                        return;
                    }
                    Some((Event::Scalar(key, ..), key_at)) => {
                        let (child, key_at) = (place.key(key.as_ref().to_owned()), *key_at);
                        self.next += 1;
                        self.node(child, Some(key_at), depth + 1);
                    }
                    // A key that is itself a list or mapping names no place
                    // the configuration can have: skip it and its value.
                    Some(_) => {
                        self.skip();
                        self.skip();
                    }
                }
            },
            Event::SequenceStart(..) => {
                let mut i = 0;
                loop {
                    match self.events.get(self.next) {
                        None => return,
                        Some((Event::SequenceEnd, _)) => {
                            self.next += 1;
                            return;
                        }
                        Some(_) => {
                            self.node(place.index(i), None, depth + 1);
                            i += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Steps over one node and everything inside it.
    fn skip(&mut self) {
        let mut depth = 0usize;
        while let Some((event, _)) = self.events.get(self.next) {
            self.next += 1;
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(positions: &Positions, place: Place) -> (usize, usize) {
        let p = positions.find(&place).unwrap();
        (p.line, p.column)
    }

    #[test]
    fn keys_elements_and_missing_keys_have_positions() {
        let text = "version: 1\nroutes:\n  - name: a\n    match: { path: /a }\n  - name: b\n    canary: [1, 2]\n";
        let p = Positions::of(text);
        let routes = Place::root().key("routes");
        assert_eq!(at(&p, Place::root()), (1, 1));
        assert_eq!(at(&p, routes.clone()), (2, 1));
        assert_eq!(at(&p, routes.index(0).key("match").key("path")), (4, 14));
        assert_eq!(at(&p, routes.index(1).key("canary")), (6, 5));
        assert_eq!(at(&p, routes.index(1).key("canary").index(1)), (6, 17));
        // A missing key: where its mapping starts.
        assert_eq!(at(&p, routes.index(1).key("legacy")), (5, 5));
        assert_eq!(at(&p, routes.index(0).key("match").key("host")), (4, 5));
    }

    #[test]
    fn columns_count_characters_and_odd_keys_are_skipped() {
        let text = "a: \"é\"\n? [x]\n: 1\nb:\n  c: 2\n";
        let p = Positions::of(text);
        assert_eq!(at(&p, Place::root().key("b").key("c")), (5, 3));
        let text = "é: 1\nb: 2\n";
        assert_eq!(at(&Positions::of(text), Place::root().key("b")), (2, 1));
    }

    #[test]
    fn deep_nesting_stays_off_the_stack() {
        let depth = 5_000;
        // Block sequences: saphyr stops flow ones (`[[[`) at 255 levels.
        let text = format!("a:\n  {}x\n", "- ".repeat(depth));
        // A reload parses on a blocking-pool thread; give the walk less stack.
        let p = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || Positions::of(&text))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(at(&p, Place::root().key("a").index(0)), (2, 5));
    }

    #[test]
    fn broken_text_keeps_what_was_read() {
        let p = Positions::of("a: 1\nb: [1, 2\n");
        assert_eq!(at(&p, Place::root().key("a")), (1, 1));
    }
}
