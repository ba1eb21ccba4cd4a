//! One error type for the whole program, and the one place that maps errors to exit codes.
//!
//! Messages name what failed and what to do next. They never carry a secret value: the
//! constructors take names, paths, serials and AWS error codes, never payloads.

use std::fmt;

/// Exit statuses of the contract (§7). `exec` adds 126/127 and the child's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    Failure = 1,
    Usage = 2,
    CannotExecute = 126,
    NotFound = 127,
}

impl From<ExitCode> for i32 {
    fn from(c: ExitCode) -> i32 {
        c as i32
    }
}

/// What kind of AWS failure happened; decides daemon HTTP statuses and retry/fail messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsKind {
    /// Credentials missing or rejected.
    Credentials,
    /// The principal lacks a permission.
    AccessDenied,
    /// The thing asked for does not exist.
    NotFound,
    /// Throttled past the retries.
    Throttled,
    /// Could not reach the service (DNS, connect, TLS, reset).
    Network,
    /// An attempt or the overall deadline ran out.
    Timeout,
    /// The service refused the input.
    Invalid,
    /// A conditional write lost a race.
    Conflict,
    /// Anything else the service said.
    Service,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// An AWS call failed.
    #[error("{context}: {detail}{hint}")]
    Aws {
        kind: AwsKind,
        context: String,
        detail: String,
        hint: String,
    },
    /// Stored data is wrong (tamper, bad name, collision, decrypt failure, …).
    #[error("{0}")]
    Data(String),
    /// A named thing does not exist (unknown secret or serial).
    #[error("{0}")]
    NotFound(String),
    /// Local I/O (files, exec, privileges).
    #[error("{0}")]
    Io(String),
    /// The overall `--timeout` deadline passed.
    #[error("{0}")]
    Deadline(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::Usage(msg.to_string())
    }
    pub fn data(msg: impl fmt::Display) -> Self {
        Error::Data(msg.to_string())
    }
    pub fn io(msg: impl fmt::Display) -> Self {
        Error::Io(msg.to_string())
    }
    pub fn not_found(msg: impl fmt::Display) -> Self {
        Error::NotFound(msg.to_string())
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }

    /// The AWS kind, when this is an AWS failure (used by the daemon for statuses).
    pub fn aws_kind(&self) -> Option<AwsKind> {
        match self {
            Error::Aws { kind, .. } => Some(*kind),
            Error::Deadline(_) => Some(AwsKind::Timeout),
            _ => None,
        }
    }
}
