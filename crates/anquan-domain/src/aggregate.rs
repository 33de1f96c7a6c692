//! What every aggregate is: state folded from one stream's events, and a pure decision over it.

use crate::Instant;
use crate::actor::Actor;
use crate::event::Event;
use crate::refusal::Details;
use crate::rules::RuleSet;

/// Everything `decide` needs besides the state and the command: who asks, under which rules,
/// and when. The caller reads the clock; the domain never does.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    pub actor: &'a Actor,
    pub rules: &'a RuleSet,
    pub now: Instant,
}

/// A refusal, told to both its audiences (`crate::refusal`): its `Display` is the Chinese
/// sentence a person reads, its code and details are what a program branches on.
pub trait DomainRejection: std::error::Error + Send + Sync + 'static {
    /// Returns the stable code (`FORBIDDEN`, `UNKNOWN_ENTERPRISE`, …).
    fn code(&self) -> &'static str;

    /// Returns the facts a program needs besides the code (the field, the limit, the record).
    fn details(&self) -> Details;
}

/// An aggregate: the state of one stream and the rules its commands are decided by.
pub trait Aggregate: Default + Send + Sync {
    /// A command serialises to its canonical form: the idempotency digest of a command id is
    /// taken over it (field order as declared; no hash maps).
    type Command: Send + Sync + serde::Serialize;
    type Rejection: DomainRejection;

    /// The stream category: the aggregate's streams are `<CATEGORY>-<uuid>`.
    const CATEGORY: &'static str;

    /// Returns the id of the stream the command goes to.
    fn stream_key(command: &Self::Command) -> uuid::Uuid;

    /// Returns the command's name for traces.
    fn command_name(command: &Self::Command) -> &'static str;

    /// Folds one event into the state; events of other aggregates are ignored.
    fn apply(&mut self, event: &Event);

    /// Tells whether the actor may issue the command against this state: the one place an
    /// aggregate checks the actor's scope. `decide` calls it first, and `execute` calls it before
    /// it answers a repeated command id, so a retry never tells an unauthorised caller anything.
    fn authorise(&self, command: &Self::Command, actor: &Actor) -> Result<(), Self::Rejection>;

    /// Decides a command: the events to append, or the rule it breaks. Starts with `authorise`.
    fn decide(&self, command: &Self::Command, context: &DecisionContext<'_>) -> Result<Vec<Event>, Self::Rejection>;
}
