use super::*;
use crate::rules::FieldPattern;

fn json(status: u16, body: &str) -> Exchange {
    Exchange {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn fields(c: &Comparison) -> Vec<&str> {
    c.differences.iter().map(|d| d.field.as_str()).collect()
}

fn rules(ignore: &[&str], unordered: &[&str], tol: f64) -> CompareRules {
    CompareRules {
        ignore_headers: vec![],
        ignore_fields: ignore
            .iter()
            .map(|p| FieldPattern::parse(p).unwrap())
            .collect(),
        unordered_arrays: unordered
            .iter()
            .map(|p| FieldPattern::parse(p).unwrap())
            .collect(),
        numeric_tolerance: tol,
    }
}

#[test]
fn key_order_and_formatting_never_count() {
    let a = json(200, r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
    let b = json(
        200,
        "{\n  \"b\": {\"y\": null, \"x\": [1,2]},\n  \"a\": 1\n}",
    );
    let c = compare(&CompareRules::default(), &a, &b);
    assert!(c.is_match(), "{c:?}");
    assert_eq!(c.body_kind, BodyKind::Json);
}

#[test]
fn every_differing_place_is_named_with_both_values() {
    let a = json(
        200,
        r#"{"id": 7, "status": "shipped", "items": [{"price": 10}, {"price": 20}], "old": true}"#,
    );
    let b = json(
        404,
        r#"{"id": 7, "state": "shipped", "items": [{"price": 10}, {"price": 21}, {"price": 5}]}"#,
    );
    let c = compare(&CompareRules::default(), &a, &b);
    assert_eq!(
        fields(&c),
        vec![
            "status",
            "/items/1/price",
            "/items/2",
            "/old",
            "/state",
            "/status"
        ]
    );
    let price = &c.differences[1];
    assert_eq!(
        (price.legacy.as_deref(), price.new.as_deref()),
        (Some("20"), Some("21"))
    );
    assert_eq!(c.differences[2].kind, DiffKind::Added);
    assert_eq!(c.differences[3].kind, DiffKind::Missing);
    assert_eq!(c.differences[5].legacy.as_deref(), Some("\"shipped\""));
    assert_eq!(c.differences[1].field_key(), "/items/*/price");
}

#[test]
fn ignored_fields_unordered_arrays_and_tolerance() {
    let a = json(
        200,
        r#"{"meta": {"generated_at": 1}, "items": [{"etag": "a", "n": 1}], "tags": ["x", "y", "y"], "total": 100.0}"#,
    );
    let b = json(
        200,
        r#"{"meta": {"generated_at": 2}, "items": [{"etag": "b", "n": 1}], "tags": ["y", "x", "y"], "total": 100.05}"#,
    );
    let c = compare(
        &rules(&["/meta/generated_at", "/items/*/etag"], &["/tags"], 0.001),
        &a,
        &b,
    );
    assert!(c.is_match(), "{c:?}");
    // Without the rules, each is a difference.
    let c = compare(&CompareRules::default(), &a, &b);
    assert_eq!(
        fields(&c),
        vec![
            "/items/0/etag",
            "/meta/generated_at",
            "/tags/0",
            "/tags/1",
            "/total"
        ]
    );
    // Unordered still sees a changed multiset.
    let d = json(200, r#"{"tags": ["x", "y", "z"]}"#);
    let e = json(200, r#"{"tags": ["y", "x", "y"]}"#);
    let c = compare(&rules(&[], &["/tags"], 0.0), &d, &e);
    assert_eq!(c.differences.len(), 1, "{c:?}");
}

#[test]
fn headers_after_ignore_rules() {
    let mut a = json(200, "{}");
    let mut b = json(200, "{}");
    a.headers.push(("date".into(), "Mon".into()));
    b.headers.push(("date".into(), "Tue".into()));
    a.headers.push(("cache-control".into(), "no-store".into()));
    b.headers.push(("x-new".into(), "1".into()));
    b.headers[0].1 = "application/json; charset=utf-8".into();
    let c = compare(&CompareRules::default(), &a, &b);
    assert_eq!(
        fields(&c),
        vec![
            "header:cache-control",
            "header:content-type",
            "header:x-new"
        ]
    );
    let r = CompareRules {
        ignore_headers: vec!["x-new".into(), "cache-control".into()],
        ..Default::default()
    };
    assert_eq!(fields(&compare(&r, &a, &b)), vec!["header:content-type"]);
}

#[test]
fn text_bodies_by_line_and_binary_by_hash() {
    let t = |body: &str| Exchange {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: body.as_bytes().to_vec(),
    };
    let c = compare(
        &CompareRules::default(),
        &t("a\nb\nc\nd\n"),
        &t("a\nB\nc\nd\ne\n"),
    );
    assert_eq!(c.body_kind, BodyKind::Text);
    assert_eq!(fields(&c), vec!["body:line 2", "body:line 5"]);
    assert_eq!(c.differences[0].legacy.as_deref(), Some("b\n"));
    assert_eq!(c.differences[0].new.as_deref(), Some("B\n"));
    assert!(
        c.differences[0].field_key().starts_with("body:text:"),
        "{}",
        c.differences[0].field_key()
    );

    let bin = |body: &[u8]| Exchange {
        status: 200,
        headers: vec![("content-type".into(), "image/png".into())],
        body: body.to_vec(),
    };
    let c = compare(
        &CompareRules::default(),
        &bin(&[0, 159, 146, 150]),
        &bin(&[0, 159, 146, 151, 1]),
    );
    assert_eq!(c.body_kind, BodyKind::Binary);
    assert_eq!(fields(&c), vec!["body"]);
    assert!(
        c.differences[0]
            .legacy
            .as_deref()
            .unwrap()
            .starts_with("4 bytes, sha256 ")
    );
    assert!(
        compare(
            &CompareRules::default(),
            &bin(&[1, 2, 255]),
            &bin(&[1, 2, 255])
        )
        .is_match()
    );
}

#[test]
fn json_against_an_error_page_falls_back_to_text() {
    let a = json(200, r#"{"ok": true}"#);
    let b = Exchange {
        status: 502,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html>Bad gateway</html>".to_vec(),
    };
    let c = compare(&CompareRules::default(), &a, &b);
    assert_eq!(c.body_kind, BodyKind::Text);
    assert!(fields(&c).contains(&"status"));
    assert!(fields(&c).contains(&"body:line 1"));
}

#[test]
fn differences_are_capped() {
    let a: String = format!(
        "[{}]",
        (0..200)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let b: String = format!(
        "[{}]",
        (0..200)
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let c = compare(&CompareRules::default(), &json(200, &a), &json(200, &b));
    assert_eq!(c.differences.len(), MAX_DIFFERENCES);
    assert_eq!(c.more, 200 - MAX_DIFFERENCES);
}

fn line(legacy: Option<&str>, new: Option<&str>) -> Difference {
    Difference {
        field: "body:line 3".into(),
        kind: match (legacy, new) {
            (Some(_), Some(_)) => DiffKind::Changed,
            (Some(_), None) => DiffKind::Missing,
            _ => DiffKind::Added,
        },
        legacy: legacy.map(str::to_string),
        new: new.map(str::to_string),
    }
}

#[test]
fn text_lines_are_keyed_by_their_content_not_their_number() {
    let stamp = |t: &str, n: &str| format!("  <footer>Generated {t} by web-{n}</footer>\n");
    let a = line(
        Some(&stamp("2026-11-22 10:00:01", "3")),
        Some(&stamp("2026-11-22 10:00:02", "3")),
    );
    // The same line elsewhere in the page, at other times, on another host,
    // indented differently: one key.
    let mut b = line(
        Some(&stamp("2026-11-23 09:59:59", "12")),
        Some(&stamp("2026-11-23 10:00:00", "12")),
    );
    b.field = "body:line 40".into();
    b.legacy = b.legacy.map(|l| l.trim_start().to_string());
    assert_eq!(a.field_key(), b.field_key());
    assert!(a.field_key().starts_with("body:text:"), "{}", a.field_key());
    assert!(
        a.field_key()
            .contains("<footer>Generated #-#-# #:#:# by web-#"),
        "readable: {}",
        a.field_key()
    );
    // Ids and tokens are collapsed too.
    let id = |u: &str, tok: &str| format!("<meta name=\"req\" content=\"{u}\" nonce=\"{tok}\">");
    assert_eq!(
        line(
            Some(&id(
                "deadbeef-cafe-4bad-a716-446655440000",
                "QmFzZTY0Tm9uY2VWYWx1ZQ"
            )),
            Some(&id(
                "550e8400-e29b-41d4-a716-446655440000",
                "OtherNonceValueWithoutDigit"
            )),
        )
        .field_key(),
        line(
            Some(&id(
                "123e4567-e89b-12d3-a456-426614174000",
                "AnotherLongRandomNonceXyz"
            )),
            Some(&id(
                "face0000-babe-4cab-8ace-0123456789ab",
                "YetAnotherLongNonceValue"
            )),
        )
        .field_key()
    );

    // Another line, or the same line changed into another shape, is another
    // key: the price is not the footer, and a footer that gained a line is
    // not the footer's usual change.
    let price = line(
        Some("<p>Total: 10.00 EUR</p>\n"),
        Some("<p>Total: 12.00 EUR</p>\n"),
    );
    assert_ne!(price.field_key(), a.field_key());
    let grown = line(
        Some(&stamp("2026-11-22 10:00:01", "3")),
        Some(&(stamp("2026-11-22 10:00:02", "3") + "<p>Total: 12.00 EUR</p>\n")),
    );
    assert_ne!(grown.field_key(), a.field_key());
    let gone = line(Some(&stamp("2026-11-22 10:00:01", "3")), None);
    let added = line(None, Some(&stamp("2026-11-22 10:00:01", "3")));
    assert_ne!(gone.field_key(), a.field_key());
    assert_ne!(gone.field_key(), added.field_key());

    // Bounded, whatever the line.
    let long = "word ".repeat(2000);
    let k = line(Some(&long), Some("x")).field_key();
    assert!(k.chars().count() <= 64, "{k}");
    assert_ne!(
        k,
        line(Some(&(long.clone() + "more")), Some("x")).field_key()
    );
}
