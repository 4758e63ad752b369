//! The JSON Schema of `routes.yaml` (`strangler schema`, committed as
//! `docs/routes.schema.json`) against the files it describes: the committed
//! copy is what the binary prints, the example and every valid fixture
//! satisfy it, the invalid fixtures it can judge are refused, and
//! `docs/configuration.md` documents every key it has.

use std::path::{Path, PathBuf};

use serde_json::Value;
use strangler_e2e::proxy::run_cli;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn printed_schema() -> Value {
    let (code, out, err) = run_cli(&["schema"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("strangler schema prints JSON")
}

fn yaml_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&printed_schema()).expect("the schema is a valid JSON Schema")
}

fn problems(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn the_committed_schema_is_what_strangler_schema_prints() {
    let (code, printed, err) = run_cli(&["schema"]);
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(root().join("docs/routes.schema.json")).unwrap();
    assert!(
        printed == committed,
        "docs/routes.schema.json is stale: run `strangler schema > docs/routes.schema.json`"
    );
}

#[test]
fn the_example_points_editors_at_the_schema() {
    let text = std::fs::read_to_string(root().join("routes.yaml")).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("# yaml-language-server: $schema=./docs/routes.schema.json")
    );
}

#[test]
fn the_example_and_every_valid_fixture_satisfy_the_schema() {
    let validator = validator();
    // The example, the Debian package's /etc/strangler/routes.yaml, and
    // every valid fixture.
    let mut files = vec![
        root().join("routes.yaml"),
        root().join("packaging/routes.yaml"),
    ];
    files.extend(fixtures("valid"));
    assert!(files.len() > 3, "{files:?}");
    for file in files {
        let found = problems(&validator, &yaml_as_json(&file));
        assert!(found.is_empty(), "{}: {found:#?}", file.display());
    }
}

/// Invalid fixtures with a mistake of shape (an unknown key, a value of the
/// wrong type, a missing required key): an editor flags these as you type.
const CAUGHT_BY_THE_SCHEMA: &[&str] = &[
    // `tls.verify` is not a key.
    "backend-tls-health.yaml",
    // An empty document is no mapping.
    "empty.yaml",
    // `allow_writes: yes-please` is no boolean; `{ file: ... }` no header value.
    "record-replay.yaml",
    // `after` is not a key.
    "rollout.yaml",
    // `backends: []` is a list; a route that is a string.
    "structure.yaml",
    "unknown-keys.yaml",
];

/// Invalid fixtures whose mistakes are in the values' meaning, which only
/// `strangler check` knows: a percentage over 100, a duration without a
/// unit (any number or text fits a value's type), names that must refer to
/// a backend, routes that shadow each other, keys that exclude each other.
const SEMANTIC_ONLY: &[&str] = &["topology.yaml", "unreachable.yaml", "values.yaml"];

/// Not YAML at all: the editor's YAML parser reports it, not the schema.
const NOT_YAML: &[&str] = &["truncated.yaml"];

#[test]
fn the_schema_refuses_the_invalid_fixtures_it_can_judge() {
    let validator = validator();
    for file in fixtures("invalid") {
        let name = file.file_name().unwrap().to_str().unwrap();
        if NOT_YAML.contains(&name) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                serde_yaml::from_str::<Value>(&text).is_err(),
                "{name} parses"
            );
            continue;
        }
        let found = problems(&validator, &yaml_as_json(&file));
        if CAUGHT_BY_THE_SCHEMA.contains(&name) {
            assert!(!found.is_empty(), "{name}: the schema accepts it");
        } else if SEMANTIC_ONLY.contains(&name) {
            // If the schema starts catching one, it belongs in the list above.
            assert!(
                found.is_empty(),
                "{name}: the schema refuses it: {found:#?}"
            );
        } else {
            panic!(
                "{name}: new invalid fixture; say in tests/schema.rs whether the schema catches it"
            );
        }
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_where_they_are() {
    let validator = validator();
    let doc: Value = serde_yaml::from_str(
        "version: 1\nbackends:\n  a: { url: http://x, tls_verify: maybe }\ndefault: a\nroutes:\n  - name: r\n    match: { path: /r }\n    new: a\n    shadow: { compare: { ignore_field: [/x] } }\n",
    )
    .unwrap();
    let found = problems(&validator, &doc);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("/backends/a/tls_verify")),
        "{found:#?}"
    );
    // An optional block is "the block or null" (`anyOf`), so the validator
    // blames the block rather than the key inside it.
    assert!(
        found.iter().any(|p| p.starts_with("/routes/0/shadow")),
        "{found:#?}"
    );
    assert_eq!(found.len(), 2, "{found:#?}");
}

/// Every key path of the schema, `routes[].shadow.compare.numeric_tolerance`
/// style: a list is `[]`, a map's entries `NAME`.
fn key_paths(schema: &Value) -> Vec<String> {
    fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                resolve(root, root.pointer(pointer).expect("a $ref that resolves"))
            }
            None => node,
        }
    }
    fn walk(root: &Value, node: &Value, prefix: &str, out: &mut Vec<String>, depth: usize) {
        assert!(depth < 20, "the schema nests too deep at {prefix}");
        let node = resolve(root, node);
        for key in ["anyOf", "oneOf", "allOf"] {
            for branch in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(root, branch, prefix, out, depth + 1);
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if !out.contains(&path) {
                    out.push(path.clone());
                }
                walk(root, v, &path, out, depth + 1);
            }
        }
        if let Some(items) = node.get("items") {
            walk(root, items, &format!("{prefix}[]"), out, depth + 1);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            walk(root, values, &format!("{prefix}.NAME"), out, depth + 1);
        }
    }
    let mut out = Vec::new();
    walk(schema, schema, "", &mut out, 0);
    out
}

#[test]
fn the_configuration_doc_gives_every_key_a_default_and_an_example() {
    let schema = printed_schema();
    let paths = key_paths(&schema);
    // The walk must see the nesting, not just the top level.
    for deep in [
        "routes[].shadow.compare.numeric_tolerance",
        "backends.NAME.health.interval",
        "tenant[].host_label",
        "routes[].replay.headers.NAME.env",
    ] {
        assert!(paths.iter().any(|p| p == deep), "{deep} not in {paths:#?}");
    }
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let mut missing = Vec::new();
    for path in &paths {
        let key = format!("`{path}`");
        match rows.iter().find(|cells| cells[0] == key) {
            // key | meaning | default | example
            Some(cells) => assert!(
                cells.len() == 4 && cells[1..].iter().all(|c| !c.is_empty()),
                "docs/configuration.md: the row of {path} needs a meaning, a default and an example: {cells:?}"
            ),
            None => missing.push(path.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no row for: {missing:#?}"
    );
    // And nothing documented that the format does not have.
    for cells in &rows {
        let key = cells[0].trim_matches('`');
        assert!(
            paths.iter().any(|p| p == key),
            "docs/configuration.md documents {key}, which the schema does not have"
        );
    }
}
