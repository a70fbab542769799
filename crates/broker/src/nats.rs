//! The NATS JetStream source: a durable pull consumer with explicit acks and
//! `max_ack_pending` = the in-flight bound; dead letters published through JetStream and
//! acknowledged by it before the event is.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use dedupd_notify::NotifyApi;
use futures_util::StreamExt;

use crate::{
    BrokerError, CODE_HEADER, DeadLetter, Disposition, EVENT_HEADER, Endpoint, Event, FIELD_HEADER,
    REASON_HEADER, SOURCE_HEADER, Source, backoff, settle,
};

fn err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Nats(e.to_string())
}

/// Consumes until the connection breaks (an error) — never returns `Ok` on its own.
pub(crate) async fn consume(api: &NotifyApi, source: &Source) -> Result<(), BrokerError> {
    let Endpoint::Nats {
        stream,
        subject,
        durable,
        dead_letter,
    } = &source.endpoint
    else {
        return Err(BrokerError::Nats("not a NATS source".into()));
    };
    let client = async_nats::ConnectOptions::new()
        .name("dedupd")
        .connect(source.url.expose())
        .await
        .map_err(err)?;
    let js = jetstream::new(client);
    let stream_handle = js
        .get_stream(stream)
        .await
        .map_err(|e| BrokerError::Nats(format!("stream `{stream}`: {e}")))?;
    let limit = usize::from(source.max_in_flight);
    let consumer: jetstream::consumer::PullConsumer = stream_handle
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: i64::from(source.max_in_flight),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BrokerError::Nats(format!("consumer `{durable}` on `{stream}`: {e}")))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(limit)
        .messages()
        .await
        .map_err(err)?;
    tracing::info!(source = %source.name, %stream, %durable, max_in_flight = limit,
        "Consuming a NATS JetStream source.");
    // At most `limit` messages are worked at once; the stream is not polled past that.
    let broken = std::sync::Mutex::new(None::<String>);
    messages
        .take_while(|m| {
            let ok = match m {
                Ok(_) => true,
                Err(e) => {
                    let mut b = broken
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *b = Some(e.to_string());
                    false
                }
            };
            std::future::ready(ok)
        })
        .for_each_concurrent(limit, |m| {
            let js = js.clone();
            async move {
                if let Ok(msg) = m {
                    one(api, source, &js, dead_letter, msg).await;
                }
            }
        })
        .await;
    let why = broken
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unwrap_or_else(|| "the message stream ended".into());
    Err(BrokerError::Nats(why))
}

async fn one(
    api: &NotifyApi,
    source: &Source,
    js: &jetstream::Context,
    dead_letter: &str,
    msg: jetstream::Message,
) {
    let id = match msg.info() {
        Ok(info) => format!("{}#{}", source.name, info.stream_sequence),
        Err(_) => format!("{}#?", source.name),
    };
    let headers = msg.headers.clone();
    let header = move |name: &str| -> Option<String> {
        headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let event = Event {
        id: &id,
        header: &header,
        message_id: None,
        body: &msg.payload,
    };
    match settle(api, source, &event).await {
        Disposition::Accepted { key, created } => {
            tracing::debug!(source = %source.name, event = %id, %key, created, "Event accepted.");
        }
        Disposition::DeadLetter(dl) => {
            tracing::warn!(source = %source.name, event = %id, code = dl.code, field = %dl.field,
                reason = %dl.reason, "Event sent to the dead letter.");
            publish_dead_letter(
                js,
                dead_letter,
                source,
                &id,
                msg.headers.as_ref(),
                &msg.payload,
                &dl,
            )
            .await;
        }
        Disposition::Retry { .. } => return,
    }
    // Acknowledged only now, and confirmed by the server (a lost ack is a redelivery, which
    // the key turns into a no-op).
    if let Err(e) = msg.double_ack().await {
        tracing::warn!(source = %source.name, event = %id, error = %e,
            "Acknowledgement not confirmed; the event will be redelivered (a no-op).");
        let _ = msg.ack_with(AckKind::Nak(None)).await;
    }
}

async fn publish_dead_letter(
    js: &jetstream::Context,
    subject: &str,
    source: &Source,
    id: &str,
    original: Option<&HeaderMap>,
    payload: &[u8],
    dl: &DeadLetter,
) {
    let mut headers = HeaderMap::new();
    if let Some(h) = original {
        for (name, values) in h.iter() {
            for v in values {
                headers.append(name.clone(), v.clone());
            }
        }
    }
    headers.insert(REASON_HEADER, dl.reason.as_str());
    headers.insert(FIELD_HEADER, dl.field.as_str());
    headers.insert(CODE_HEADER, dl.code);
    headers.insert(SOURCE_HEADER, source.name.as_str());
    headers.insert(EVENT_HEADER, id);
    // JetStream drops a re-publish of the same id within its duplicate window: a crash between
    // the dead letter and the ack does not write the dead letter twice.
    headers.insert("Nats-Msg-Id", format!("dedupd-dead-letter:{id}").as_str());
    let mut attempt = 0u32;
    loop {
        let sent = async {
            js.publish_with_headers(subject.to_owned(), headers.clone(), payload.to_vec().into())
                .await
                .map_err(err)?
                .await
                .map_err(err)
        };
        match sent.await {
            Ok(_) => return,
            Err(e) => {
                if attempt.is_multiple_of(20) {
                    tracing::error!(source = %source.name, event = %id, %subject, error = %e,
                        "Cannot publish a dead letter (does a stream capture its subject?); retrying.");
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}
