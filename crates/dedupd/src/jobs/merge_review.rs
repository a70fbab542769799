//! `dedupd merge review --plan DIR`: serves the plan's review page on 127.0.0.1 (a random
//! port unless `--port`, printed on stdout; no browser is opened) and saves each decision at
//! once into `DIR/decisions.json`, which `merge apply` honours.
//!
//! Routes: `GET /` the page (every cluster of the plan, with the decisions so far);
//! `GET /api/decisions` the decisions file; `POST /api/decisions` with
//! `{"decisions": {CLUSTER_ID: DECISION | null}}` checks each decision against its cluster
//! (422 naming the cluster and the key when it cannot be carried out), saves the file
//! atomically, and answers with the clusters each decision merges, values recomputed as
//! `merge apply` will send them. Errors are the service's one JSON envelope.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use dedupd_http::error::{ApiError, ApiJson};
use serde::{Deserialize, Serialize};

use crate::shared::plan_file::{
    Cluster, Decision, Decisions, DecisionsFile, Plan, PlanFile, decide_cluster,
};
use crate::shared::review::{self, PageMeta};

/// Flags of `dedupd merge review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The plan directory (with plan.json); decisions are saved to DIR/decisions.json.
    #[arg(long)]
    pub plan: PathBuf,
    /// Port on 127.0.0.1 [default: a free one, printed].
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

struct Review {
    dir: PathBuf,
    plan: Plan,
    decisions: Mutex<Decisions>,
}

#[derive(Deserialize)]
struct Changes {
    decisions: BTreeMap<String, Option<Decision>>,
}

#[derive(Serialize)]
struct Saved {
    saved: usize,
    /// Per decided cluster, the clusters it merges (values as `merge apply` sends them).
    decided: BTreeMap<String, Vec<Cluster>>,
}

/// Runs the review server until Ctrl-C.
pub fn main(args: ReviewArgs) -> anyhow::Result<std::process::ExitCode> {
    let plan = Plan::load(&args.plan)?;
    let decisions = Decisions::load(&args.plan)?.unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
        let addr = listener.local_addr()?;
        let clusters = plan.clusters.len();
        let state = Arc::new(Review {
            dir: args.plan.clone(),
            plan,
            decisions: Mutex::new(decisions),
        });
        println!("http://{addr}/");
        eprintln!(
            "Reviewing {} clusters of {}: open http://{addr}/ in a browser. Each decision is saved to {} at once; Ctrl-C to stop.",
            clusters,
            Plan::path_in(&args.plan).display(),
            <Decisions as DecisionsFile>::path_in(&args.plan).display()
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the review server stopped")?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

fn router(state: Arc<Review>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/decisions", get(list).post(save))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

fn lock(m: &Mutex<Decisions>) -> std::sync::MutexGuard<'_, Decisions> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn page(State(r): State<Arc<Review>>) -> Response {
    let decisions = lock(&r.decisions).clone();
    let n = r.plan.clusters.len();
    let meta = PageMeta::new(&r.plan.input, r.plan.generated_at, n, n, true);
    match review::page(&meta, &r.plan.clusters, &decisions) {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "Cannot render the review page.");
            ApiError::internal().into_response()
        }
    }
}

async fn list(State(r): State<Arc<Review>>) -> Response {
    axum::Json(lock(&r.decisions).clone()).into_response()
}

async fn save(State(r): State<Arc<Review>>, ApiJson(changes): ApiJson<Changes>) -> Response {
    let mut decided = BTreeMap::new();
    for (id, decision) in &changes.decisions {
        let Some(cluster) = r.plan.clusters.iter().find(|c| &c.cluster_id == id) else {
            return ApiError::invalid_field(
                format!("decisions.{id}"),
                "no cluster of the plan has this id",
            )
            .into_response();
        };
        let Some(decision) = decision else { continue };
        let mut members = decision.members.clone();
        members.sort();
        if members != cluster.sorted_ids() {
            return ApiError::invalid_field(
                format!("decisions.{id}.members"),
                "are not the cluster's members",
            )
            .into_response();
        }
        match decide_cluster(cluster, decision) {
            Ok(d) => {
                decided.insert(
                    id.clone(),
                    d.merge.into_iter().map(|m| m.cluster).collect::<Vec<_>>(),
                );
            }
            Err(e) => {
                return ApiError::invalid_field(format!("decisions.{id}.{}", e.field), e.reason)
                    .into_response();
            }
        }
    }
    let mut all = lock(&r.decisions);
    let before = all.clone();
    for (id, decision) in changes.decisions {
        match decision {
            Some(d) => all.decisions.insert(id, d),
            None => all.decisions.remove(&id),
        };
    }
    if let Err(e) = all.save(&r.dir) {
        *all = before;
        tracing::error!(error = %e, "Cannot save the decisions.");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "not_saved",
            "the decisions could not be written to the plan directory",
        )
        .into_response();
    }
    axum::Json(Saved {
        saved: all.decisions.len(),
        decided,
    })
    .into_response()
}
