//! Shapes shared by several endpoints: references, page listings, cursors.
//!
//! All models follow one rule: JSON names are camelCase, unknown fields are ignored, and
//! `Option` fields are left out of requests when `None`.

use serde::{Deserialize, Serialize};

/// A reference to another entity (`AddressableEntityRef`, `DomainEntityRef`, divisions, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EntityRef {
    /// The entity's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its name, where the API gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

impl EntityRef {
    /// A reference by id.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }
}

/// A page of a numbered listing (`…EntityListing`, `ContactListing`, `ContactListingResponse`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The entities on this page.
    #[serde(default = "Vec::new")]
    pub entities: Vec<T>,
    /// Requested page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// This page's number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_number: Option<u32>,
    /// Entities in all pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Number of pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_count: Option<u32>,
    /// Contact search only: contacts in the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts_count: Option<u64>,
    /// External contact search only: the result may be incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_results: Option<bool>,
    /// URI of the next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_uri: Option<String>,
    /// URI of this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

impl<T> Page<T> {
    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        match (self.page_number, self.page_count) {
            (Some(number), Some(count)) => number < count,
            _ => self.next_uri.is_some(),
        }
    }
}

/// Cursors of a cursor-paged listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cursors {
    /// Cursor of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Cursor of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A page of a cursor listing (`CursorContactListing`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CursorPage<T> {
    /// The entities on this page.
    #[serde(default = "Vec::new")]
    pub entities: Vec<T>,
    /// Cursors; `after` is absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursors: Option<Cursors>,
    /// URI of the next page, absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_uri: Option<String>,
    /// URI of this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_uri: Option<String>,
}

impl<T> CursorPage<T> {
    /// The cursor of the next page, `None` on the last.
    pub fn next_cursor(&self) -> Option<&str> {
        self.cursors
            .as_ref()
            .and_then(|c| c.after.as_deref())
            .filter(|c| !c.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_knows_whether_more_follow() {
        let page: Page<EntityRef> = serde_json::from_str(
            r#"{"entities":[{"id":"a"}],"pageSize":1,"pageNumber":1,"total":2,"pageCount":2}"#,
        )
        .unwrap();
        assert!(page.has_next());
        let last: Page<EntityRef> =
            serde_json::from_str(r#"{"entities":[],"pageNumber":2,"pageCount":2}"#).unwrap();
        assert!(!last.has_next());
        let cursor: CursorPage<EntityRef> =
            serde_json::from_str(r#"{"entities":[],"cursors":{"before":"x"}}"#).unwrap();
        assert_eq!(cursor.next_cursor(), None);
    }
}
