//! Where a meshguard configuration document comes from: a JSON file as the
//! filter reads it, or the manifests that carry it into a mesh (Istio
//! `WasmPlugin` `spec.pluginConfig`, the Wasm filter `configuration` inside an
//! `EnvoyFilter`, the sidecar's `ConfigMap` key `plugin.json`).
//!
//! Every document found is handed to the filter's own validator unchanged in
//! meaning: a manifest's YAML object becomes the JSON text Istio would pass to
//! the plugin.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The Envoy Wasm HTTP filter's config type, in `EnvoyFilter` patches.
const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// What is searched for in manifests, for messages.
pub const LOOKED_FOR: &str = "WasmPlugin spec.pluginConfig, Envoy Wasm filter `configuration` in EnvoyFilter patches, ConfigMap data `plugin.json`";
/// The `ConfigMap` key the sidecar manifests mount as its plugin configuration.
pub const CONFIG_MAP_KEY: &str = "plugin.json";

/// One configuration document found in a file.
#[derive(Debug)]
pub struct ConfigSource {
    /// Where it was found, for messages: `istio/wasmplugin.yaml WasmPlugin/meshguard spec.pluginConfig`.
    pub label: String,
    /// `metadata.name` of the manifest object it came from, if any.
    pub object: Option<String>,
    /// The JSON document, or why it could not be taken out of the manifest.
    pub document: Result<Vec<u8>, String>,
    /// True when the JSON was re-serialised from YAML: serde's line and
    /// column then point into text the operator never wrote.
    pub from_manifest: bool,
}

/// Reads `path` and returns every meshguard configuration in it. A JSON file
/// is one configuration; a YAML file is read as Kubernetes manifests and may
/// hold none (a Service, a DestinationRule).
pub fn load(path: &Path) -> Result<Vec<ConfigSource>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    if is_json(path, &text) {
        return Ok(vec![ConfigSource { label: shown, object: None, document: Ok(text.into_bytes()), from_manifest: false }]);
    }
    let mut found = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| format!("{shown}: YAML document {} is not valid: {e}", index + 1))?;
        collect(&value, &shown, &mut found);
    }
    Ok(found)
}

fn is_json(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => text.trim_start().starts_with('{'),
    }
}

fn collect(value: &Value, file: &str, found: &mut Vec<ConfigSource>) {
    if value.is_null() {
        return; // an empty document, e.g. after a trailing `---`
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind == "List" {
        for item in value.get("items").and_then(Value::as_array).into_iter().flatten() {
            collect(item, file, found);
        }
        return;
    }
    let name = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
    let object = format!("{file} {kind}/{}", name.as_deref().unwrap_or("?"));
    let source = |label: String, document| ConfigSource { label, object: name.clone(), document, from_manifest: true };
    match kind {
        "WasmPlugin" => {
            // Istio hands the plugin `pluginConfig` as JSON text; none at all
            // reaches the plugin as an empty configuration.
            let document = match value.pointer("/spec/pluginConfig") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(config) => serde_json::to_vec(config).map_err(|e| e.to_string()),
            };
            found.push(source(format!("{object} spec.pluginConfig"), document));
        }
        "EnvoyFilter" => {
            let patches = value.pointer("/spec/configPatches").and_then(Value::as_array);
            for (index, patch) in patches.into_iter().flatten().enumerate() {
                if let Some(patch_value) = patch.pointer("/patch/value") {
                    let at = format!("{object} spec.configPatches[{index}].patch.value");
                    wasm_configs(patch_value, &at, &mut |label, document| found.push(source(label, document)));
                }
            }
        }
        "ConfigMap" => {
            if let Some(text) = value.pointer("/data").and_then(|d| d.get(CONFIG_MAP_KEY)) {
                let document = text.as_str().map(|t| t.as_bytes().to_vec()).ok_or_else(|| "is not a string".to_string());
                found.push(source(format!("{object} data.{CONFIG_MAP_KEY}"), document));
            }
        }
        _ => {}
    }
}

/// Finds Wasm filter configs anywhere under an `EnvoyFilter` patch value (a
/// `typed_config` of an HTTP filter, or an ECDS extension config).
fn wasm_configs(value: &Value, at: &str, emit: &mut dyn FnMut(String, Result<Vec<u8>, String>)) {
    match value {
        Value::Object(fields) => {
            if fields.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE) {
                let label = format!("{at} (Wasm config.configuration)");
                let document = match fields.get("config").and_then(|c| c.get("configuration")) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(configuration) => string_value(configuration),
                };
                emit(label, document);
                return;
            }
            for (key, child) in fields {
                wasm_configs(child, &format!("{at}.{key}"), emit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                wasm_configs(child, &format!("{at}[{index}]"), emit);
            }
        }
        _ => {}
    }
}

/// The filter reads its configuration as raw text, which Envoy only passes
/// through unchanged from a `google.protobuf.StringValue`.
fn string_value(configuration: &Value) -> Result<Vec<u8>, String> {
    let kind = configuration.get("@type").and_then(Value::as_str).unwrap_or_default();
    if kind != STRING_VALUE_TYPE {
        return Err(format!("`configuration` must be a `{STRING_VALUE_TYPE}` holding the JSON document, found `@type: {kind}`"));
    }
    match configuration.get("value") {
        Some(Value::String(text)) => Ok(text.as_bytes().to_vec()),
        None => Ok(Vec::new()),
        Some(_) => Err("`configuration.value` must be a string holding the JSON document".to_string()),
    }
}

/// serde_json's "at line L column C" locates a position in the re-serialised
/// JSON of a manifest, which means nothing to its author; the field path stays.
pub fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => &message[..at],
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml(text: &str) -> Vec<ConfigSource> {
        let mut found = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            collect(&Value::deserialize(document).unwrap(), "f.yaml", &mut found);
        }
        found
    }

    #[test]
    fn wasm_plugin_config_becomes_json() {
        let found = from_yaml("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: mg}\nspec:\n  pluginConfig:\n    version: 1\n    limits: {max_request_bytes: 1048576}\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label, "f.yaml WasmPlugin/mg spec.pluginConfig");
        let doc: Value = serde_json::from_slice(found[0].document.as_ref().unwrap()).unwrap();
        assert_eq!(doc["limits"]["max_request_bytes"], 1048576);
    }

    #[test]
    fn envoy_filter_string_value_is_taken_verbatim() {
        let found = from_yaml(concat!(
            "kind: EnvoyFilter\nmetadata: {name: ef}\nspec:\n  configPatches:\n  - applyTo: EXTENSION_CONFIG\n    patch:\n      value:\n",
            "        name: meshguard\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n",
            "          config:\n            configuration:\n              \"@type\": type.googleapis.com/google.protobuf.StringValue\n              value: '{\"version\": 1}'\n",
            "---\n"
        ));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].document.as_deref().unwrap(), br#"{"version": 1}"#);
        assert!(found[0].label.contains("configPatches[0].patch.value.typed_config"));
    }

    #[test]
    fn envoy_filter_struct_configuration_is_refused() {
        let found = from_yaml(concat!(
            "kind: EnvoyFilter\nmetadata: {name: ef}\nspec:\n  configPatches:\n  - patch:\n      value:\n        typed_config:\n",
            "          \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n",
            "          config: {configuration: {\"@type\": type.googleapis.com/google.protobuf.Struct, value: {}}}\n"
        ));
        assert!(found[0].document.as_ref().unwrap_err().contains("StringValue"));
    }

    #[test]
    fn lists_and_config_maps_are_searched() {
        let found = from_yaml("kind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: cm}\n  data: {plugin.json: '{}', other: x}\n- kind: Service\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].object.as_deref(), Some("cm"));
    }

    #[test]
    fn positions_are_stripped_but_paths_stay() {
        assert_eq!(strip_position("unknown variant `x`, expected `a` at line 1 column 9"), "unknown variant `x`, expected `a`");
        assert_eq!(strip_position("must be between 1 and 60000"), "must be between 1 and 60000");
    }
}
