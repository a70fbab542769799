//! Business notifications (the load of `dedupd-bench notify`): one shipped-order SMS per
//! index, to one of ten thousand recipients.

use dedupd_core::notification::{Channel, NotificationRequest};

/// Notification `i`: an SMS "Your order `i` has shipped" for customer `C-i`.
pub fn request(i: u64) -> NotificationRequest {
    NotificationRequest {
        channel: Channel::Sms,
        to: format!("+1415555{:04}", i % 10_000),
        text: format!("Your order {i} has shipped"),
        template: None,
        customer_id: Some(format!("C-{i}")),
        event_type: Some("order_shipped".into()),
        provider: None,
        not_after: None,
    }
}
