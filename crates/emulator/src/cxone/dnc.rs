//! DNC groups (lists-notes §1, §3), under `/inContactAPI/services/vNN.0`: groups (list,
//! create, read, update), contributing and scrubbed skills, records (list, add, expire) and
//! the number search. Numbers are stored as digits only (the platform strips formatting so
//! lists and DNC match).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::{CxError, CxResult};
use super::extract::{J, Pth, Q};
use super::lists::parse_date;
use super::state::{CxInner, CxoneState, DncGroup, DncRecord};
use super::wire::{no_content, ok};
use crate::gate::middleware::ReqCtx;
use crate::util::iso;

fn bad(code: &str, message: impl Into<String>) -> CxError {
    CxError::admin(StatusCode::BAD_REQUEST, code, message)
}

fn group_id(inner: &CxInner, raw: &str) -> CxResult<i64> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .map(i64::from)
        .filter(|id| inner.dnc_groups.contains_key(id))
        .ok_or_else(|| {
            CxError::admin(
                StatusCode::NOT_FOUND,
                "InvalidDncGroupId",
                format!("No DNC group with id {raw:?}."),
            )
        })
}

/// Digits only, 7 to 15 of them; `None` otherwise. Accepts a JSON string or number.
pub(crate) fn normalize_phone(v: &Value) -> Option<String> {
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_u64()?.to_string(),
        _ => return None,
    };
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

pub(crate) fn group_json(g: &DncGroup, now: DateTime<Utc>) -> Value {
    json!({
        "dncGroupId": g.id,
        "dncGroupName": g.name,
        "dncGroupDescription": g.description,
        "validRecords": g.records.values().filter(|r| r.active_at(now)).count(),
        "isActive": g.active,
        "isRemoved": g.removed,
        "createDate": g.created_at,
        "lastUpdateTime": g.updated_at,
    })
}

fn record_json(r: &DncRecord) -> Value {
    json!({
        "phoneNumber": r.phone,
        "formattedPhone": r.phone,
        "expiredDate": r.expired_at.map(iso),
        "dateCollected": r.collected_at,
        "lastUpdateTime": r.updated_at,
    })
}

/// Creates a group; shared with the admin seed.
pub(crate) fn create_group(inner: &mut CxInner, name: &str, description: &str) -> i64 {
    let now = inner.now_iso();
    inner.dnc_seq += 1;
    let id = inner.dnc_seq;
    inner.dnc_groups.insert(
        id,
        DncGroup {
            id,
            name: name.to_owned(),
            description: description.to_owned(),
            active: true,
            removed: false,
            created_at: now.clone(),
            updated_at: now,
            records: BTreeMap::new(),
            contributing: Default::default(),
            scrubbed: Default::default(),
        },
    );
    id
}

/// `GET /dnc-groups` → `{resultSet:{totalGroups, dncGroups}}`.
pub(crate) async fn list_groups(State(st): State<CxoneState>) -> Response {
    let inner = st.lock();
    let now = inner.gate.wall_now();
    let groups: Vec<Value> = inner
        .dnc_groups
        .values()
        .map(|g| group_json(g, now))
        .collect();
    ok(json!({"resultSet": {"totalGroups": groups.len(), "dncGroups": groups}}))
}

/// `POST /dnc-groups` `{dncGroupName, dncGroupDescription?}` → `{dncGroups:[…]}`. Not
/// idempotent: the same name again creates another group.
pub(crate) async fn create(State(st): State<CxoneState>, J(body): J) -> CxResult<Response> {
    let body = body.unwrap_or(Value::Null);
    let name = body
        .get("dncGroupName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("InvalidDncGroupName", "dncGroupName is required."))?;
    let description = body
        .get("dncGroupDescription")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut inner = st.lock();
    let id = create_group(&mut inner, name, description);
    let now = inner.gate.wall_now();
    let g = inner.dnc_groups.get(&id).map(|g| group_json(g, now));
    Ok(ok(json!({"dncGroups": g.into_iter().collect::<Vec<_>>()})))
}

/// `GET /dnc-groups/{groupId}` → `{resultSet:{dncGroups:[…]}}`.
pub(crate) async fn get_group(
    State(st): State<CxoneState>,
    Pth((_v, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let inner = st.lock();
    let id = group_id(&inner, &raw)?;
    let now = inner.gate.wall_now();
    let g = inner.dnc_groups.get(&id).map(|g| group_json(g, now));
    Ok(ok(
        json!({"resultSet": {"dncGroups": g.into_iter().collect::<Vec<_>>()}}),
    ))
}

/// `PUT /dnc-groups/{groupId}?dncGroupName=…&dncGroupDescription=…&isActive=…` →
/// `{dncGroups:[…]}`.
pub(crate) async fn update_group(
    State(st): State<CxoneState>,
    q: Q,
    Pth((_v, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let active = q.bool("isActive")?;
    let mut inner = st.lock();
    let id = group_id(&inner, &raw)?;
    let now_iso = inner.now_iso();
    let now = inner.gate.wall_now();
    let Some(g) = inner.dnc_groups.get_mut(&id) else {
        return Err(bad("InvalidDncGroupId", "No such group."));
    };
    if let Some(n) = q.get("dncGroupName").filter(|n| !n.trim().is_empty()) {
        g.name = n.trim().to_owned();
    }
    if let Some(d) = q.get("dncGroupDescription") {
        g.description = d.to_owned();
    }
    if let Some(a) = active {
        g.active = a;
    }
    g.updated_at = now_iso;
    Ok(ok(json!({"dncGroups": [group_json(g, now)]})))
}

/// Which skill set of a group a route addresses.
#[derive(Clone, Copy)]
pub(crate) enum SkillSet {
    Contributing,
    Scrubbed,
}

impl SkillSet {
    fn key(self) -> &'static str {
        match self {
            SkillSet::Contributing => "contributingSkills",
            SkillSet::Scrubbed => "scrubbedSkills",
        }
    }

    fn of(self, g: &mut DncGroup) -> &mut std::collections::BTreeSet<i64> {
        match self {
            SkillSet::Contributing => &mut g.contributing,
            SkillSet::Scrubbed => &mut g.scrubbed,
        }
    }
}

/// `GET /dnc-groups/{groupId}/contributing-skills` (or `scrubbed-skills`).
pub(crate) async fn get_skills(st: CxoneState, set: SkillSet, raw: String) -> CxResult<Response> {
    let mut inner = st.lock();
    let id = group_id(&inner, &raw)?;
    let Some(g) = inner.dnc_groups.get_mut(&id) else {
        return Err(bad("InvalidDncGroupId", "No such group."));
    };
    let skills: Vec<Value> = set
        .of(g)
        .iter()
        .map(|s| json!({"skillId": s, "skillName": format!("Skill {s}")}))
        .collect();
    let mut out = json!({
        "totalRecords": skills.len(),
        "_links": {"self": Value::Null, "next": Value::Null, "previous": Value::Null},
    });
    out[set.key()] = Value::Array(skills);
    Ok(ok(out))
}

/// `POST`/`DELETE /dnc-groups/{groupId}/{contributing|scrubbed}-skills/{skillId}`: 204.
pub(crate) async fn change_skill(
    st: CxoneState,
    set: SkillSet,
    raw: String,
    skill: String,
    add: bool,
) -> CxResult<Response> {
    let skill_id = skill
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            CxError::admin(
                StatusCode::NOT_FOUND,
                "InvalidSkillId",
                format!("No skill with id {skill:?}."),
            )
        })?;
    let mut inner = st.lock();
    let id = group_id(&inner, &raw)?;
    let now = inner.now_iso();
    let Some(g) = inner.dnc_groups.get_mut(&id) else {
        return Err(bad("InvalidDncGroupId", "No such group."));
    };
    let changed = if add {
        set.of(g).insert(skill_id)
    } else {
        set.of(g).remove(&skill_id)
    };
    if !add && !changed {
        return Err(CxError::admin(
            StatusCode::NOT_FOUND,
            "InvalidSkillId",
            format!("Skill {skill_id} is not assigned to group {id}."),
        ));
    }
    g.updated_at = now;
    Ok(no_content())
}

/// `GET /dnc-groups/{groupId}/records?skip=…&top=…` → `{resultSet:{totalRecords,
/// dncRecords}}` (expired records included, with `expiredDate`), by number.
pub(crate) async fn list_records(
    State(st): State<CxoneState>,
    q: Q,
    Pth((_v, raw)): Pth<(String, String)>,
) -> CxResult<Response> {
    let max = st.shared.max_page_size;
    let (skip, top) = q.skip_top(max, max)?;
    let inner = st.lock();
    let id = group_id(&inner, &raw)?;
    let Some(g) = inner.dnc_groups.get(&id) else {
        return Err(bad("InvalidDncGroupId", "No such group."));
    };
    let records: Vec<Value> = g
        .records
        .values()
        .skip(skip)
        .take(top)
        .map(record_json)
        .collect();
    Ok(ok(
        json!({"resultSet": {"totalRecords": g.records.len(), "dncRecords": records}}),
    ))
}

/// The `dncGroupRecords` of a body.
fn body_records(body: Option<Value>) -> CxResult<Vec<Value>> {
    body.as_ref()
        .and_then(|b| b.get("dncGroupRecords"))
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| {
            bad(
                "InvalidDncGroupRecords",
                "dncGroupRecords must list numbers.",
            )
        })
}

fn result(phone: &str, success: bool, error: Option<&str>) -> Value {
    json!({"phoneNumber": phone, "formattedPhone": phone, "success": success, "error": error})
}

/// What one record write does to its group (the number is valid and not failed by injection);
/// `Err` names the per-record error.
type RecordWrite = fn(&mut DncGroup, &Value, &str, DateTime<Utc>) -> Result<(), &'static str>;

/// Applies `write` to each record of a `dncGroupRecords` body on group `raw`: malformed
/// numbers and injected record failures are per-record errors, as are `write`'s. Returns
/// `(errorCount, recordResults)`.
fn write_records(
    st: &CxoneState,
    ctx: &ReqCtx,
    raw: &str,
    body: Option<Value>,
    write: RecordWrite,
) -> CxResult<(u64, Vec<Value>)> {
    let items = body_records(body)?;
    let mut inner = st.lock();
    let id = group_id(&inner, raw)?;
    let now = inner.gate.wall_now();
    let mut results = Vec::with_capacity(items.len());
    let mut errors = 0u64;
    for (i, item) in items.iter().enumerate() {
        let outcome = match item.get("phoneNumber").and_then(normalize_phone) {
            None => Err((String::new(), "InvalidPhoneNumber")),
            Some(phone) if ctx.record_failure(&mut inner.gate, i, &phone).is_some() => {
                Err((phone, "ProcessingError"))
            }
            Some(phone) => match inner.dnc_groups.get_mut(&id) {
                None => Err((phone, "InvalidDncGroupId")),
                Some(g) => match write(g, item, &phone, now) {
                    Ok(()) => {
                        g.updated_at = iso(now);
                        Ok(phone)
                    }
                    Err(e) => Err((phone, e)),
                },
            },
        };
        match outcome {
            Ok(phone) => results.push(result(&phone, true, None)),
            Err((phone, e)) => {
                errors += 1;
                results.push(result(&phone, false, Some(e)));
            }
        }
    }
    Ok((errors, results))
}

/// Adds one number: a malformed `expiredDate` or a number already active is an error; an
/// expired one is renewed.
fn add_one(
    g: &mut DncGroup,
    item: &Value,
    phone: &str,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let expires = match item.get("expiredDate") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_date(s).ok_or("InvalidExpiredDate")?),
        Some(_) => return Err("InvalidExpiredDate"),
    };
    if g.records.get(phone).is_some_and(|r| r.active_at(now)) {
        return Err("DuplicateRecord");
    }
    g.records.insert(
        phone.to_owned(),
        DncRecord {
            phone: phone.to_owned(),
            expired_at: expires,
            collected_at: iso(now),
            updated_at: iso(now),
        },
    );
    Ok(())
}

/// Expires one number, creating an expired record when the group does not hold it.
fn expire_one(
    g: &mut DncGroup,
    _item: &Value,
    phone: &str,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let rec = g
        .records
        .entry(phone.to_owned())
        .or_insert_with(|| DncRecord {
            phone: phone.to_owned(),
            expired_at: None,
            collected_at: iso(now),
            updated_at: iso(now),
        });
    rec.expired_at = Some(now);
    rec.updated_at = iso(now);
    Ok(())
}

/// `POST /dnc-groups/{groupId}/records` `{dncGroupRecords:[{phoneNumber, expiredDate?}]}` →
/// 200 `{resultSet:{errorCount, recordResults}}`. Per record: a malformed number or date, or
/// an injected record failure, is `success:false`; a number **already active** in the group is
/// reported as an error too (`DuplicateRecord`, left as it was: the platform's answer is not
/// established, this is the least forgiving plausible one); an expired one is renewed.
pub(crate) async fn add_records(
    State(st): State<CxoneState>,
    ctx: ReqCtx,
    Pth((_v, raw)): Pth<(String, String)>,
    J(body): J,
) -> CxResult<Response> {
    let (errors, results) = write_records(&st, &ctx, &raw, body, add_one)?;
    Ok(ok(
        json!({"resultSet": {"errorCount": errors, "recordResults": results}}),
    ))
}

/// `DELETE /dnc-groups/{groupId}/records` (same body): **expires** the numbers (not a hard
/// delete; they stay listed with `expiredDate`). A number the group does not hold becomes a
/// new, already expired record, as the help site describes for file expiry. 200
/// `{errorCount, recordResults[{success, error, formattedPhone}]}`.
pub(crate) async fn expire_records(
    State(st): State<CxoneState>,
    ctx: ReqCtx,
    Pth((_v, raw)): Pth<(String, String)>,
    J(body): J,
) -> CxResult<Response> {
    let (errors, results) = write_records(&st, &ctx, &raw, body, expire_one)?;
    Ok(ok(json!({"errorCount": errors, "recordResults": results})))
}

/// `POST /dnc-groups/search?phoneNumber=…` → `{searchResults:[…]}`: every group holding the
/// number (digits compared), expired records included with their `expiredDate`.
pub(crate) async fn search(State(st): State<CxoneState>, q: Q) -> CxResult<Response> {
    let phone = q
        .get("phoneNumber")
        .and_then(|p| normalize_phone(&Value::String(p.to_owned())))
        .ok_or_else(|| {
            bad(
                "InvalidPhoneNumber",
                "phoneNumber is required (7 to 15 digits).",
            )
        })?;
    let inner = st.lock();
    let results: Vec<Value> = inner
        .dnc_groups
        .values()
        .filter_map(|g| {
            g.records.get(&phone).map(|r| {
                json!({
                    "dncGroupId": g.id,
                    "dncGroupName": g.name,
                    "dncGroupDescription": g.description,
                    "formattedPhone": r.phone,
                    "expiredDate": r.expired_at.map(iso),
                    "dateCollected": r.collected_at,
                    "lastUpdateTime": r.updated_at,
                })
            })
        })
        .collect();
    Ok(ok(json!({"searchResults": results})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_digits() {
        assert_eq!(
            normalize_phone(&json!("+1 (415) 555-0100")).as_deref(),
            Some("14155550100")
        );
        assert_eq!(
            normalize_phone(&json!(4155550100u64)).as_deref(),
            Some("4155550100")
        );
        assert_eq!(normalize_phone(&json!("12")), None);
        assert_eq!(normalize_phone(&json!(true)), None);
    }
}
