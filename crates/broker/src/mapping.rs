//! An event → its idempotency key and the notification it asks for (the JSON body
//! `POST /v1/notifications` takes). Pure: no I/O. Every error names the event, the field and
//! the reason, and never carries a value from the event (it may be a phone number or a text).

use serde_json::{Map, Value};

use crate::config::{Field, KeySpec, Mapping, TextSpec};

/// One message as the mapping sees it, whatever the broker.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    /// Names the message in errors and logs: source and broker position (`orders#1042`).
    pub id: &'a str,
    /// A header's value by name (NATS headers, AMQP header table), case as the broker keeps it.
    pub header: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The AMQP `message_id` property.
    pub message_id: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body is not shown: it carries phone numbers, addresses and texts.
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why an event could not become a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event}: `{field}`: {reason}")]
pub struct MapError {
    /// The event (`orders#1042`).
    pub event: String,
    /// The notification field, or where the key comes from (`key (header Nats-Msg-Id)`).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// The key and the notification body.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The idempotency key (with the source's prefix).
    pub key: String,
    /// The notification, as the HTTP API's body.
    pub notification: Value,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Maps `event` by `m`.
pub fn map_event(m: &Mapping, event: &Event<'_>) -> Result<Mapped, MapError> {
    let fail = |field: &str, reason: String| MapError {
        event: event.id.to_owned(),
        field: field.to_owned(),
        reason,
    };
    // The body is parsed only when the mapping reads it (every mapping does: `to` is a pointer).
    let body: Value = serde_json::from_slice(event.body).map_err(|e| {
        fail(
            "body",
            format!("not JSON (line {}, column {})", e.line(), e.column()),
        )
    })?;
    if !body.is_object() {
        return Err(fail(
            "body",
            format!("is {}, not a JSON object", type_name(&body)),
        ));
    }
    let at = |p: &str| -> Option<&Value> { body.pointer(p).filter(|v| !v.is_null()) };
    let string_at = |field: &str, p: &str, required: bool| -> Result<Option<String>, MapError> {
        match at(p) {
            None if required => Err(fail(field, format!("nothing at {p}"))),
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() && required => {
                Err(fail(field, format!("empty string at {p}")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if field == "key" || field == "customer_id" => {
                Ok(Some(n.to_string()))
            }
            Some(v) => Err(fail(
                field,
                format!("{} at {p}, not a string", type_name(v)),
            )),
        }
    };

    let key_field = match &m.key {
        KeySpec::Header(h) => format!("key (header {h})"),
        KeySpec::MessageId => "key (message_id)".to_owned(),
        KeySpec::Pointer(p) => format!("key ({p})"),
    };
    let raw_key = match &m.key {
        KeySpec::Header(h) => (event.header)(h),
        KeySpec::MessageId => event.message_id.map(str::to_owned),
        KeySpec::Pointer(p) => string_at("key", p, false).map_err(|e| MapError {
            field: key_field.clone(),
            ..e
        })?,
    };
    let raw_key = raw_key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            fail(
                &key_field,
                "missing: the event has no idempotency key".into(),
            )
        })?;
    let key = format!("{}{raw_key}", m.key_prefix);
    if !dedupd_core::notification::valid_key(&key) {
        return Err(fail(
            &key_field,
            "not 1 to 255 visible ASCII characters (with the source's key_prefix)".into(),
        ));
    }

    let mut n = Map::new();
    let channel = match &m.channel {
        Field::Fixed(c) => c.clone(),
        Field::Pointer(p) => string_at("channel", p, true)?.unwrap_or_default(),
    };
    n.insert("channel".into(), Value::String(channel));
    n.insert(
        "to".into(),
        Value::String(string_at("to", &m.to, true)?.unwrap_or_default()),
    );
    match &m.text {
        TextSpec::Text(p) => {
            n.insert(
                "text".into(),
                Value::String(string_at("text", p, true)?.unwrap_or_default()),
            );
        }
        TextSpec::Template(t) => {
            let template = match t {
                Field::Fixed(t) => t.clone(),
                Field::Pointer(p) => string_at("template", p, true)?.unwrap_or_default(),
            };
            n.insert("template".into(), Value::String(template));
            let mut params = Map::new();
            for (name, p) in &m.params {
                let field = format!("params.{name}");
                match at(p) {
                    None => return Err(fail(&field, format!("nothing at {p}"))),
                    Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                        params.insert(name.clone(), v.clone());
                    }
                    Some(v) => {
                        return Err(fail(
                            &field,
                            format!("{} at {p}, not a string, number or boolean", type_name(v)),
                        ));
                    }
                }
            }
            n.insert("params".into(), Value::Object(params));
        }
    }
    if let Some(p) = &m.customer_id
        && let Some(c) = string_at("customer_id", p, false)?
    {
        n.insert("customer_id".into(), Value::String(c));
    }
    match &m.event_type {
        Some(Field::Fixed(t)) => {
            n.insert("event_type".into(), Value::String(t.clone()));
        }
        Some(Field::Pointer(p)) => {
            if let Some(t) = string_at("event_type", p, false)? {
                n.insert("event_type".into(), Value::String(t));
            }
        }
        None => {}
    }
    if let Some(p) = &m.not_after
        && let Some(t) = string_at("not_after", p, false)?
    {
        n.insert("not_after".into(), Value::String(t));
    }
    Ok(Mapped {
        key,
        notification: Value::Object(n),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            key: KeySpec::Header("Nats-Msg-Id".into()),
            key_prefix: "orders:".into(),
            channel: Field::Fixed("sms".into()),
            to: "/customer/phone".into(),
            text: TextSpec::Template(Field::Fixed("Order {{order}} has shipped".into())),
            params: BTreeMap::from([("order".into(), "/order/id".into())]),
            customer_id: Some("/customer/id".into()),
            event_type: Some(Field::Pointer("/type".into())),
            not_after: None,
        }
    }

    fn no_header(_: &str) -> Option<String> {
        None
    }

    fn msg_id(h: &str) -> Option<String> {
        (h == "Nats-Msg-Id").then(|| "evt-1".to_owned())
    }

    fn run(
        m: &Mapping,
        header: &(dyn Fn(&str) -> Option<String> + Sync),
        body: &Value,
    ) -> Result<Mapped, MapError> {
        let body = serde_json::to_vec(body).unwrap();
        map_event(
            m,
            &Event {
                id: "orders#7",
                header,
                message_id: None,
                body: &body,
            },
        )
    }

    const OK: fn() -> Value = || {
        json!({"type": "order_shipped", "customer": {"id": 42, "phone": "+14155552671"},
               "order": {"id": 1042}})
    };

    #[test]
    fn maps_an_event_into_the_api_body() {
        let got = run(&mapping(), &msg_id, &OK()).unwrap();
        assert_eq!(got.key, "orders:evt-1");
        assert_eq!(
            got.notification,
            json!({"channel": "sms", "to": "+14155552671", "template": "Order {{order}} has shipped",
                   "params": {"order": 1042}, "customer_id": "42", "event_type": "order_shipped"})
        );
        // What the API makes of it: a valid request.
        dedupd_core_parse(&got.notification);
    }

    fn dedupd_core_parse(v: &Value) {
        // The same parser the accept path runs; a mapped event must pass it.
        let parsed = dedupd_core::notification::NotificationRequest::parse(v);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn the_key_from_a_pointer_or_message_id() {
        let mut m = mapping();
        m.key = KeySpec::Pointer("/order/id".into());
        m.key_prefix.clear();
        assert_eq!(run(&m, &no_header, &OK()).unwrap().key, "1042");
        m.key = KeySpec::MessageId;
        let body = serde_json::to_vec(&OK()).unwrap();
        let got = map_event(
            &m,
            &Event {
                id: "q#1",
                header: &no_header,
                message_id: Some("m-9"),
                body: &body,
            },
        )
        .unwrap();
        assert_eq!(got.key, "m-9");
    }

    #[test]
    fn every_error_names_event_field_and_reason_without_values() {
        let m = mapping();
        let e = run(&m, &no_header, &OK()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event orders#7: `key (header Nats-Msg-Id)`: missing: the event has no idempotency key"
        );
        let mut body = OK();
        body["customer"]["phone"] = Value::Null;
        let e = run(&m, &msg_id, &body).unwrap_err();
        assert_eq!((e.event.as_str(), e.field.as_str()), ("orders#7", "to"));
        assert_eq!(e.reason, "nothing at /customer/phone");
        body["customer"]["phone"] = json!(["+14155552671"]);
        let e = run(&m, &msg_id, &body).unwrap_err();
        assert_eq!(e.reason, "an array at /customer/phone, not a string");
        assert!(!e.to_string().contains("4155552671"));
        let mut body = OK();
        body["order"] = json!({});
        let e = run(&m, &msg_id, &body).unwrap_err();
        assert_eq!(e.field, "params.order");
        let e = map_event(
            &m,
            &Event {
                id: "orders#8",
                header: &msg_id,
                message_id: None,
                body: b"{\"to\": +1415",
            },
        )
        .unwrap_err();
        assert_eq!(e.field, "body");
        assert!(e.reason.starts_with("not JSON"), "{e}");
        let e = run(&m, &msg_id, &json!([1, 2])).unwrap_err();
        assert_eq!(e.reason, "is an array, not a JSON object");
        let long = |_: &str| Some("x".repeat(300));
        let e = run(&m, &long, &OK()).unwrap_err();
        assert_eq!(e.field, "key (header Nats-Msg-Id)");
    }

    #[test]
    fn text_and_channel_from_the_event() {
        let mut m = mapping();
        m.channel = Field::Pointer("/channel".into());
        m.text = TextSpec::Text("/text".into());
        m.params.clear();
        let got = run(
            &m,
            &msg_id,
            &json!({"channel": "email", "text": "Receipt", "customer": {"phone": "a@example.com"}}),
        )
        .unwrap();
        assert_eq!(got.notification["channel"], "email");
        assert_eq!(got.notification["text"], "Receipt");
        let e = run(
            &m,
            &msg_id,
            &json!({"customer": {"phone": "a@example.com"}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "channel");
    }
}
