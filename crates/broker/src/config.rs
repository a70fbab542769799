//! The `[events]` section: which broker sources `dedupd serve` consumes, how each event's
//! idempotency key is found and how an event becomes a notification.
//!
//! ```toml
//! [events]
//! max_in_flight = 64                 # per source: messages taken but not yet acknowledged
//!
//! [[events.source]]
//! name = "orders"
//! type = "nats"                      # NATS JetStream durable pull consumer
//! stream = "ORDERS"
//! subject = "orders.shipped"         # the consumer's filter subject
//! durable = "dedupd"
//! dead_letter = "orders.dead"        # a subject some stream captures
//! key = "header:Nats-Msg-Id"         # or "/event_id" (a JSON pointer into the body)
//! [events.source.map]
//! channel = "sms"                    # fixed; or channel_from = "/channel"
//! to = "/customer/phone"
//! template = "Order {{order}} has shipped"
//! params = { order = "/order/id" }
//!
//! [[events.source]]
//! name = "payments"
//! type = "amqp"                      # a RabbitMQ queue
//! queue = "payments.failed"
//! dead_letter = "payments.dead"      # a queue (through the default exchange)
//! key = "message_id"                 # the AMQP message_id property
//! [events.source.map]
//! channel_from = "/channel"
//! to = "/to"
//! text_from = "/text"
//! ```
//!
//! The broker URLs are secrets (they carry credentials): they come from the environment,
//! `DEDUPD_NATS_URL` and `DEDUPD_AMQP_URL` (or the variable a source's `url_env` names), never
//! from the file, and are redacted in `Debug`.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The default NATS URL when `DEDUPD_NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// The default AMQP URL when `DEDUPD_AMQP_URL` is not set.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The `[events]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Most messages per source taken from the broker and not yet acknowledged (default 64):
    /// the consumer's `max_ack_pending` (NATS) or the channel's prefetch (AMQP). A slow or
    /// unavailable outbox stops the pulling at this many.
    #[serde(default)]
    pub max_in_flight: Option<u16>,
    /// The sources (`[[events.source]]`).
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Events out (`[events.out]`): where status events are published.
    #[serde(default)]
    pub out: Option<crate::publish::OutConfig>,
}

/// Which broker a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// NATS JetStream.
    Nats,
    /// RabbitMQ (AMQP 0-9-1).
    Amqp,
}

/// `[[events.source]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name (logs, metrics, dead letters).
    pub name: String,
    /// `nats` or `amqp`.
    #[serde(rename = "type")]
    pub kind: BrokerKind,
    /// The environment variable holding the broker URL (default `DEDUPD_NATS_URL` /
    /// `DEDUPD_AMQP_URL`; unset: the local default).
    #[serde(default)]
    pub url_env: Option<String>,
    /// NATS: the stream.
    #[serde(default)]
    pub stream: Option<String>,
    /// NATS: the consumer's filter subject (default: the whole stream).
    #[serde(default)]
    pub subject: Option<String>,
    /// NATS: the durable consumer's name (created when absent).
    #[serde(default)]
    pub durable: Option<String>,
    /// AMQP: the queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Where unmappable events go, with the reason: a subject (NATS; a stream must capture it)
    /// or a queue (AMQP, published through the default exchange).
    pub dead_letter: String,
    /// The idempotency key: `header:NAME` (a message header, e.g. `header:Nats-Msg-Id`),
    /// `message_id` (AMQP's property) or a JSON pointer into the body (`/event_id`).
    pub key: String,
    /// Prepended to every key of this source (keeps sources' keys apart), e.g. `orders:`.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// This source's in-flight bound (overrides `events.max_in_flight`).
    #[serde(default)]
    pub max_in_flight: Option<u16>,
    /// How an event becomes a notification.
    pub map: MapConfig,
}

/// `[events.source.map]`: JSON pointers (`/a/b`) into the event's body, or fixed values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// A fixed channel (`sms`, `email`, `voice`, `whatsapp`)…
    #[serde(default)]
    pub channel: Option<String>,
    /// …or the pointer to it.
    #[serde(default)]
    pub channel_from: Option<String>,
    /// The pointer to the recipient (E.164 phone or e-mail).
    pub to: String,
    /// A fixed template (`{{name}}` placeholders)…
    #[serde(default)]
    pub template: Option<String>,
    /// …or the pointer to one…
    #[serde(default)]
    pub template_from: Option<String>,
    /// …or the pointer to a ready text.
    #[serde(default)]
    pub text_from: Option<String>,
    /// The template's parameters: name → pointer.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The pointer to the customer id (optional).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// A fixed event type…
    #[serde(default)]
    pub event_type: Option<String>,
    /// …or the pointer to it.
    #[serde(default)]
    pub event_type_from: Option<String>,
    /// The pointer to `not_after` (RFC 3339), optional.
    #[serde(default)]
    pub not_after: Option<String>,
}

/// A configuration problem: `key` names the setting (`events.source[1].map.to`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[events] `{key}`: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub key: String,
    /// Why it is refused.
    pub reason: String,
}

/// Where a source's idempotency key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// A message header (NATS header, or an AMQP header-table entry).
    Header(String),
    /// The AMQP `message_id` property.
    MessageId,
    /// A JSON pointer into the body.
    Pointer(String),
}

/// A value of the notification: fixed, or read from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Fixed in the config.
    Fixed(String),
    /// A JSON pointer into the body.
    Pointer(String),
}

/// Where the text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextSpec {
    /// A template (fixed or from the event) rendered with the params.
    Template(Field),
    /// A ready text from the event.
    Text(String),
}

/// A validated mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The idempotency key.
    pub key: KeySpec,
    /// Prepended to the key.
    pub key_prefix: String,
    /// The channel.
    pub channel: Field,
    /// The recipient's pointer.
    pub to: String,
    /// The text.
    pub text: TextSpec,
    /// Parameter name → pointer.
    pub params: BTreeMap<String, String>,
    /// The customer id's pointer.
    pub customer_id: Option<String>,
    /// The event type.
    pub event_type: Option<Field>,
    /// The `not_after` pointer.
    pub not_after: Option<String>,
}

/// The broker a validated source reads, with its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A JetStream durable pull consumer.
    Nats {
        /// The stream.
        stream: String,
        /// The filter subject (empty: all).
        subject: String,
        /// The durable consumer.
        durable: String,
        /// The dead-letter subject.
        dead_letter: String,
    },
    /// A RabbitMQ queue.
    Amqp {
        /// The queue.
        queue: String,
        /// The dead-letter queue.
        dead_letter: String,
    },
}

/// A broker URL: a secret (it may carry a password), redacted in `Debug`.
#[derive(Clone)]
pub struct BrokerUrl(SecretString);

impl BrokerUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The URL, for the connection only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerUrl([REDACTED])")
    }
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// The broker and the names on it.
    pub endpoint: Endpoint,
    /// The broker URL.
    pub url: BrokerUrl,
    /// Most messages taken and not yet acknowledged.
    pub max_in_flight: u16,
    /// How events become notifications.
    pub mapping: Mapping,
}

fn pointer(key: &str, p: &str) -> Result<String, ConfigError> {
    if p.starts_with('/') {
        Ok(p.to_owned())
    } else {
        Err(ConfigError {
            key: key.to_owned(),
            reason: format!("`{p}` is not a JSON pointer (it starts with `/`, e.g. `/order/id`)"),
        })
    }
}

fn one_of<T>(
    key: &str,
    options: Vec<(&str, Option<T>)>,
    required: bool,
) -> Result<Option<T>, ConfigError> {
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let mut set: Vec<(&str, T)> = options
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
    match set.len() {
        0 if required => Err(ConfigError {
            key: key.to_owned(),
            reason: format!("set one of {}", names.join(", ")),
        }),
        0 => Ok(None),
        1 => Ok(set.pop().map(|(_, v)| v)),
        _ => Err(ConfigError {
            key: key.to_owned(),
            reason: format!(
                "set only one of {} (found {})",
                names.join(", "),
                set.iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }),
    }
}

impl MapConfig {
    fn validate(&self, at: &str, key: KeySpec, key_prefix: String) -> Result<Mapping, ConfigError> {
        let k = |name: &str| format!("{at}.map.{name}");
        let fixed_or =
            |fixed: &Option<String>, from: &Option<String>, name: &str, required: bool| {
                let from = from
                    .as_deref()
                    .map(|p| pointer(&k(&format!("{name}_from")), p))
                    .transpose()?;
                one_of(
                    &k(name),
                    vec![
                        (name, fixed.clone().map(Field::Fixed)),
                        (&format!("{name}_from"), from.map(Field::Pointer)),
                    ],
                    required,
                )
            };
        let channel =
            fixed_or(&self.channel, &self.channel_from, "channel", true)?.ok_or_else(|| {
                ConfigError {
                    key: k("channel"),
                    reason: "set channel or channel_from".into(),
                }
            })?;
        if let Field::Fixed(c) = &channel
            && !matches!(c.as_str(), "sms" | "email" | "voice" | "whatsapp")
        {
            return Err(ConfigError {
                key: k("channel"),
                reason: format!("`{c}` is not sms, email, voice or whatsapp"),
            });
        }
        let to = pointer(&k("to"), &self.to)?;
        let template_from = self
            .template_from
            .as_deref()
            .map(|p| pointer(&k("template_from"), p))
            .transpose()?;
        let text_from = self
            .text_from
            .as_deref()
            .map(|p| pointer(&k("text_from"), p))
            .transpose()?;
        let text = one_of(
            &k("template"),
            vec![
                (
                    "template",
                    self.template
                        .clone()
                        .map(|t| TextSpec::Template(Field::Fixed(t))),
                ),
                (
                    "template_from",
                    template_from.map(|p| TextSpec::Template(Field::Pointer(p))),
                ),
                ("text_from", text_from.map(TextSpec::Text)),
            ],
            true,
        )?
        .ok_or_else(|| ConfigError {
            key: k("template"),
            reason: "set template, template_from or text_from".into(),
        })?;
        if matches!(text, TextSpec::Text(_)) && !self.params.is_empty() {
            return Err(ConfigError {
                key: k("params"),
                reason: "params need a template (template or template_from), not text_from".into(),
            });
        }
        let mut params = BTreeMap::new();
        for (name, p) in &self.params {
            params.insert(name.clone(), pointer(&k(&format!("params.{name}")), p)?);
        }
        let customer_id = self
            .customer_id
            .as_deref()
            .map(|p| pointer(&k("customer_id"), p))
            .transpose()?;
        let event_type = fixed_or(&self.event_type, &self.event_type_from, "event_type", false)?;
        let not_after = self
            .not_after
            .as_deref()
            .map(|p| pointer(&k("not_after"), p))
            .transpose()?;
        Ok(Mapping {
            key,
            key_prefix,
            channel,
            to,
            text,
            params,
            customer_id,
            event_type,
            not_after,
        })
    }
}

impl EventsConfig {
    /// Validates the section; `env` reads an environment variable (the broker URLs).
    pub fn validate(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Source>, ConfigError> {
        let default_in_flight = self.max_in_flight.unwrap_or(64);
        if default_in_flight == 0 {
            return Err(ConfigError {
                key: "events.max_in_flight".into(),
                reason: "at least 1".into(),
            });
        }
        let mut out: Vec<Source> = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("events.source[{i}]");
            let k = |name: &str| format!("{at}.{name}");
            let err = |name: &str, reason: String| ConfigError {
                key: k(name),
                reason,
            };
            if s.name.trim().is_empty() {
                return Err(err("name", "must not be empty".into()));
            }
            if out.iter().any(|o| o.name == s.name) {
                return Err(err("name", format!("duplicate source name `{}`", s.name)));
            }
            let need = |v: &Option<String>, name: &str| -> Result<String, ConfigError> {
                match v.as_deref().map(str::trim) {
                    Some(v) if !v.is_empty() => Ok(v.to_owned()),
                    _ => Err(err(
                        name,
                        format!("a `{}` source needs `{name}`", kind_name(s.kind)),
                    )),
                }
            };
            let refuse = |v: &Option<String>, name: &str| -> Result<(), ConfigError> {
                match v {
                    Some(_) => Err(err(
                        name,
                        format!("not a setting of a `{}` source", kind_name(s.kind)),
                    )),
                    None => Ok(()),
                }
            };
            if s.dead_letter.trim().is_empty() {
                return Err(err("dead_letter", "must not be empty".into()));
            }
            let endpoint = match s.kind {
                BrokerKind::Nats => {
                    refuse(&s.queue, "queue")?;
                    Endpoint::Nats {
                        stream: need(&s.stream, "stream")?,
                        subject: s.subject.clone().unwrap_or_default(),
                        durable: need(&s.durable, "durable")?,
                        dead_letter: s.dead_letter.clone(),
                    }
                }
                BrokerKind::Amqp => {
                    refuse(&s.stream, "stream")?;
                    refuse(&s.subject, "subject")?;
                    refuse(&s.durable, "durable")?;
                    Endpoint::Amqp {
                        queue: need(&s.queue, "queue")?,
                        dead_letter: s.dead_letter.clone(),
                    }
                }
            };
            let key = if let Some(h) = s.key.strip_prefix("header:") {
                if h.trim().is_empty() {
                    return Err(err("key", "`header:` needs a header name".into()));
                }
                KeySpec::Header(h.trim().to_owned())
            } else if s.key == "message_id" {
                if s.kind != BrokerKind::Amqp {
                    return Err(err(
                        "key",
                        "`message_id` is AMQP's property; for NATS use `header:Nats-Msg-Id`".into(),
                    ));
                }
                KeySpec::MessageId
            } else if s.key.starts_with('/') {
                KeySpec::Pointer(s.key.clone())
            } else {
                return Err(err(
                    "key",
                    format!(
                        "`{}` is not `header:NAME`, `message_id` or a JSON pointer (`/event_id`)",
                        s.key
                    ),
                ));
            };
            let mapping = s
                .map
                .validate(&at, key, s.key_prefix.clone().unwrap_or_default())?;
            let max_in_flight = s.max_in_flight.unwrap_or(default_in_flight);
            if max_in_flight == 0 {
                return Err(err("max_in_flight", "at least 1".into()));
            }
            let (var, default) = match s.kind {
                BrokerKind::Nats => ("DEDUPD_NATS_URL", DEFAULT_NATS_URL),
                BrokerKind::Amqp => ("DEDUPD_AMQP_URL", DEFAULT_AMQP_URL),
            };
            let var = s.url_env.as_deref().unwrap_or(var);
            let url = env(var)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned());
            out.push(Source {
                name: s.name.clone(),
                endpoint,
                url: BrokerUrl::new(url),
                max_in_flight,
                mapping,
            });
        }
        Ok(out)
    }
}

fn kind_name(k: BrokerKind) -> &'static str {
    match k {
        BrokerKind::Nats => "nats",
        BrokerKind::Amqp => "amqp",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NATS: &str = r#"
[[source]]
name = "orders"
type = "nats"
stream = "ORDERS"
subject = "orders.shipped"
durable = "dedupd"
dead_letter = "orders.dead"
key = "header:Nats-Msg-Id"
[source.map]
channel = "sms"
to = "/customer/phone"
template = "Order {{order}} has shipped"
params = { order = "/order/id" }
"#;

    fn parse(text: &str) -> Result<Vec<Source>, ConfigError> {
        let cfg: EventsConfig = toml::from_str(text).unwrap();
        cfg.validate(|_| None)
    }

    fn err(text: &str) -> ConfigError {
        parse(text).unwrap_err()
    }

    #[test]
    fn a_nats_source_is_read_with_defaults() {
        let s = parse(NATS).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].max_in_flight, 64);
        assert_eq!(s[0].url.expose(), DEFAULT_NATS_URL);
        assert_eq!(s[0].mapping.key, KeySpec::Header("Nats-Msg-Id".into()));
        assert_eq!(s[0].mapping.channel, Field::Fixed("sms".into()));
        assert_eq!(
            s[0].mapping.text,
            TextSpec::Template(Field::Fixed("Order {{order}} has shipped".into()))
        );
        assert!(matches!(&s[0].endpoint, Endpoint::Nats { stream, .. } if stream == "ORDERS"));
    }

    #[test]
    fn the_url_comes_from_the_environment_and_is_redacted() {
        let cfg: EventsConfig = toml::from_str(NATS).unwrap();
        let s = cfg
            .validate(|v| (v == "DEDUPD_NATS_URL").then(|| "nats://u:hunter2@h:4222".into()))
            .unwrap();
        assert_eq!(s[0].url.expose(), "nats://u:hunter2@h:4222");
        assert!(!format!("{:?}", s[0]).contains("hunter2"));
    }

    #[test]
    fn an_amqp_source_takes_message_id() {
        let text = r#"
[[source]]
name = "payments"
type = "amqp"
queue = "payments"
dead_letter = "payments.dead"
key = "message_id"
[source.map]
channel_from = "/channel"
to = "/to"
text_from = "/text"
"#;
        let s = parse(text).unwrap();
        assert_eq!(s[0].mapping.key, KeySpec::MessageId);
        assert_eq!(s[0].url.expose(), DEFAULT_AMQP_URL);
        assert_eq!(s[0].mapping.text, TextSpec::Text("/text".into()));
    }

    #[test]
    fn errors_name_the_setting() {
        let e = err(&NATS.replace("stream = \"ORDERS\"\n", ""));
        assert_eq!(e.key, "events.source[0].stream");
        let e = err(&NATS.replace("\"/customer/phone\"", "\"customer.phone\""));
        assert_eq!(e.key, "events.source[0].map.to");
        let e = err(&NATS.replace("\"/order/id\"", "\"order\""));
        assert_eq!(e.key, "events.source[0].map.params.order");
        let e = err(&NATS.replace("header:Nats-Msg-Id", "message_id"));
        assert_eq!(e.key, "events.source[0].key");
        let e = err(&NATS.replace("header:Nats-Msg-Id", "id"));
        assert_eq!(e.key, "events.source[0].key");
        let e = err(&NATS.replace("channel = \"sms\"", "channel = \"fax\""));
        assert_eq!(e.key, "events.source[0].map.channel");
        let e = err(&NATS.replace(
            "channel = \"sms\"",
            "channel = \"sms\"\nchannel_from = \"/c\"",
        ));
        assert!(e.reason.contains("only one"), "{e}");
        let e = err(&NATS.replace(
            "template = \"Order {{order}} has shipped\"",
            "text_from = \"/t\"",
        ));
        assert_eq!(e.key, "events.source[0].map.params");
        let e = err(&format!("{NATS}\n{NATS}"));
        assert_eq!(e.key, "events.source[1].name");
        let e = err(&NATS.replace(
            "durable = \"dedupd\"",
            "durable = \"dedupd\"\nqueue = \"q\"",
        ));
        assert_eq!(e.key, "events.source[0].queue");
    }
}
