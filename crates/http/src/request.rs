//! Request parts (bodies, queries, uploads), the commands a caller sends, and the answers to
//! their outcome.

use crate::Sent;
use crate::problem::{ApiResult, Problem};
use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use visionlog_codec::envelope::CommandEnvelope;
use visionlog_domain::TaskCommand;
use visionlog_journal::now_ms;
use visionlog_tenants::Principal;

/// A JSON body, or the problem of why it is not one.
pub fn body<T>(r: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    r.map(|Json(t)| t).map_err(|e| {
        let (status, code) = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            StatusCode::UNPROCESSABLE_ENTITY => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            _ => (StatusCode::BAD_REQUEST, "malformed_json"),
        };
        Problem::new(status, code, e.body_text())
    })
}

/// Query parameters, or the problem of why they are not valid.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t).map_err(|e| Problem::bad_request("invalid_query", e.body_text()))
}

/// An uploaded body (an image, a module), or the problem of why it could not be read.
pub fn upload(bytes: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", e.body_text())
        } else {
            Problem::bad_request("unreadable_body", e.body_text())
        }
    })
}

/// How a caller is named on what it sends: the `actor` of its commands, the `by` of model commands.
pub fn actor_of(who: &Principal) -> String {
    match who {
        Principal::Tenant(t) => format!("customer:{t}"),
        Principal::Operator(o) => format!("operator:{o}"),
        Principal::Admin(a) => format!("service:admin-{a}"),
    }
}

/// The envelope of a command sent over HTTP for `who`.
pub fn envelope(
    who: &Principal,
    tenant: &str,
    task_id: &str,
    command_id: String,
    command: &TaskCommand,
    expected_version: Option<u64>,
) -> CommandEnvelope {
    CommandEnvelope {
        command_id,
        task_id: task_id.to_owned(),
        command_type: command.type_name().to_owned(),
        expected_version,
        actor: actor_of(who),
        tenant: tenant.to_owned(),
        correlation_id: uuid::Uuid::now_v7().to_string(),
        causation_id: None,
        issued_at_ms: now_ms(),
    }
}

/// The answer for a command's outcome: 200 with its versions, 202 while undecided, or the
/// rejection's problem.
pub fn decided(sent: Sent, location: &str) -> ApiResult<Response> {
    match sent {
        Sent::Pending => Ok(accepted_pending(location)),
        Sent::Decided(o) if o.accepted => {
            Ok(Json(json!({ "status": "accepted", "version": o.last_version, "duplicate": o.duplicate }))
                .into_response())
        }
        Sent::Decided(o) => Err(Problem::rejected(
            o.rejection_code.as_deref().unwrap_or("rejected"),
            o.rejection_message.as_deref().unwrap_or(""),
        )),
    }
}

/// The answer for a command the aggregator has not decided within the wait.
pub fn accepted_pending(location: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.to_owned())],
        Json(json!({ "status": "pending", "location": location })),
    )
        .into_response()
}
