//! Outbound contact lists and their contacts (`/api/v2/outbound/contactlists…`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::http::{Body, P, Params, ReqCtx, empty, ok_json};
use crate::state::{ContactListRec, EmulatorState, Inner};
use crate::util::now_iso;

/// Largest add-contacts batch the platform accepts.
pub const MAX_CONTACTS_PER_REQUEST: usize = 1000;

const LISTS: &str = "/api/v2/outbound/contactlists";
const LIST_SERVER_FIELDS: &[&str] = &[
    "id",
    "version",
    "dateCreated",
    "dateModified",
    "selfUri",
    "size",
    "importStatus",
];

fn home_division() -> Value {
    json!({
        "id": "00000000-0000-4000-8000-000000000001",
        "name": "Home",
        "selfUri": "/api/v2/authorization/divisions/00000000-0000-4000-8000-000000000001"
    })
}

pub(crate) fn render_list(l: &ContactListRec, include_size: bool) -> Value {
    let mut m = l.fields.clone();
    m.insert("id".into(), json!(l.id));
    m.insert("version".into(), json!(l.version));
    m.insert("dateCreated".into(), json!(l.date_created));
    m.insert("dateModified".into(), json!(l.date_modified));
    m.entry("division").or_insert_with(home_division);
    m.insert("selfUri".into(), json!(format!("{LISTS}/{}", l.id)));
    if include_size {
        m.insert("size".into(), json!(l.contacts.len()));
    }
    Value::Object(m)
}

pub(crate) fn render_contact(c: &Map<String, Value>) -> Value {
    Value::Object(c.clone())
}

/// Validates a ContactList body and returns its writable fields.
fn list_fields(body: Value) -> ApiResult<Map<String, Value>> {
    let Value::Object(mut m) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a ContactList object.",
        ));
    };
    for k in LIST_SERVER_FIELDS {
        m.remove(*k);
    }
    m.retain(|_, v| !v.is_null());
    match m.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => {}
        _ => {
            return Err(
                ApiError::invalid_value("A contact list name is required.").with_detail(
                    "invalid.value",
                    "name",
                    None,
                ),
            );
        }
    }
    let cols: Vec<String> = match m.get("columnNames").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => {
            return Err(
                ApiError::invalid_value("columnNames is required and must not be empty.")
                    .with_detail("invalid.value", "columnNames", None),
            );
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for c in &cols {
        if c.trim().is_empty() || !seen.insert(c.to_ascii_lowercase()) {
            return Err(ApiError::invalid_value(format!(
                "Column name [{c}] is empty or duplicated."
            ))
            .with_detail("invalid.value", "columnNames", None));
        }
    }
    for (key, inner_key) in [
        ("phoneColumns", "columnName"),
        ("emailColumns", "columnName"),
        ("whatsAppColumns", "columnName"),
    ] {
        for entry in m.get(key).and_then(Value::as_array).into_iter().flatten() {
            let name = entry.get(inner_key).and_then(Value::as_str).unwrap_or("");
            if !cols.iter().any(|c| c == name) {
                return Err(ApiError::invalid_value(format!(
                    "{key} refers to column [{name}] which is not in columnNames."
                ))
                .with_detail("invalid.value", key, None));
            }
        }
    }
    Ok(m)
}

/// Creates a list (API and admin seeding). `id` is honoured when given (seeding only).
pub(crate) fn create_list(inner: &mut Inner, body: Value, id: Option<String>) -> ApiResult<Value> {
    let fields = list_fields(body)?;
    let id = id.unwrap_or_else(|| inner.new_id());
    if inner.lists.contains_key(&id) {
        return Err(
            ApiError::conflict(format!("Contact list {id} already exists.")).with_entity(id),
        );
    }
    let now = now_iso();
    let rec = ContactListRec {
        id: id.clone(),
        fields,
        version: 1,
        date_created: now.clone(),
        date_modified: now,
        contacts: BTreeMap::new(),
    };
    let out = render_list(&rec, false);
    inner.lists.insert(id, rec);
    Ok(out)
}

pub(crate) async fn create(State(st): State<EmulatorState>, body: Body) -> ApiResult<Response> {
    let body = body.required()?;
    let mut inner = st.lock();
    create_list(&mut inner, body, None).map(ok_json)
}

fn page_args(q: &Params, default_size: i64, max_size: i64) -> ApiResult<(usize, usize)> {
    let size = q.int("pageSize", default_size)?;
    let number = q.int("pageNumber", 1)?;
    if !(1..=max_size).contains(&size) {
        return Err(ApiError::invalid_value(format!(
            "pageSize must be between 1 and {max_size}, got {size}."
        )));
    }
    if number < 1 {
        return Err(ApiError::invalid_value(format!(
            "pageNumber must be at least 1, got {number}."
        )));
    }
    Ok((size as usize, number as usize))
}

/// Builds a paged listing with the platform's URI fields.
pub(crate) fn listing(
    base: &str,
    extra_query: &str,
    entities: Vec<Value>,
    total: usize,
    size: usize,
    number: usize,
) -> Map<String, Value> {
    let page_count = total.div_ceil(size);
    let uri = |n: usize| format!("{base}?pageSize={size}&pageNumber={n}{extra_query}");
    let mut m = Map::new();
    m.insert("entities".into(), Value::Array(entities));
    m.insert("pageSize".into(), json!(size));
    m.insert("pageNumber".into(), json!(number));
    m.insert("total".into(), json!(total));
    m.insert("pageCount".into(), json!(page_count));
    m.insert("firstUri".into(), json!(uri(1)));
    m.insert("selfUri".into(), json!(uri(number)));
    m.insert("lastUri".into(), json!(uri(page_count.max(1))));
    if number < page_count {
        m.insert("nextUri".into(), json!(uri(number + 1)));
    }
    if number > 1 {
        m.insert("previousUri".into(), json!(uri(number - 1)));
    }
    m
}

pub(crate) async fn list(State(st): State<EmulatorState>, q: Params) -> ApiResult<Response> {
    let (size, number) = page_args(&q, 25, 100)?;
    let include_size = q.bool("includeSize")?;
    q.bool("includeImportStatus")?;
    let name = q.get("name").map(str::to_lowercase);
    let ids = q.list("id");
    let descending = match q.get("sortOrder").map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "a" | "asc" | "ascending") => false,
        Some("desc" | "descending") => true,
        Some(other) => {
            return Err(ApiError::invalid_value(format!(
                "Value [{other}] is not valid for sortOrder."
            )));
        }
    };
    let sort_by = q.get("sortBy").unwrap_or("name").to_owned();
    let inner = st.lock();
    let mut lists: Vec<&ContactListRec> = inner
        .lists
        .values()
        .filter(|l| {
            name.as_ref().is_none_or(|n| {
                l.fields
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.to_lowercase().contains(n.as_str()))
            })
        })
        .filter(|l| ids.is_empty() || ids.contains(&l.id))
        .collect();
    let key = |l: &ContactListRec| -> String {
        match sort_by.as_str() {
            "id" => l.id.clone(),
            "dateCreated" => l.date_created.clone(),
            "dateModified" => l.date_modified.clone(),
            _ => l
                .fields
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase(),
        }
    };
    lists.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id)));
    if descending {
        lists.reverse();
    }
    let total = lists.len();
    let entities = lists
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .map(|l| render_list(l, include_size))
        .collect();
    Ok(ok_json(Value::Object(listing(
        LISTS, "", entities, total, size, number,
    ))))
}

pub(crate) async fn get_one(
    State(st): State<EmulatorState>,
    P(id): P<String>,
    q: Params,
) -> ApiResult<Response> {
    let include_size = q.bool("includeSize")?;
    let inner = st.lock();
    let l = inner
        .lists
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {id}")))?;
    Ok(ok_json(render_list(l, include_size)))
}

pub(crate) async fn update(
    State(st): State<EmulatorState>,
    P(id): P<String>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let version = body.get("version").and_then(Value::as_i64);
    let fields = list_fields(body)?;
    let mut inner = st.lock();
    let l = inner
        .lists
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {id}")))?;
    let Some(version) = version else {
        return Err(
            ApiError::invalid_value("version is required for updates.").with_detail(
                "invalid.value",
                "version",
                Some(&id),
            ),
        );
    };
    if version != l.version {
        return Err(ApiError::conflict(format!(
            "The version supplied [{version}] does not match the current version [{}] of contact list {id}.",
            l.version
        ))
        .with_entity(id.clone()));
    }
    l.fields = fields;
    l.version += 1;
    l.date_modified = now_iso();
    Ok(ok_json(render_list(l, false)))
}

pub(crate) async fn delete(
    State(st): State<EmulatorState>,
    P(id): P<String>,
) -> ApiResult<Response> {
    let mut inner = st.lock();
    inner
        .lists
        .remove(&id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {id}")))?;
    Ok(empty(StatusCode::OK))
}

/// A data value as the dialer stores it: text. Numbers and booleans become their text.
fn data_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks one WritableDialerContact / DialerContact against its list; returns the data map.
fn check_contact(
    list: &ContactListRec,
    index: Option<usize>,
    c: &Value,
) -> ApiResult<Map<String, Value>> {
    let id = c.get("id").and_then(Value::as_str).unwrap_or("");
    let at = match index {
        Some(i) if id.is_empty() => format!("contact [{i}]"),
        Some(i) => format!("contact [{i}] (id {id})"),
        None => format!("contact {id}"),
    };
    let fail = |field: &str, msg: String| {
        let mut e = ApiError::invalid_value(format!("{at}: {msg}")).with_detail(
            "invalid.value",
            field,
            (!id.is_empty()).then_some(id),
        );
        if !id.is_empty() {
            e = e.with_entity(id);
        }
        e
    };
    if !c.is_object() {
        return Err(fail("", "must be an object".into()));
    }
    match c.get("contactListId").and_then(Value::as_str) {
        Some(l) if l == list.id => {}
        Some(l) => {
            return Err(fail(
                "contactListId",
                format!(
                    "contactListId [{l}] does not match the contact list [{}]",
                    list.id
                ),
            ));
        }
        None => return Err(fail("contactListId", "contactListId is required".into())),
    }
    let Some(data) = c.get("data").and_then(Value::as_object) else {
        return Err(fail("data", "data is required".into()));
    };
    let columns: Vec<&str> = list
        .fields
        .get("columnNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    for (k, v) in data {
        if !columns.contains(&k.as_str()) {
            return Err(fail(
                &format!("data.{k}"),
                format!("column [{k}] is not a column of the contact list"),
            ));
        }
        if v.is_null() {
            continue;
        }
        let Some(s) = data_value(v) else {
            return Err(fail(
                &format!("data.{k}"),
                format!("value of column [{k}] must be a string"),
            ));
        };
        out.insert(k.clone(), Value::String(s));
    }
    Ok(out)
}

const SYSTEM_FIELDS: &[&str] = &["phoneNumberStatus", "contactableStatus"];
const EVALUATIONS: &[&str] = &[
    "latestSmsEvaluations",
    "latestEmailEvaluations",
    "latestWhatsAppEvaluations",
];

struct UpsertOpts {
    priority: bool,
    clear_system_data: bool,
}

/// Upserts one validated contact; returns the stored JSON.
fn upsert(
    list: &mut ContactListRec,
    id: String,
    data: Map<String, Value>,
    input: &Value,
    opts: &UpsertOpts,
) -> Value {
    let list_id = list.id.clone();
    let now = now_iso();
    let entry = list.contacts.entry(id.clone()).or_insert_with(|| {
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("contactListId".into(), json!(list_id));
        m.insert("callable".into(), json!(true));
        m.insert("dateCreated".into(), json!(now));
        m.insert(
            "selfUri".into(),
            json!(format!("{LISTS}/{list_id}/contacts/{id}")),
        );
        m
    });
    entry.insert("data".into(), Value::Object(data));
    if opts.clear_system_data {
        entry.insert("callable".into(), json!(true));
        for k in SYSTEM_FIELDS {
            entry.remove(*k);
        }
        entry.remove("callRecords");
    }
    if let Some(b) = input.get("callable").and_then(Value::as_bool) {
        entry.insert("callable".into(), json!(b));
    }
    for k in SYSTEM_FIELDS.iter().chain(EVALUATIONS) {
        if let Some(v) = input.get(*k).filter(|v| !v.is_null()) {
            entry.insert((*k).to_owned(), v.clone());
        }
    }
    if opts.priority {
        entry.insert("configurationOverrides".into(), json!({"priority": true}));
    }
    render_contact(entry)
}

/// `POST …/{contactListId}/contacts`: upsert by `id`, at most 1,000 per request, atomic.
pub(crate) async fn add_contacts(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    P(list_id): P<String>,
    q: Params,
    body: Body,
) -> ApiResult<Response> {
    let opts = UpsertOpts {
        priority: q.bool("priority")?,
        clear_system_data: q.bool("clearSystemData")?,
    };
    q.bool("doNotQueue")?;
    let body = body.required()?;
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request(
            "The request body must be an array of contacts.",
        ));
    };
    if items.len() > MAX_CONTACTS_PER_REQUEST {
        return Err(ApiError::invalid_value(format!(
            "At most {MAX_CONTACTS_PER_REQUEST} contacts can be added per request; got {}.",
            items.len()
        )));
    }
    let mut inner = st.lock();
    let list = inner
        .lists
        .get(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    let mut prepared = Vec::with_capacity(items.len());
    for (i, c) in items.iter().enumerate() {
        let data = check_contact(list, Some(i), c)?;
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        prepared.push((i, id, data));
    }
    // Injected per-record failures: the batch is rejected as a whole, naming the record.
    for (i, id, data) in &prepared {
        let key = id
            .clone()
            .unwrap_or_else(|| Value::Object(data.clone()).to_string());
        if let Some(status) = ctx.record_failure(&mut inner.gate, *i, &key) {
            let what = match id {
                Some(id) => format!("contact [{i}] (id {id})"),
                None => format!("contact [{i}]"),
            };
            let mut e = if status < 500 {
                ApiError::invalid_value(format!(
                    "{what} was rejected: Value is not valid for contact data."
                ))
                .with_detail("invalid.value", "data", id.as_deref())
            } else {
                let mut e = ApiError::server_error(status, None);
                e.message = format!("{} ({what})", e.message);
                e
            };
            if let Some(id) = id {
                e = e.with_entity(id.clone());
            }
            return Err(e);
        }
    }
    let mut out = Vec::with_capacity(prepared.len());
    for (i, id, data) in prepared {
        let id = id.unwrap_or_else(|| inner.new_id());
        let Some(list) = inner.lists.get_mut(&list_id) else {
            return Err(ApiError::not_found(format!("contact list {list_id}")));
        };
        out.push(upsert(list, id, data, &items[i], &opts));
    }
    Ok(ok_json(Value::Array(out)))
}

pub(crate) async fn get_contact(
    State(st): State<EmulatorState>,
    P((list_id, id)): P<(String, String)>,
) -> ApiResult<Response> {
    let inner = st.lock();
    let list = inner
        .lists
        .get(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    let c = list
        .contacts
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("contact {id}")))?;
    Ok(ok_json(render_contact(c)))
}

/// `PUT …/contacts/{contactId}`: full DialerContact; echoed server fields are ignored.
pub(crate) async fn put_contact(
    State(st): State<EmulatorState>,
    ctx: ReqCtx,
    P((list_id, id)): P<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let mut inner = st.lock();
    let list = inner
        .lists
        .get(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    if !list.contacts.contains_key(&id) {
        return Err(ApiError::not_found(format!("contact {id}")));
    }
    let mut with_id = body.clone();
    if let Some(m) = with_id.as_object_mut() {
        m.insert("id".into(), json!(id));
    }
    let data = check_contact(list, None, &with_id)?;
    if let Some(status) = ctx.record_failure(&mut inner.gate, 0, &id) {
        let e = if status < 500 {
            ApiError::invalid_value(format!(
                "contact {id} was rejected: Value is not valid for contact data."
            ))
        } else {
            ApiError::server_error(status, None)
        };
        return Err(e.with_entity(id));
    }
    let opts = UpsertOpts {
        priority: false,
        clear_system_data: false,
    };
    let Some(list) = inner.lists.get_mut(&list_id) else {
        return Err(ApiError::not_found(format!("contact list {list_id}")));
    };
    Ok(ok_json(upsert(list, id, data, &body, &opts)))
}

pub(crate) async fn delete_contact(
    State(st): State<EmulatorState>,
    P((list_id, id)): P<(String, String)>,
) -> ApiResult<Response> {
    let mut inner = st.lock();
    let list = inner
        .lists
        .get_mut(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    list.contacts
        .remove(&id)
        .ok_or_else(|| ApiError::not_found(format!("contact {id}")))?;
    Ok(empty(StatusCode::OK))
}

/// `DELETE …/contacts?contactIds=a,b`: removes the ones that exist.
pub(crate) async fn delete_contacts(
    State(st): State<EmulatorState>,
    P(list_id): P<String>,
    q: Params,
) -> ApiResult<Response> {
    let ids = q.list("contactIds");
    if ids.is_empty() {
        return Err(
            ApiError::invalid_value("contactIds is required.").with_detail(
                "invalid.value",
                "contactIds",
                None,
            ),
        );
    }
    let mut inner = st.lock();
    let list = inner
        .lists
        .get_mut(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    for id in ids {
        list.contacts.remove(&id);
    }
    Ok(empty(StatusCode::OK))
}

/// `POST …/contacts/bulk`: ids → the contacts that exist, in request order.
pub(crate) async fn bulk_get(
    State(st): State<EmulatorState>,
    P(list_id): P<String>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let Some(ids) = body.as_array() else {
        return Err(ApiError::bad_request(
            "The request body must be an array of contact ids.",
        ));
    };
    let inner = st.lock();
    let list = inner
        .lists
        .get(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    let out: Vec<Value> = ids
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| list.contacts.get(id))
        .map(render_contact)
        .collect();
    Ok(ok_json(Value::Array(out)))
}

fn cmp_values(a: &str, b: &str, numeric: bool) -> Option<Ordering> {
    if numeric {
        let x: f64 = a.trim().parse().ok()?;
        let y: f64 = b.trim().parse().ok()?;
        x.partial_cmp(&y)
    } else {
        Some(a.cmp(b))
    }
}

fn predicate_matches(contact: &Map<String, Value>, p: &Value) -> ApiResult<bool> {
    let column = p
        .get("column")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_value("A predicate needs a column."))?;
    let operator = p
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_value("A predicate needs an operator."))?;
    let numeric = p.get("columnType").and_then(Value::as_str) == Some("numeric");
    let inverted = p.get("inverted").and_then(Value::as_bool).unwrap_or(false);
    let cell = contact
        .get("data")
        .and_then(|d| d.get(column))
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = p.get("value").and_then(Value::as_str).unwrap_or("");
    let range = p.get("range");
    let rget = |k: &str| range.and_then(|r| r.get(k));
    let ord = |v: &str| cmp_values(cell, v, numeric);
    let m = match operator {
        "EQUALS" => {
            if numeric {
                ord(value) == Some(Ordering::Equal)
            } else {
                cell == value
            }
        }
        "CONTAINS" => cell.contains(value),
        "BEGINS_WITH" => cell.starts_with(value),
        "ENDS_WITH" => cell.ends_with(value),
        "LESS_THAN" | "BEFORE" => ord(value) == Some(Ordering::Less),
        "LESS_THAN_EQUALS" => matches!(ord(value), Some(Ordering::Less | Ordering::Equal)),
        "GREATER_THAN" | "AFTER" => ord(value) == Some(Ordering::Greater),
        "GREATER_THAN_EQUALS" => matches!(ord(value), Some(Ordering::Greater | Ordering::Equal)),
        "IN" => {
            let set: Vec<String> = match rget("inSet").and_then(Value::as_array) {
                Some(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                None => value.split(',').map(|s| s.trim().to_owned()).collect(),
            };
            set.iter().any(|s| {
                if numeric {
                    cmp_values(cell, s, true) == Some(Ordering::Equal)
                } else {
                    s == cell
                }
            })
        }
        "BETWEEN" => {
            let min = rget("min").and_then(Value::as_str);
            let max = rget("max").and_then(Value::as_str);
            let min_inc = rget("minInclusive")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let max_inc = rget("maxInclusive")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let lo = min.is_none_or(|v| {
                matches!(
                    (ord(v), min_inc),
                    (Some(Ordering::Greater), _) | (Some(Ordering::Equal), true)
                )
            });
            let hi = max.is_none_or(|v| {
                matches!(
                    (ord(v), max_inc),
                    (Some(Ordering::Less), _) | (Some(Ordering::Equal), true)
                )
            });
            lo && hi
        }
        other => {
            return Err(ApiError::invalid_value(format!(
                "Unsupported operator [{other}]."
            )));
        }
    };
    Ok(m != inverted)
}

fn combine(
    filter_type: Option<&str>,
    results: impl Iterator<Item = ApiResult<bool>>,
) -> ApiResult<bool> {
    let or = filter_type == Some("OR");
    let mut any = false;
    let mut all = true;
    let mut n = 0;
    for r in results {
        let r = r?;
        n += 1;
        any |= r;
        all &= r;
    }
    Ok(if n == 0 {
        true
    } else if or {
        any
    } else {
        all
    })
}

fn criteria_matches(contact: &Map<String, Value>, criteria: Option<&Value>) -> ApiResult<bool> {
    let Some(c) = criteria else {
        return Ok(true);
    };
    let clauses = c
        .get("clauses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    combine(
        c.get("filterType").and_then(Value::as_str),
        clauses.iter().map(|cl| {
            let preds = cl
                .get("predicates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            combine(
                cl.get("filterType").and_then(Value::as_str),
                preds.iter().map(|p| predicate_matches(contact, p)),
            )
        }),
    )
}

/// `POST …/contacts/search`: ContactListingRequest → ContactListingResponse.
pub(crate) async fn search(
    State(st): State<EmulatorState>,
    P(list_id): P<String>,
    body: Body,
) -> ApiResult<Response> {
    let body = body.required()?;
    let size = body.get("pageSize").and_then(Value::as_i64).unwrap_or(25);
    let number = body.get("pageNumber").and_then(Value::as_i64).unwrap_or(1);
    if !(1..=100).contains(&size) {
        return Err(ApiError::invalid_value(format!(
            "pageSize must be between 1 and 100, got {size}."
        )));
    }
    if number < 1 {
        return Err(ApiError::invalid_value(format!(
            "pageNumber must be at least 1, got {number}."
        )));
    }
    let (size, number) = (size as usize, number as usize);
    let inner = st.lock();
    let list = inner
        .lists
        .get(&list_id)
        .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
    let mut hits = Vec::new();
    for c in list.contacts.values() {
        if criteria_matches(c, body.get("criteria"))? {
            hits.push(c);
        }
    }
    let sorts = body
        .get("contactSorts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    hits.sort_by(|a, b| {
        for s in &sorts {
            let Some(field) = s.get("fieldName").and_then(Value::as_str) else {
                continue;
            };
            let numeric = s.get("numeric").and_then(Value::as_bool).unwrap_or(false);
            let cell = |c: &Map<String, Value>| {
                c.get("data")
                    .and_then(|d| d.get(field))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let o = cmp_values(&cell(a), &cell(b), numeric).unwrap_or(Ordering::Equal);
            let o = if s.get("direction").and_then(Value::as_str) == Some("DESC") {
                o.reverse()
            } else {
                o
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        let id =
            |c: &Map<String, Value>| c.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        id(a).cmp(&id(b))
    });
    let total = hits.len();
    let entities = hits
        .into_iter()
        .skip((number - 1) * size)
        .take(size)
        .map(render_contact)
        .collect();
    let mut m = Map::new();
    m.insert("entities".into(), Value::Array(entities));
    m.insert("pageSize".into(), json!(size));
    m.insert("pageNumber".into(), json!(number));
    m.insert("total".into(), json!(total));
    m.insert("contactsCount".into(), json!(list.contacts.len()));
    m.insert("pageCount".into(), json!(total.div_ceil(size)));
    Ok(ok_json(Value::Object(m)))
}

/// Adds contacts from an admin seed (no faults, no batch limit).
pub(crate) fn seed_contacts(
    inner: &mut Inner,
    list_id: &str,
    contacts: &[Value],
) -> ApiResult<usize> {
    let opts = UpsertOpts {
        priority: false,
        clear_system_data: false,
    };
    let mut n = 0;
    for (i, c) in contacts.iter().enumerate() {
        let mut c = c.clone();
        if let Some(m) = c.as_object_mut() {
            m.entry("contactListId").or_insert_with(|| json!(list_id));
        }
        let list = inner
            .lists
            .get(list_id)
            .ok_or_else(|| ApiError::not_found(format!("contact list {list_id}")))?;
        let data = check_contact(list, Some(i), &c)?;
        let id = match c
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(id) => id.to_owned(),
            None => inner.new_id(),
        };
        if let Some(list) = inner.lists.get_mut(list_id) {
            upsert(list, id, data, &c, &opts);
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(data: Value) -> Map<String, Value> {
        json!({"id": "x", "data": data})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn predicates() {
        let c = contact(json!({"name": "Jane Doe", "age": "42", "ext": "K1"}));
        let t = |p: Value| predicate_matches(&c, &p).expect("valid predicate");
        assert!(t(
            json!({"column": "ext", "operator": "EQUALS", "value": "K1"})
        ));
        assert!(!t(
            json!({"column": "ext", "operator": "EQUALS", "value": "k1"})
        ));
        assert!(t(
            json!({"column": "name", "operator": "CONTAINS", "value": "ne D"})
        ));
        assert!(t(
            json!({"column": "ext", "operator": "IN", "range": {"inSet": ["K0", "K1"]}})
        ));
        assert!(!t(
            json!({"column": "ext", "operator": "IN", "range": {"inSet": ["K0"]}})
        ));
        assert!(t(
            json!({"column": "age", "columnType": "numeric", "operator": "GREATER_THAN", "value": "9"})
        ));
        assert!(
            !t(json!({"column": "age", "operator": "GREATER_THAN", "value": "9"})),
            "alphabetic: \"42\" < \"9\""
        );
        assert!(t(
            json!({"column": "age", "columnType": "numeric", "operator": "BETWEEN", "range": {"min": "42", "max": "50"}})
        ));
        assert!(!t(
            json!({"column": "age", "columnType": "numeric", "operator": "BETWEEN", "range": {"min": "42", "minInclusive": false}})
        ));
        assert!(t(
            json!({"column": "ext", "operator": "EQUALS", "value": "K2", "inverted": true})
        ));
        assert!(predicate_matches(&c, &json!({"column": "ext", "operator": "NOPE"})).is_err());
    }

    #[test]
    fn criteria_and_or() {
        let c = contact(json!({"a": "1", "b": "2"}));
        let eq = |col: &str, v: &str| json!({"column": col, "operator": "EQUALS", "value": v});
        let crit = json!({"filterType": "AND", "clauses": [{"filterType": "OR", "predicates": [eq("a", "9"), eq("b", "2")]}]});
        assert!(criteria_matches(&c, Some(&crit)).expect("ok"));
        let crit = json!({"filterType": "AND", "clauses": [{"filterType": "AND", "predicates": [eq("a", "9"), eq("b", "2")]}]});
        assert!(!criteria_matches(&c, Some(&crit)).expect("ok"));
        let crit = json!({"filterType": "OR", "clauses": [{"predicates": [eq("a", "9")]}, {"predicates": [eq("a", "1")]}]});
        assert!(criteria_matches(&c, Some(&crit)).expect("ok"));
    }
}
