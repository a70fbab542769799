//! A small Swagger 2.0 schema checker: `$ref` (to `#/definitions/…`), `allOf`, `type`,
//! `required`, `properties`, `additionalProperties`, `items`, `enum` and `format: date-time`.
//!
//! The emulator uses it twice: request bodies are checked against the excerpt's request schemas
//! (types, enums and dates: a wrong type is a 400 `invalid.value`, as on the platform), and the
//! route-check test checks real responses against the response schemas (then `required` is
//! enforced too, and `null` is never allowed: the SDKs crash on a `null` enum).
//!
//! A bare `{"type": "object"}` without `properties`/`additionalProperties` is how the SDK
//! generator writes "any JSON value" (e.g. `ContactsPatchChange.value`), so it accepts anything.

use std::sync::LazyLock;

use serde_json::Value;

/// The Swagger 2.0 excerpt of the Genesys Cloud API the emulator implements (a copy of
/// `shared/genesys/openapi-excerpt.json`), embedded at build time.
pub const OPENAPI_EXCERPT: &str = include_str!("../tests/fixtures/openapi-excerpt.json");

static EXCERPT: LazyLock<SwaggerDoc> = LazyLock::new(|| {
    // The embedded file is checked by a unit test; an unparsable copy yields an empty document
    // (every route check then fails loudly in tests rather than panicking at run time).
    SwaggerDoc::parse(OPENAPI_EXCERPT).unwrap_or(SwaggerDoc { doc: Value::Null })
});

/// What to enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Request bodies: types, enums, formats; `null` means absent; `required` not enforced
    /// (handlers enforce what the platform requires, with the platform's messages).
    Request,
    /// Responses: everything, including `required`; `null` is an error.
    Response,
}

/// A parsed Swagger 2.0 document.
#[derive(Debug, Clone)]
pub struct SwaggerDoc {
    doc: Value,
}

impl SwaggerDoc {
    /// Parses a Swagger 2.0 JSON document.
    pub fn parse(text: &str) -> Result<SwaggerDoc, serde_json::Error> {
        Ok(SwaggerDoc {
            doc: serde_json::from_str(text)?,
        })
    }

    /// The embedded Genesys excerpt.
    pub fn excerpt() -> &'static SwaggerDoc {
        &EXCERPT
    }

    /// The raw document.
    pub fn raw(&self) -> &Value {
        &self.doc
    }

    /// The operation object for `method` (any case) and a path template.
    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.doc
            .get("paths")?
            .get(path)?
            .get(method.to_ascii_lowercase())
    }

    /// The schema of the `in: body` parameter of an operation, if it has one.
    pub fn request_body_schema(&self, method: &str, path: &str) -> Option<&Value> {
        self.operation(method, path)?
            .get("parameters")?
            .as_array()?
            .iter()
            .find(|p| p.get("in").and_then(Value::as_str) == Some("body"))?
            .get("schema")
    }

    /// `None`: the status is not documented for the operation; `Some(None)`: documented
    /// without a body; `Some(Some(schema))`: documented with a schema.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> Option<Option<&Value>> {
        let op = self.operation(method, path)?;
        let resp = op.get("responses")?.get(status.to_string())?;
        let resp = match resp.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(r)?,
            None => resp,
        };
        Some(resp.get("schema"))
    }

    /// Resolves a local `$ref` such as `#/definitions/ErrorBody` or `#/responses/400`.
    pub fn resolve(&self, reference: &str) -> Option<&Value> {
        let mut cur = &self.doc;
        for seg in reference.strip_prefix("#/")?.split('/') {
            cur = cur.get(seg)?;
        }
        Some(cur)
    }

    /// Validates `value` against `schema`; returns every problem found, each prefixed with its
    /// JSON path (`$.entities[0].data.x`). Empty means valid.
    pub fn validate(&self, value: &Value, schema: &Value, mode: Mode) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(value, schema, mode, "$", &mut errors, 0);
        errors
    }

    fn check(
        &self,
        value: &Value,
        schema: &Value,
        mode: Mode,
        at: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 {
            errors.push(format!("{at}: schema nesting too deep"));
            return;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Some(target) => self.check(value, target, mode, at, errors, depth + 1),
                None => errors.push(format!("{at}: unresolvable $ref {r}")),
            }
            return;
        }
        if value.is_null() {
            if mode == Mode::Response {
                errors.push(format!("{at}: null is not allowed in a response"));
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(value, s, mode, at, errors, depth + 1);
            }
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let type_ok = match ty {
            Some("object") => {
                let bare = schema.get("properties").is_none()
                    && schema.get("additionalProperties").is_none();
                bare || value.is_object()
            }
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some(other) => {
                errors.push(format!("{at}: schema has unknown type {other}"));
                return;
            }
            None => true,
        };
        if !type_ok {
            errors.push(format!(
                "{at}: expected {}, got {}",
                ty.unwrap_or("?"),
                json_type(value)
            ));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!(
                "{at}: value {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && let Some(s) = value.as_str()
            && chrono::DateTime::parse_from_rfc3339(s).is_err()
        {
            errors.push(format!("{at}: {s:?} is not an ISO-8601 date-time"));
        }
        if let Some(obj) = value.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            if mode == Mode::Response
                && let Some(req) = schema.get("required").and_then(Value::as_array)
            {
                for r in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{at}: missing required property {r}"));
                    }
                }
            }
            for (k, v) in obj {
                let child = format!("{at}.{k}");
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    self.check(v, ps, mode, &child, errors, depth + 1);
                } else if let Some(ap) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    self.check(v, ap, mode, &child, errors, depth + 1);
                }
            }
        }
        if let (Some(arr), Some(items)) = (value.as_array(), schema.get("items")) {
            for (i, v) in arr.iter().enumerate() {
                self.check(v, items, mode, &format!("{at}[{i}]"), errors, depth + 1);
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> SwaggerDoc {
        SwaggerDoc::parse(
            &json!({
                "swagger": "2.0",
                "paths": {"/x": {"post": {
                    "parameters": [{"in": "body", "name": "body", "schema": {"$ref": "#/definitions/A"}}],
                    "responses": {"200": {"schema": {"$ref": "#/definitions/A"}}, "400": {"$ref": "#/responses/400"}}
                }}},
                "responses": {"400": {"schema": {"$ref": "#/definitions/B"}}},
                "definitions": {
                    "A": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"},
                        "n": {"type": "integer"},
                        "kind": {"type": "string", "enum": ["X", "Y"]},
                        "when": {"type": "string", "format": "date-time"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "map": {"type": "object", "additionalProperties": {"type": "boolean"}},
                        "b": {"allOf": [{"$ref": "#/definitions/B"}]},
                        "any": {"type": "object"}
                    }},
                    "B": {"type": "object", "properties": {"code": {"type": "string"}}}
                }
            })
            .to_string(),
        )
        .expect("valid json")
    }

    #[test]
    fn accepts_valid_and_rejects_each_kind_of_violation() {
        let d = doc();
        let s = json!({"$ref": "#/definitions/A"});
        let ok = json!({"name": "a", "n": 3, "kind": "X", "when": "2026-01-01T00:00:00.000Z",
            "tags": ["t"], "map": {"k": true}, "b": {"code": "c"}, "any": "a string", "extra": 1});
        assert!(d.validate(&ok, &s, Mode::Response).is_empty());
        let cases = [
            (json!({"n": 1}), "missing required property name"),
            (json!({"name": 1}), "$.name: expected string"),
            (json!({"name": "a", "n": 1.5}), "$.n: expected integer"),
            (
                json!({"name": "a", "kind": "Z"}),
                "$.kind: value \"Z\" is not one of",
            ),
            (json!({"name": "a", "when": "yesterday"}), "not an ISO-8601"),
            (
                json!({"name": "a", "tags": [1]}),
                "$.tags[0]: expected string",
            ),
            (
                json!({"name": "a", "map": {"k": "no"}}),
                "$.map.k: expected boolean",
            ),
            (
                json!({"name": "a", "b": {"code": 5}}),
                "$.b.code: expected string",
            ),
            (json!({"name": "a", "kind": null}), "null is not allowed"),
            (json!([1]), "$: expected object"),
        ];
        for (v, want) in cases {
            let errs = d.validate(&v, &s, Mode::Response);
            assert!(errs.iter().any(|e| e.contains(want)), "{v} -> {errs:?}");
        }
        // Request mode: nulls are absent values and `required` is left to the handlers.
        assert!(
            d.validate(&json!({"kind": null}), &s, Mode::Request)
                .is_empty()
        );
        assert!(
            !d.validate(&json!({"kind": "Z"}), &s, Mode::Request)
                .is_empty()
        );
    }

    #[test]
    fn looks_up_operations_and_shared_responses() {
        let d = doc();
        assert!(d.operation("POST", "/x").is_some());
        assert!(d.operation("GET", "/x").is_none());
        assert!(d.request_body_schema("post", "/x").is_some());
        let r400 = d
            .response_schema("POST", "/x", 400)
            .flatten()
            .expect("400 schema");
        assert_eq!(r400["$ref"], "#/definitions/B");
        assert!(d.response_schema("POST", "/x", 418).is_none());
        assert!(
            d.validate(
                &json!(1),
                &json!({"$ref": "#/definitions/Nope"}),
                Mode::Request
            )[0]
            .contains("unresolvable")
        );
    }

    #[test]
    fn embedded_excerpt_parses() {
        let d = SwaggerDoc::excerpt();
        assert_eq!(d.raw()["swagger"], "2.0");
        assert!(
            d.operation(
                "POST",
                "/api/v2/outbound/contactlists/{contactListId}/contacts"
            )
            .is_some()
        );
    }
}
