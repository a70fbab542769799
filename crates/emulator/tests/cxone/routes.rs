//! The route table and the router agree: every listed route answers from its handler (a
//! resource may be missing, the route may not), and the admin routes are served.

use dedupd_emulator::SHARED_ADMIN_ROUTES;
use dedupd_emulator::cxone::{ADMIN_API_VERSIONS, CXONE_ADMIN_ROUTES, CXONE_ROUTES};
use reqwest::Method;

use crate::common::{Resp, start_default};

/// Whether `r` came from the router's fallbacks rather than a handler.
fn from_fallback(r: &Resp) -> bool {
    r.status.as_u16() == 405
        || r.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("No resource at"))
        || r.body["errorDescription"]
            .as_str()
            .is_some_and(|m| m.starts_with("No resource at"))
}

#[tokio::test]
async fn every_listed_route_reaches_its_handler() {
    let cx = start_default().await;
    for (method, template) in CXONE_ROUTES {
        let path = template
            .replace("{version}", ADMIN_API_VERSIONS[0])
            .replace("{channelId}", "ch")
            .replace("{messageId}", "m")
            .replace("{contactId}", "1")
            .replace("{customerId}", "c")
            .replace("{ident}", "i")
            .replace("{jobId}", "1")
            .replace("{listId}", "1")
            .replace("{sourceName}", "s")
            .replace("{groupId}", "1")
            .replace("{skillId}", "1");
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let r = cx.call(m, &path, None).await;
        assert!(
            !from_fallback(&r),
            "{method} {template} → {}: {}",
            r.status,
            r.raw
        );
        assert!(
            r.status.as_u16() != 401,
            "{method} {template} refused the token"
        );
    }
    for (method, path) in SHARED_ADMIN_ROUTES.iter().chain(CXONE_ADMIN_ROUTES) {
        let path = path.replace("{customerId}", "c").replace("{listId}", "1");
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let r = cx.admin(m, &path, None).await;
        assert!(
            !from_fallback(&r),
            "{method} {path} → {}: {}",
            r.status,
            r.raw
        );
    }
}

#[tokio::test]
async fn routing_is_by_path_whatever_the_host() {
    let cx = start_default().await;
    for host in [
        "api-de-na1.niceincontact.com",
        "api-na1.niceincontact.com",
        "cxone.niceincontact.com",
    ] {
        cx.call_with(
            Method::GET,
            "/dfo/3.0/channels",
            None,
            Some(&cx.token),
            &[("host", host)],
        )
        .await
        .expect(200);
        cx.call_with(
            Method::GET,
            "/inContactAPI/services/v30.0/dnc-groups",
            None,
            Some(&cx.token),
            &[("host", host)],
        )
        .await
        .expect(200);
    }
}
