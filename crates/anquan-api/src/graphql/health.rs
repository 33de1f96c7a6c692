//! `health`: every projection's position and state, for anyone (no token). It shows where a
//! projection stands and what it failed on (position, stream, type), never the event's data or
//! the store's own error text, which may quote values; those go to the log and `/readyz`.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_projections::{ProjectionState, ProjectionStatus};

use super::app;
use crate::error::ApiError;
use crate::graphql::scalars::{Int64, position_parts};

/// Health queries.
#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// Every read model's projection: how far it has applied the log and whether it is stalled.
    /// Needs no token.
    async fn health(&self, ctx: &Context<'_>) -> Result<Vec<ProjectionHealth>, ApiError> {
        Ok(app(ctx)?
            .projections
            .statuses()
            .iter()
            .map(ProjectionHealth::from)
            .collect())
    }
}

/// Where a projection stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionRunState {
    /// Folding the live tail of the log.
    Running,
    /// Folding the backlog the log held when it started or resumed.
    CatchingUp,
    /// Failed on an event and retried alone; queries of its read model answer `PROJECTION_STALLED`.
    Stalled,
}

/// One projection's health.
#[derive(SimpleObject, Clone)]
pub struct ProjectionHealth {
    /// The projection (`compliance`, `agency`).
    pub name: String,
    /// The global position of the last event it applied (its commit part); null before the
    /// first.
    pub position: Option<Int64>,
    /// The prepare part of that position where it differs from the commit part (a KurrentDB
    /// store); null on SQLite and PostgreSQL.
    pub prepare_position: Option<Int64>,
    /// Running, catching up or stalled.
    pub state: ProjectionRunState,
    /// The event it is stalled on, when the failure is one event's.
    pub failing_event: Option<FailingEventInfo>,
    /// What failed, without the store's own words (those are in the log and `/readyz`).
    pub error: Option<String>,
    /// When it was reported stalled.
    pub since: Option<DateTime<Utc>>,
    /// Attempts at the failing step so far.
    pub attempts: Option<Int64>,
}

/// The event a projection is stalled on.
#[derive(SimpleObject, Clone)]
pub struct FailingEventInfo {
    /// Its global position (the commit part).
    pub position: Int64,
    /// The prepare part of its position where it differs from the commit part (a KurrentDB
    /// store); null on SQLite and PostgreSQL.
    pub prepare_position: Option<Int64>,
    /// Its stream.
    pub stream_id: String,
    /// Its type.
    pub event_type: String,
}

impl From<&ProjectionStatus> for ProjectionHealth {
    fn from(status: &ProjectionStatus) -> Self {
        let stall = status.stall.as_ref();
        ProjectionHealth {
            name: status.name.to_owned(),
            position: status.position.map(|position| position_parts(position).0),
            prepare_position: status.position.and_then(|position| position_parts(position).1),
            state: match status.state {
                ProjectionState::Running => ProjectionRunState::Running,
                ProjectionState::CatchingUp => ProjectionRunState::CatchingUp,
                ProjectionState::Stalled => ProjectionRunState::Stalled,
            },
            failing_event: stall
                .and_then(|stall| stall.event.as_ref())
                .map(|event| FailingEventInfo {
                    position: position_parts(event.position).0,
                    prepare_position: position_parts(event.position).1,
                    stream_id: event.stream_id.clone(),
                    event_type: event.event_type.clone(),
                }),
            error: stall.map(|stall| stall.summary.clone()),
            since: stall.map(|stall| stall.since),
            attempts: stall.map(|stall| Int64(stall.attempts)),
        }
    }
}
