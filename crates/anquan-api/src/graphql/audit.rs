//! Auditors' and analysts' reads: the full history of any stream (an enterprise's, an agency's,
//! the rule-set log) and the verification of its hash chain, read from the event store (the
//! chain is over the stored events, which no read model holds); and the rule-set versions with
//! the live one. One path serves every kind of stream; who may read which is decided by the
//! field that names the stream (`enterprise`, `agency`, `ruleSetLog`).

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::rules::RuleSet;
use anquan_domain::rules::log::RULE_SET_STREAM;
use anquan_domain::{AgencyId, EnterpriseId, Role};
use anquan_event_store::{StreamId, StreamVersion};
use anquan_projections::audit;

use super::foundation::types::PageInfo;
use super::scalars::{Int64, position_parts};
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
    pub size_bytes: Int64,
    /// Media type.
    pub media_type: String,
    /// The file name given at upload.
    pub file_name: String,
}

/// One stored event with its full envelope.
#[derive(SimpleObject, Clone)]
pub struct HistoryEvent {
    /// The event's number in its stream, from 0.
    pub version: Int64,
    /// Its place in the global log (the commit part of its position).
    pub position: Int64,
    /// The prepare part of its position where it differs from the commit part (a KurrentDB
    /// store); null on SQLite and PostgreSQL.
    pub prepare_position: Option<Int64>,
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
    pub version: Int64,
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

/// A stream whose history a client may ask for.
#[derive(Debug, Clone, Copy)]
pub enum AuditedStream {
    /// An enterprise's stream (`enterprise-<id>`).
    Enterprise(EnterpriseId),
    /// An agency's stream (`agency-<id>`).
    Agency(AgencyId),
    /// The rule-set log (`rulesets`): publications and promotions.
    RuleSets,
}

impl AuditedStream {
    fn stream_id(self) -> Result<StreamId, ApiError> {
        let name = match self {
            AuditedStream::Enterprise(enterprise_id) => anquan_domain::enterprise::stream_name(enterprise_id),
            AuditedStream::Agency(agency_id) => anquan_domain::agency::stream_name(agency_id),
            AuditedStream::RuleSets => RULE_SET_STREAM.to_owned(),
        };
        StreamId::parse(&name).map_err(|error| ApiError::Internal(error.to_string()))
    }
}

/// Reads a page of a stream's history: events after version `after`, oldest first. The caller
/// has checked that the client may read the stream.
pub async fn history(
    app: &AppState,
    stream: AuditedStream,
    first: i32,
    after: Option<String>,
) -> Result<HistoryConnection, ApiError> {
    let first = usize::try_from(first)
        .ok()
        .filter(|first| (1..=HISTORY_PAGE_MAX).contains(first))
        .ok_or_else(|| ApiError::bad_input(format!("每页条数 first 应在 1 到 {HISTORY_PAGE_MAX} 之间")))?;
    let from = match after {
        // A cursor is the version of the last event seen; the next page starts after it. The
        // last version there can be has no successor: refused, never wrapped to the start.
        Some(cursor) => cursor
            .parse::<u64>()
            .ok()
            .and_then(|version| version.checked_add(1))
            .map(StreamVersion)
            .ok_or_else(|| ApiError::bad_input(format!("游标“{cursor}”不是可以接续的事件版本号")))?,
        None => StreamVersion::FIRST,
    };
    let stream = stream.stream_id()?;
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
                version: Int64(event.version.0),
                position: position_parts(event.position).0,
                prepare_position: position_parts(event.position).1,
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
                        size_bytes: Int64(file.size_bytes),
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

/// Reads a whole stream and recomputes its chain. The caller has checked that the client may
/// read the stream.
pub async fn verification(app: &AppState, stream: AuditedStream) -> Result<ChainVerification, ApiError> {
    let verification = audit::verify_stream_in(app.event_store.as_ref(), &stream.stream_id()?).await?;
    let breaks: Vec<ChainBreak> = verification
        .breaks
        .iter()
        .map(|chain_break| ChainBreak {
            version: Int64(chain_break.version),
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

/// One event's inclusion proof against the latest signed anchor (RFC 6962 audit path), with
/// the anchor's signature, for an auditor to check offline (`docs/verify_anchor.py` does it for
/// an export's `proofs.jsonl`).
#[derive(SimpleObject)]
pub struct InclusionProof {
    /// The event's version in its stream.
    pub version: Int64,
    /// The event's id.
    pub event_id: String,
    /// The event's chain hash: the leaf's data (the leaf is SHA-256 of `0x00` and its bytes).
    pub event_hash: String,
    /// The anchor's sequence.
    pub anchor: Int64,
    /// The number of events the anchor covers.
    pub log_size: Int64,
    /// The anchor's Merkle root.
    pub root: String,
    /// The event's leaf index, in position order.
    pub leaf_index: Int64,
    /// The audit path from the leaf's sibling up, hex.
    pub path: Vec<String>,
    /// When the anchor was taken.
    pub taken_at: DateTime<Utc>,
    /// The signing key's id: the first 16 hex digits of SHA-256 over its public key.
    pub key_id: String,
    /// The signing key's Ed25519 public key, hex.
    pub public_key: String,
    /// The anchor's Ed25519 signature over its signed bytes (README, "Signed anchors"), hex.
    pub signature: String,
}

/// The inclusion proof of a stream's event at `version` against the latest anchor; `None`
/// when no anchor covers it yet (or the stream has no such version). Reads the log up to the
/// anchor. The caller has checked that the client may read the stream.
pub async fn inclusion_proof(
    app: &AppState,
    stream: AuditedStream,
    version: Int64,
) -> Result<Option<InclusionProof>, ApiError> {
    use anquan_projections::anchors::{self, AnchorError, AnchoredTree};
    let stream_id = stream.stream_id()?;
    let anchored = anchors::latest_anchored(&app.event_store)
        .await
        .map_err(|error| match error {
            AnchorError::Store(error) => ApiError::from(error),
            other => ApiError::Internal(other.to_string()),
        })?;
    let Some((anchor, leaves)) = anchored else {
        return Ok(None);
    };
    let Some(tree) = AnchoredTree::new(&anchor, &leaves) else {
        return Err(ApiError::Internal(format!(
            "the log does not match anchor {}: run `anquan verify --anchors`",
            anchor.sequence
        )));
    };
    Ok(tree.proof(stream_id.as_str(), version.0).map(|proof| InclusionProof {
        version: Int64(proof.version),
        event_id: proof.event_id,
        event_hash: proof.event_hash,
        anchor: Int64(proof.anchor),
        log_size: Int64(proof.log_size),
        root: proof.root,
        leaf_index: Int64(proof.leaf_index),
        path: proof.path,
        taken_at: anchor.taken_at,
        key_id: anchor.key_id.clone(),
        public_key: anchor.public_key.clone(),
        signature: anchor.signature.clone(),
    }))
}

/// Returns the rule set a field evaluates with: the version its `ruleSet` argument names; else
/// the `x-anquan-rule-set` header's version; else, for a past or future instant `as_of`, the
/// version in force then by the rule-set log (the last promoted at or before it, the configured
/// one before the first promotion), so a promotion never changes an answer about the time
/// before it; else (now) the live one as the request started. This is the one way a version is
/// picked: the argument decides for the field and everything under it, the header is only the
/// request's default. `as_of` must already be checked (`optional_instant_arg`).
pub fn rules_for(
    app: &AppState,
    version: Option<&str>,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<std::sync::Arc<RuleSet>, ApiError> {
    match (version, as_of) {
        (None, Some(at)) if !app.rules_pinned => {
            app.rule_sets
                .in_force_at(at)
                .map(|loaded| loaded.rules)
                .ok_or_else(|| ApiError::RuleSetUnavailable {
                    reason: format!(
                        "the rule set in force at {} is neither on this node nor carried by the rule-set log",
                        at.to_rfc3339()
                    ),
                })
        }
        (None, _) => Ok(app.rules.clone()),
        (Some(version), _) => app
            .rule_sets
            .get(version)
            .map(|loaded| loaded.rules.clone())
            .ok_or_else(|| ApiError::BadInput {
                code: "UNKNOWN_RULE_SET",
                message: format!("本节点未加载规则集 {version}"),
            }),
    }
}

/// Audit and rule-set queries; part of the query root.
#[derive(Default)]
pub struct AuditQuery;

/// Reads: rule-set versions and the rule-set log.
#[Object]
impl AuditQuery {
    /// The rule-set log's history and the verification of its chain: the city admin, auditors
    /// and analysts (rule sets are public to them; nothing in the log is personal).
    async fn rule_set_log(&self, ctx: &Context<'_>) -> Result<RuleSetLog, ApiError> {
        let actor = actor(ctx)?;
        match actor.role {
            Role::CityAdmin | Role::Auditor { .. } | Role::Analyst => Ok(RuleSetLog),
            _ => Err(ApiError::Forbidden(
                "规则集记录仅供市级管理员、审计员和分析员查看".to_owned(),
            )),
        }
    }

    /// Every rule-set version this node has loaded, with the live one marked. Pass a version
    /// as `ruleSet` to `enterprise`/`enterprises` to evaluate with it side by side.
    async fn rule_sets(&self, ctx: &Context<'_>) -> Result<Vec<RuleSetVersion>, ApiError> {
        let app = app(ctx)?;
        actor(ctx)?;
        let live = app.rules.version.clone();
        Ok(app
            .rule_sets
            .versions()
            .into_iter()
            .map(|(version, loaded)| RuleSetVersion {
                live: version == live,
                title: loaded.rules.title.clone(),
                digest: loaded.digest.clone(),
                version,
            })
            .collect())
    }
}

/// The rule-set log's stream (`rulesets`).
#[derive(Default)]
pub struct RuleSetLog;

/// The rule-set log: every publication and promotion of a rule set, as recorded, and its chain.
#[Object]
impl RuleSetLog {
    /// The log's events, oldest first, paged by version (`after` is the last version seen).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<HistoryConnection, ApiError> {
        history(app(ctx)?, AuditedStream::RuleSets, first, after).await
    }

    /// The log's hash chain, recomputed now.
    async fn verification(&self, ctx: &Context<'_>) -> Result<ChainVerification, ApiError> {
        verification(app(ctx)?, AuditedStream::RuleSets).await
    }

    /// The inclusion proof of the event at `version` against the latest signed anchor; null
    /// until an anchor covers it. Reads the log up to the anchor.
    async fn inclusion_proof(&self, ctx: &Context<'_>, version: Int64) -> Result<Option<InclusionProof>, ApiError> {
        inclusion_proof(app(ctx)?, AuditedStream::RuleSets, version).await
    }
}

/// A signed anchor as taken: what it commits to and its signature (README, "Signed anchors").
#[derive(SimpleObject)]
pub struct Anchor {
    /// The anchor's number: 0 for the first, one more for each next.
    pub sequence: Int64,
    /// The number of events it covers: every event up to `position`, in position order.
    pub log_size: Int64,
    /// The last global position covered (the commit part; 0 when the log was empty).
    pub position: Int64,
    /// The RFC 6962 Merkle root over the covered events' chain hashes, hex.
    pub root: String,
    /// How many stream heads it records (the streams that gained events since the last one).
    pub heads: i32,
    /// When it was taken (the service's clock).
    pub taken_at: DateTime<Utc>,
    /// The signing key's id: the first 16 hex digits of SHA-256 over its public key.
    pub key_id: String,
    /// The signing key's Ed25519 public key, hex.
    pub public_key: String,
    /// The Ed25519 signature over its signed bytes, hex.
    pub signature: String,
}

/// The city admin's audit commands.
#[derive(Default)]
pub struct AuditMutation;

#[Object]
impl AuditMutation {
    /// Takes a signed anchor of the log now, on demand, beside the periodic ones (city admin
    /// only): the same as `anquan anchor`. It is recorded as an `AnchorTaken` event and
    /// published at `GET /anchors`; an anchor is taken even when the log gained nothing since
    /// the last one.
    async fn take_anchor(&self, ctx: &Context<'_>) -> Result<Anchor, ApiError> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        if !matches!(actor.role, Role::CityAdmin) {
            return Err(ApiError::Forbidden("只有市级管理员可以生成签名锚点".to_owned()));
        }
        let key_file = app.anchor_key.as_ref().ok_or_else(|| ApiError::Refused {
            code: "ANCHOR_KEY_UNAVAILABLE",
            message: "本服务没有配置锚点签名密钥，无法生成锚点".to_owned(),
            details: vec![],
        })?;
        let anchor_error = |error: anquan_projections::anchors::AnchorError| ApiError::internal(&error);
        let signer = key_file.load_or_create().map_err(anchor_error)?;
        let anchor = anquan_projections::anchors::take_anchor(&app.event_store, &signer, actor, (app.clock)(), false)
            .await
            .map_err(anchor_error)?
            .ok_or_else(|| ApiError::Internal("no anchor was taken".to_owned()))?;
        Ok(Anchor {
            sequence: Int64(anchor.sequence),
            log_size: Int64(anchor.log_size),
            position: Int64(anchor.position),
            root: anchor.root,
            heads: i32::try_from(anchor.heads.len()).unwrap_or(i32::MAX),
            taken_at: anchor.taken_at,
            key_id: anchor.key_id,
            public_key: anchor.public_key,
            signature: anchor.signature,
        })
    }
}
