//! `strangler check` reports like a compiler: one `file:line:column: place:
//! message` line per error, a "did you mean" for a mistyped key, and
//! `--format json` for CI, with the exit codes unchanged.

use serde_json::Value;
use strangler_e2e::proxy::run_cli;

const BAD: &str = "version: 1
backends:
  monolith: { url: \"http://127.0.0.1:9001\" }
  orders: { url: \"http://127.0.0.1:9002\" }
default: monolith
routes:
  - name: orders
    match: { path: /api/orders }
    new: orders
    canery: 10
    shadow: { timeout: soon }
";

const GOOD: &str = "version: 1
backends:
  monolith: { url: \"http://127.0.0.1:9001\" }
  orders: { url: \"http://127.0.0.1:9002\" }
default: monolith
routes:
  - name: orders
    match: { path: /api/orders }
    new: orders
";

fn files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let good = dir.path().join("good.yaml");
    std::fs::write(&bad, BAD).unwrap();
    std::fs::write(&good, GOOD).unwrap();
    let name = |p: std::path::PathBuf| p.display().to_string();
    (dir, name(good), name(bad))
}

#[test]
fn each_error_is_a_line_editors_can_jump_to() {
    let (_dir, good, bad) = files();
    let (code, out, err) = run_cli(&["check", &good, &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!("{good}: ok (1 route, 2 backends)")),
        "{out}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{bad}: 2 errors"),
            format!(
                "{bad}:10:5: routes[0].canery: unknown key \"canery\" (did you mean `canary`?)"
            ),
            format!(
                "{bad}:11:15: routes[0].shadow.timeout: \"soon\" is not a duration (expected e.g. 500ms, 2s, 5m)"
            ),
        ],
        "{err}"
    );
}

#[test]
fn json_gives_every_file_and_error_in_one_document() {
    let (_dir, good, bad) = files();
    let (code, out, err) = run_cli(&["check", "--format", "json", &good, &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "", "nothing on stderr");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], false);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], good.as_str());
    assert_eq!(files[0]["ok"], true);
    assert_eq!(files[0]["summary"], "1 route, 2 backends");
    assert_eq!(files[0]["errors"], Value::Array(Vec::new()));
    assert_eq!(files[1]["ok"], false);
    assert_eq!(files[1]["summary"], "2 errors");
    let e = &files[1]["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(10), Some(5))
    );
    assert_eq!(e["place"], "routes[0].canery");
    assert_eq!(
        e["message"],
        "unknown key \"canery\" (did you mean `canary`?)"
    );
    assert_eq!(files[1]["errors"][1]["line"], 11);

    let (code, out, _) = run_cli(&["check", "--format", "json", &good]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true);
}

#[test]
fn an_unreadable_file_has_no_position_and_an_unknown_format_is_a_usage_error() {
    let (code, out, _) = run_cli(&["check", "--format", "json", "/nonexistent/r.yaml"]);
    assert_eq!(code, 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let e = &doc["files"][0]["errors"][0];
    assert!(e["line"].is_null() && e["column"].is_null(), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the file"),
        "{e}"
    );

    let (code, _, err) = run_cli(&["check", "--format", "xml", "r.yaml"]);
    assert_eq!(code, 2, "{err}");
}
