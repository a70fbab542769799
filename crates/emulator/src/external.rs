//! External Contacts (`/api/v2/externalcontacts/…`): CRUD, PATCH changes, search, scan,
//! identifier lookup, merge with merge sets, unresolved ancestors and the bulk operations.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::Response;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::{Body, P, Params, ReqCtx, ok_json};
use crate::schema::{Mode, SwaggerDoc};
use crate::state::{EmulatorState, ExtRec, Inner};
use crate::util::now_iso;

/// Contacts per merge request: at least 2, at most 25.
pub const MERGE_MIN: usize = 2;
/// See [`MERGE_MIN`].
pub const MERGE_MAX: usize = 25;
/// Largest merge set (every contact of a merge tree, heads included).
pub const MERGE_SET_MAX: usize = 52;

const BASE: &str = "/api/v2/externalcontacts/contacts";
const SERVER_FIELDS: &[&str] = &[
    "id",
    "createDate",
    "modifyDate",
    "selfUri",
    "canonicalContact",
    "mergeSet",
    "mergedFrom",
    "mergedTo",
    "mergeOperation",
    "externalDataSources",
];
const EMAILS: &[&str] = &["workEmail", "personalEmail", "otherEmail"];
const PHONES: &[&str] = &["workPhone", "cellPhone", "homePhone", "otherPhone"];
const NAMES: &[&str] = &["firstName", "middleName", "lastName", "salutation", "title"];

fn ext_schema() -> Value {
    json!({"$ref": "#/definitions/ExternalContact"})
}

fn entity_ref(id: &str) -> Value {
    json!({"id": id, "selfUri": format!("{BASE}/{id}")})
}

/// Country calling codes for the handful of regions the E.164 approximation knows.
fn calling_code(region: &str) -> Option<&'static str> {
    Some(match region.to_ascii_uppercase().as_str() {
        "US" | "CA" => "1",
        "GB" => "44",
        "FR" => "33",
        "DE" => "49",
        "ES" => "34",
        "IT" => "39",
        "NL" => "31",
        "IE" => "353",
        "BR" => "55",
        "MX" => "52",
        "IN" => "91",
        "AU" => "61",
        "JP" => "81",
        _ => return None,
    })
}

/// An approximation of the platform's E.164 reading of `PhoneNumber.display`: a leading `+`
/// keeps the digits; otherwise the `normalizationCountryCode` (default +1) is prefixed after
/// dropping a trunk `0`.
fn e164(display: &str, region: Option<&str>) -> Option<String> {
    let trimmed = display.trim();
    if trimmed.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if let Some(rest) = trimmed.strip_prefix('+') {
        let d: String = rest.chars().filter(char::is_ascii_digit).collect();
        return (8..=15).contains(&d.len()).then(|| format!("+{d}"));
    }
    let cc = calling_code(region.unwrap_or("US"))?;
    let national = if cc == "1" {
        match digits.len() {
            10 => digits,
            11 if digits.starts_with('1') => digits[1..].to_owned(),
            _ => return None,
        }
    } else {
        digits.trim_start_matches('0').to_owned()
    };
    let full = format!("{cc}{national}");
    (8..=15).contains(&full.len()).then(|| format!("+{full}"))
}

fn bad_field(field: &str, msg: String) -> ApiError {
    ApiError::invalid_value(msg).with_detail("invalid.value", field, None)
}

/// Validates and normalises the writable fields of an ExternalContact (server fields dropped,
/// whitespace trimmed, phone numbers read as E.164, external sources given a name).
fn normalize(body: &Value) -> ApiResult<Map<String, Value>> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(
            "An ExternalContact must be a JSON object.",
        ));
    };
    let errors = SwaggerDoc::excerpt().validate(body, &ext_schema(), Mode::Request);
    if !errors.is_empty() {
        return Err(ApiError::invalid_value(format!(
            "Invalid contact: {}",
            errors.join("; ")
        )));
    }
    let mut m: Map<String, Value> = obj
        .iter()
        .filter(|(k, v)| !v.is_null() && !SERVER_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in NAMES.iter().chain(EMAILS).chain(&["externalSystemUrl"]) {
        if let Some(s) = m
            .get(*k)
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned())
        {
            if s.is_empty() {
                m.remove(*k);
                continue;
            }
            let max = if EMAILS.contains(k) { 256 } else { 1000 };
            if s.chars().count() > max {
                return Err(bad_field(
                    k,
                    format!("{k} is longer than {max} characters."),
                ));
            }
            if EMAILS.contains(k) {
                let valid = s.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !s.contains(char::is_whitespace)
                });
                if !valid {
                    return Err(bad_field(
                        k,
                        format!("Value [{s}] is not a valid email address for {k}."),
                    ));
                }
            }
            m.insert((*k).to_owned(), Value::String(s));
        }
    }
    for k in PHONES {
        let Some(p) = m.get_mut(*k).and_then(Value::as_object_mut) else {
            continue;
        };
        for server in ["e164", "countryCode", "userInput"] {
            p.remove(server);
        }
        let display = p.get("display").and_then(Value::as_str).map(str::to_owned);
        match display {
            Some(d) if !d.trim().is_empty() => {
                if d.chars().count() > 512 {
                    return Err(bad_field(
                        k,
                        format!("{k}.display is longer than 512 characters."),
                    ));
                }
                p.insert("userInput".into(), json!(d));
                let region = p.get("normalizationCountryCode").and_then(Value::as_str);
                if let Some(e) = e164(&d, region) {
                    if e.starts_with("+1") {
                        p.insert("countryCode".into(), json!("US"));
                    }
                    p.insert("display".into(), json!(e));
                    p.insert("e164".into(), json!(e));
                }
            }
            _ => {
                m.remove(*k);
            }
        }
    }
    for (k, max) in [("externalIds", 10usize), ("appleOpaqueIds", 10)] {
        if m.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > max)
        {
            return Err(bad_field(k, format!("{k} holds at most {max} ids.")));
        }
    }
    if let Some(ids) = m.get_mut("externalIds").and_then(Value::as_array_mut) {
        for (i, e) in ids.iter_mut().enumerate() {
            let value_ok = e
                .get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty());
            let Some(src) = e.get_mut("externalSource").and_then(Value::as_object_mut) else {
                return Err(bad_field(
                    "externalIds",
                    format!("externalIds[{i}].externalSource is required."),
                ));
            };
            let Some(id) = src.get("id").and_then(Value::as_str).map(str::to_owned) else {
                return Err(bad_field(
                    "externalIds",
                    format!("externalIds[{i}].externalSource.id is required."),
                ));
            };
            src.entry("name").or_insert_with(|| json!(id));
            if !value_ok {
                return Err(bad_field(
                    "externalIds",
                    format!("externalIds[{i}].value is required."),
                ));
            }
        }
    }
    if let Some(ids) = m.get("identifiers").and_then(Value::as_array) {
        for (i, ident) in ids.iter().enumerate() {
            let ok = ident.get("type").and_then(Value::as_str).is_some()
                && ident.get("value").and_then(Value::as_str).is_some();
            if !ok {
                return Err(bad_field(
                    "identifiers",
                    format!("identifiers[{i}] needs a type and a value."),
                ));
            }
        }
    }
    Ok(m)
}

/// Identifiers a contact claims: its e-mails, E.164 phones and external ids, plus any given.
fn identifiers(rec: &ExtRec) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |ty: &str, value: String, source: Option<Value>| {
        let key = (
            ty.to_owned(),
            value.to_lowercase(),
            source
                .as_ref()
                .and_then(|s| s.get("id"))
                .cloned()
                .unwrap_or(Value::Null)
                .to_string(),
        );
        if seen.insert(key) {
            let mut m = Map::new();
            m.insert("type".into(), json!(ty));
            m.insert("value".into(), json!(value));
            if let Some(s) = source {
                m.insert("externalSource".into(), s);
            }
            m.insert("dateCreated".into(), json!(rec.create_date));
            out.push(Value::Object(m));
        }
    };
    for k in EMAILS {
        if let Some(e) = rec.fields.get(*k).and_then(Value::as_str) {
            push("Email", e.to_lowercase(), None);
        }
    }
    for k in PHONES {
        if let Some(e) = rec
            .fields
            .get(*k)
            .and_then(|p| p.get("e164"))
            .and_then(Value::as_str)
        {
            push("Phone", e.to_owned(), None);
        }
    }
    for e in rec
        .fields
        .get("externalIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            push("ExternalId", v.to_owned(), e.get("externalSource").cloned());
        }
    }
    for i in rec
        .fields
        .get("identifiers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(t), Some(v)) = (
            i.get("type").and_then(Value::as_str),
            i.get("value").and_then(Value::as_str),
        ) {
            push(t, v.to_owned(), i.get("externalSource").cloned());
        }
    }
    out
}

/// Renders a contact record as the API returns it (its own record, no resolution).
pub(crate) fn render(rec: &ExtRec) -> Value {
    let mut m = rec.fields.clone();
    m.insert("id".into(), json!(rec.id));
    m.entry("type").or_insert_with(|| json!("Curated"));
    m.insert("identifiers".into(), Value::Array(identifiers(rec)));
    m.insert("createDate".into(), json!(rec.create_date));
    m.insert("modifyDate".into(), json!(rec.modify_date));
    if let Some(c) = &rec.canonical {
        m.insert("canonicalContact".into(), entity_ref(c));
        m.insert(
            "mergeSet".into(),
            Value::Array(rec.merge_set.iter().map(|i| entity_ref(i)).collect()),
        );
    }
    if !rec.merged_from.is_empty() {
        m.insert(
            "mergedFrom".into(),
            Value::Array(rec.merged_from.iter().map(|i| entity_ref(i)).collect()),
        );
    }
    if let Some(t) = &rec.merged_to {
        m.insert("mergedTo".into(), entity_ref(t));
    }
    m.insert("selfUri".into(), json!(format!("{BASE}/{}", rec.id)));
    Value::Object(m)
}

/// Follows merges to the live head of `id`'s tree.
fn resolve<'a>(inner: &'a Inner, id: &str) -> ApiResult<&'a ExtRec> {
    let mut cur = inner
        .ext
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("external contact {id}")))?;
    let mut hops = 0;
    while let Some(next) = cur.merged_to.as_deref() {
        hops += 1;
        if hops > MERGE_SET_MAX {
            break;
        }
        cur = inner
            .ext
            .get(next)
            .ok_or_else(|| ApiError::not_found(format!("external contact {id}")))?;
    }
    if cur.deleted {
        return Err(ApiError::not_found(format!("external contact {id}")));
    }
    Ok(cur)
}

fn live_heads(inner: &Inner) -> Vec<&ExtRec> {
    let mut v: Vec<&ExtRec> = inner
        .ext
        .values()
        .filter(|r| !r.deleted && r.merged_to.is_none())
        .collect();
    v.sort_by_key(|r| r.seq);
    v
}

/// Creates a contact from validated fields. `id` is honoured when given (seeding only).
pub(crate) fn insert_new(
    inner: &mut Inner,
    fields: Map<String, Value>,
    id: Option<String>,
) -> ApiResult<String> {
    let id = id.unwrap_or_else(|| inner.new_id());
    if inner.ext.contains_key(&id) {
        return Err(
            ApiError::conflict(format!("External contact {id} already exists.")).with_entity(id),
        );
    }
    inner.ext_seq += 1;
    let now = now_iso();
    let seq = inner.ext_seq;
    inner.ext_order.insert(seq, id.clone());
    inner.ext.insert(
        id.clone(),
        ExtRec {
            id: id.clone(),
            fields,
            create_date: now.clone(),
            modify_date: now,
            modify_seq: seq,
            seq,
            deleted: false,
            merged_to: None,
            merged_from: Vec::new(),
            canonical: None,
            merge_set: Vec::new(),
            active_associations: false,
        },
    );
    Ok(id)
}

fn replace_fields(inner: &mut Inner, id: &str, fields: Map<String, Value>) -> ApiResult<Value> {
    inner.ext_seq += 1;
    let seq = inner.ext_seq;
    let rec = inner
        .ext
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("external contact {id}")))?;
    rec.fields = fields;
    rec.modify_date = now_iso();
    rec.modify_seq = seq;
    Ok(render(rec))
}

/// Seeds one contact (admin): the body may carry `id` and `activeAssociations`.
pub(crate) fn seed_contact(inner: &mut Inner, body: &Value) -> ApiResult<String> {
    let id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    let active = body
        .get("activeAssociations")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut clean = body.clone();
    if let Some(m) = clean.as_object_mut() {
        m.remove("activeAssociations");
    }
    let fields = normalize(&clean)?;
    let id = insert_new(inner, fields, id)?;
    if let Some(r) = inner.ext.get_mut(&id) {
        r.active_associations = active;
    }
    Ok(id)
}

pub(crate) async fn create(State(st): State<EmulatorState>, body: Body) -> ApiResult<Response> {
    let fields = normalize(&body.required()?)?;
    let mut inner = st.lock();
    let id = insert_new(&mut inner, fields, None)?;
    let rec = inner.ext.get(&id).ok_or_else(|| ApiError::not_found(&id))?;
    Ok(ok_json(render(rec)))
}

/// `GET …/contacts/{id}`: a merged-away id resolves to its canonical contact.
pub(crate) async fn get_one(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let inner = st.lock();
    Ok(ok_json(render(resolve(&inner, &id)?)))
}

/// `GET …/contacts/{id}/unresolved`: the record itself, even when merged away.
pub(crate) async fn unresolved(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let inner = st.lock();
    let rec = inner
        .ext
        .get(&id)
        .filter(|r| !r.deleted)
        .ok_or_else(|| ApiError::not_found(format!("external contact {id}")))?;
    Ok(ok_json(render(rec)))
}

pub(crate) async fn update(
    State(st): State<EmulatorState>,
    P(id): P<String>,
    body: Body,
) -> ApiResult<Response> {
    let fields = normalize(&body.required()?)?;
    let mut inner = st.lock();
    let head = resolve(&inner, &id)?.id.clone();
    Ok(ok_json(replace_fields(&mut inner, &head, fields)?))
}

pub(crate) async fn delete(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let mut inner = st.lock();
    let head = resolve(&inner, &id)?.id.clone();
    if let Some(r) = inner.ext.get_mut(&head) {
        r.deleted = true;
    }
    Ok(ok_json(json!({})))
}

fn is_empty_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

/// Applies one `ContactsPatchChange` to `doc`. Paths are `$.field` or `$.field.sub`.
fn apply_change(doc: &mut Map<String, Value>, change: &Value, index: usize) -> ApiResult<()> {
    let field = change.get("field").and_then(Value::as_str).unwrap_or("");
    let action = change.get("action").and_then(Value::as_str).unwrap_or("");
    let value = change.get("value").cloned().unwrap_or(Value::Null);
    let bad = |msg: String| bad_field(&format!("changes[{index}]"), msg);
    let path: Vec<&str> = field
        .strip_prefix("$.")
        .map(|p| p.split('.').collect())
        .unwrap_or_default();
    if path.is_empty()
        || path.len() > 2
        || path
            .iter()
            .any(|s| s.is_empty() || s.contains(['[', ']', '*']))
    {
        return Err(bad(format!(
            "Unsupported field path [{field}]; use $.field or $.field.subfield."
        )));
    }
    if SERVER_FIELDS.contains(&path[0]) {
        return Err(bad(format!("Field [{field}] cannot be changed.")));
    }
    let (parent, key): (&mut Map<String, Value>, &str) = if path.len() == 1 {
        (doc, path[0])
    } else {
        let p = doc
            .entry(path[0])
            .or_insert_with(|| Value::Object(Map::new()));
        if p.is_null() {
            *p = Value::Object(Map::new());
        }
        let Some(p) = p.as_object_mut() else {
            return Err(bad(format!("Field [$.{}] is not an object.", path[0])));
        };
        (p, path[1])
    };
    let current = parent.get(key);
    match action {
        "Update" => {
            if value.is_null() {
                parent.remove(key);
            } else {
                parent.insert(key.to_owned(), value);
            }
        }
        "UpdateIfEmpty" => {
            if is_empty_value(current) && !value.is_null() {
                parent.insert(key.to_owned(), value);
            }
        }
        "UpdateIfExists" => {
            if !is_empty_value(current) {
                if value.is_null() {
                    parent.remove(key);
                } else {
                    parent.insert(key.to_owned(), value);
                }
            }
        }
        "Remove" => {
            parent.remove(key);
        }
        "AppendToCollection" => {
            let entry = parent
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            if entry.is_null() {
                *entry = Value::Array(Vec::new());
            }
            let Some(arr) = entry.as_array_mut() else {
                return Err(bad(format!("Field [{field}] is not a collection.")));
            };
            let items = match value {
                Value::Array(a) => a,
                Value::Null => return Err(bad("AppendToCollection needs a value.".into())),
                v => vec![v],
            };
            for v in items {
                if !arr.contains(&v) {
                    arr.push(v);
                }
            }
        }
        "RemoveFromCollection" => {
            let Some(arr) = parent.get_mut(key) else {
                return Ok(());
            };
            let Some(arr) = arr.as_array_mut() else {
                return Err(bad(format!("Field [{field}] is not a collection.")));
            };
            let items = match value {
                Value::Array(a) => a,
                v => vec![v],
            };
            arr.retain(|x| !items.contains(x));
        }
        other => return Err(bad(format!("Unknown action [{other}]."))),
    }
    if path.len() == 2
        && doc
            .get(path[0])
            .is_some_and(|p| p.as_object().is_some_and(Map::is_empty))
    {
        doc.remove(path[0]);
    }
    Ok(())
}

/// `PATCH …/contacts/{id}` with `{changes:[{field, value, action}]}`.
pub(crate) async fn patch(
    State(st): State<EmulatorState>,
    P(id): P<String>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let Some(changes) = body.get("changes").and_then(Value::as_array) else {
        return Err(bad_field("changes", "changes is required.".into()));
    };
    let mut inner = st.lock();
    let head = resolve(&inner, &id)?;
    let head_id = head.id.clone();
    let mut doc = head.fields.clone();
    for (i, c) in changes.iter().enumerate() {
        apply_change(&mut doc, c, i)?;
    }
    let fields = normalize(&Value::Object(doc))?;
    Ok(ok_json(replace_fields(&mut inner, &head_id, fields)?))
}

fn text_leaves(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(&s.to_lowercase());
            out.push('\u{1f}');
        }
        Value::Array(a) => a.iter().for_each(|x| text_leaves(x, out)),
        Value::Object(o) => o.values().for_each(|x| text_leaves(x, out)),
        _ => {}
    }
}

/// `GET …/contacts?q=`: case-insensitive search over the contacts' text fields.
pub(crate) async fn search(State(st): State<EmulatorState>, q: Params) -> ApiResult<Response> {
    let size = q.int("pageSize", 20)?;
    let number = q.int("pageNumber", 1)?;
    if !(1..=100).contains(&size) || number < 1 {
        return Err(ApiError::invalid_value(
            "pageSize must be 1..=100 and pageNumber at least 1.",
        ));
    }
    if size * number > 1000 {
        return Err(ApiError::invalid_value(format!(
            "pageNumber * pageSize must be at most 1000, got {}.",
            size * number
        )));
    }
    let (size, number) = (size as usize, number as usize);
    let needle = q.get("q").unwrap_or("").trim().to_lowercase();
    let descending = q
        .get("sortOrder")
        .is_some_and(|s| s.to_ascii_lowercase().contains("desc"));
    let inner = st.lock();
    let mut hits: Vec<&ExtRec> = live_heads(&inner)
        .into_iter()
        .filter(|r| {
            if needle.is_empty() {
                return true;
            }
            let mut hay = String::new();
            text_leaves(&Value::Object(r.fields.clone()), &mut hay);
            hay.contains(&needle)
        })
        .collect();
    let key = |r: &ExtRec| {
        let f = |k: &str| {
            r.fields
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase()
        };
        (f("lastName"), f("firstName"), r.id.clone())
    };
    hits.sort_by_key(|r| key(r));
    if descending {
        hits.reverse();
    }
    let total = hits.len();
    let entities = hits
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .map(render)
        .collect();
    let extra = if needle.is_empty() {
        String::new()
    } else {
        format!("&q={needle}")
    };
    let mut m = crate::outbound::listing(BASE, &extra, entities, total, size, number);
    m.insert("partialResults".into(), json!(false));
    Ok(ok_json(Value::Object(m)))
}

const CURSOR_PREFIX: &str = "scan1-";

/// `GET /api/v2/externalcontacts/scan/contacts?limit&cursor`: every live contact in creation
/// order; `cursors.after` and `nextUri` only while more remain.
pub(crate) async fn scan(State(st): State<EmulatorState>, q: Params) -> ApiResult<Response> {
    let limit = q.int("limit", 100)?;
    if !(10..=200).contains(&limit) {
        return Err(ApiError::invalid_value(format!(
            "limit must be between 10 and 200, got {limit}."
        )));
    }
    let limit = limit as usize;
    let after = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .strip_prefix(CURSOR_PREFIX)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| ApiError::invalid_value(format!("Invalid cursor [{c}].")))?,
    };
    let inner = st.lock();
    // Walk the creation-order index from the cursor; one extra live contact tells "more".
    let mut page: Vec<&ExtRec> = inner
        .ext_order
        .range(after.saturating_add(1)..)
        .filter_map(|(_, id)| inner.ext.get(id))
        .filter(|r| !r.deleted && r.merged_to.is_none())
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let self_uri = match q.get("cursor") {
        Some(c) if !c.is_empty() => {
            format!("/api/v2/externalcontacts/scan/contacts?limit={limit}&cursor={c}")
        }
        _ => format!("/api/v2/externalcontacts/scan/contacts?limit={limit}"),
    };
    let mut m = Map::new();
    m.insert(
        "entities".into(),
        Value::Array(page.iter().map(|r| render(r)).collect()),
    );
    m.insert("selfUri".into(), json!(self_uri));
    if more && let Some(last) = page.last() {
        let cursor = format!("{CURSOR_PREFIX}{:x}", last.seq);
        m.insert("cursors".into(), json!({"after": cursor}));
        m.insert(
            "nextUri".into(),
            json!(format!(
                "/api/v2/externalcontacts/scan/contacts?limit={limit}&cursor={cursor}"
            )),
        );
    }
    Ok(ok_json(Value::Object(m)))
}

/// `POST …/identifierlookup/contacts`: the most recently modified live contact claiming the
/// identifier.
pub(crate) async fn identifier_lookup(
    State(st): State<EmulatorState>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let ty = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_field("type", "type is required.".into()))?;
    let value = body
        .get("value")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_field("value", "value is required.".into()))?;
    if ty == "Phone" && !value.starts_with('+') {
        return Err(bad_field(
            "value",
            format!("Phone identifiers must be in E.164 form (+<country code>…), got [{value}]."),
        ));
    }
    let source = body
        .get("externalSource")
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str);
    let inner = st.lock();
    let best = live_heads(&inner)
        .into_iter()
        .filter(|r| {
            identifiers(r).iter().any(|i| {
                let t = i.get("type").and_then(Value::as_str) == Some(ty);
                let v = i.get("value").and_then(Value::as_str).is_some_and(|v| {
                    if ty == "Email" {
                        v.eq_ignore_ascii_case(value)
                    } else {
                        v == value
                    }
                });
                let s = source.is_none_or(|sid| {
                    i.get("externalSource")
                        .and_then(|s| s.get("id"))
                        .and_then(Value::as_str)
                        == Some(sid)
                });
                t && v && s
            })
        })
        .max_by_key(|r| r.modify_seq);
    match best {
        Some(r) => Ok(ok_json(render(r))),
        None => Err(ApiError::not_found(format!(
            "contact with identifier {ty} {value}"
        ))),
    }
}

fn phone_key(p: &Value) -> Option<String> {
    p.get("e164")
        .or_else(|| p.get("display"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Moves the values of `slots` (e.g. the e-mail fields) of `others` into `base`: a value whose
/// `key` is already present is skipped; a new one goes to its own slot when free, else to the
/// first free slot, else it is dropped (the platform has a fixed number of slots).
fn fill_free_slots(
    base: &mut Map<String, Value>,
    others: &[&ExtRec],
    slots: &[&str],
    key: impl Fn(&Value) -> Option<String>,
) {
    let mut seen: Vec<String> = slots
        .iter()
        .filter_map(|k| base.get(*k).and_then(&key))
        .collect();
    for other in others {
        for k in slots {
            let Some(v) = other.fields.get(*k) else {
                continue;
            };
            let Some(vk) = key(v) else {
                continue;
            };
            if seen.contains(&vk) {
                continue;
            }
            let slot = if base.get(*k).is_none() {
                Some(*k)
            } else {
                slots.iter().copied().find(|s| base.get(*s).is_none())
            };
            if let Some(s) = slot {
                base.insert(s.to_owned(), v.clone());
                seen.push(vk);
            }
        }
    }
}

/// The platform's merge of field values: the most recently modified contact is the base; its
/// null fields are filled from the others (most recent first); e-mails and phones that differ
/// move to free slots; external ids and identifiers are united.
fn merged_fields(sources: &[&ExtRec]) -> Map<String, Value> {
    let mut ordered: Vec<&ExtRec> = sources.to_vec();
    ordered.sort_by_key(|r| std::cmp::Reverse(r.modify_seq));
    let mut base = ordered
        .first()
        .map(|r| r.fields.clone())
        .unwrap_or_default();
    for other in ordered.iter().skip(1) {
        for (k, v) in &other.fields {
            if EMAILS.contains(&k.as_str()) || PHONES.contains(&k.as_str()) {
                continue;
            }
            if is_empty_value(base.get(k)) {
                base.insert(k.clone(), v.clone());
                continue;
            }
            if let ("externalIds" | "appleOpaqueIds" | "identifiers", Some(Value::Array(mine))) =
                (k.as_str(), base.get_mut(k))
            {
                for item in v.as_array().into_iter().flatten() {
                    if !mine.contains(item) && (k != "externalIds" || mine.len() < 10) {
                        mine.push(item.clone());
                    }
                }
            }
        }
    }
    // E-mails and phones: every distinct value, base's slots first, the others' into free slots.
    let email_key = |v: &Value| v.as_str().map(str::to_lowercase);
    fill_free_slots(&mut base, &ordered[1..], EMAILS, email_key);
    fill_free_slots(&mut base, &ordered[1..], PHONES, phone_key);
    base
}

/// `POST …/contacts/merge`: merges 2–25 contacts into a NEW canonical contact.
pub(crate) async fn merge(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let ids: Vec<String> = body
        .get("contactIds")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_field("contactIds", "contactIds is required.".into()))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if !(MERGE_MIN..=MERGE_MAX).contains(&ids.len()) {
        return Err(bad_field(
            "contactIds",
            format!(
                "contactIds must hold between {MERGE_MIN} and {MERGE_MAX} contacts, got {}.",
                ids.len()
            ),
        ));
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    if distinct.len() != ids.len() {
        return Err(bad_field(
            "contactIds",
            "contactIds must not repeat a contact.".into(),
        ));
    }
    let override_fields = match body.get("valueOverride").filter(|v| !v.is_null()) {
        Some(v) => Some(normalize(v)?),
        None => None,
    };
    let mut inner = st.lock();
    let mut heads: Vec<String> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let rec = inner.ext.get(id).filter(|r| !r.deleted).ok_or_else(|| {
            ApiError::not_found(format!("external contact {id}")).with_entity(id.clone())
        })?;
        let flagged =
            rec.active_associations || crate::associations::in_open_conversation(&inner, id);
        let injected = !flagged && ctx.merge_conflict(id, i == 0);
        if flagged || injected {
            if injected {
                inner
                    .gate
                    .count_fault(crate::config::FaultKind::MergeConflict.as_str());
            }
            return Err(ApiError::conflict(format!(
                "Contact {id} cannot be merged: it has active associations (e.g. open conversations)."
            ))
            .with_entity(id.clone())
            .with_detail("general.conflict", "contactIds", Some(id)));
        }
        let head = resolve(&inner, id)?.id.clone();
        if !heads.contains(&head) {
            heads.push(head);
        }
    }
    if heads.len() < MERGE_MIN {
        return Err(bad_field(
            "contactIds",
            "The contacts are already merged into the same canonical contact.".into(),
        ));
    }
    let mut set: Vec<String> = Vec::new();
    for h in &heads {
        let rec = inner.ext.get(h).ok_or_else(|| ApiError::not_found(h))?;
        let members = if rec.merge_set.is_empty() {
            vec![rec.id.clone()]
        } else {
            rec.merge_set.clone()
        };
        for m in members {
            if !set.contains(&m) {
                set.push(m);
            }
        }
    }
    if set.len() + 1 > MERGE_SET_MAX {
        return Err(bad_field(
            "contactIds",
            format!(
                "The merge would create a merge set of {} contacts; at most {MERGE_SET_MAX} are allowed.",
                set.len() + 1
            ),
        ));
    }
    let sources: Vec<&ExtRec> = heads.iter().filter_map(|h| inner.ext.get(h)).collect();
    let mut fields = merged_fields(&sources);
    fields.remove("type");
    if let Some(ov) = override_fields {
        for (k, v) in ov {
            fields.insert(k, v);
        }
    }
    let fields = normalize(&Value::Object(fields))?;
    let new_id = insert_new(&mut inner, fields, None)?;
    set.push(new_id.clone());
    for m in &set {
        if let Some(r) = inner.ext.get_mut(m) {
            r.canonical = Some(new_id.clone());
            r.merge_set = set.clone();
        }
    }
    for h in &heads {
        if let Some(r) = inner.ext.get_mut(h) {
            r.merged_to = Some(new_id.clone());
        }
    }
    let rec = inner
        .ext
        .get_mut(&new_id)
        .ok_or_else(|| ApiError::not_found(&new_id))?;
    rec.merged_from = heads;
    rec.fields.insert("type".into(), json!("Curated"));
    Ok(ok_json(render(rec)))
}

fn entity_error(
    status: u16,
    code: &str,
    message: String,
    retryable: bool,
    entity: Option<Value>,
    field: Option<&str>,
) -> Value {
    let mut e = json!({
        "code": code,
        "message": message,
        "status": status,
        "retryable": retryable,
        "details": [],
    });
    if let Some(f) = field
        && let Some(d) = e.get_mut("details").and_then(Value::as_array_mut)
    {
        d.push(json!({"fieldName": f, "message": message}));
    }
    if let (Some(ent), Some(m)) = (entity, e.as_object_mut()) {
        m.insert("entity".into(), ent);
    }
    e
}

fn failure(id: Option<&str>, status: u16, error: Value) -> Value {
    let mut r = json!({"success": false, "status": status, "error": error});
    if let (Some(id), Some(m)) = (id, r.as_object_mut()) {
        m.insert("id".into(), json!(id));
    }
    r
}

fn injected_failure(id: Option<&str>, status: u16, entity: Option<Value>) -> Value {
    let (code, message, retryable) = if status < 500 {
        (
            "invalid.value",
            "The entity was rejected: Value is not valid for this field.".to_owned(),
            false,
        )
    } else if status == 503 {
        (
            "service.unavailable",
            "Service Unavailable - please retry.".to_owned(),
            true,
        )
    } else {
        (
            "internal.server.error",
            "The server encountered an unexpected condition.".to_owned(),
            true,
        )
    };
    failure(
        id,
        status,
        entity_error(status, code, message, retryable, entity, None),
    )
}

fn bulk_entities(body: &Value) -> ApiResult<Vec<Value>> {
    body.get("entities")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| bad_field("entities", "entities is required.".into()))
}

/// Shuffles results (seeded) and computes `errorCount` / `errorIndexes`.
fn bulk_response(inner: &mut Inner, mut results: Vec<Value>) -> Response {
    results.shuffle(&mut inner.gate.fault_rng);
    let error_indexes: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.get("success").and_then(Value::as_bool) != Some(true))
        .map(|(i, _)| i)
        .collect();
    ok_json(json!({
        "results": results,
        "errorCount": error_indexes.len(),
        "errorIndexes": error_indexes,
    }))
}

fn not_found_result(id: &str) -> Value {
    failure(
        Some(id),
        404,
        entity_error(
            404,
            "not.found",
            format!("External contact {id} was not found."),
            false,
            Some(json!({"id": id})),
            None,
        ),
    )
}

/// The success result of one bulk record (`entity` omitted when `None`).
fn success(id: &str, entity: Option<Value>) -> Value {
    let mut r = json!({"id": id, "success": true, "status": 200});
    if let (Some(entity), Some(m)) = (entity, r.as_object_mut()) {
        m.insert("entity".into(), entity);
    }
    r
}

/// The 400 `invalid.value` result of an entity without an `id`.
fn missing_id(message: &str, entity: Option<Value>) -> Value {
    failure(
        None,
        400,
        entity_error(
            400,
            "invalid.value",
            message.into(),
            false,
            entity,
            Some("id"),
        ),
    )
}

/// The `id` a bulk entity names, if any.
fn entity_id(e: &Value) -> Option<&str> {
    e.get("id").and_then(Value::as_str)
}

/// The failure result of a record refused with `err` (its code and message, not retryable).
fn rejected(
    id: Option<&str>,
    status: u16,
    err: &ApiError,
    entity: Option<Value>,
    field: Option<&str>,
) -> Value {
    failure(
        id,
        status,
        entity_error(status, err.code, err.message.clone(), false, entity, field),
    )
}

/// The head id `id` resolves to, or its 404 result.
fn resolve_head(inner: &Inner, id: &str) -> Result<String, Value> {
    resolve(inner, id)
        .map(|r| r.id.clone())
        .map_err(|_| not_found_result(id))
}

/// Drives a bulk request: runs `op` on each entity (with its index, for fault injection)
/// under one lock, in order; `Ok` and `Err` are both that entity's result (`Err` lets `op`
/// stop at its first failure with `?`). Then shuffles and counts them ([`bulk_response`]).
fn bulk_each(
    st: &EmulatorState,
    body: Body,
    mut op: impl FnMut(&mut Inner, usize, &Value) -> Result<Value, Value>,
) -> ApiResult<Response> {
    let entities = bulk_entities(&body.required()?)?;
    let mut inner = st.lock();
    let results = entities
        .iter()
        .enumerate()
        .map(|(i, e)| op(&mut inner, i, e).unwrap_or_else(|failed| failed))
        .collect();
    Ok(bulk_response(&mut inner, results))
}

/// `POST …/bulk/contacts`: fetch by ids.
pub(crate) async fn bulk_fetch(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    body: Body,
) -> ApiResult<Response> {
    bulk_each(&st, body, |inner, i, e| {
        let id = entity_id(e).ok_or_else(|| missing_id("id is required.", None))?;
        if let Some(status) = ctx.record_failure(&mut inner.gate, i, id) {
            return Err(injected_failure(Some(id), status, Some(json!({"id": id}))));
        }
        let r = resolve(inner, id).map_err(|_| not_found_result(id))?;
        Ok(success(id, Some(render(r))))
    })
}

/// `POST …/bulk/contacts/add`: per-entity results; the server assigns ids.
pub(crate) async fn bulk_add(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    body: Body,
) -> ApiResult<Response> {
    bulk_each(&st, body, |inner, i, e| {
        let fields = normalize(e).map_err(|err| {
            let field = err
                .details
                .first()
                .and_then(|d| d.get("fieldName"))
                .and_then(Value::as_str);
            rejected(None, 400, &err, Some(e.clone()), field)
        })?;
        if let Some(status) = ctx.record_failure(
            &mut inner.gate,
            i,
            &Value::Object(fields.clone()).to_string(),
        ) {
            return Err(injected_failure(None, status, Some(e.clone())));
        }
        let id = insert_new(inner, fields, None)
            .map_err(|err| rejected(None, err.status.as_u16(), &err, None, None))?;
        let ent = inner.ext.get(&id).map(render).unwrap_or(Value::Null);
        Ok(success(&id, Some(ent)))
    })
}

/// `POST …/bulk/contacts/update`: each entity needs its `id`.
pub(crate) async fn bulk_update(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    body: Body,
) -> ApiResult<Response> {
    bulk_each(&st, body, |inner, i, e| {
        let id = entity_id(e)
            .ok_or_else(|| missing_id("id is required for updates.", Some(e.clone())))?;
        let head = resolve_head(inner, id)?;
        let fields =
            normalize(e).map_err(|err| rejected(Some(id), 400, &err, Some(e.clone()), None))?;
        if let Some(status) = ctx.record_failure(&mut inner.gate, i, id) {
            return Err(injected_failure(Some(id), status, Some(e.clone())));
        }
        let ent = replace_fields(inner, &head, fields).map_err(|_| not_found_result(id))?;
        Ok(success(id, Some(ent)))
    })
}

/// `POST …/bulk/contacts/remove`.
pub(crate) async fn bulk_remove(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    body: Body,
) -> ApiResult<Response> {
    bulk_each(&st, body, |inner, i, e| {
        let id = entity_id(e).ok_or_else(|| missing_id("id is required.", None))?;
        let head = resolve_head(inner, id)?;
        if let Some(status) = ctx.record_failure(&mut inner.gate, i, id) {
            return Err(injected_failure(Some(id), status, Some(json!({"id": id}))));
        }
        if let Some(r) = inner.ext.get_mut(&head) {
            r.deleted = true;
        }
        Ok(success(id, None))
    })
}

/// Used by conversations: the live contact claiming an address (e-mail or E.164 phone).
pub(crate) fn contact_for_address(inner: &Inner, address: &str) -> Option<String> {
    let needle = address.trim().to_lowercase();
    live_heads(inner)
        .into_iter()
        .filter(|r| {
            identifiers(r).iter().any(|i| {
                i.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.to_lowercase() == needle)
            })
        })
        .max_by_key(|r| r.modify_seq)
        .map(|r| r.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_approximation() {
        assert_eq!(
            e164("(415) 555-2671", None).as_deref(),
            Some("+14155552671")
        );
        assert_eq!(
            e164("1-415-555-2671", Some("US")).as_deref(),
            Some("+14155552671")
        );
        assert_eq!(
            e164("+44 20 7946 0958", None).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            e164("020 7946 0958", Some("GB")).as_deref(),
            Some("+442079460958")
        );
        assert_eq!(e164("555-0100", None), None);
        assert_eq!(e164("1-800-FLOWERS", None), None);
        assert_eq!(e164("12345", Some("ZZ")), None);
    }

    #[test]
    fn normalize_validates_and_fills() {
        let m = normalize(&json!({
            "id": "ignored", "firstName": "  Ann ", "workEmail": "a@x.org",
            "cellPhone": {"display": "(415) 555-2671"},
            "externalIds": [{"externalSource": {"id": "crm"}, "value": "K1"}]
        }))
        .expect("valid");
        assert!(!m.contains_key("id"));
        assert_eq!(m["firstName"], "Ann");
        assert_eq!(m["cellPhone"]["e164"], "+14155552671");
        assert_eq!(m["cellPhone"]["userInput"], "(415) 555-2671");
        assert_eq!(m["externalIds"][0]["externalSource"]["name"], "crm");
        assert!(normalize(&json!({"workEmail": "nope"})).is_err());
        assert!(normalize(&json!({"firstName": 5})).is_err());
        assert!(normalize(&json!({"type": "Weird"})).is_err());
        assert!(normalize(&json!({"externalIds": [{"value": "x"}]})).is_err());
    }

    #[test]
    fn patch_actions() {
        let mut doc = json!({"firstName": "A", "lastName": "", "externalIds": [1, 2]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ch = |field: &str, action: &str, value: Value| json!({"field": field, "action": action, "value": value});
        apply_change(&mut doc, &ch("$.firstName", "UpdateIfEmpty", json!("B")), 0).expect("ok");
        assert_eq!(doc["firstName"], "A");
        apply_change(&mut doc, &ch("$.lastName", "UpdateIfEmpty", json!("L")), 0).expect("ok");
        assert_eq!(doc["lastName"], "L");
        apply_change(&mut doc, &ch("$.title", "UpdateIfExists", json!("T")), 0).expect("ok");
        assert!(!doc.contains_key("title"));
        apply_change(&mut doc, &ch("$.firstName", "Update", json!("C")), 0).expect("ok");
        assert_eq!(doc["firstName"], "C");
        apply_change(
            &mut doc,
            &ch("$.externalIds", "AppendToCollection", json!(3)),
            0,
        )
        .expect("ok");
        apply_change(
            &mut doc,
            &ch("$.externalIds", "RemoveFromCollection", json!(1)),
            0,
        )
        .expect("ok");
        assert_eq!(doc["externalIds"], json!([2, 3]));
        apply_change(&mut doc, &ch("$.address.city", "Update", json!("Paris")), 0).expect("ok");
        assert_eq!(doc["address"]["city"], "Paris");
        apply_change(&mut doc, &ch("$.address.city", "Remove", Value::Null), 0).expect("ok");
        assert!(!doc.contains_key("address"));
        apply_change(&mut doc, &ch("$.lastName", "Remove", Value::Null), 0).expect("ok");
        assert!(!doc.contains_key("lastName"));
        assert!(apply_change(&mut doc, &ch("firstName", "Update", json!("x")), 0).is_err());
        assert!(apply_change(&mut doc, &ch("$.id", "Update", json!("x")), 0).is_err());
        assert!(apply_change(&mut doc, &ch("$.firstName", "Explode", json!("x")), 0).is_err());
        assert!(
            apply_change(
                &mut doc,
                &ch("$.firstName", "AppendToCollection", json!("x")),
                0
            )
            .is_err()
        );
    }
}
