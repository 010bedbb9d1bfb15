//! `/v1/models...`: a tenant's model streams (admins name the customer with `?customer=`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use visionlog_http::problem::{ApiResult, Problem};
use visionlog_http::request::{actor_of, body, query, upload};
use visionlog_http::{ApiState as Gw, principal};
use visionlog_journal::{deterministic_id, now_ms};
use visionlog_models::{ModelCommand, ModelKey, Outcome};
use visionlog_tenants::Principal;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelQuery {
    /// For admins: whose models.
    customer: Option<String>,
    /// For a register: class ids in output order.
    classes: Option<String>,
    /// Which model of the class group: `detector` (default) or `recognizer`.
    kind: Option<String>,
    /// For `show`: what was deployed at this instant.
    at_ms: Option<i64>,
}

fn customer(who: &Principal, q: &ModelQuery) -> ApiResult<String> {
    match (who, &q.customer) {
        (Principal::Tenant(t), None) => Ok(t.clone()),
        (Principal::Tenant(t), Some(c)) if c == t => Ok(t.clone()),
        (Principal::Tenant(_), Some(_)) => Err(Problem::new(StatusCode::NOT_FOUND, "model_not_found", "no such model")),
        (Principal::Admin(_), Some(c)) => Ok(c.clone()),
        (Principal::Admin(_), None) => {
            Err(Problem::bad_request("customer_required", "admins name the customer: ?customer="))
        }
        (Principal::Operator(_), _) => Err(Problem::forbidden("operators do not manage models")),
    }
}

/// Who calls, their query, and the model stream of `class_group` they may act on.
fn caller_and_stream(
    gw: &visionlog_http::Api,
    headers: &HeaderMap,
    class_group: &str,
    q: Result<Query<ModelQuery>, QueryRejection>,
) -> ApiResult<(Principal, ModelQuery, ModelKey)> {
    let who = principal(gw, headers)?;
    let q = query(q)?;
    let customer = customer(&who, &q)?;
    let key = match q.kind.as_deref() {
        None | Some("detector") => ModelKey::detector(&customer, class_group),
        Some("recognizer") => ModelKey::recognizer(&customer, class_group),
        Some(_) => return Err(Problem::bad_request("invalid_query", "kind: detector or recognizer")),
    };
    Ok((who, q, key))
}

fn answer(o: Outcome) -> ApiResult<Response> {
    match o {
        Outcome::Appended(e, v) => {
            Ok((StatusCode::OK, Json(json!({ "status": "appended", "stream_version": v, "event": format!("{e:?}") })))
                .into_response())
        }
        Outcome::Duplicate(v) => Ok(Json(json!({ "status": "duplicate", "stream_version": v })).into_response()),
        // the HTTP code stays one (clients match on it); the typed reason is in the detail
        Outcome::Rejected(r) => {
            Err(Problem::new(StatusCode::CONFLICT, "model_command_refused", format!("{r} ({})", r.code())))
        }
    }
}

/// `GET /v1/models`: the caller's model streams.
pub(crate) async fn list(
    gw: Gw,
    headers: HeaderMap,
    q: Result<Query<ModelQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let who = principal(&gw, &headers)?;
    let q = query(q)?;
    let mine = match &who {
        Principal::Admin(_) => q.customer.clone(),
        _ => Some(customer(&who, &q)?),
    };
    gw.blocking(move |gw| {
        let streams = gw.registry.streams().map_err(Problem::internal)?;
        let out: Vec<Value> = streams
            .iter()
            .filter(|(k, _)| mine.as_ref().is_none_or(|c| &k.customer == c))
            .map(|(k, s)| {
                let last = s.versions.values().next_back();
                json!({ "model_id": k.model_id(), "customer": k.customer, "class_group": k.class_group,
                        "deployed": s.deployed, "versions": s.versions.len(),
                        "last_backtest": last.and_then(|v| v.backtest),
                        "training_requested": s.pending_training.is_some() })
            })
            .collect();
        Ok(Json(json!({ "models": out })))
    })
    .await
}

/// `GET /v1/models/{class_group}`: one stream, and what was deployed at `at_ms`.
pub(crate) async fn show(
    gw: Gw,
    headers: HeaderMap,
    Path(class_group): Path<String>,
    q: Result<Query<ModelQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let gw = gw.0;
    let (_, q, key) = caller_and_stream(&gw, &headers, &class_group, q)?;
    gw.blocking(move |gw| {
        let s = gw.registry.stream(&key).map_err(Problem::internal)?;
        if s.versions.is_empty() && s.pending_training.is_none() {
            return Err(Problem::new(StatusCode::NOT_FOUND, "model_not_found", "no such model"));
        }
        let mut v = serde_json::to_value(&s).map_err(Problem::internal)?;
        if let Some(at) = q.at_ms {
            v["deployed_at"] = json!({ "at_ms": at, "version": s.deployed_at(at) });
        }
        v["model_id"] = json!(key.model_id());
        Ok(Json(v))
    })
    .await
}

async fn execute(
    gw: &std::sync::Arc<visionlog_http::Api>,
    key: ModelKey,
    command: ModelCommand,
    idem: Option<String>,
) -> ApiResult<Response> {
    let o = gw
        .blocking(move |gw| {
            let id = match idem {
                Some(k) => deterministic_id(&["gateway", &key.model_id(), &k]),
                None => uuid::Uuid::now_v7().to_string(),
            };
            gw.registry.execute(&key, &id, &command, now_ms()).map_err(Problem::internal)
        })
        .await?;
    answer(o)
}

fn idempotency(headers: &HeaderMap) -> Option<String> {
    headers.get(crate::tasks::IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `POST /v1/models/{class_group}/artifacts[?kind=recognizer]` (a TorchScript module as the
/// body): checks it against the class group by loading it, stores it, and registers it as a
/// new version of the class group's detector or recognizer.
pub(crate) async fn register(
    gw: Gw,
    headers: HeaderMap,
    Path(class_group): Path<String>,
    q: Result<Query<ModelQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let (who, q, key) = caller_and_stream(&gw, &headers, &class_group, q)?;
    // a TorchScript module is code: it runs in the inference workers every tenant shares
    if !matches!(who, Principal::Admin(_)) {
        return Err(Problem::forbidden(
            "importing a model artifact is an admin's (`?customer=`): the module runs in workers shared by every tenant",
        ));
    }
    let bytes = upload(bytes)?;
    let classes: Vec<u32> = match &q.classes {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|c| c.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| Problem::bad_request("invalid_query", "classes: comma-separated class ids"))?,
    };
    let (k, by) = (key.clone(), actor_of(&who));
    let register = gw
        .blocking(move |gw| {
            visionlog_models::import_module(gw.store.as_ref(), gw.artifacts.as_ref(), &k, bytes.to_vec(), classes, &by)
                .map_err(|e| match e {
                    visionlog_models::ImportError::UnknownClassGroup(_) => {
                        Problem::new(StatusCode::NOT_FOUND, "unknown_class_group", "no task has used this class group")
                    }
                    visionlog_models::ImportError::Invalid(why) => {
                        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_artifact", why)
                    }
                    visionlog_models::ImportError::Store(e) => Problem::internal(e),
                })
        })
        .await?;
    let folder = match &register {
        ModelCommand::Register { artifact, .. } => Some(artifact.clone()),
        _ => None,
    };
    execute(&gw, key, register, folder).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Because {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    version: Option<u32>,
}

/// `POST /v1/models/{class_group}/train`: the "Train" button.
pub(crate) async fn train(
    gw: Gw,
    headers: HeaderMap,
    Path(class_group): Path<String>,
    q: Result<Query<ModelQuery>, QueryRejection>,
    req: Result<Json<Because>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let (who, _, key) = caller_and_stream(&gw, &headers, &class_group, q)?;
    let req = body(req)?;
    let c = ModelCommand::RequestTraining {
        by: actor_of(&who),
        reason: req.reason.unwrap_or_else(|| "asked over HTTP".into()),
    };
    execute(&gw, key, c, idempotency(&headers)).await
}

/// `POST /v1/models/{class_group}/promote` (`{"version": N}`): deploys a version.
pub(crate) async fn promote(
    gw: Gw,
    headers: HeaderMap,
    Path(class_group): Path<String>,
    q: Result<Query<ModelQuery>, QueryRejection>,
    req: Result<Json<Because>, JsonRejection>,
) -> ApiResult<Response> {
    let gw = gw.0;
    let (_, _, key) = caller_and_stream(&gw, &headers, &class_group, q)?;
    let req = body(req)?;
    let version = req
        .version
        .ok_or_else(|| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "version is required"))?;
    let c = ModelCommand::Promote { version, reason: req.reason.unwrap_or_else(|| "promoted over HTTP".into()) };
    execute(&gw, key, c, idempotency(&headers)).await
}
