//! Every served Genesys route exists in the excerpt with the same method, and real responses
//! validate against the excerpt's response schemas.

use std::collections::BTreeSet;

use dedupd_emulator::schema::{Mode, SwaggerDoc};
use dedupd_emulator::{EmulatorConfig, ROUTES};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Emu, start};

/// `/oauth/token` is served on the login host and is not part of the API excerpt.
const EXEMPT: &[(&str, &str)] = &[("POST", "/oauth/token")];

fn excerpt() -> SwaggerDoc {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openapi-excerpt.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture readable");
    SwaggerDoc::parse(&text).expect("fixture is JSON")
}

#[test]
fn every_route_exists_in_the_excerpt_with_the_same_method() {
    let doc = excerpt();
    let mut missing = Vec::new();
    for (method, path) in ROUTES {
        if EXEMPT.contains(&(method, path)) {
            continue;
        }
        if doc.operation(method, path).is_none() {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(missing.is_empty(), "routes not in the excerpt: {missing:?}");
    // The check is not vacuous: a made-up route is caught.
    assert!(
        doc.operation(
            "PATCH",
            "/api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}"
        )
        .is_none()
    );
    assert!(
        doc.operation("POST", "/api/v2/externalcontacts/merge")
            .is_none()
    );
}

struct Checker {
    doc: SwaggerDoc,
    covered: BTreeSet<(String, String)>,
    problems: Vec<String>,
}

impl Checker {
    /// Calls `template` with `args` substituted for its `{params}` and validates the response.
    async fn call(
        &mut self,
        e: &Emu,
        method: Method,
        template: &str,
        args: &[&str],
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let mut path = String::new();
        let mut rest = template;
        let mut args = args.iter();
        while let Some(start) = rest.find('{') {
            path.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |i| start + i + 1);
            path.push_str(args.next().expect("an argument per path parameter"));
            rest = &rest[end..];
        }
        path.push_str(rest);
        path.push_str(query);
        let r = e.call(method.clone(), &path, body).await;
        let status = r.status.as_u16();
        let what = format!("{method} {template} -> {status}");
        match self.doc.response_schema(method.as_str(), template, status) {
            None => self.problems.push(format!("{what}: status not documented")),
            Some(None) => {
                if !r.raw.is_empty() {
                    self.problems
                        .push(format!("{what}: documented without a body, got {}", r.raw));
                }
            }
            Some(Some(schema)) => {
                for err in self.doc.validate(&r.body, schema, Mode::Response) {
                    self.problems.push(format!("{what}: {err}"));
                }
            }
        }
        if r.header("content-type") != Some("application/json") {
            self.problems.push(format!(
                "{what}: content-type {:?}",
                r.header("content-type")
            ));
        }
        if r.status.is_success() {
            self.covered
                .insert((method.as_str().to_owned(), template.to_owned()));
        }
        r.body
    }
}

#[tokio::test]
async fn sample_responses_validate_against_the_schemas() {
    let e = start(EmulatorConfig::default()).await;
    let mut c = Checker {
        doc: excerpt(),
        covered: BTreeSet::new(),
        problems: Vec::new(),
    };
    const CL: &str = "/api/v2/outbound/contactlists";
    let list = c
        .call(
            &e,
            Method::POST,
            CL,
            &[],
            "",
            Some(json!({"name": "schema", "columnNames": ["phone", "name"],
            "phoneColumns": [{"columnName": "phone", "type": "cell"}]})),
        )
        .await;
    let lid = list["id"].as_str().expect("list id").to_owned();
    let l = lid.as_str();
    c.call(
        &e,
        Method::GET,
        CL,
        &[],
        "?pageSize=10&includeSize=true",
        None,
    )
    .await;
    let mut got = c
        .call(
            &e,
            Method::GET,
            &format!("{CL}/{{contactListId}}"),
            &[l],
            "?includeSize=true",
            None,
        )
        .await;
    got["name"] = json!("schema 2");
    c.call(
        &e,
        Method::PUT,
        &format!("{CL}/{{contactListId}}"),
        &[l],
        "",
        Some(got),
    )
    .await;
    let contacts = json!([
        {"id": "k1", "contactListId": l, "data": {"phone": "+14155550001", "name": "a"}, "callable": false,
         "contactableStatus": {"Voice": {"contactable": false}}, "phoneNumberStatus": {"phone": {"callable": false}}},
        {"contactListId": l, "data": {"phone": "+14155550002", "name": "b"}},
        {"id": "k3", "contactListId": l, "data": {"phone": "+14155550003", "name": "c"}}
    ]);
    c.call(
        &e,
        Method::POST,
        &format!("{CL}/{{contactListId}}/contacts"),
        &[l],
        "?priority=true",
        Some(contacts),
    )
    .await;
    let one = c
        .call(
            &e,
            Method::GET,
            &format!("{CL}/{{contactListId}}/contacts/{{contactId}}"),
            &[l, "k1"],
            "",
            None,
        )
        .await;
    c.call(
        &e,
        Method::PUT,
        &format!("{CL}/{{contactListId}}/contacts/{{contactId}}"),
        &[l, "k1"],
        "",
        Some(one),
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{CL}/{{contactListId}}/contacts/bulk"),
        &[l],
        "",
        Some(json!(["k1", "k3"])),
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{CL}/{{contactListId}}/contacts/search"),
        &[l],
        "",
        Some(json!({"pageNumber": 1, "pageSize": 10, "criteria": {"filterType": "AND", "clauses": [{"filterType": "OR",
            "predicates": [{"column": "name", "columnType": "alphabetic", "operator": "IN", "range": {"inSet": ["a", "c"]}}]}]}})),
    )
    .await;
    c.call(
        &e,
        Method::DELETE,
        &format!("{CL}/{{contactListId}}/contacts/{{contactId}}"),
        &[l, "k3"],
        "",
        None,
    )
    .await;
    c.call(
        &e,
        Method::DELETE,
        &format!("{CL}/{{contactListId}}/contacts"),
        &[l],
        "?contactIds=k1",
        None,
    )
    .await;
    // Errors are ErrorBody too.
    c.call(
        &e,
        Method::GET,
        &format!("{CL}/{{contactListId}}/contacts/{{contactId}}"),
        &[l, "nope"],
        "",
        None,
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{CL}/{{contactListId}}/contacts"),
        &[l],
        "",
        Some(json!([{"contactListId": l}])),
    )
    .await;
    c.call(
        &e,
        Method::DELETE,
        &format!("{CL}/{{contactListId}}"),
        &[l],
        "",
        None,
    )
    .await;

    const EC: &str = "/api/v2/externalcontacts";
    let full = json!({
        "firstName": "Ann", "lastName": "Lee", "title": "Dr", "workEmail": "ann@example.com",
        "cellPhone": {"display": "(415) 555-2671", "acceptsSMS": true},
        "address": {"address1": "1 Main St", "city": "Springfield", "countryCode": "US"},
        "externalIds": [{"externalSource": {"id": "crm"}, "value": "CUST_1"}],
        "identifiers": [{"type": "Cookie", "value": "ck-1"}],
        "surveyOptOut": false
    });
    let a = c
        .call(
            &e,
            Method::POST,
            &format!("{EC}/contacts"),
            &[],
            "",
            Some(full),
        )
        .await;
    let b = c
        .call(
            &e,
            Method::POST,
            &format!("{EC}/contacts"),
            &[],
            "",
            Some(json!({"firstName": "Annie", "personalEmail": "annie@example.com"})),
        )
        .await;
    let (a, b) = (
        a["id"].as_str().expect("id").to_owned(),
        b["id"].as_str().expect("id").to_owned(),
    );
    let got = c
        .call(
            &e,
            Method::GET,
            &format!("{EC}/contacts/{{contactId}}"),
            &[&a],
            "",
            None,
        )
        .await;
    c.call(
        &e,
        Method::PUT,
        &format!("{EC}/contacts/{{contactId}}"),
        &[&a],
        "",
        Some(got),
    )
    .await;
    c.call(
        &e,
        Method::PATCH,
        &format!("{EC}/contacts/{{contactId}}"),
        &[&a],
        "",
        Some(json!({"changes": [{"field": "$.middleName", "action": "UpdateIfEmpty", "value": "M"}]})),
    )
    .await;
    c.call(
        &e,
        Method::GET,
        &format!("{EC}/contacts"),
        &[],
        "?q=ann&pageSize=5",
        None,
    )
    .await;
    c.call(
        &e,
        Method::GET,
        &format!("{EC}/scan/contacts"),
        &[],
        "?limit=10",
        None,
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{EC}/identifierlookup/contacts"),
        &[],
        "",
        Some(json!({"type": "Email", "value": "ann@example.com"})),
    )
    .await;
    let merged = c
        .call(
            &e,
            Method::POST,
            &format!("{EC}/contacts/merge"),
            &[],
            "",
            Some(json!({"contactIds": [a, b], "valueOverride": {"title": "Prof"}})),
        )
        .await;
    c.call(
        &e,
        Method::GET,
        &format!("{EC}/contacts/{{contactId}}/unresolved"),
        &[&a],
        "",
        None,
    )
    .await;
    c.call(
        &e,
        Method::GET,
        &format!("{EC}/contacts/{{contactId}}"),
        &[&b],
        "",
        None,
    )
    .await;
    let added = c
        .call(
            &e,
            Method::POST,
            &format!("{EC}/bulk/contacts/add"),
            &[],
            "",
            Some(json!({"entities": [{"firstName": "x"}, {"firstName": "y", "workEmail": "not-an-email"}]})),
        )
        .await;
    let new_id = added["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["success"] == true)
        .and_then(|r| r["id"].as_str())
        .expect("one success")
        .to_owned();
    c.call(
        &e,
        Method::POST,
        &format!("{EC}/bulk/contacts"),
        &[],
        "",
        Some(json!({"entities": [{"id": new_id}, {"id": "missing"}]})),
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{EC}/bulk/contacts/update"),
        &[],
        "",
        Some(json!({"entities": [{"id": new_id, "firstName": "z"}, {"firstName": "no id"}]})),
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{EC}/bulk/contacts/remove"),
        &[],
        "",
        Some(json!({"entities": [{"id": new_id}, {"id": "missing"}]})),
    )
    .await;
    let mid = merged["id"].as_str().expect("merged id").to_owned();
    c.call(
        &e,
        Method::DELETE,
        &format!("{EC}/contacts/{{contactId}}"),
        &[&mid],
        "",
        None,
    )
    .await;
    c.call(
        &e,
        Method::POST,
        &format!("{EC}/contacts/merge"),
        &[],
        "",
        Some(json!({"contactIds": ["only-one"]})),
    )
    .await;

    let msg = c
        .call(
            &e,
            Method::POST,
            "/api/v2/conversations/messages/{integrationId}/inbound/open/message",
            &["int-9"],
            "?prefetchConversationId=true",
            Some(json!({"channel": {"from": {"id": "jo@example.com", "idType": "Email", "firstName": "Jo"}, "time": "2026-11-24T10:00:00.000Z"},
                "text": "hi", "content": [{"attachment": {"url": "https://example.invalid/x.png"}}]})),
        )
        .await;
    let conv = msg["conversationId"]
        .as_str()
        .expect("conversationId")
        .to_owned();
    let conversation = c
        .call(
            &e,
            Method::GET,
            "/api/v2/conversations/{conversationId}",
            &[&conv],
            "",
            None,
        )
        .await;
    let pid = conversation["participants"][0]["id"]
        .as_str()
        .expect("participant")
        .to_owned();
    c.call(
        &e,
        Method::PATCH,
        "/api/v2/conversations/{conversationId}/participants/{participantId}/attributes",
        &[&conv, &pid],
        "",
        Some(json!({"attributes": {"a": "b"}})),
    )
    .await;

    // 401 without a token, validated as well.
    let r = e
        .call_with(
            Method::GET,
            "/api/v2/outbound/contactlists",
            None,
            None,
            &[],
        )
        .await;
    let schema = c
        .doc
        .response_schema("GET", "/api/v2/outbound/contactlists", 401)
        .flatten()
        .expect("401 documented");
    c.problems
        .extend(c.doc.validate(&r.body, schema, Mode::Response));

    assert!(
        c.problems.is_empty(),
        "schema problems:\n{}",
        c.problems.join("\n")
    );
    let not_covered: Vec<String> = ROUTES
        .iter()
        .filter(|r| !EXEMPT.contains(r))
        .filter(|(m, p)| !c.covered.contains(&((*m).to_owned(), (*p).to_owned())))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        not_covered.is_empty(),
        "routes without a validated sample: {not_covered:?}"
    );
}

#[tokio::test]
async fn a_429_validates_against_the_schema() {
    let e = start(EmulatorConfig {
        rate_limit_per_minute: 1,
        ..EmulatorConfig::default()
    })
    .await;
    e.get("/api/v2/externalcontacts/contacts").await.expect(200);
    let r = e.get("/api/v2/externalcontacts/contacts").await;
    assert_eq!(r.status.as_u16(), 429);
    let doc = excerpt();
    let schema = doc
        .response_schema("GET", "/api/v2/externalcontacts/contacts", 429)
        .flatten()
        .expect("429 documented");
    let errors = doc.validate(&r.body, schema, Mode::Response);
    assert!(errors.is_empty(), "{errors:?}");
    // And the validator is not vacuous on real shapes: a broken ErrorBody fails.
    assert!(
        !doc.validate(&json!({"status": "429"}), schema, Mode::Response)
            .is_empty()
    );
}

#[tokio::test]
async fn malformed_bodies_never_crash_a_route() {
    let e = start(EmulatorConfig::default()).await;
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    let bodies = [
        "{",
        "[]",
        "{}",
        "\"text\"",
        "123",
        "true",
        "[1,2,3]",
        "[{\"contactListId\": 5}]",
        "{\"entities\": [1, \"x\", null, {\"id\": 7}]}",
        "{\"contactIds\": \"a,b\"}",
        "{\"changes\": [{\"field\": \"$.\", \"action\": \"Update\"}]}",
        "{\"channel\": 1}",
        "{\"attributes\": [\"x\"]}",
        "\u{0}\u{1}binary",
        deep.as_str(),
    ];
    for (method, template) in ROUTES {
        if !matches!(*method, "POST" | "PUT" | "PATCH") || *template == "/oauth/token" {
            continue;
        }
        let path = template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for body in &bodies {
            let r = e
                .http
                .request(method.parse().expect("method"), format!("{}{path}", e.base))
                .bearer_auth(&e.token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|err| {
                    panic!("{method} {path} with {body:.40}: connection failed: {err}")
                });
            let r = crate::common::to_resp(r).await;
            assert!(
                r.status.as_u16() < 500,
                "{method} {path} with {body:.40} -> {}: {}",
                r.status,
                r.raw
            );
            if !r.status.is_success() {
                assert!(
                    r.body["code"].is_string(),
                    "{method} {path}: not an ErrorBody: {}",
                    r.raw
                );
            }
        }
    }
}
