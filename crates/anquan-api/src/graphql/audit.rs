//! Auditors' and analysts' reads: an enterprise's full history and the verification of its
//! hash chain (read from the event store: the chain is over the stored events, which no read
//! model holds), and the rule-set versions with the live one.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::EnterpriseId;
use anquan_domain::rules::RuleSet;
use anquan_event_store::{StreamId, StreamVersion};
use anquan_projections::audit;

use super::types::PageInfo;
use super::{actor, app};
use crate::AppState;
use crate::error::ApiError;

/// Most history events one page returns.
pub const HISTORY_PAGE_MAX: usize = 500;

/// A file an event references (its bytes are in the blob store, addressed by hash).
#[derive(SimpleObject, Clone)]
pub struct FileReference {
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: String,
    /// Media type.
    pub media_type: String,
    /// The file name given at upload.
    pub file_name: String,
}

/// One stored event with its full envelope.
#[derive(SimpleObject, Clone)]
pub struct HistoryEvent {
    /// The event's number in its stream, from 0.
    pub version: String,
    /// Its place in the global log.
    pub position: String,
    /// The event id (UUID v7).
    pub event_id: ID,
    /// The event type, e.g. `DocumentApproved`.
    pub event_type: String,
    /// The schema version the data was written in.
    pub schema_version: i32,
    /// The stored data, as JSON text exactly as hashed.
    pub data: String,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// When it happened, as the command said.
    pub occurred_at: DateTime<Utc>,
    /// Who caused it: the user id.
    pub actor_user_id: String,
    /// Who caused it: the role and scope, as JSON (`{"role":"town_officer","town":"许村"}`).
    pub actor: String,
    /// The request it belongs to.
    pub correlation_id: ID,
    /// The event or command that caused it, if any.
    pub causation_id: Option<ID>,
    /// The idempotency key of its command, if any.
    pub command_id: Option<ID>,
    /// SHA-256 chaining it to its predecessor (hex).
    pub hash: String,
    /// The files it references.
    pub files: Vec<FileReference>,
}

/// A page of history events, oldest first.
#[derive(SimpleObject, Clone)]
pub struct HistoryConnection {
    /// The events.
    pub nodes: Vec<HistoryEvent>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A break in a hash chain.
#[derive(SimpleObject, Clone)]
pub struct ChainBreak {
    /// The version the break is at.
    pub version: String,
    /// `altered`, `missing`, `reordered`, `inserted` or `wrong_stream`.
    pub kind: String,
    /// What was found.
    pub detail: String,
}

/// The verification of one stream's hash chain, recomputed now.
#[derive(SimpleObject, Clone)]
pub struct ChainVerification {
    /// True when every event matches its hash and its predecessor.
    pub intact: bool,
    /// Events read and recomputed.
    pub events_checked: i32,
    /// The stored hash of the last event (record it to detect a later truncation).
    pub head: Option<String>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
    /// Every break found.
    pub breaks: Vec<ChainBreak>,
}

/// A rule-set version known to this node.
#[derive(SimpleObject, Clone)]
pub struct RuleSetVersion {
    /// The version, e.g. `v2`.
    pub version: String,
    /// Its title.
    pub title: String,
    /// SHA-256 of its files, as published.
    pub digest: String,
    /// Whether live queries use it.
    pub live: bool,
}

fn stream_of(enterprise_id: EnterpriseId) -> Result<StreamId, ApiError> {
    StreamId::parse(&anquan_domain::enterprise::stream_name(enterprise_id))
        .map_err(|error| ApiError::Internal(error.to_string()))
}

/// Reads a page of an enterprise's history: events after version `after`, oldest first.
pub async fn history(
    app: &AppState,
    enterprise_id: EnterpriseId,
    first: i32,
    after: Option<String>,
) -> Result<HistoryConnection, ApiError> {
    let first = usize::try_from(first)
        .ok()
        .filter(|first| (1..=HISTORY_PAGE_MAX).contains(first))
        .ok_or_else(|| ApiError::bad_input(format!("first must be between 1 and {HISTORY_PAGE_MAX}")))?;
    let from = match after {
        // A cursor is the version of the last event seen; the next page starts after it. The
        // last version there can be has no successor: refused, never wrapped to the start.
        Some(cursor) => cursor
            .parse::<u64>()
            .ok()
            .and_then(|version| version.checked_add(1))
            .map(StreamVersion)
            .ok_or_else(|| ApiError::bad_input(format!("cursor {cursor:?} is not a version a page can follow")))?,
        None => StreamVersion::FIRST,
    };
    let stream = stream_of(enterprise_id)?;
    let mut events = app.event_store.read_stream(&stream, from, first + 1).await?;
    let has_next_page = events.len() > first;
    events.truncate(first);
    let end_cursor = events.last().map(|event| event.version.0.to_string());
    let nodes = events
        .iter()
        .map(|event| {
            let files = event
                .decode()
                .map(|decoded| audit::file_refs(&decoded))
                .unwrap_or_default();
            HistoryEvent {
                version: event.version.0.to_string(),
                position: event.position.to_string(),
                event_id: ID(event.event_id.to_string()),
                event_type: event.event_type.clone(),
                schema_version: i32::try_from(event.schema_version).unwrap_or(i32::MAX),
                data: event.data.clone(),
                recorded_at: event.recorded_at,
                occurred_at: event.metadata.occurred_at,
                actor_user_id: event.metadata.actor.user_id.to_string(),
                actor: serde_json::to_string(&event.metadata.actor.role).unwrap_or_default(),
                correlation_id: ID(event.metadata.correlation_id.to_string()),
                causation_id: event.metadata.causation_id.map(|id| ID(id.to_string())),
                command_id: event.metadata.command_id.map(|id| ID(id.0.to_string())),
                hash: event.hash.to_hex(),
                files: files
                    .into_iter()
                    .map(|file| FileReference {
                        sha256: file.sha256,
                        size_bytes: file.size_bytes.to_string(),
                        media_type: file.media_type,
                        file_name: file.file_name,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(HistoryConnection {
        nodes,
        page_info: PageInfo {
            has_next_page,
            end_cursor,
        },
    })
}

/// Reads an enterprise's whole stream and recomputes its chain.
pub async fn verification(app: &AppState, enterprise_id: EnterpriseId) -> Result<ChainVerification, ApiError> {
    let verification = audit::verify_stream_in(app.event_store.as_ref(), &stream_of(enterprise_id)?).await?;
    let breaks: Vec<ChainBreak> = verification
        .breaks
        .iter()
        .map(|chain_break| ChainBreak {
            version: chain_break.version.to_string(),
            kind: chain_break.kind.name().to_owned(),
            detail: chain_break.detail.clone(),
        })
        .collect();
    Ok(ChainVerification {
        intact: breaks.is_empty(),
        events_checked: i32::try_from(verification.events_checked).unwrap_or(i32::MAX),
        head: verification.head,
        first_break: breaks.first().cloned(),
        breaks,
    })
}

/// Returns the rule set a field evaluates with: the version its `ruleSet` argument names, or
/// else the request's (`AppState::rules`: the `x-anquan-rule-set` header's version, or the live
/// one as the request started). This is the one way a version is picked: the argument decides
/// for the field and everything under it, the header is only the request's default.
pub fn rules_for(app: &AppState, version: Option<&str>) -> Result<std::sync::Arc<RuleSet>, ApiError> {
    match version {
        None => Ok(app.rules.clone()),
        Some(version) => app
            .rule_sets
            .get(version)
            .map(|loaded| loaded.rules.clone())
            .ok_or_else(|| ApiError::BadInput {
                code: "UNKNOWN_RULE_SET",
                message: format!("rule set {version} is not loaded on this node"),
            }),
    }
}

/// Audit and rule-set queries; part of the query root.
#[derive(Default)]
pub struct AuditQuery;

/// Reads: rule-set versions.
#[Object]
impl AuditQuery {
    /// Every rule-set version this node has loaded, with the live one marked. Pass a version
    /// as `ruleSet` to `enterprise`/`enterprises` to evaluate with it side by side.
    async fn rule_sets(&self, ctx: &Context<'_>) -> Result<Vec<RuleSetVersion>, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let live = app.rules.version.clone();
        Ok(app
            .rule_sets
            .versions()
            .map(|(version, loaded)| RuleSetVersion {
                version: version.clone(),
                title: loaded.rules.title.clone(),
                digest: loaded.digest.clone(),
                live: *version == live,
            })
            .collect())
    }
}
