//! Active associations of an External Contact: what makes the platform refuse to merge it
//! (409 `general.conflict`).
//!
//! The platform does not document the rule. The emulator models the plausible one: a contact
//! is associated while an **open conversation** (not ended) has a participant carrying its
//! `externalContactId`, or while it is flagged by hand (`activeAssociations: true` when seeded,
//! or `PUT /__emulator/externalcontacts/{id}/associations`). Ending the conversation
//! (`POST /__emulator/conversations/{id}/disconnect`) frees the contact.

use crate::state::Inner;

/// Whether an open conversation has a participant that is contact `id`.
pub(crate) fn in_open_conversation(inner: &Inner, id: &str) -> bool {
    inner.conversations.values().any(|c| {
        c.end.is_none()
            && c.participants
                .iter()
                .any(|p| p.external_contact_id.as_deref() == Some(id))
    })
}
