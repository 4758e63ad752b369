//! Format-preserving edits of `routes.yaml`: change a route's canary or a
//! tenant pin and nothing else. Comments, key order, quoting, flow or block
//! style all stay as the platform team wrote them, so `git diff` shows
//! exactly the change.
//!
//! The file is parsed for positions only (saphyr's event spans); each edit
//! replaces the text of one scalar, or inserts one `key: value` where the
//! key is missing, in the style of the mapping it goes into.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("the file is not valid YAML: {0}")]
    Syntax(String),
    #[error("no route named {0:?} in the file")]
    NoRoute(String),
    #[error("{0} is not a simple value; edit it by hand")]
    NotScalar(String),
    #[error("the file has no routes list")]
    NoRoutes,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    /// `routes[name=route].canary: percent` (the percent as written, e.g. `0`, `12.5`).
    SetCanary { route: String, percent: String },
    /// `routes[name=route].tenants.<tenant>: side` (`legacy` or `new`).
    SetPin {
        route: String,
        tenant: String,
        side: String,
    },
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::SetCanary { route, percent } => write!(f, "{route}: canary {percent}"),
            Edit::SetPin {
                route,
                tenant,
                side,
            } => write!(f, "{route}: tenant {tenant} -> {side}"),
        }
    }
}

/// A parsed node with its byte span in the source.
#[derive(Debug, Clone)]
enum Node {
    Scalar {
        value: String,
        start: usize,
        end: usize,
    },
    Map {
        flow: bool,
        start: usize,
        /// For flow mappings: the position of the closing `}`.
        end: usize,
        entries: Vec<(Node, Node)>,
    },
    Seq {
        items: Vec<Node>,
    },
}

impl Node {
    fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. } | Node::Map { start, .. } => *start,
            Node::Seq { items } => items.first().map(Node::start).unwrap_or(0),
        }
    }

    /// Where the node's text ends (exclusive), for inserting after it.
    fn end(&self) -> usize {
        match self {
            Node::Scalar { end, .. } => *end,
            Node::Map {
                flow: true, end, ..
            } => end + 1,
            Node::Map { entries, start, .. } => {
                entries.last().map(|(_, v)| v.end()).unwrap_or(*start)
            }
            Node::Seq { items } => items.last().map(Node::end).unwrap_or(0),
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => entries.iter().find_map(|(k, v)| match k {
                Node::Scalar { value, .. } if value == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// Converts saphyr's character indices into byte offsets.
struct Offsets(Vec<usize>);

impl Offsets {
    fn new(text: &str) -> Offsets {
        let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        v.push(text.len());
        Offsets(v)
    }

    fn byte(&self, char_index: usize) -> usize {
        self.0
            .get(char_index)
            .copied()
            .unwrap_or_else(|| *self.0.last().unwrap_or(&0))
    }
}

struct Builder<'a> {
    events: Vec<(Event<'a>, Span)>,
    pos: usize,
    offsets: Offsets,
    text: &'a str,
}

impl Builder<'_> {
    fn node(&mut self) -> Option<Node> {
        let (event, span) = self.events.get(self.pos)?.clone();
        self.pos += 1;
        let start = self.offsets.byte(span.start.index());
        let end = self.offsets.byte(span.end.index());
        match event {
            Event::Scalar(value, style, ..) => {
                // Quoted scalars' spans may include trailing blanks.
                let mut end = end.min(self.text.len());
                if style != ScalarStyle::Plain {
                    while end > start && self.text.as_bytes()[end - 1].is_ascii_whitespace() {
                        end -= 1;
                    }
                }
                Some(Node::Scalar {
                    value: value.to_string(),
                    start,
                    end,
                })
            }
            Event::MappingStart(..) => {
                let flow = self.text[start..].starts_with('{');
                let mut entries = Vec::new();
                loop {
                    if let Some((Event::MappingEnd, span)) = self.events.get(self.pos) {
                        let close = self.offsets.byte(span.start.index());
                        self.pos += 1;
                        return Some(Node::Map {
                            flow,
                            start,
                            end: close,
                            entries,
                        });
                    }
                    let k = self.node()?;
                    let v = self.node()?;
                    entries.push((k, v));
                }
            }
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    if let Some((Event::SequenceEnd, _)) = self.events.get(self.pos) {
                        self.pos += 1;
                        return Some(Node::Seq { items });
                    }
                    items.push(self.node()?);
                }
            }
            Event::Alias(_) => Some(Node::Scalar {
                value: String::new(),
                start,
                end,
            }),
            _ => self.node(),
        }
    }
}

fn parse(text: &str) -> Result<Node, EditError> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| EditError::Syntax(e.to_string()))?;
        events.push((event, span));
    }
    let mut b = Builder {
        events,
        pos: 0,
        offsets: Offsets::new(text),
        text,
    };
    b.node()
        .ok_or_else(|| EditError::Syntax("empty document".into()))
}

/// A plain YAML scalar when safe, else a double-quoted one.
fn yaml_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// Column of a byte offset (characters since the line start).
fn column(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    text[line_start..offset].chars().count()
}

/// End of the line containing `offset` (the position of its `\n`, or the end
/// of the text), skipping a trailing comment.
fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map(|i| offset + i)
        .unwrap_or(text.len())
}

#[derive(Debug)]
struct Splice {
    at: usize,
    remove: usize,
    insert: String,
}

/// Sets `key: value` in the mapping `map`: replaces the value's text, or
/// inserts the entry in the mapping's own style (`key_text` is the key as it
/// is to be written).
fn set_in_map(
    text: &str,
    map: &Node,
    key: &str,
    key_text: &str,
    value: &str,
    what: &str,
) -> Result<Splice, EditError> {
    if let Some(existing) = map.get(key) {
        return match existing {
            Node::Scalar { start, end, .. } => Ok(Splice {
                at: *start,
                remove: end - start,
                insert: value.to_string(),
            }),
            _ => Err(EditError::NotScalar(what.to_string())),
        };
    }
    match map {
        Node::Map {
            flow: true,
            end,
            entries,
            ..
        } => Ok(match entries.last() {
            // After the last entry, keeping whatever spacing precedes `}`.
            Some((_, last)) => Splice {
                at: last.end(),
                remove: 0,
                insert: format!(", {key_text}: {value}"),
            },
            None => Splice {
                at: *end,
                remove: 0,
                insert: format!("{key_text}: {value}"),
            },
        }),
        Node::Map { entries, .. } => {
            let (first_key, _) = entries
                .first()
                .ok_or_else(|| EditError::NotScalar(what.to_string()))?;
            let indent = column(text, first_key.start());
            Ok(Splice {
                at: line_end(text, map.end()),
                remove: 0,
                insert: format!("\n{}{key_text}: {value}", " ".repeat(indent)),
            })
        }
        _ => Err(EditError::NotScalar(what.to_string())),
    }
}

fn find_route<'n>(root: &'n Node, route: &str) -> Result<&'n Node, EditError> {
    let Some(Node::Seq { items }) = root.get("routes") else {
        return Err(EditError::NoRoutes);
    };
    items
        .iter()
        .find(|r| r.get("name").and_then(Node::scalar) == Some(route))
        .ok_or_else(|| EditError::NoRoute(route.to_string()))
}

/// Applies one edit; returns the new text.
pub fn apply(text: &str, edit: &Edit) -> Result<String, EditError> {
    let root = parse(text)?;
    let splice = match edit {
        Edit::SetCanary { route, percent } => {
            let r = find_route(&root, route)?;
            let what = format!("routes[{route}].canary");
            set_in_map(text, r, "canary", "canary", percent, &what)?
        }
        Edit::SetPin {
            route,
            tenant,
            side,
        } => {
            let r = find_route(&root, route)?;
            let what = format!("routes[{route}].tenants");
            match r.get("tenants") {
                Some(pins @ Node::Map { .. }) => {
                    set_in_map(text, pins, tenant, &yaml_string(tenant), side, &what)?
                }
                Some(_) => return Err(EditError::NotScalar(what)),
                None => {
                    let pins = format!("{{ {}: {side} }}", yaml_string(tenant));
                    set_in_map(text, r, "tenants", "tenants", &pins, &what)?
                }
            }
        }
    };
    let mut out = String::with_capacity(text.len() + splice.insert.len());
    out.push_str(&text[..splice.at]);
    out.push_str(&splice.insert);
    out.push_str(&text[splice.at + splice.remove..]);
    Ok(out)
}

/// Applies edits in order.
pub fn apply_all(text: &str, edits: &[Edit]) -> Result<String, EditError> {
    let mut text = text.to_string();
    for e in edits {
        text = apply(&text, e)?;
    }
    Ok(text)
}

/// A route's canary as written and its pins (tenant, side).
pub type RouteState = (Option<String>, Vec<(String, String)>);

/// The canary value and pins of a route as the file says.
pub fn route_state(text: &str, route: &str) -> Result<RouteState, EditError> {
    let root = parse(text)?;
    let r = find_route(&root, route)?;
    let canary = r.get("canary").and_then(Node::scalar).map(str::to_string);
    let pins = match r.get("tenants") {
        Some(Node::Map { entries, .. }) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.scalar()?.to_string(), v.scalar()?.to_string())))
            .collect(),
        _ => Vec::new(),
    };
    Ok((canary, pins))
}

/// Route names in file order.
pub fn route_names(text: &str) -> Result<Vec<String>, EditError> {
    let root = parse(text)?;
    let Some(Node::Seq { items }) = root.get("routes") else {
        return Ok(Vec::new());
    };
    Ok(items
        .iter()
        .filter_map(|r| r.get("name").and_then(Node::scalar).map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests;
