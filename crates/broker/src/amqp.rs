//! The RabbitMQ source: a queue consumed with manual acks and a prefetch of the in-flight
//! bound; dead letters published on a channel in confirm mode and confirmed by the broker
//! before the event is acknowledged.

use std::sync::Arc;

use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use dedupd_notify::NotifyApi;
use futures_util::StreamExt;
use tokio::sync::{Mutex, watch};

use crate::{
    BrokerError, CODE_HEADER, DeadLetter, Disposition, EVENT_HEADER, Endpoint, Event, FIELD_HEADER,
    REASON_HEADER, SOURCE_HEADER, Source, backoff, settle,
};

fn err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Amqp(e.to_string())
}

/// An `amqp://user:password@host:port/vhost` URL, parsed (the vhost percent-decoded: `%2f` is
/// `/`). Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// Host.
    pub host: String,
    /// Port (default 5672).
    pub port: u16,
    /// User (default `guest`).
    pub user: String,
    /// Password (default `guest`).
    pub password: String,
    /// Virtual host (default `/`).
    pub vhost: String,
}

impl std::fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("vhost", &self.vhost)
            .finish()
    }
}

fn percent_decode(s: &str) -> Result<String, BrokerError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| BrokerError::Url("a `%` escape is not two hex digits".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BrokerError::Url("an escape is not UTF-8".into()))
}

impl AmqpUrl {
    /// Parses `url`. Errors never repeat the URL (it may carry a password).
    pub fn parse(url: &str) -> Result<Self, BrokerError> {
        let rest = url
            .strip_prefix("amqp://")
            .ok_or_else(|| BrokerError::Url("it does not start with amqp://".into()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (percent_decode(user)?, percent_decode(pass)?)
            }
            None => ("guest".to_owned(), "guest".to_owned()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| BrokerError::Url("the port is not a number".into()))?,
            ),
            None => (hostport.to_owned(), 5672),
        };
        if host.is_empty() {
            return Err(BrokerError::Url("no host".into()));
        }
        let vhost = if path.is_empty() {
            "/".to_owned()
        } else {
            percent_decode(path)?
        };
        Ok(Self {
            host,
            port,
            user,
            password,
            vhost,
        })
    }

    /// Opens a connection.
    pub async fn connect(&self) -> Result<Connection, BrokerError> {
        let args = OpenConnectionArguments::new(&self.host, self.port, &self.user, &self.password)
            .virtual_host(&self.vhost)
            .connection_name("dedupd")
            .finish();
        let conn = Connection::open(&args).await.map_err(err)?;
        conn.register_callback(DefaultConnectionCallback)
            .await
            .map_err(err)?;
        Ok(conn)
    }
}

/// Publisher confirms: the broker's acks and nacks, by delivery tag, for [`Confirmed`].
struct ConfirmCallback(watch::Sender<(u64, u64)>);

#[async_trait::async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        // Tags are confirmed in order on one channel: the highest acked tag is enough.
        self.0
            .send_modify(|(acked, _)| *acked = (*acked).max(ack.delivery_tag()));
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        self.0
            .send_modify(|(_, nacked)| *nacked = (*nacked).max(nack.delivery_tag()));
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// A channel in confirm mode: [`Confirmed::publish`] returns once the broker confirmed.
pub struct Confirmed {
    channel: Channel,
    // The next delivery tag (1-based, per channel), held while publishing.
    next: Mutex<u64>,
    confirms: watch::Receiver<(u64, u64)>,
}

impl Confirmed {
    /// Opens a channel on `conn` in confirm mode.
    pub async fn open(conn: &Connection) -> Result<Self, BrokerError> {
        let channel = conn.open_channel(None).await.map_err(err)?;
        let (tx, rx) = watch::channel((0, 0));
        channel
            .register_callback(ConfirmCallback(tx))
            .await
            .map_err(err)?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .map_err(err)?;
        Ok(Self {
            channel,
            next: Mutex::new(1),
            confirms: rx,
        })
    }

    /// Publishes one persistent message and waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        props: BasicProperties,
        body: Vec<u8>,
    ) -> Result<(), BrokerError> {
        let mut confirms = self.confirms.clone();
        let tag = {
            let mut next = self.next.lock().await;
            let tag = *next;
            self.channel
                .basic_publish(
                    props,
                    body,
                    BasicPublishArguments::new(exchange, routing_key),
                )
                .await
                .map_err(err)?;
            *next += 1;
            tag
        };
        loop {
            let (acked, nacked) = *confirms.borrow_and_update();
            if nacked >= tag && acked < tag {
                return Err(BrokerError::Amqp(
                    "the broker refused (nack) the message".into(),
                ));
            }
            if acked >= tag {
                return Ok(());
            }
            if !self.channel.is_open() {
                return Err(BrokerError::Amqp(
                    "the channel closed before the confirm".into(),
                ));
            }
            // A channel the broker closes (an unknown exchange…) sends no confirm: look at it
            // again every second instead of waiting for ever.
            let changed =
                tokio::time::timeout(std::time::Duration::from_secs(1), confirms.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                return Err(BrokerError::Amqp(
                    "the channel closed before the confirm".into(),
                ));
            }
        }
    }
}

/// Consumes until the connection breaks (an error) — never returns `Ok` on its own.
pub(crate) async fn consume(api: &NotifyApi, source: &Source) -> Result<(), BrokerError> {
    let Endpoint::Amqp { queue, dead_letter } = &source.endpoint else {
        return Err(BrokerError::Amqp("not an AMQP source".into()));
    };
    let url = AmqpUrl::parse(source.url.expose())?;
    let conn = url.connect().await?;
    let channel = conn.open_channel(None).await.map_err(err)?;
    channel
        .basic_qos(BasicQosArguments::new(0, source.max_in_flight, false))
        .await
        .map_err(err)?;
    let dl = Arc::new(Confirmed::open(&conn).await?);
    let (_tag, rx) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(queue, "")
                .manual_ack(true)
                .finish(),
        )
        .await
        .map_err(|e| BrokerError::Amqp(format!("queue `{queue}`: {e}")))?;
    let limit = usize::from(source.max_in_flight);
    tracing::info!(source = %source.name, %queue, max_in_flight = limit,
        "Consuming a RabbitMQ queue.");
    let messages =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    messages
        .for_each_concurrent(limit, |m| {
            let (channel, dl) = (&channel, Arc::clone(&dl));
            async move {
                let (Some(deliver), Some(content)) = (m.deliver, m.content) else {
                    return;
                };
                let props = m.basic_properties.unwrap_or_default();
                one(
                    api,
                    source,
                    channel,
                    &dl,
                    dead_letter,
                    deliver.delivery_tag(),
                    &props,
                    content,
                )
                .await;
            }
        })
        .await;
    // The receiver ends when the channel or the connection closes.
    let _ = conn.close().await;
    Err(BrokerError::Amqp("the consumer's channel closed".into()))
}

fn header_text(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::S(s) => Some(s.as_ref().clone()),
        FieldValue::t(_) | FieldValue::F(_) | FieldValue::A(_) | FieldValue::V => None,
        other => Some(other.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn one(
    api: &NotifyApi,
    source: &Source,
    channel: &Channel,
    dl: &Confirmed,
    dead_letter: &str,
    delivery_tag: u64,
    props: &BasicProperties,
    body: Vec<u8>,
) {
    let id = format!("{}#{delivery_tag}", source.name);
    let header = |name: &str| -> Option<String> {
        let table = props.headers()?;
        let key = name.try_into().ok()?;
        table.get(&key).and_then(header_text)
    };
    let event = Event {
        id: &id,
        header: &header,
        message_id: props.message_id().map(String::as_str),
        body: &body,
    };
    match settle(api, source, &event).await {
        Disposition::Accepted { key, created } => {
            tracing::debug!(source = %source.name, event = %id, %key, created, "Event accepted.");
        }
        Disposition::DeadLetter(d) => {
            tracing::warn!(source = %source.name, event = %id, code = d.code, field = %d.field,
                reason = %d.reason, "Event sent to the dead letter.");
            if !publish_dead_letter(dl, dead_letter, source, &id, props, body, &d).await {
                // The channel is gone: the event is not acknowledged and comes back.
                return;
            }
        }
        Disposition::Retry { .. } => return,
    }
    if let Err(e) = channel
        .basic_ack(BasicAckArguments::new(delivery_tag, false))
        .await
    {
        tracing::warn!(source = %source.name, event = %id, error = %e,
            "Acknowledgement failed; the event will be redelivered (a no-op).");
    }
}

async fn publish_dead_letter(
    dl: &Confirmed,
    queue: &str,
    source: &Source,
    id: &str,
    original: &BasicProperties,
    body: Vec<u8>,
    d: &DeadLetter,
) -> bool {
    let mut headers = original.headers().cloned().unwrap_or_else(FieldTable::new);
    for (name, value) in [
        (REASON_HEADER, d.reason.as_str()),
        (FIELD_HEADER, d.field.as_str()),
        (CODE_HEADER, d.code),
        (SOURCE_HEADER, source.name.as_str()),
        (EVENT_HEADER, id),
    ] {
        if let Ok(k) = name.try_into() {
            headers.insert(k, FieldValue::from(value));
        }
    }
    let mut props = original.clone();
    props.with_headers(headers).with_persistence(true);
    let mut attempt = 0u32;
    loop {
        match dl.publish("", queue, props.clone(), body.clone()).await {
            Ok(()) => return true,
            Err(e) => {
                if !dl.channel.is_open() {
                    tracing::error!(source = %source.name, event = %id, error = %e,
                        "Cannot publish a dead letter: the channel closed.");
                    return false;
                }
                if attempt.is_multiple_of(20) {
                    tracing::error!(source = %source.name, event = %id, %queue, error = %e,
                        "Cannot publish a dead letter; retrying.");
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_amqp_urls() {
        let u = AmqpUrl::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_str(), u.vhost.as_str()),
            ("127.0.0.1", 5672, "guest", "/")
        );
        let u = AmqpUrl::parse("amqp://app:p%40ss@mq.example.com/orders").unwrap();
        assert_eq!(
            (u.port, u.password.as_str(), u.vhost.as_str()),
            (5672, "p@ss", "orders")
        );
        let u = AmqpUrl::parse("amqp://localhost").unwrap();
        assert_eq!((u.user.as_str(), u.vhost.as_str()), ("guest", "/"));
        let u = AmqpUrl::parse("amqp://app:secret@h/").unwrap();
        assert!(!format!("{u:?}").contains("secret"));
        let e = AmqpUrl::parse("amqps://u:secret@h/")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(
            AmqpUrl::parse("amqp://u:secret@h:port/")
                .unwrap_err()
                .to_string()
                .contains("port")
        );
        assert!(AmqpUrl::parse("amqp://u:secret@h/%zz").is_err());
    }
}
