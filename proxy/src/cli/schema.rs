//! `strangler schema`: the JSON Schema of `routes.yaml`, derived from the
//! serde types the parser reads the file with ([`crate::config::raw`]), so
//! the schema an editor checks against cannot drift from what `check`
//! accepts. `docs/routes.schema.json` is this output, committed.

/// The schema as pretty JSON, ending in a newline.
pub fn render() -> String {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<crate::config::raw::RawConfig>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
