//! What every aggregate is: state folded from one stream's events, and a pure decision over it.

use crate::Instant;
use crate::actor::Actor;
use crate::event::Event;
use crate::rules::RuleSet;

/// Everything `decide` needs besides the state and the command: who asks, under which rules,
/// and when. The caller reads the clock; the domain never does.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    pub actor: &'a Actor,
    pub rules: &'a RuleSet,
    pub now: Instant,
}

/// A refusal with a stable code clients branch on.
pub trait DomainRejection: std::error::Error + Send + Sync + 'static {
    /// Returns the stable code (`FORBIDDEN`, `UNKNOWN_ENTERPRISE`, …).
    fn code(&self) -> &'static str;
}

/// An aggregate: the state of one stream and the rules its commands are decided by.
pub trait Aggregate: Default + Send + Sync {
    type Command: Send + Sync;
    type Rejection: DomainRejection;

    /// The stream category: the aggregate's streams are `<CATEGORY>-<uuid>`.
    const CATEGORY: &'static str;

    /// Returns the id of the stream the command goes to.
    fn stream_key(command: &Self::Command) -> uuid::Uuid;

    /// Returns the command's name for traces.
    fn command_name(command: &Self::Command) -> &'static str;

    /// Folds one event into the state; events of other aggregates are ignored.
    fn apply(&mut self, event: &Event);

    /// Decides a command: the events to append, or the rule it breaks.
    fn decide(&self, command: &Self::Command, context: &DecisionContext<'_>) -> Result<Vec<Event>, Self::Rejection>;
}
