//! Line diff of text bodies (`similar`): one difference per changed hunk,
//! named by its first line in the legacy answer (`body:line 12`).
//!
//! The place is for people; noise is learned per key ([`key`]), and a hunk's
//! key is its content, not its line number: line numbers shift whenever
//! anything above changes, and one key for every line would let one noisy
//! line (a timestamp in a footer) make every difference on the page noise.

use sha2::{Digest, Sha256};
use similar::{DiffTag, TextDiff};

use super::{Collector, DiffKind, MAX_VALUE_CHARS};

/// Characters of the hunk's first line shown in its key.
const SNIPPET_CHARS: usize = 40;
/// A run of letters and digits this long is taken for an id or a token even
/// without a digit (a random token has none often enough).
const LONG_TOKEN: usize = 16;

pub(super) fn compare(a: &str, b: &str, out: &mut Collector) {
    if a == b {
        return;
    }
    let diff = TextDiff::from_lines(a, b);
    for op in diff.ops() {
        let (tag, old, new) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        let old_text: String = diff.old_slices()[old.clone()].concat();
        let new_text: String = diff.new_slices()[new.clone()].concat();
        let kind = match tag {
            DiffTag::Delete => DiffKind::Missing,
            DiffTag::Insert => DiffKind::Added,
            _ => DiffKind::Changed,
        };
        let field = format!("body:line {}", old.start + 1);
        let some = |s: String| (!s.is_empty()).then_some(kept(s));
        out.push(field, kind, some(old_text), some(new_text));
    }
}

/// A hunk as kept. Values are cut to [`MAX_VALUE_CHARS`], and the key is
/// made from what is kept, so a long hunk (a minified page is one line)
/// that is cut ends with the length and a digest of the shape of what was
/// cut: two hunks that differ only after the cut still get two keys. The
/// digest is in letters, so that [`normalize_line`] keeps it.
fn kept(text: String) -> String {
    const HEAD: usize = MAX_VALUE_CHARS - 60;
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let head: String = text.chars().take(HEAD).collect();
    let rest: String = text.chars().skip(HEAD).collect();
    let digest: String = Sha256::digest(normalize(&rest).join("\n"))
        .iter()
        .take(4)
        .flat_map(|b| [b >> 4, b & 15])
        .map(|n| char::from(b'a' + n))
        .collect();
    format!(
        "{head}… [+{} characters, digest {digest}]",
        rest.chars().count()
    )
}

/// The key of a text hunk, from its lines on both sides with what varies
/// from answer to answer collapsed ([`normalize_line`]):
/// `body:text:<8 hex> <first line, cut>`. The hash covers every line of both
/// sides, so the key is that exact change of shape: two legacy answers that
/// differ in a footer's time teach that the footer's time is noise, and
/// nothing else: another line, the footer changed into another shape, or a
/// line added next to it (the same hunk then) are other keys, real until
/// legacy answers are seen to differ the same way. What a noise key can
/// hide is a change of the collapsed parts of its own lines, as a noise
/// JSON field hides a change of its value.
///
/// Bounded (at most 59 characters), stable across requests and line shifts,
/// and it shows no more than the stored difference shows of the same line
/// (numbers, ids and long tokens, where secrets usually are, are collapsed).
pub(super) fn key(legacy: Option<&str>, new: Option<&str>) -> String {
    let legacy = normalize(legacy.unwrap_or(""));
    let new = normalize(new.unwrap_or(""));
    let mut hash = Sha256::new();
    hash.update(legacy.join("\n"));
    // Separates the sides, so that a removed line and an added one differ.
    hash.update([0]);
    hash.update(new.join("\n"));
    let hex: String = hash
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let first = match (legacy.first(), new.first()) {
        (Some(l), _) => l.clone(),
        (None, Some(n)) => format!("+{n}"),
        (None, None) => String::new(),
    };
    let snippet: String = first.chars().take(SNIPPET_CHARS).collect();
    if snippet.is_empty() {
        format!("body:text:{hex}")
    } else {
        format!("body:text:{hex} {snippet}")
    }
}

/// The lines of a hunk, normalized, blank ones left out.
fn normalize(text: &str) -> Vec<String> {
    text.lines()
        .map(normalize_line)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A line with what varies between two answers of the same page collapsed
/// to `#`: UUIDs, runs of letters and digits that hold a digit (numbers,
/// times, hex ids, `web-3`'s `3`) or are [`LONG_TOKEN`] long; whitespace
/// trimmed and collapsed, control characters dropped.
fn normalize_line(line: &str) -> String {
    let chars: Vec<char> = line
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if !out.is_empty() && i < chars.len() {
                out.push(' ');
            }
        } else if c.is_ascii_alphanumeric() {
            if is_uuid(&chars[i..]) {
                out.push('#');
                i += 36;
                continue;
            }
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let run = &chars[start..i];
            if run.len() >= LONG_TOKEN || run.iter().any(char::is_ascii_digit) {
                out.push('#');
            } else {
                out.extend(run);
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether `chars` starts with a UUID (8-4-4-4-12 hex digits) that is not
/// part of a longer run. Its groups may hold no digit (`cafe`), so digit
/// runs alone would not collapse it.
fn is_uuid(chars: &[char]) -> bool {
    if chars.len() < 36 || chars.get(36).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    chars[..36].iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == '-',
        _ => c.is_ascii_hexdigit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_normalized() {
        assert_eq!(
            normalize_line("  <td>Order\t 42  at 10:00:01Z</td>\r"),
            "<td>Order # at #:#:#</td>"
        );
        assert_eq!(
            normalize_line("id=deadbeef-cafe-4bad-a716-446655440000;"),
            "id=#;"
        );
        assert_eq!(
            normalize_line("token=QmFzZTY0Tm9uY2VWYWx1ZQ=="),
            "token=#=="
        );
        assert_eq!(normalize_line("Thank you"), "Thank you");
        assert_eq!(normalize_line(" \t "), "");
    }

    #[test]
    fn long_hunks_are_cut_with_what_tells_them_apart() {
        let page = |total: &str, word: &str| {
            format!(
                "<html><body>{}<p>Total: {total} EUR</p><p>{word}</p><footer>10:00:01</footer></body></html>\n",
                "<li>item</li>".repeat(40)
            )
        };
        let a = kept(page("10.00", "Thanks"));
        let same_key =
            |x: String, y: String| key(Some(&a), Some(&kept(x))) == key(Some(&a), Some(&kept(y)));
        // Another word after the cut: another key.
        assert!(!same_key(page("10.00", "Thanks"), page("10.00", "Goodbye")));
        // The same shape after the cut (numbers aside): the same key.
        assert!(same_key(page("10.00", "Thanks"), page("12.50", "Thanks")));
        // What is kept fits, and says it was cut.
        assert!(a.chars().count() <= MAX_VALUE_CHARS, "{a}");
        assert!(a.contains("… [+"), "{a}");
    }
}
