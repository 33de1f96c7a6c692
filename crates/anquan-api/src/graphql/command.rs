//! The one path every mutation takes, whatever its gate:
//!
//! 1. **parse** what the client sent beside the command (`commandId`, `expectedVersion`);
//! 2. **authorise and decide**: `execute` asks the aggregate, which refuses a caller who may not
//!    issue the command before it looks at anything else, against the rules live for decisions;
//! 3. **store** the command's staged uploads, only once it is authorised and decided;
//! 4. **append** the events (or find the first answer to a repeated `commandId`);
//! 5. **wait** until the gate's read model shows the write, so the answer reads what was written.
//!
//! The gates (`foundation`, `supervision`, `agency`) build their commands and their payloads;
//! nothing else in a mutation is theirs.

use async_graphql::{ID, SimpleObject};
use uuid::Uuid;

use anquan_domain::{Aggregate, CommandId, DecisionContext, Event, Instant};
use anquan_event_store::execute::{CommandEnvelope, execute};
use anquan_event_store::{AppendOutcome, StreamVersion};

use super::scalars::{Int64, position_parts};
use super::{actor, app};
use crate::blobs::StagedFile;
use crate::error::ApiError;

/// What a client sends beside a command: its idempotency key and the stream version it
/// decided on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CommandArgs {
    pub command_id: Option<CommandId>,
    pub expected_version: Option<StreamVersion>,
}

impl CommandArgs {
    /// Parses a mutation's `commandId` (`INVALID_ID` when it is not a UUID) and
    /// `expectedVersion`.
    pub(super) fn parse(command_id: Option<&ID>, expected_version: Option<Int64>) -> Result<Self, ApiError> {
        let command_id = command_id
            .map(|id| {
                id.parse::<CommandId>().map_err(|_| ApiError::BadInput {
                    code: "INVALID_ID",
                    message: format!("commandId {:?} 不是有效的 UUID", id.as_str()),
                })
            })
            .transpose()?;
        Ok(CommandArgs {
            command_id,
            expected_version: expected_version.map(|version| StreamVersion(version.0)),
        })
    }

    /// The id of something the command creates (a document, an agency, a contract, a hazard, …)
    /// when the client named none. With a `commandId` it is a UUID v5 of the command id, the kind
    /// of id and its index among the command's ids of that kind, so a retry names the very same
    /// ids: it is the same command (same digest) and gets the first answer, whose ids exist.
    /// Without one it is a fresh UUID v7.
    pub(super) fn created_id(&self, kind: &str, index: usize) -> Uuid {
        match self.command_id {
            Some(command_id) => Uuid::new_v5(
                &CREATED_ID_NAMESPACE,
                format!("{}/{kind}/{index}", command_id.0).as_bytes(),
            ),
            None => Uuid::now_v7(),
        }
    }
}

/// The namespace of the ids the API derives from a client's command id (UUID v5).
const CREATED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3c0f_9e6a_51d2_4b7e_a8f4_6d20_c1b9_7e35);

/// Which read model shows the gate's writes, and whether the answer needs it.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReadBack {
    /// The answer is read back from this read model: a stalled one fails the mutation with
    /// `PROJECTION_STALLED` (the events are recorded; the message says so).
    Required(&'static str),
    /// The answer is made of the command's own events: a stalled read model is logged, and its
    /// queries answer `PROJECTION_STALLED` instead.
    BestEffort(&'static str),
}

/// A command that went through the path.
pub(super) struct Executed {
    /// The append's outcome; `None` when the decision produced no events.
    pub outcome: Option<AppendOutcome>,
    /// The command's events (for a repeated `commandId`, those of the first call).
    pub events: Vec<Event>,
    /// The instant the command was decided at.
    pub decided_at: Instant,
}

impl Executed {
    /// What every payload says about the write itself.
    pub(super) fn recorded(&self) -> Recorded {
        let position = self
            .outcome
            .as_ref()
            .map(|outcome| position_parts(outcome.last_position));
        Recorded {
            stream_version: self.outcome.as_ref().map(|outcome| Int64(outcome.last_version.0)),
            position: position.map(|(commit, _)| commit),
            prepare_position: position.and_then(|(_, prepare)| prepare),
            duplicate: self.outcome.as_ref().is_some_and(|outcome| outcome.duplicate),
        }
    }
}

/// What a command wrote; every command payload starts with these fields.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct Recorded {
    /// The stream version after the command (pass it as `expectedVersion` next time); null when
    /// the command changed nothing.
    pub stream_version: Option<Int64>,
    /// The global position of the last event written (its commit part); null when the command
    /// changed nothing.
    pub position: Option<Int64>,
    /// The prepare part of that position where it differs from the commit part (a KurrentDB
    /// store); null on SQLite and PostgreSQL.
    pub prepare_position: Option<Int64>,
    /// True when `commandId` had been used before: nothing new was written and this is the
    /// first call's result.
    pub duplicate: bool,
}

/// Runs `command` down the one path (see the module's documentation).
pub(super) async fn execute_command<A: Aggregate>(
    ctx: &async_graphql::Context<'_>,
    command: &A::Command,
    args: CommandArgs,
    files: &[StagedFile],
    read_back: ReadBack,
) -> Result<Executed, ApiError> {
    let app = app(ctx)?;
    let actor = actor(ctx)?;
    let decided_at = app.now();
    let decision_rules = app.decision_rules()?;
    let context = DecisionContext {
        actor,
        rules: &decision_rules,
        now: decided_at,
    };
    let envelope = CommandEnvelope {
        command_id: args.command_id,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        expected_version: args.expected_version,
    };
    crate::uploads::store_for_command::<A>(app, command, &context, &envelope, files).await?;
    let executed = execute::<A>(app.event_store.as_ref(), command, &context, &envelope).await?;
    if let Some(outcome) = &executed.outcome {
        let waited = match read_back {
            ReadBack::Required(projection) | ReadBack::BestEffort(projection) => {
                app.wait_for_projection(projection, outcome.last_position).await
            }
        };
        match (waited, read_back) {
            (Ok(()), _) => {}
            (Err(error), ReadBack::Required(_)) => return Err(error),
            (Err(error), ReadBack::BestEffort(projection)) => {
                tracing::warn!(projection, position = %outcome.last_position, error = %error.message(), "read model is stalled");
            }
        }
    }
    Ok(Executed {
        outcome: executed.outcome,
        events: executed.events,
        decided_at,
    })
}
