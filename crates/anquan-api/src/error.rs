//! The one table that maps every error to a stable `extensions.code`. Clients branch on codes;
//! internal errors reach them as a generic message and are logged once, here.

use async_graphql::ErrorExtensions as _;

use anquan_domain::DomainRejection;
use anquan_domain::enterprise::EnterpriseRejection;
use anquan_event_store::execute::ExecuteError;
use anquan_event_store::{ReadModelError, StoreError};

/// An error a resolver returns. It is deliberately not `Display`, so the only way into a
/// GraphQL error is the conversion below, which always sets `extensions.code`.
#[derive(Debug)]
pub enum ApiError {
    Rejected {
        code: &'static str,
        message: String,
    },
    BadInput {
        code: &'static str,
        message: String,
    },
    Unauthenticated,
    Forbidden(String),
    NotFound(String),
    WrongExpectedVersion {
        expected: String,
        actual: String,
    },
    Conflict,
    FileTooLarge {
        size: u64,
        max: u64,
    },
    /// The uploading enterprise or agency would store more than its quota.
    QuotaExceeded {
        used: u64,
        adding: u64,
        quota: u64,
    },
    /// Something the service computes after it starts is not there yet; the client may retry.
    NotReady(String),
    /// A read model the answer depends on is stalled on an event (see `/readyz`).
    ProjectionStalled(String),
    /// This node cannot decide commands: the live rule set was promoted to a version it cannot
    /// load (see `/readyz`); another node can.
    RuleSetUnavailable(String),
    Internal(String),
}

impl ApiError {
    /// Returns the message the client sees (internal details are never included).
    pub fn message(&self) -> String {
        match self {
            ApiError::Rejected { message, .. } => message.clone(),
            ApiError::BadInput { message, .. } => message.clone(),
            ApiError::Unauthenticated => "sign in with a bearer token to do this".to_owned(),
            ApiError::Forbidden(message) => message.clone(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::WrongExpectedVersion { expected, actual } => {
                format!("the stream is at version {actual}, not the expected {expected}")
            }
            ApiError::Conflict => "another change to the same record won repeatedly; try again".to_owned(),
            ApiError::FileTooLarge { size, max } => format!("the file is {size} bytes; at most {max} are accepted"),
            ApiError::QuotaExceeded { used, adding, quota } => {
                format!("the upload quota is {quota} bytes; {used} are stored and these files would add {adding}")
            }
            ApiError::NotReady(message) => message.clone(),
            ApiError::ProjectionStalled(message) => message.clone(),
            ApiError::RuleSetUnavailable(message) => message.clone(),
            ApiError::Internal(_) => "internal error".to_owned(),
        }
    }

    /// Returns the stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Rejected { code, .. } => code,
            ApiError::BadInput { code, .. } => code,
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::WrongExpectedVersion { .. } => "WRONG_EXPECTED_VERSION",
            ApiError::Conflict => "CONFLICT",
            ApiError::FileTooLarge { .. } => "FILE_TOO_LARGE",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::NotReady(_) => "NOT_READY",
            ApiError::ProjectionStalled(_) => "PROJECTION_STALLED",
            ApiError::RuleSetUnavailable(_) => "RULE_SET_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// A malformed argument.
    pub fn bad_input(message: impl Into<String>) -> Self {
        ApiError::BadInput {
            code: "BAD_INPUT",
            message: message.into(),
        }
    }

    /// A read model the answer (or a mutation's read-back) depends on is stalled. The message
    /// names the projection and where it stopped, nothing from the event itself.
    pub fn stalled(status: &anquan_projections::ProjectionStatus) -> Self {
        let position = status.position.map_or_else(
            || "the start of the log".to_owned(),
            |position| format!("position {position}"),
        );
        let at = status
            .stall
            .as_ref()
            .and_then(|stall| stall.event.as_ref())
            .map(|event| format!(" on the event at position {}", event.position))
            .unwrap_or_default();
        ApiError::ProjectionStalled(format!(
            "the {} read model is stalled at {position}{at}; it would answer with out-of-date data, so it does not \
             answer until it resumes (see /readyz)",
            status.name
        ))
    }

    /// An argument outside the platform's bounds (`anquan_domain::bounds`).
    pub fn out_of_range(error: anquan_domain::bounds::OutOfRange) -> Self {
        ApiError::BadInput {
            code: "VALUE_OUT_OF_RANGE",
            message: error.to_string(),
        }
    }

    /// Logs an internal failure once, with its whole chain, and hides it from the client.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let chain = anquan_event_store::error_chain(error);
        tracing::error!(error = %chain, "request failed");
        ApiError::Internal(chain)
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        async_graphql::Error::new(error.message()).extend_with(|_, extensions| extensions.set("code", code))
    }
}

impl ApiError {
    /// A domain rule refused the command.
    pub fn rejected(rejection: &dyn DomainRejection) -> Self {
        ApiError::Rejected {
            code: rejection.code(),
            message: rejection.to_string(),
        }
    }
}

impl From<EnterpriseRejection> for ApiError {
    fn from(rejection: EnterpriseRejection) -> Self {
        ApiError::rejected(&rejection)
    }
}

impl<R: DomainRejection> From<ExecuteError<R>> for ApiError {
    fn from(error: ExecuteError<R>) -> Self {
        match error {
            ExecuteError::Rejected(rejection) => ApiError::rejected(&rejection),
            ExecuteError::Conflict { .. } => ApiError::Conflict,
            ExecuteError::WrongExpectedVersion { expected, actual, .. } => ApiError::WrongExpectedVersion {
                expected: expected.to_string(),
                actual: actual.map_or_else(|| "none".to_owned(), |version| version.to_string()),
            },
            ExecuteError::IdempotencyKeyReused { command_id, .. } => ApiError::BadInput {
                code: "IDEMPOTENCY_KEY_REUSED",
                message: format!(
                    "commandId {command_id} was used before for another command (another target, other input \
                     or another caller); use a new commandId for a new command"
                ),
            },
            ExecuteError::Invalid(reason) => ApiError::BadInput {
                code: "INVALID_EVENT",
                message: reason.to_string(),
            },
            ExecuteError::Store(error) => ApiError::internal(&error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(&error)
    }
}

impl From<anquan_projections::QueryError> for ApiError {
    fn from(error: anquan_projections::QueryError) -> Self {
        use anquan_projections::QueryError;
        match error {
            QueryError::InvalidCursor { .. } | QueryError::PageTooLarge { .. } => {
                ApiError::bad_input(error.to_string())
            }
            QueryError::ReadModel(_) | QueryError::Malformed { .. } => ApiError::internal(&error),
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(error: ReadModelError) -> Self {
        ApiError::internal(&error)
    }
}

/// Every code a client may see, for the README and the schema's description.
pub const ERROR_CODES: &[&str] = &[
    "BAD_INPUT",
    "INVALID_ID",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "WRONG_EXPECTED_VERSION",
    "CONFLICT",
    "FILE_TOO_LARGE",
    "EMPTY_FILE",
    "TOO_MANY_FILES",
    "QUOTA_EXCEEDED",
    "INVALID_EVENT",
    "VALUE_OUT_OF_RANGE",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_LARGE",
    "QUERY_TOO_COMPLEX",
    "TIMEOUT",
    "MUTATION_OVER_GET",
    "BODY_TOO_LARGE",
    "TOKEN_EXPIRED",
    "RATE_LIMITED",
    "IDEMPOTENCY_KEY_REUSED",
    "INTERNAL",
];
