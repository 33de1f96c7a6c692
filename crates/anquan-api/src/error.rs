//! The one table that maps every error to a stable `extensions.code`. Clients branch on codes
//! and details; people read the message, in Chinese; internal errors reach them as a generic
//! message and are logged once, here.

use async_graphql::ErrorExtensions as _;

use anquan_domain::DomainRejection;
use anquan_domain::enterprise::EnterpriseRejection;
use anquan_domain::refusal::Details;
use anquan_event_store::execute::ExecuteError;
use anquan_event_store::{InvalidAppend, Position, ReadModelError, StoreError};

/// An error a resolver returns. It is deliberately not `Display`, so the only way into a
/// GraphQL error is the conversion below, which always sets `extensions.code`.
///
/// The rule for clients: `message` is for people and is Chinese; `extensions.code` is for
/// programs and is a stable English code; the facts a program needs (the field, the limit, the
/// versions) are further fields of `extensions` ([`ApiError::details`]). Every message carried
/// in a variant (`Rejected`, `BadInput`, `Forbidden`, `NotFound`, `NotReady`) is therefore the
/// Chinese sentence a person reads.
#[derive(Debug)]
pub enum ApiError {
    /// A refusal made in a resolver, without details.
    Rejected {
        code: &'static str,
        message: String,
    },
    /// A malformed argument, without details.
    BadInput {
        code: &'static str,
        message: String,
    },
    /// A refusal with the facts a program needs: a domain rejection, a value out of range, an
    /// id, period or credit code that does not parse ([`ApiError::rejected`],
    /// [`ApiError::out_of_range`], [`ApiError::invalid_id`], …).
    Refused {
        code: &'static str,
        message: String,
        details: Details,
    },
    Unauthenticated,
    /// What the caller may not do, as a sentence (`镇（街道）监管人员无权查看其他镇（街道）的企业`).
    Forbidden(String),
    /// What was not found, as a person names it (`镇（街道）“许村”`).
    NotFound(String),
    /// The caller decided on `expected`; the stream is at `actual` (`None`: it does not exist).
    WrongExpectedVersion {
        expected: u64,
        actual: Option<u64>,
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
    /// The text says what, in Chinese.
    NotReady(String),
    /// A read model the answer depends on is stalled on an event (see `/readyz`).
    ProjectionStalled(Box<Stalled>),
    /// This node cannot decide commands: the live rule set was promoted to a version it cannot
    /// load, or it has not read the rule-set log yet (see `/readyz`); another node can.
    /// `reason` is the operators' account, in English, sent as `extensions.reason`.
    RuleSetUnavailable {
        reason: String,
    },
    Internal(String),
}

/// Where a read model stopped, for [`ApiError::ProjectionStalled`]: names and positions only,
/// nothing from the event itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub projection: String,
    /// The read model's checkpoint; `None` at the start of the log.
    pub position: Option<Position>,
    /// The event it fails on, when one event is the cause.
    pub failing_event: Option<Position>,
    /// A mutation's own event, recorded but not yet readable; `None` for a query.
    pub recorded: Option<Position>,
}

impl ApiError {
    /// Returns the message a person reads, in Chinese (internal details are never included).
    pub fn message(&self) -> String {
        match self {
            ApiError::Rejected { message, .. }
            | ApiError::BadInput { message, .. }
            | ApiError::Refused { message, .. } => message.clone(),
            ApiError::Unauthenticated => "请先登录（在请求中携带访问令牌）再进行此操作".to_owned(),
            ApiError::Forbidden(message) => message.clone(),
            ApiError::NotFound(what) => format!("未找到{what}"),
            ApiError::WrongExpectedVersion {
                expected,
                actual: Some(actual),
            } => format!("该记录已被他人修改（现为第 {actual} 版，提交依据的是第 {expected} 版），请刷新后重新提交"),
            ApiError::WrongExpectedVersion { expected, actual: None } => {
                format!("该记录尚未建立，与提交依据的第 {expected} 版不符，请刷新后重新提交")
            }
            ApiError::Conflict => "同一记录正被频繁修改，本次提交未能保存，请稍后重试".to_owned(),
            ApiError::FileTooLarge { size, max } => {
                format!("文件过大（{}），单个文件不能超过 {}", size_text(*size), size_text(*max))
            }
            ApiError::QuotaExceeded { used, adding, quota } => format!(
                "上传空间不足：空间配额为 {}，已使用 {}，本次上传还需 {}",
                size_text(*quota),
                size_text(*used),
                size_text(*adding)
            ),
            ApiError::NotReady(message) => message.clone(),
            ApiError::ProjectionStalled(stalled) => stalled.sentence(),
            ApiError::RuleSetUnavailable { .. } => {
                "本节点暂时不能办理提交：它尚未采用现行的规则集。请稍后重试，或改由其他节点办理".to_owned()
            }
            ApiError::Internal(_) => "系统内部错误，请稍后重试；如持续出现，请联系系统运维人员".to_owned(),
        }
    }

    /// Returns the stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Rejected { code, .. } | ApiError::BadInput { code, .. } | ApiError::Refused { code, .. } => code,
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::WrongExpectedVersion { .. } => "WRONG_EXPECTED_VERSION",
            ApiError::Conflict => "CONFLICT",
            ApiError::FileTooLarge { .. } => "FILE_TOO_LARGE",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::NotReady(_) => "NOT_READY",
            ApiError::ProjectionStalled(_) => "PROJECTION_STALLED",
            ApiError::RuleSetUnavailable { .. } => "RULE_SET_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// Returns the facts a program needs besides the code, sent as further `extensions`
    /// fields. 64-bit numbers (bytes, versions, positions) are decimal strings.
    pub fn details(&self) -> Details {
        let text = |value: &dyn std::fmt::Display| serde_json::Value::from(value.to_string());
        match self {
            ApiError::Refused { details, .. } => details.clone(),
            ApiError::WrongExpectedVersion { expected, actual } => vec![
                ("expectedVersion", text(expected)),
                (
                    "actualVersion",
                    actual.as_ref().map_or(serde_json::Value::Null, |actual| text(actual)),
                ),
            ],
            ApiError::FileTooLarge { size, max } => vec![("sizeBytes", text(size)), ("maxBytes", text(max))],
            ApiError::QuotaExceeded { used, adding, quota } => vec![
                ("usedBytes", text(used)),
                ("addingBytes", text(adding)),
                ("quotaBytes", text(quota)),
            ],
            ApiError::ProjectionStalled(stalled) => {
                let position =
                    |position: &Option<Position>| position.as_ref().map_or(serde_json::Value::Null, |p| text(p));
                let mut details = vec![
                    ("projection", stalled.projection.clone().into()),
                    ("position", position(&stalled.position)),
                    ("failingEventPosition", position(&stalled.failing_event)),
                ];
                if stalled.recorded.is_some() {
                    details.push(("recordedPosition", position(&stalled.recorded)));
                }
                details
            }
            ApiError::RuleSetUnavailable { reason } => vec![("reason", reason.clone().into())],
            ApiError::Rejected { .. }
            | ApiError::BadInput { .. }
            | ApiError::Unauthenticated
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict
            | ApiError::NotReady(_)
            | ApiError::Internal(_) => Vec::new(),
        }
    }

    /// Returns `extensions` as JSON: the code, then the details.
    pub fn extensions_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut extensions = serde_json::Map::new();
        extensions.insert("code".to_owned(), self.code().into());
        for (name, value) in self.details() {
            extensions.insert(name.to_owned(), value);
        }
        extensions
    }

    /// A malformed argument; `message` is the Chinese sentence a person reads.
    pub fn bad_input(message: impl Into<String>) -> Self {
        ApiError::BadInput {
            code: "BAD_INPUT",
            message: message.into(),
        }
    }

    /// A read model the answer (or a mutation's read-back) depends on is stalled. The error
    /// names the projection and where it stopped, nothing from the event itself.
    pub fn stalled(status: &anquan_projections::ProjectionStatus) -> Self {
        ApiError::ProjectionStalled(Box::new(Stalled {
            projection: status.name.to_owned(),
            position: status.position,
            failing_event: status
                .stall
                .as_ref()
                .and_then(|stall| stall.event.as_ref())
                .map(|event| event.position),
            recorded: None,
        }))
    }

    /// An argument outside the platform's bounds (`anquan_domain::bounds`), naming the field
    /// and the range in `extensions`.
    pub fn out_of_range(error: anquan_domain::bounds::OutOfRange) -> Self {
        ApiError::Refused {
            code: "VALUE_OUT_OF_RANGE",
            message: error.to_string(),
            details: error.details(),
        }
    }

    /// An id (or town, or requirement code) that does not parse: `INVALID_ID`, with what was
    /// expected (`kind`) and the text in `extensions`.
    pub fn invalid_id(error: &anquan_domain::IdError) -> Self {
        ApiError::Refused {
            code: "INVALID_ID",
            message: error.to_string(),
            details: error.details(),
        }
    }

    /// A reporting period that does not parse: `BAD_INPUT`, with the text as `value`.
    pub fn invalid_period(error: &anquan_domain::period::PeriodParseError) -> Self {
        ApiError::Refused {
            code: "BAD_INPUT",
            message: error.to_string(),
            details: vec![("value", error.0.clone().into())],
        }
    }

    /// A unified social credit code that is not one: `INVALID_CREDIT_CODE`.
    pub fn invalid_credit_code(error: &anquan_domain::CreditCodeError) -> Self {
        ApiError::Refused {
            code: "INVALID_CREDIT_CODE",
            message: error.to_string(),
            details: error.details(),
        }
    }

    /// Logs an internal failure once, with its whole chain, and hides it from the client.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let chain = anquan_event_store::error_chain(error);
        tracing::error!(error = %chain, "request failed");
        ApiError::Internal(chain)
    }
}

impl Stalled {
    fn sentence(&self) -> String {
        let position = self
            .position
            .map_or_else(|| "日志开头".to_owned(), |position| format!("日志位置 {position}"));
        let failing = self
            .failing_event
            .map(|event| format!("，处理位置 {event} 的事件时出错"))
            .unwrap_or_default();
        let stalled = format!(
            "“{}”数据停在{position}{failing}；为免给出过时的结果，恢复前暂不应答（运维人员请查看 /readyz）",
            projection_label(&self.projection)
        );
        match self.recorded {
            Some(recorded) => format!("本次修改已经保存（日志位置 {recorded}），但{stalled}"),
            None => stalled,
        }
    }
}

/// Returns a read model's name as a person reads it.
fn projection_label(projection: &str) -> &str {
    match projection {
        "compliance" => "企业档案与合规",
        "agency" => "服务机构",
        "log_tally" => "日志统计",
        other => other,
    }
}

/// Writes a number of bytes as a person reads it: exact below a kibibyte, else to one decimal.
pub(crate) fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    // Shown to one decimal: the precision lost to f64 at these sizes is far below it.
    #[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
    let scaled = |unit: u64| bytes as f64 / unit as f64;
    match bytes {
        bytes if bytes >= GIB => format!("{:.1} GB", scaled(GIB)),
        bytes if bytes >= MIB => format!("{:.1} MB", scaled(MIB)),
        bytes if bytes >= KIB => format!("{:.1} KB", scaled(KIB)),
        bytes => format!("{bytes} 字节"),
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let details = error.details();
        async_graphql::Error::new(error.message()).extend_with(|_, extensions| {
            extensions.set("code", code);
            for (name, value) in details {
                // A JSON value is always a GraphQL value; the fallback is never taken.
                extensions.set(name, async_graphql::Value::from_json(value).unwrap_or_default());
            }
        })
    }
}

impl ApiError {
    /// A domain rule refused the command: its Chinese sentence, its code and its details.
    pub fn rejected(rejection: &dyn DomainRejection) -> Self {
        ApiError::Refused {
            code: rejection.code(),
            message: rejection.to_string(),
            details: rejection.details(),
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
                expected: expected.0,
                actual: actual.map(|version| version.0),
            },
            ExecuteError::IdempotencyKeyReused { command_id, .. } => ApiError::Refused {
                code: "IDEMPOTENCY_KEY_REUSED",
                message: format!(
                    "请求编号（commandId）{command_id} 已用于另一项操作（对象、内容或提交人不同）；新的操作请使用新的请求编号"
                ),
                details: vec![("commandId", command_id.to_string().into())],
            },
            ExecuteError::Invalid(invalid) => ApiError::Refused {
                code: "INVALID_EVENT",
                message: invalid_append_sentence(&invalid),
                // The store's own words, for the developer who made the command.
                details: vec![("reason", invalid.to_string().into())],
            },
            ExecuteError::Store(error) => ApiError::internal(&error),
        }
    }
}

/// Says why an append was refused before anything was written, as a person reads it.
fn invalid_append_sentence(invalid: &InvalidAppend) -> String {
    match invalid {
        InvalidAppend::DataTooLarge { .. } | InvalidAppend::TooManyEvents { .. } => {
            "提交的内容超出了单次保存的上限，无法保存，请精简后重新提交".to_owned()
        }
        InvalidAppend::NoEvents
        | InvalidAppend::EventType(_)
        | InvalidAppend::DataNotJson { .. }
        | InvalidAppend::DuplicateEventId(_) => "提交的内容未通过保存前的校验，无法保存".to_owned(),
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
            QueryError::InvalidCursor { cursor } => ApiError::Refused {
                code: "BAD_INPUT",
                message: "分页游标（after）无效：请使用上一页返回的游标".to_owned(),
                details: vec![("field", "after".into()), ("value", cursor.into())],
            },
            QueryError::PageTooLarge { first, max } => ApiError::Refused {
                code: "BAD_INPUT",
                message: format!("每页最多 {max} 条，请求的是 {first} 条"),
                details: vec![("field", "first".into()), ("max", max.into())],
            },
            QueryError::ReadModel(_) | QueryError::Malformed { .. } => ApiError::internal(&error),
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(error: ReadModelError) -> Self {
        ApiError::internal(&error)
    }
}

#[cfg(test)]
mod tests {
    use anquan_domain::refusal::{has_han, is_stable_code};

    use super::*;

    /// The position of each variant in the samples below. Adding a variant breaks this match,
    /// and the test then fails until a sample of it is added.
    fn variant_index(error: &ApiError) -> usize {
        match error {
            ApiError::Rejected { .. } => 0,
            ApiError::BadInput { .. } => 1,
            ApiError::Refused { .. } => 2,
            ApiError::Unauthenticated => 3,
            ApiError::Forbidden(_) => 4,
            ApiError::NotFound(_) => 5,
            ApiError::WrongExpectedVersion { .. } => 6,
            ApiError::Conflict => 7,
            ApiError::FileTooLarge { .. } => 8,
            ApiError::QuotaExceeded { .. } => 9,
            ApiError::NotReady(_) => 10,
            ApiError::ProjectionStalled(_) => 11,
            ApiError::RuleSetUnavailable { .. } => 12,
            ApiError::Internal(_) => 13,
        }
    }

    fn samples() -> Vec<ApiError> {
        let enterprise_id = anquan_domain::EnterpriseId::from_uuid(uuid::Uuid::from_u128(1));
        vec![
            ApiError::Rejected {
                code: "UNKNOWN_ENTERPRISE",
                message: format!("编号为 {enterprise_id} 的企业尚未登记"),
            },
            ApiError::bad_input("每页条数应在1至100之间"),
            ApiError::rejected(&EnterpriseRejection::UnknownEnterprise { enterprise_id }),
            ApiError::Unauthenticated,
            ApiError::Forbidden("企业用户无权查看其他企业".to_owned()),
            ApiError::NotFound("镇（街道）“许村”".to_owned()),
            ApiError::WrongExpectedVersion {
                expected: 3,
                actual: Some(5),
            },
            ApiError::Conflict,
            ApiError::FileTooLarge {
                size: 30 * 1024 * 1024,
                max: 25 * 1024 * 1024,
            },
            ApiError::QuotaExceeded {
                used: 900,
                adding: 200,
                quota: 1_000,
            },
            ApiError::NotReady("统计数据仍在计算中，请稍后重试".to_owned()),
            ApiError::ProjectionStalled(Box::new(Stalled {
                projection: "agency".to_owned(),
                position: Some(Position::from_sequence(41)),
                failing_event: Some(Position::from_sequence(42)),
                recorded: Some(Position::from_sequence(43)),
            })),
            ApiError::RuleSetUnavailable {
                reason: "the rule-set log has not been read yet".to_owned(),
            },
            ApiError::Internal("connection refused".to_owned()),
        ]
    }

    #[test]
    fn every_error_tells_a_person_in_chinese_and_a_program_in_an_upper_snake_code() {
        let samples = samples();
        let mut covered: Vec<usize> = samples.iter().map(variant_index).collect();
        covered.sort_unstable();
        covered.dedup();
        assert_eq!(covered, (0..=13).collect::<Vec<_>>(), "a sample of every variant");
        for error in &samples {
            let message = error.message();
            assert!(has_han(&message), "{error:?}: {message}");
            assert!(is_stable_code(error.code()), "{}", error.code());
            for (name, _) in error.details() {
                assert!(name.bytes().all(|b| b.is_ascii_alphabetic()), "{name} is camelCase");
            }
        }
        // Nothing of an internal failure reaches the client.
        assert!(
            !ApiError::Internal("connection refused".to_owned())
                .message()
                .contains("refused")
        );
    }

    #[test]
    fn the_facts_a_program_needs_are_extensions_beside_the_code() {
        let version = ApiError::WrongExpectedVersion {
            expected: 3,
            actual: None,
        };
        let extensions = version.extensions_json();
        assert_eq!(extensions["code"], "WRONG_EXPECTED_VERSION");
        assert_eq!(extensions["expectedVersion"], "3");
        assert_eq!(extensions["actualVersion"], serde_json::Value::Null);

        let out_of_range =
            ApiError::out_of_range(anquan_domain::bounds::check_count("fatalities", u64::MAX).unwrap_err());
        let extensions = out_of_range.extensions_json();
        assert_eq!(extensions["code"], "VALUE_OUT_OF_RANGE");
        assert_eq!(extensions["field"], "fatalities");
        assert_eq!(extensions["max"], anquan_domain::bounds::COUNT_MAX.to_string());

        let graphql = async_graphql::Error::from(ApiError::FileTooLarge {
            size: 2_048,
            max: 1_024,
        });
        let extensions = graphql.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("FILE_TOO_LARGE"))
        );
        assert_eq!(extensions.get("maxBytes"), Some(&async_graphql::Value::from("1024")));
        assert_eq!(graphql.message, "文件过大（2.0 KB），单个文件不能超过 1.0 KB");
    }

    #[test]
    fn a_stalled_read_model_is_named_for_people_and_for_programs() {
        let stalled = ApiError::ProjectionStalled(Box::new(Stalled {
            projection: "agency".to_owned(),
            position: None,
            failing_event: Some(Position::from_sequence(7)),
            recorded: None,
        }));
        assert_eq!(
            stalled.message(),
            "“服务机构”数据停在日志开头，处理位置 7 的事件时出错；为免给出过时的结果，恢复前暂不应答（运维人员请查看 /readyz）"
        );
        let extensions = stalled.extensions_json();
        assert_eq!(extensions["projection"], "agency");
        assert_eq!(extensions["failingEventPosition"], "7");
        assert!(!extensions.contains_key("recordedPosition"));
    }
}
