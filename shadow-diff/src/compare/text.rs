//! Line diff of text bodies (`similar`): one difference per changed hunk,
//! named by its first line in the legacy answer.

use similar::{DiffTag, TextDiff};

use super::{Collector, DiffKind};

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
        let some = |s: String| (!s.is_empty()).then_some(s);
        out.push(field, kind, some(old_text), some(new_text));
    }
}
