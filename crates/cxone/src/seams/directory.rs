//! [`CustomerDirectory`] on [`CxoneClient`]: DFO customer cards.
//!
//! - **Scan**: `GET /dfo/3.0/customers` without a query lists every live card, paged with
//!   `scrollToken`. Identities become the record's e-mail (one with `@`) and phone.
//! - **Merge**: `PUT /customers/{target}/merge` takes **one** source card
//!   ([`DirectoryCapabilities::max_ids_per_merge`] = 2: the survivor and one source) and
//!   cannot be undone (`merge_reversible: false`). What a merge does to names and custom
//!   fields is undocumented; the least forgiving reading is that the source's are dropped, so
//!   the resolved values are written on the survivor *after* the merge, as custom fields
//!   (`dedupd_<field>`): the API has no other writable field on a card.
//! - **Where a merged-away id went**: CXone answers 404 for it and says nothing more. Before
//!   each merge the survivor is marked with the ids it absorbs (custom field
//!   [`ABSORBED_FIELD`], carried over from the source's own), so [`CustomerDirectory::resolve`]
//!   finds the survivor of a merged-away id again, in this run or the next (after a
//!   `kill -9` too), through the customer search.

use std::collections::{BTreeMap, BTreeSet};

use dedupd_platform::directory::{
    CustomerDirectory, CustomerRecord, DirectoryCapabilities, MergeValues, Merged, Placement,
    Resolved, Scan, ScanPage,
};
use dedupd_platform::{ErrorKind, PlatformError};

use super::platform_error;
use crate::{CustomField, Customer, CxoneClient};

/// The custom field on a survivor listing (space-separated) every card merged into it.
pub const ABSORBED_FIELD: &str = "dedupd_absorbed";
/// Cards per scan page.
pub const SCAN_PAGE: usize = 100;
/// Ids one resolve call takes (each is one `GET`).
pub const FETCH_CHUNK: usize = 25;

/// The ids a card's [`ABSORBED_FIELD`] lists.
pub fn absorbed(card: &Customer) -> BTreeSet<String> {
    card.custom_field(ABSORBED_FIELD)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    digits >= 7
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
}

/// A card as the planner reads it.
pub fn customer_record(c: &Customer) -> CustomerRecord {
    let ids = c
        .identities
        .iter()
        .map(|i| i.id_on_external_platform.trim());
    CustomerRecord {
        id: c.id.clone().unwrap_or_default(),
        source: "customer".to_owned(),
        first_name: c.first_name.clone().unwrap_or_default(),
        last_name: c.surname.clone().unwrap_or_default(),
        email: ids
            .clone()
            .find(|i| is_email(i))
            .unwrap_or_default()
            .to_owned(),
        phone: ids
            .clone()
            .find(|i| is_phone(i))
            .unwrap_or_default()
            .to_owned(),
        updated_at: c
            .updated_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        ..CustomerRecord::default()
    }
}

/// A search query that is just this id, when it is safe to send as free text.
fn id_query(id: &str) -> Option<&str> {
    (!id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.eq_ignore_ascii_case("and")
        && !id.eq_ignore_ascii_case("or"))
    .then_some(id)
}

impl CxoneClient {
    /// The live card that absorbed `id`, if any (see the module docs).
    async fn survivor_of(&self, id: &str) -> Result<Option<Customer>, PlatformError> {
        let Some(query) = id_query(id) else {
            return Ok(None);
        };
        let page = self
            .dfo()
            .search_customers(Some(query), SCAN_PAGE, None)
            .await
            .map_err(|e| {
                platform_error(&e, &format!("looking for the card that absorbed {id}"), &[])
            })?;
        Ok(page.data.into_iter().find(|c| absorbed(c).contains(id)))
    }

    async fn card(&self, id: &str) -> Result<Option<Customer>, PlatformError> {
        match self.dfo().customer(id).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => Ok(None),
            Err(e) => Err(platform_error(&e, &format!("fetching customer {id}"), &[])),
        }
    }
}

impl CustomerDirectory for CxoneClient {
    const CAPABILITIES: DirectoryCapabilities = DirectoryCapabilities {
        max_ids_per_merge: 2,
        min_ids_per_merge: 2,
        max_merge_set: None,
        merge_reversible: false,
        merge_keeps_survivor_id: true,
        max_ids_per_fetch: FETCH_CHUNK,
    };

    /// Custom fields written on the survivor after the merge.
    type Values = Vec<CustomField>;

    fn place(values: &MergeValues) -> Placement<Vec<CustomField>> {
        let mut unplaced = values.unplaced.clone();
        let mut out = Vec::new();
        for (field, fv) in &values.fields {
            if let Some(v) = &fv.resolved {
                out.push(CustomField {
                    ident: format!("dedupd_{field}"),
                    value: v.clone(),
                });
            }
            // A card's other addresses are its channel identities, which the API cannot
            // write: the extra values have no slot.
            if !fv.extra.is_empty() {
                unplaced
                    .entry(field.clone())
                    .or_default()
                    .extend(fv.extra.iter().cloned());
            }
        }
        Placement {
            values: out,
            unplaced,
        }
    }

    async fn scan_page(&self, scan: &mut Scan) -> Result<Option<ScanPage>, PlatformError> {
        if scan.done {
            return Ok(None);
        }
        let page = self
            .dfo()
            .search_customers(None, SCAN_PAGE, scan.cursor.as_deref())
            .await
            .map_err(|e| platform_error(&e, "scanning customer cards", &[]))?;
        let next = page.scroll_token.filter(|t| !t.is_empty());
        if next.is_none() || page.data.len() < SCAN_PAGE || next == scan.cursor {
            scan.done = true;
        }
        scan.cursor = next;
        scan.read += page.data.len() as u64;
        if page.data.is_empty() {
            scan.done = true;
            return Ok(None);
        }
        Ok(Some(
            page.data
                .iter()
                .filter(|c| c.id.is_some())
                .map(customer_record)
                .collect(),
        ))
    }

    async fn resolve(&self, ids: &[String]) -> Result<BTreeMap<String, Resolved>, PlatformError> {
        let mut out = BTreeMap::new();
        for id in ids {
            let resolved = match self.card(id).await? {
                Some(card) => Resolved::Found {
                    canonical: card.id.clone().unwrap_or_else(|| id.clone()),
                    set: absorbed(&card).len() + 1,
                },
                None => match self.survivor_of(id).await? {
                    Some(s) => Resolved::Found {
                        set: absorbed(&s).len() + 1,
                        canonical: s.id.unwrap_or_default(),
                    },
                    None => Resolved::NotFound,
                },
            };
            out.insert(id.clone(), resolved);
        }
        Ok(out)
    }

    async fn merge(
        &self,
        ids: &[String],
        values: &Vec<CustomField>,
    ) -> Result<Merged, PlatformError> {
        let [target, source] = ids else {
            return Err(PlatformError::new(
                ErrorKind::Permanent,
                format!(
                    "a CXone merge takes the survivor and one source card, not {} ids",
                    ids.len()
                ),
            ));
        };
        let what = format!("merge of customer {source} into {target}");
        let mut idents: Vec<&str> = vec![ABSORBED_FIELD];
        idents.extend(values.iter().map(|f| f.ident.as_str()));
        self.ensure_custom_fields(&idents)
            .await
            .map_err(|e| platform_error(&e, "defining dedupd's custom fields", &[]))?;
        let Some(survivor) = self.card(target).await? else {
            return Err(PlatformError::new(
                ErrorKind::NotFound,
                format!("{what}: the survivor {target} does not exist"),
            )
            .with_status(404));
        };
        let mut marks = absorbed(&survivor);
        let already = match self.card(source).await? {
            Some(src) => {
                marks.extend(absorbed(&src));
                false
            }
            // Merged already (a run that died after the merge): done if into this survivor.
            None if marks.contains(source.as_str()) => true,
            None => {
                return Err(PlatformError::new(
                    ErrorKind::NotFound,
                    format!("{what}: the source card does not exist"),
                )
                .with_status(404));
            }
        };
        marks.insert(source.clone());
        let mark = CustomField {
            ident: ABSORBED_FIELD.to_owned(),
            value: marks.iter().cloned().collect::<Vec<_>>().join(" "),
        };
        let dfo = self.dfo();
        dfo.set_custom_fields(target, std::slice::from_ref(&mark))
            .await
            .map_err(|e| platform_error(&e, &format!("{what}: marking the survivor"), &[]))?;
        if !already {
            dfo.merge_customers(target, source)
                .await
                .map_err(|e| platform_error(&e, &what, &[]))?;
        }
        if !values.is_empty() {
            dfo.set_custom_fields(target, values).await.map_err(|e| {
                platform_error(&e, &format!("{what}: writing the resolved values"), &[])
            })?;
        }
        Ok(Merged {
            canonical: Some(target.clone()),
            set: marks.len() + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn identities_become_email_and_phone() {
        let c = Customer {
            id: Some("C1".into()),
            first_name: Some("Jane".into()),
            surname: Some("Doe".into()),
            identities: vec![
                Identity {
                    id_on_external_platform: "@jane_handle_x".into(),
                    ..Identity::default()
                },
                Identity {
                    id_on_external_platform: "+14155550100".into(),
                    ..Identity::default()
                },
                Identity {
                    id_on_external_platform: "jane@example.com".into(),
                    ..Identity::default()
                },
            ],
            updated_at: Some("2026-11-01T10:00:00.000Z".into()),
            ..Customer::default()
        };
        let r = customer_record(&c);
        assert_eq!(r.last_name, "Doe");
        assert_eq!(r.email, "jane@example.com");
        assert_eq!(r.phone, "+14155550100");
        assert!(r.updated_at.is_some());
    }

    #[test]
    fn only_plain_ids_are_searched_as_text() {
        assert_eq!(id_query("3f2a-b_9.x"), Some("3f2a-b_9.x"));
        for bad in ["", "a b", "x=y", "(a)", "AND", &"x".repeat(200)] {
            assert_eq!(id_query(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolved_values_become_custom_fields_and_extras_are_listed() {
        let mut values = MergeValues::default();
        values.fields.insert(
            "email".into(),
            dedupd_core::merge_values::FieldValues {
                resolved: Some("a@example.com".into()),
                extra: vec!["b@example.com".into()],
            },
        );
        let p = <CxoneClient as CustomerDirectory>::place(&values);
        assert_eq!(
            p.values,
            vec![CustomField {
                ident: "dedupd_email".into(),
                value: "a@example.com".into()
            }]
        );
        assert_eq!(p.unplaced["email"], vec!["b@example.com".to_owned()]);
    }
}
