//! What auditors run: one stream's complete history (read through the event store, not a read
//! model, because the hash chain is over the stored events themselves), its verification with
//! a classification of every break, the files its events reference, the export format that can
//! be verified offline, and the brute-force "as of an instant" over a stream's events (an
//! enterprise's status, an agency's state, the rule-set log's publications and live version).
//!
//! Verification recomputes `hash_chain::event_hash` for every event in version order. A break
//! is classified from the evidence the chain leaves:
//! - a version that is absent is **missing** (a deleted row);
//! - an event whose hash verifies only as another version, after another stored event, is
//!   **reordered** (its version was changed, e.g. two events swapped);
//! - an event that verifies nowhere and sits out of position order (its global position is
//!   not between its neighbours') is **inserted**;
//! - any other event that does not verify is **altered** (its data, envelope or hash changed).
//!
//! A changed stored hash does not also break its successor: the successor is accepted when it
//! chains from either the stored or the recomputed hash, so one tampered row is one break.
//! Truncating a stream's tail or appending a freshly hashed event leaves no break inside the
//! chain; an auditor detects those against a head hash recorded earlier (the export's
//! manifest), which is why the export writes it.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use anquan_domain::Event;
use anquan_domain::agency::AgencyState;
use anquan_domain::compliance::ComplianceReport;
use anquan_domain::enterprise::{EnterpriseFile, FileRef};
use anquan_domain::risk::RiskAssessment;
use anquan_domain::rules::RuleSet;
use anquan_domain::rules::log::{RuleSetPromoted, RuleSetPublished};
use anquan_event_store::hash_chain::event_hash;
use anquan_event_store::{
    EventHash, EventStore, LogPages, Position, READ_BATCH_MAX, RecordedEvent, StoreError, StreamId, StreamVersion,
};

/// How far around a broken event verification looks for the version and predecessor its hash
/// was sealed with.
const REORDER_WINDOW: u64 = 8;

/// The kind of a break in a stream's hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The event does not match its hash: its data, envelope or stored hash changed.
    Altered,
    /// Versions are absent: events were deleted.
    Missing,
    /// The event is not where it was sealed: its hash verifies as another version.
    Reordered,
    /// The event was never sealed into this chain and sits out of position order.
    Inserted,
    /// The event names another stream.
    WrongStream,
}

impl BreakKind {
    /// The stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BreakKind::Altered => "altered",
            BreakKind::Missing => "missing",
            BreakKind::Reordered => "reordered",
            BreakKind::Inserted => "inserted",
            BreakKind::WrongStream => "wrong_stream",
        }
    }
}

/// One break in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreakReport {
    /// The version the break is at (the first absent version, for missing events).
    pub version: u64,
    pub kind: BreakKind,
    pub detail: String,
}

/// The verification of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamVerification {
    pub stream_id: String,
    pub events_checked: u64,
    pub breaks: Vec<ChainBreakReport>,
    /// The stored hash of the last event: what an auditor records to detect a later truncation.
    pub head: Option<String>,
}

impl StreamVerification {
    /// True when no break was found.
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Reads a whole stream in version order, page by page.
pub async fn read_stream_all(store: &dyn EventStore, stream_id: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    let mut from = StreamVersion::FIRST;
    loop {
        let page = store.read_stream(stream_id, from, READ_BATCH_MAX).await?;
        let Some(last) = page.last() else { break };
        from = last.version.next();
        let full = page.len() == READ_BATCH_MAX;
        events.extend(page);
        if !full {
            break;
        }
    }
    Ok(events)
}

/// Recomputes a stream's chain from its events in version order and classifies every break.
pub fn verify_events(stream_id: &StreamId, events: &[RecordedEvent]) -> StreamVerification {
    let mut breaks = Vec::new();
    let mut expected: u64 = 0;
    // The hashes the next event may chain from: the previous event's stored hash and the hash
    // it should have had, and after a reordered event the stored hashes around it.
    let mut previous = vec![EventHash::GENESIS];
    for (index, event) in events.iter().enumerate() {
        if &event.stream_id != stream_id {
            breaks.push(ChainBreakReport {
                version: event.version.0,
                kind: BreakKind::WrongStream,
                detail: format!("the event names stream {}", event.stream_id),
            });
            continue;
        }
        let mut link_known = true;
        if event.version.0 > expected {
            breaks.push(ChainBreakReport {
                version: expected,
                kind: BreakKind::Missing,
                detail: format!("versions {expected} to {} are absent", event.version.0 - 1),
            });
            link_known = false;
        }
        let chained_from = previous
            .iter()
            .copied()
            .find(|candidate| event_hash(candidate, event) == event.hash);
        let mut next = vec![event.hash];
        if link_known && chained_from.is_none() {
            let found = classify(events, index);
            if found.kind == BreakKind::Reordered {
                next.extend(events[index.saturating_sub(2)..index].iter().map(|other| other.hash));
            }
            breaks.push(found);
            // Had only its stored hash changed, this is the hash its successor chains from.
            if let Some(first) = previous.first() {
                next.push(event_hash(first, event));
            }
        }
        previous = next;
        expected = event.version.0 + 1;
    }
    StreamVerification {
        stream_id: stream_id.to_string(),
        events_checked: events.len() as u64,
        breaks,
        head: events.last().map(|event| event.hash.to_hex()),
    }
}

/// Classifies the event at `index`, which does not chain from its predecessor.
fn classify(events: &[RecordedEvent], index: usize) -> ChainBreakReport {
    let event = &events[index];
    let low = index.saturating_sub(REORDER_WINDOW as usize + 1);
    let high = (index + REORDER_WINDOW as usize + 2).min(events.len());
    let mut predecessors: Vec<(Option<u64>, EventHash)> = vec![(None, EventHash::GENESIS)];
    predecessors.extend(
        events[low..high]
            .iter()
            .filter(|other| other.event_id != event.event_id)
            .map(|other| (Some(other.version.0), other.hash)),
    );
    let first = event.version.0.saturating_sub(REORDER_WINDOW);
    for version in first..=event.version.0 + REORDER_WINDOW {
        if version == event.version.0 {
            continue;
        }
        let mut sealed = event.clone();
        sealed.version = StreamVersion(version);
        for (predecessor_version, hash) in &predecessors {
            if event_hash(hash, &sealed) == event.hash {
                let after = predecessor_version.map_or_else(|| "first".to_owned(), |v| format!("after version {v}"));
                return ChainBreakReport {
                    version: event.version.0,
                    kind: BreakKind::Reordered,
                    detail: format!(
                        "the event was sealed as version {version} ({after}), not {}",
                        event.version.0
                    ),
                };
            }
        }
    }
    let out_of_order = |other: Option<&RecordedEvent>, before: bool| {
        other.is_some_and(|other| (other.position > event.position) == before && other.position != event.position)
    };
    let previous = index.checked_sub(1).and_then(|i| events.get(i));
    if out_of_order(previous, true) || out_of_order(events.get(index + 1), false) {
        return ChainBreakReport {
            version: event.version.0,
            kind: BreakKind::Inserted,
            detail: format!(
                "the event at position {} was never sealed into this chain and is out of position order",
                event.position
            ),
        };
    }
    ChainBreakReport {
        version: event.version.0,
        kind: BreakKind::Altered,
        detail: "the event does not match its hash".to_owned(),
    }
}

/// Reads and verifies one stream through the event store.
pub async fn verify_stream_in(store: &dyn EventStore, stream_id: &StreamId) -> Result<StreamVerification, StoreError> {
    let events = read_stream_all(store, stream_id).await?;
    Ok(verify_events(stream_id, &events))
}

/// Lists every stream of the log with its event count, and the global positions that are
/// absent: `Some(gaps)` on a backend that promises dense positions
/// ([`anquan_event_store::BackendTraits::dense_positions`]: the SQL backends hand out positions
/// without gaps, so a gap is a deleted row), `None` on one that does not, where a skipped
/// position means nothing and the check is not made. `progress` is called after every page with
/// the commit part of the last position read (events read, on a backend with dense positions).
pub async fn list_streams(
    store: &Arc<dyn EventStore>,
    mut progress: impl FnMut(u64),
) -> Result<(Vec<(StreamId, u64)>, Option<Vec<(u64, u64)>>), StoreError> {
    let dense = store.traits().dense_positions;
    let mut streams: std::collections::BTreeMap<StreamId, u64> = std::collections::BTreeMap::new();
    let mut gaps = Vec::new();
    let mut after: Option<Position> = None;
    let mut pages = LogPages::new(Arc::clone(store), None, READ_BATCH_MAX);
    while let Some(page) = pages.next_page().await? {
        for event in &page {
            if dense {
                let expected = after.map_or(1, |position| position.commit.saturating_add(1));
                if event.position.commit > expected {
                    gaps.push((expected, event.position.commit - 1));
                }
            }
            after = Some(event.position);
            *streams.entry(event.stream_id.clone()).or_default() += 1;
        }
        if let Some(last) = after {
            progress(last.commit);
        }
    }
    Ok((streams.into_iter().collect(), dense.then_some(gaps)))
}

/// The file references in an event's data: every object with `sha256`, `size_bytes`,
/// `media_type` and `file_name`, wherever it sits (documents, photos, reports).
pub fn file_refs(event: &Event) -> Vec<FileRef> {
    let mut found = Vec::new();
    if let Ok(value) = serde_json::to_value(event) {
        collect_files(&value, &mut found);
    }
    found
}

fn collect_files(value: &serde_json::Value, found: &mut Vec<FileRef>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.contains_key("sha256")
                && map.contains_key("size_bytes")
                && map.contains_key("media_type")
                && let Ok(file) = FileRef::deserialize(value)
            {
                found.push(file);
                return;
            }
            map.values().for_each(|value| collect_files(value, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|value| collect_files(value, found)),
        _ => {}
    }
}

/// One line of an export or a replay: the stored event with its full envelope, the canonical
/// fields its hash covers in the form an independent implementation needs, the decoded data,
/// and the files it references.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryLine {
    /// The stored event, byte for byte: `data` is the stored JSON text, or, when `stored_data`
    /// is present, the data with its personal fields opened or erased while `stored_data` is
    /// the stored text the hash covers (ARCHITECTURE.md, "Erasable personal data").
    pub event: RecordedEvent,
    /// The hash this event chains from (zeros for version 0), as stored in its predecessor.
    pub previous_hash: String,
    /// The actor exactly as hashed: compact JSON, fields in declaration order.
    pub actor_json: String,
    pub recorded_at_micros: i64,
    pub occurred_at_micros: i64,
    /// The data decoded and upcast to the current schema version (absent if it does not decode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<serde_json::Value>,
    #[serde(default)]
    pub files: Vec<FileRef>,
}

/// Builds the history lines of a stream's events, in order.
pub fn history_lines(events: &[RecordedEvent]) -> Vec<HistoryLine> {
    let mut previous = EventHash::GENESIS;
    events
        .iter()
        .map(|event| {
            // One decode and one conversion to a JSON value serve both the decoded data and
            // the file references found in it.
            let decoded = event
                .decode()
                .ok()
                .and_then(|decoded| serde_json::to_value(&decoded).ok());
            let mut files = Vec::new();
            if let Some(value) = &decoded {
                collect_files(value, &mut files);
            }
            let line = HistoryLine {
                event: event.clone(),
                previous_hash: previous.to_hex(),
                actor_json: serde_json::to_string(&event.metadata.actor).unwrap_or_default(),
                recorded_at_micros: event.recorded_at.timestamp_micros(),
                occurred_at_micros: event.metadata.occurred_at.timestamp_micros(),
                decoded,
                files,
            };
            previous = event.hash;
            line
        })
        .collect()
}

/// The distinct files a history references, ordered by hash.
pub fn referenced_files(lines: &[HistoryLine]) -> Vec<FileRef> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for file in lines.iter().flat_map(|line| &line.files) {
        if seen.insert(file.sha256.clone()) {
            files.push(file.clone());
        }
    }
    files.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    files
}

/// Which instant of an event an as-of cut of a history goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// When the event was recorded: what the platform knew at the instant.
    Recorded,
    /// When the event says it happened (`occurred_at`): for histories recorded after the fact,
    /// such as the demo dataset.
    Occurred,
}

impl Cut {
    fn keeps(self, event: &RecordedEvent, at: DateTime<Utc>) -> bool {
        match self {
            Cut::Recorded => event.recorded_at <= at,
            Cut::Occurred => event.metadata.occurred_at <= at,
        }
    }
}

/// The events of a history recorded (or, by [`Cut::Occurred`], that happened) at or before
/// `at`, decoded and upcast; an event that does not decode is left out.
pub fn decoded_as_of(events: &[RecordedEvent], at: DateTime<Utc>, cut: Cut) -> Vec<Event> {
    events
        .iter()
        .filter(|event| cut.keeps(event, at))
        .filter_map(|event| event.decode().ok())
        .collect()
}

/// What was known about an enterprise at an instant and how it stood then.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusAsOf {
    /// Events recorded at or before the instant.
    pub events: usize,
    pub report: Option<ComplianceReport>,
    pub risk: Option<RiskAssessment>,
}

/// Brute force: folds only the events recorded at or before `at` and evaluates them at `at`,
/// which is what the live read models showed at that instant.
pub fn status_as_of(events: &[RecordedEvent], rules: &RuleSet, at: DateTime<Utc>) -> StatusAsOf {
    status_of_cut(events, rules, at, Cut::Recorded)
}

/// Like [`status_as_of`], but cuts the log by the instant each event says it happened
/// (`occurred_at`): for histories recorded after the fact.
pub fn status_as_of_occurred(events: &[RecordedEvent], rules: &RuleSet, at: DateTime<Utc>) -> StatusAsOf {
    status_of_cut(events, rules, at, Cut::Occurred)
}

fn status_of_cut(events: &[RecordedEvent], rules: &RuleSet, at: DateTime<Utc>, cut: Cut) -> StatusAsOf {
    let decoded = decoded_as_of(events, at, cut);
    let file = EnterpriseFile::from_events(&decoded);
    let report = anquan_domain::compliance::evaluate(&file, rules, at);
    let risk = report
        .as_ref()
        .map(|report| anquan_domain::risk::assess_with(&file, rules, at, report));
    StatusAsOf {
        events: decoded.len(),
        report,
        risk,
    }
}

/// An agency as the domain folds it from the events of its stream up to an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgencyAsOf {
    /// Events folded (recorded, or happened, at or before the instant).
    pub events: usize,
    /// The agency's state; its `registration` is `None` before the agency was registered.
    pub state: AgencyState,
}

/// Folds an agency's events up to `at` (cut by `cut`) the way its aggregate does.
pub fn agency_as_of(events: &[RecordedEvent], at: DateTime<Utc>, cut: Cut) -> AgencyAsOf {
    let decoded = decoded_as_of(events, at, cut);
    AgencyAsOf {
        events: decoded.len(),
        state: AgencyState::from_events(&decoded),
    }
}

/// The rule-set log up to an instant: which versions were published and which was live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSetsAsOf {
    /// Events folded (recorded, or happened, at or before the instant).
    pub events: usize,
    /// Every publication by then, in order.
    pub published: Vec<RuleSetPublished>,
    /// Every promotion by then, in order.
    pub promotions: Vec<RuleSetPromoted>,
    /// The last promotion by then: the live version. `None` when none was promoted yet, when
    /// every node ran the rule set it was configured with.
    pub live: Option<RuleSetPromoted>,
}

/// Reads the rule-set log's events up to `at` (cut by `cut`); the live version is the last
/// promoted, as [`anquan_domain::rules::log::RuleSetLog`] folds it.
pub fn rule_sets_as_of(events: &[RecordedEvent], at: DateTime<Utc>, cut: Cut) -> RuleSetsAsOf {
    let decoded = decoded_as_of(events, at, cut);
    let mut published = Vec::new();
    let mut promotions = Vec::new();
    for event in &decoded {
        match event {
            Event::RuleSetPublished(publication) => published.push(publication.clone()),
            Event::RuleSetPromoted(promotion) => promotions.push(promotion.clone()),
            _ => {}
        }
    }
    RuleSetsAsOf {
        events: decoded.len(),
        live: promotions.last().cloned(),
        published,
        promotions,
    }
}
