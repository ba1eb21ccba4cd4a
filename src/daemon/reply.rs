//! What a handler answers: a status and a JSON body, turned into an HTTP response in one
//! place. Also the one mapping from our errors to HTTP statuses.

use crate::error::{AwsKind, Error};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// A finished answer. Cheap to clone (the body is reference-counted), so the cache hands
/// out the same bytes to every reader.
#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    /// For 405: the methods the route allows.
    pub allow: Option<&'static str>,
    /// The server will not read the rest of the request: close the connection.
    pub close: bool,
}

impl std::fmt::Debug for Reply {
    // A body may hold a payload: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply({}, <{} bytes>)", self.status, self.body.len())
    }
}

pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serializes")
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply::new(StatusCode::OK, body)
    }

    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            body: body.into(),
            allow: None,
            close: false,
        }
    }

    /// `{"error":"…"}`. Callers pass names, routes and error messages, never payloads.
    pub fn error(status: StatusCode, msg: &str) -> Reply {
        Reply::new(status, format!("{{\"error\":{}}}", json_str(msg)))
    }

    pub fn method_not_allowed(allow: &'static str, msg: &str) -> Reply {
        let mut r = Reply::error(StatusCode::METHOD_NOT_ALLOWED, msg);
        r.allow = Some(allow);
        r
    }

    pub fn closing(mut self) -> Reply {
        self.close = true;
        self
    }

    /// The status an error deserves, and its message as the body.
    pub fn from_error(e: &Error) -> Reply {
        Reply::error(status_of(e), &e.to_string())
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Secrets must not be kept by any cache between the client and us.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("X-ECS-Secrets-Token realm=\"ecs-secrets\""),
            );
        }
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// Our errors → HTTP statuses (see the README's daemon section for the table).
pub fn status_of(e: &Error) -> StatusCode {
    if let Some(kind) = e.aws_kind() {
        return match kind {
            AwsKind::AccessDenied => StatusCode::FORBIDDEN,
            AwsKind::NotFound => StatusCode::NOT_FOUND,
            AwsKind::Invalid => StatusCode::BAD_REQUEST,
            AwsKind::Conflict => StatusCode::CONFLICT,
            AwsKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // The daemon's own credentials, the network, throttling past the retries, or
            // anything else AWS said: the upstream failed, not the client.
            AwsKind::Credentials | AwsKind::Throttled | AwsKind::Network | AwsKind::Service => {
                StatusCode::BAD_GATEWAY
            }
        };
    }
    match e {
        Error::Usage(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        // Stored data we cannot use (a failed decrypt, a binary value JSON cannot carry).
        Error::Data(_) => StatusCode::BAD_GATEWAY,
        Error::Io(_) | Error::Aws { .. } | Error::Deadline(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(kind: AwsKind) -> Error {
        Error::Aws {
            kind,
            context: "reading /a/b".into(),
            detail: "X".into(),
            hint: String::new(),
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(status_of(&aws(AwsKind::AccessDenied)), 403);
        assert_eq!(status_of(&aws(AwsKind::NotFound)), 404);
        assert_eq!(status_of(&aws(AwsKind::Throttled)), 502);
        assert_eq!(status_of(&aws(AwsKind::Network)), 502);
        assert_eq!(status_of(&aws(AwsKind::Timeout)), 504);
        assert_eq!(status_of(&Error::Deadline("x".into())), 504);
        assert_eq!(status_of(&Error::usage("x")), 400);
        assert_eq!(status_of(&Error::not_found("x")), 404);
    }

    #[test]
    fn error_bodies_are_json() {
        let r = Reply::error(StatusCode::BAD_REQUEST, "a \"quoted\"\nname");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "a \"quoted\"\nname");
    }
}
