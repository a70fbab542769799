//! Customer cards (api-notes §5, §10): `GET /dfo/3.0/customers?query=…` (search, `hits` and
//! `scrollToken` paging), `GET /dfo/3.0/customers/{id}`, `PUT /dfo/3.0/customers/{id}/merge`,
//! `PUT /dfo/3.0/customers/{id}/custom-fields`, `DELETE …/custom-fields/{ident}`,
//! `GET/PUT /dfo/3.0/customers/custom-field-definitions`. There is no create: cards come from
//! inbound messages and the admin seed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::dfo::page_size;
use super::error::{CxError, CxResult, Family};
use super::extract::{J, Pth, Q, req_str};
use super::paging;
use super::query::CustomerQuery;
use super::state::{CustomField, CustomerRec, CxInner, CxoneState, MergedRec};
use super::wire::{self, no_content, ok};
use crate::config::FaultKind;
use crate::gate::middleware::ReqCtx;

const DFO: Family = Family::Dfo;

/// Sort orders of the customer search (`orderBy`).
const ORDER_BY: &[&str] = &[
    "relevance",
    "createdAt",
    "updatedAt",
    "firstName",
    "lastName",
    "firstInteractionAt",
    "lastInteractionAt",
    "numberOfInbounds",
    "numberOfOutbounds",
];

/// The sort key of `c` under `order_by` (compared as strings; numbers zero-padded).
fn sort_key(c: &CustomerRec, order_by: &str) -> String {
    match order_by {
        "updatedAt" => c.updated_at.clone(),
        "firstName" => c.first_name.clone().unwrap_or_default().to_lowercase(),
        "lastName" => c.surname.clone().unwrap_or_default().to_lowercase(),
        "lastInteractionAt" => c.last_interaction_at.clone().unwrap_or_default(),
        "numberOfInbounds" => format!("{:020}", c.inbound),
        "numberOfOutbounds" => format!("{:020}", c.outbound),
        // relevance, createdAt, firstInteractionAt: creation order.
        _ => String::new(),
    }
}

/// `GET /dfo/3.0/customers`: `query` (see [`super::query`]; absent or empty = every customer),
/// `size` or `limit` (default 25, at most the page-size limit), `scrollToken`, `orderBy`
/// (default creation order), `order` (`asc` default, `desc`). Answers `{hits, data,
/// scrollToken}`: `scrollToken` only when the page is full, so a scan ends on a short page or,
/// when the total is a multiple of the size, on an empty one.
pub(crate) async fn search(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let raw_query = q.get("query").unwrap_or_default().to_owned();
    let query = CustomerQuery::parse(&raw_query).map_err(|m| CxError::dfo_invalid("query", m))?;
    let order_by = q
        .get("orderBy")
        .filter(|o| !o.is_empty())
        .unwrap_or("relevance")
        .to_owned();
    if !ORDER_BY.contains(&order_by.as_str()) {
        return Err(CxError::dfo_invalid(
            "orderBy",
            format!("orderBy must be one of {ORDER_BY:?}."),
        ));
    }
    let desc = match q.get("order").map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "asc") => false,
        Some("desc") => true,
        Some(_) => return Err(CxError::dfo_invalid("order", "order must be asc or desc.")),
    };
    let size = page_size(&q, st.shared.max_page_size)?;
    let search = format!("customers|{raw_query}|{order_by}|{desc}");
    let after = paging::after(&q, &search)?;
    let inner = st.lock();
    let (total, page, next) = if follows_creation(&order_by) {
        in_creation_order(&inner, &query, after.as_ref(), desc, size)
    } else {
        let mut hits: Vec<(String, u64, &CustomerRec)> = inner
            .customers
            .values()
            .filter(|c| query.matches(c))
            .map(|c| (sort_key(c, &order_by), c.seq, c))
            .collect();
        hits.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        if desc {
            hits.reverse();
        }
        let total = hits.len();
        let (page, next) = paging::page(hits, after.as_ref(), desc, size);
        (total, page, next)
    };
    let mut out = json!({
        "hits": total,
        "data": page.into_iter().map(wire::customer).collect::<Vec<_>>(),
    });
    paging::attach(&mut out, &search, next);
    Ok(ok(out))
}

/// Whether `order_by` is creation order (`relevance`, `createdAt`, `firstInteractionAt`:
/// the orders whose [`sort_key`] is empty).
fn follows_creation(order_by: &str) -> bool {
    matches!(order_by, "relevance" | "createdAt" | "firstInteractionAt")
}

/// A page in creation order straight from the order index (no sort: a scan of every card
/// stays cheap page after page). Returns `(hits, page, next cursor)`.
fn in_creation_order<'a>(
    inner: &'a CxInner,
    query: &CustomerQuery,
    after: Option<&paging::Cursor>,
    desc: bool,
    size: usize,
) -> (usize, Vec<&'a CustomerRec>, Option<paging::Cursor>) {
    use std::ops::Bound::{Excluded, Unbounded};
    let total = if query.is_empty() {
        inner.customers.len()
    } else {
        inner
            .customers
            .values()
            .filter(|c| query.matches(c))
            .count()
    };
    let range = match (after, desc) {
        (None, _) => inner.customer_order.range(..),
        (Some(c), false) => inner.customer_order.range((Excluded(c.seq), Unbounded)),
        (Some(c), true) => inner.customer_order.range((Unbounded, Excluded(c.seq))),
    };
    let live = |(_, id): (&u64, &String)| inner.customers.get(id);
    let page: Vec<&CustomerRec> = if desc {
        range
            .rev()
            .filter_map(live)
            .filter(|c| query.matches(c))
            .take(size)
            .collect()
    } else {
        range
            .filter_map(live)
            .filter(|c| query.matches(c))
            .take(size)
            .collect()
    };
    let next = (page.len() == size)
        .then(|| {
            page.last().map(|c| paging::Cursor {
                key: String::new(),
                seq: c.seq,
            })
        })
        .flatten();
    (total, page, next)
}

fn live<'a>(inner: &'a CxInner, id: &str) -> CxResult<&'a CustomerRec> {
    inner
        .customers
        .get(id)
        .ok_or_else(|| CxError::dfo_not_found(format!("Customer {id}")))
}

/// `GET /dfo/3.0/customers/{customerId}`. A merged-away id is 404 (the platform's behaviour
/// is not documented; the emulator does not resolve it to the survivor).
pub(crate) async fn get_one(
    State(st): State<CxoneState>,
    Pth(id): Pth<String>,
) -> CxResult<Response> {
    let inner = st.lock();
    live(&inner, &id).map(|c| ok(wire::customer(c)))
}

/// `PUT /dfo/3.0/customers/{customerId}/merge` `{customerToMerge: {id}}`: merges the source
/// card into `customerId`, irreversibly. What moves (the least forgiving plausible reading of
/// an undocumented operation): the source's identities (those the target lacks) and its
/// conversations (cases, with their threads and messages) and message counts. What is lost:
/// the source's names, image and custom fields: the target keeps its own, even empty ones.
/// The source id then answers 404 everywhere, so a repeated merge is a 404, not a success.
/// A `merge_conflict` fault answers 409 (the source "has a contact in progress"). 204 on
/// success.
pub(crate) async fn merge(
    State(st): State<CxoneState>,
    ctx: ReqCtx,
    Pth(target): Pth<String>,
    J(body): J,
) -> CxResult<Response> {
    let source = body
        .as_ref()
        .and_then(|b| b.get("customerToMerge"))
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            CxError::dfo_invalid("customerToMerge.id", "customerToMerge.id is required.")
        })?
        .to_owned();
    if source == target {
        return Err(CxError::dfo_invalid(
            "customerToMerge.id",
            "A customer cannot be merged into itself.",
        ));
    }
    let mut inner = st.lock();
    live(&inner, &target)?;
    live(&inner, &source)?;
    if ctx.merge_conflict(&source, true) {
        inner.gate.count_fault(FaultKind::MergeConflict.as_str());
        return Err(CxError::new(
            DFO,
            StatusCode::CONFLICT,
            "CustomerMergeConflict",
            format!("Customer {source} cannot be merged now: it has a contact in progress."),
        ));
    }
    apply_merge(&mut inner, &target, &source);
    Ok(no_content())
}

/// Moves `source` into `target` (both live, distinct).
pub(crate) fn apply_merge(inner: &mut CxInner, target: &str, source: &str) {
    let now = inner.now_iso();
    let Some(src) = inner.customers.remove(source) else {
        return;
    };
    inner.customer_order.remove(&src.seq);
    for case in inner.cases.values_mut() {
        if case.customer_id == source {
            case.customer_id = target.to_owned();
        }
    }
    let moved: Vec<String> = src.identities.iter().map(|i| i.id.clone()).collect();
    for ident in &moved {
        let Some(holders) = inner.identity_index.get_mut(&ident.to_lowercase()) else {
            continue;
        };
        for h in holders.iter_mut() {
            if h == source {
                *h = target.to_owned();
            }
        }
        let mut seen = std::collections::HashSet::new();
        holders.retain(|h| seen.insert(h.clone()));
    }
    if let Some(t) = inner.customers.get_mut(target) {
        for ident in &src.identities {
            if !t
                .identities
                .iter()
                .any(|x| x.id.eq_ignore_ascii_case(&ident.id))
            {
                t.identities.push(ident.clone());
            }
        }
        t.inbound += src.inbound;
        t.outbound += src.outbound;
        t.last_interaction_at = t
            .last_interaction_at
            .clone()
            .max(src.last_interaction_at.clone());
        t.updated_at = now.clone();
    }
    inner.merged.insert(
        source.to_owned(),
        MergedRec {
            rec: src,
            into: target.to_owned(),
            merged_at: now,
        },
    );
}

/// `PUT /dfo/3.0/customers/{customerId}/custom-fields` `[{ident, value}]`: sets those values
/// (others stay). Every `ident` must have a definition (400 otherwise, nothing applied).
/// Answers 200 with the customer card.
pub(crate) async fn put_custom_fields(
    State(st): State<CxoneState>,
    Pth(id): Pth<String>,
    J(body): J,
) -> CxResult<Response> {
    let items = body
        .as_ref()
        .and_then(Value::as_array)
        .ok_or_else(|| CxError::dfo_invalid("$", "The body must be an array of {ident, value}."))?;
    let mut inner = st.lock();
    live(&inner, &id)?;
    let now = inner.now_iso();
    let mut fields = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (Some(ident), Some(value)) = (
            item.get("ident").and_then(Value::as_str),
            item.get("value").and_then(Value::as_str),
        ) else {
            return Err(CxError::dfo_invalid(
                &format!("[{i}]"),
                format!("Item {i} needs ident and value (strings)."),
            ));
        };
        if !inner.field_defs.contains_key(ident) {
            return Err(CxError::dfo_invalid(
                &format!("[{i}].ident"),
                format!("Custom field {ident:?} is not defined."),
            ));
        }
        fields.push(CustomField {
            ident: ident.to_owned(),
            value: value.to_owned(),
            updated_at: now.clone(),
        });
    }
    let Some(c) = inner.customers.get_mut(&id) else {
        return Err(CxError::dfo_not_found(format!("Customer {id}")));
    };
    for f in fields {
        match c.custom_fields.iter_mut().find(|x| x.ident == f.ident) {
            Some(x) => *x = f,
            None => c.custom_fields.push(f),
        }
    }
    c.updated_at = now;
    Ok(ok(wire::customer(c)))
}

/// `DELETE /dfo/3.0/customers/{customerId}/custom-fields/{ident}`: 204; 404 when the card
/// holds no value for it.
pub(crate) async fn delete_custom_field(
    State(st): State<CxoneState>,
    Pth((id, ident)): Pth<(String, String)>,
) -> CxResult<Response> {
    let mut inner = st.lock();
    let now = inner.now_iso();
    let Some(c) = inner.customers.get_mut(&id) else {
        return Err(CxError::dfo_not_found(format!("Customer {id}")));
    };
    let before = c.custom_fields.len();
    c.custom_fields.retain(|f| f.ident != ident);
    if c.custom_fields.len() == before {
        return Err(CxError::dfo_not_found(format!(
            "Custom field {ident} of customer {id}"
        )));
    }
    c.updated_at = now;
    Ok(no_content())
}

/// `GET /dfo/3.0/customers/custom-field-definitions`: a bare array.
pub(crate) async fn get_definitions(State(st): State<CxoneState>) -> Response {
    let inner = st.lock();
    ok(Value::Array(inner.field_defs.values().cloned().collect()))
}

/// Checks one definition (`ident`, `label`, `type` text|email|list) and fills the flags'
/// defaults.
pub(crate) fn definition(body: &Value) -> CxResult<(String, Value)> {
    let ident = req_str(DFO, body, "ident")?.to_owned();
    let label = req_str(DFO, body, "label")?.to_owned();
    let kind = req_str(DFO, body, "type")?;
    if !["text", "email", "list"].contains(&kind) {
        return Err(CxError::dfo_invalid(
            "type",
            "type must be text, email or list.",
        ));
    }
    let flag = |f: &str, d: bool| body.get(f).and_then(Value::as_bool).unwrap_or(d);
    let def = json!({
        "ident": ident,
        "label": label,
        "type": kind,
        "isRequired": flag("isRequired", false),
        "isEditable": flag("isEditable", true),
        "isVisibleInRightPanel": flag("isVisibleInRightPanel", true),
        "isVisibleInCustomerCard": flag("isVisibleInCustomerCard", true),
        "values": body.get("values").cloned().unwrap_or(json!([])),
    });
    Ok((ident, def))
}

/// `PUT /dfo/3.0/customers/custom-field-definitions` (one definition): create or update; 204.
pub(crate) async fn put_definition(State(st): State<CxoneState>, J(body): J) -> CxResult<Response> {
    let body = body
        .filter(Value::is_object)
        .ok_or_else(|| CxError::dfo_invalid("$", "The body must be one definition object."))?;
    let (ident, def) = definition(&body)?;
    st.lock().field_defs.insert(ident, def);
    Ok(no_content())
}
