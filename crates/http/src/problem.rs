//! Errors as RFC 9457 problem details (`application/problem+json`) with stable codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One error answer: an HTTP status, a stable `code` clients branch on, and a sentence.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The status.
    pub status: StatusCode,
    /// The stable code (also the last segment of `type`).
    pub code: &'static str,
    /// What went wrong, for people.
    pub detail: String,
    /// Extra members.
    pub extra: Option<serde_json::Value>,
}

impl Problem {
    /// A problem.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), extra: None }
    }

    /// The same problem with extra members (merged into the body).
    pub fn with(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// 404 for a task that does not exist *or is not the caller's*: the same answer, so that
    /// existence does not leak across tenants.
    pub fn task_not_found(task_id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "task_not_found", format!("no task {task_id}"))
    }

    /// 400 for a query parameter or header that is not valid.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 403 for a role that may not use an endpoint at all.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 500/503 for a backend that failed; the detail is logged, not shown.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "http: backend failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable", "a backend failed; try again")
    }

    /// The problem of an aggregator's rejection: the domain's code, with a status that says
    /// whether the request or the task's state is at fault.
    pub fn rejected(code: &str, message: &str) -> Self {
        let (status, code): (StatusCode, &'static str) = match code {
            "version_conflict" => (StatusCode::CONFLICT, "version_conflict"),
            "already_assigned" => (StatusCode::CONFLICT, "already_assigned"),
            "invalid_stage" => (StatusCode::CONFLICT, "invalid_stage"),
            "task_cancelled" => (StatusCode::CONFLICT, "task_cancelled"),
            "task_already_exists" => (StatusCode::CONFLICT, "task_already_exists"),
            "not_assigned" => (StatusCode::CONFLICT, "not_assigned"),
            "session_mismatch" => (StatusCode::CONFLICT, "session_mismatch"),
            "nothing_to_redeliver" => (StatusCode::CONFLICT, "nothing_to_redeliver"),
            "own_work" => (StatusCode::FORBIDDEN, "own_work"),
            "task_not_found" => (StatusCode::NOT_FOUND, "task_not_found"),
            other => (StatusCode::UNPROCESSABLE_ENTITY, stable(other)),
        };
        Self::new(status, code, message.to_owned())
    }
}

/// The domain's rejection codes as `'static` strings (unknown ones become `rejected`).
fn stable(code: &str) -> &'static str {
    const CODES: &[&str] = &[
        "invalid_box",
        "image_out_of_range",
        "invalid_image_size",
        "unknown_class",
        "duplicate_class",
        "invalid_score",
        "too_many",
        "string_too_long",
        "invalid_field",
        "disallowed_uri_scheme",
        "invalid_uri",
        "unknown_object",
        "duplicate_object",
        "empty_command",
        "oversized",
        "invalid_actor",
        "key_mismatch",
        "type_mismatch",
    ];
    CODES.iter().find(|c| **c == code).copied().unwrap_or("rejected")
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://visionlog.dev/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"visionlog\""));
        }
        response
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, Problem>;
