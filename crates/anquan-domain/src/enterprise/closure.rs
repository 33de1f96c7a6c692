//! Closing an enterprise (注销/停业) and reopening it: the commands, what the file keeps of
//! them, and whether the enterprise was active at an instant.
//!
//! A closure takes effect at its `effective_at` and is known from its `recorded_at`; an
//! enterprise is closed at an instant when its latest closure has taken effect and been recorded
//! by then, and no reopening has (knowledge time, as for inspections).

use serde::{Deserialize, Serialize};

use super::event::{ClosureKind, EnterpriseClosed, EnterpriseReopened};
use super::rejection::EnterpriseRejection;
use super::state::EnterpriseFile;
use crate::Instant;
use crate::aggregate::DecisionContext;
use crate::event::Event;
use crate::ids::EnterpriseId;
use crate::refusal::FieldProblem;

/// Longest closure or reopening reason, in characters.
pub const CLOSURE_REASON_CHARS_MAX: usize = 500;

/// Close an enterprise from `effective_at` (now when not given).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CloseEnterprise {
    pub enterprise_id: EnterpriseId,
    pub kind: ClosureKind,
    pub reason: String,
    pub effective_at: Option<Instant>,
}

/// Reopen a closed enterprise from `effective_at` (now when not given).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReopenEnterprise {
    pub enterprise_id: EnterpriseId,
    pub reason: String,
    pub effective_at: Option<Instant>,
}

/// One closure of the enterprise and, once it reopened, the reopening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosureRecord {
    pub kind: ClosureKind,
    pub reason: String,
    pub effective_at: Instant,
    pub recorded_at: Instant,
    pub reopening: Option<Reopening>,
}

/// A reopening after a closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reopening {
    pub reason: String,
    pub effective_at: Instant,
    pub recorded_at: Instant,
}

impl ClosureRecord {
    /// Tells whether the closure had taken effect and was known at `at`.
    pub fn in_effect_at(&self, at: Instant) -> bool {
        self.effective_at <= at && self.recorded_at <= at
    }

    /// Tells whether the reopening had taken effect and was known at `at`.
    pub fn reopened_at(&self, at: Instant) -> bool {
        self.reopening
            .as_ref()
            .is_some_and(|reopening| reopening.effective_at <= at && reopening.recorded_at <= at)
    }
}

impl EnterpriseFile {
    /// Returns the closure the enterprise was under at `at`, if it was closed then.
    pub fn closure_at(&self, at: Instant) -> Option<&ClosureRecord> {
        self.closures
            .iter()
            .rev()
            .find(|closure| closure.in_effect_at(at))
            .filter(|closure| !closure.reopened_at(at))
    }

    /// Returns the closure the enterprise is under now (the latest, not reopened), whatever its
    /// effective instant: what commands are decided against.
    pub fn current_closure(&self) -> Option<&ClosureRecord> {
        self.closures.last().filter(|closure| closure.reopening.is_none())
    }

    /// Counts the closures that took effect in `[start, at]` and were known at `at`.
    pub fn closures_within(&self, start: Instant, at: Instant) -> usize {
        self.closures
            .iter()
            .filter(|closure| closure.in_effect_at(at) && start <= closure.effective_at)
            .count()
    }

    pub(super) fn apply_closed(&mut self, closed: &EnterpriseClosed) {
        if self.registration.is_some() {
            self.closures.push(ClosureRecord {
                kind: closed.kind,
                reason: closed.reason.clone(),
                effective_at: closed.effective_at,
                recorded_at: closed.recorded_at,
                reopening: None,
            });
        }
    }

    pub(super) fn apply_reopened(&mut self, reopened: &EnterpriseReopened) {
        if let Some(closure) = self.closures.last_mut() {
            closure.reopening = Some(Reopening {
                reason: reopened.reason.clone(),
                effective_at: reopened.effective_at,
                recorded_at: reopened.recorded_at,
            });
        }
    }

    /// Refuses a command a closed enterprise no longer accepts.
    pub(super) fn refuse_if_closed(&self, enterprise_id: EnterpriseId) -> Result<(), EnterpriseRejection> {
        match self.current_closure() {
            Some(closure) => Err(EnterpriseRejection::EnterpriseClosed {
                enterprise_id,
                since: closure.effective_at,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn decide_close(
        &self,
        command: &CloseEnterprise,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        self.refuse_if_closed(command.enterprise_id)?;
        let effective_at = command.effective_at.unwrap_or(context.now);
        // Closed after it became active: after registration and after the last reopening.
        let active_since = self
            .closures
            .last()
            .and_then(|closure| closure.reopening.as_ref().map(|reopening| reopening.effective_at))
            .or(self
                .registration
                .as_ref()
                .map(|registration| registration.registered_at));
        check_effective(effective_at, active_since, context)?;
        let reason = check_reason(&command.reason)?;
        Ok(vec![Event::EnterpriseClosed(EnterpriseClosed {
            kind: command.kind,
            reason,
            effective_at,
            recorded_at: context.now,
        })])
    }

    pub(super) fn decide_reopen(
        &self,
        command: &ReopenEnterprise,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        let Some(closure) = self.current_closure() else {
            return Err(EnterpriseRejection::NotClosed {
                enterprise_id: command.enterprise_id,
            });
        };
        let effective_at = command.effective_at.unwrap_or(context.now);
        check_effective(effective_at, Some(closure.effective_at), context)?;
        let reason = check_reason(&command.reason)?;
        Ok(vec![Event::EnterpriseReopened(EnterpriseReopened {
            reason,
            effective_at,
            recorded_at: context.now,
        })])
    }
}

fn check_effective(
    effective_at: Instant,
    not_before: Option<Instant>,
    context: &DecisionContext<'_>,
) -> Result<(), EnterpriseRejection> {
    if effective_at > context.now {
        return Err(EnterpriseRejection::InFuture { field: "effectiveAt" });
    }
    if let Some(not_before) = not_before
        && effective_at < not_before
    {
        return Err(EnterpriseRejection::EffectiveTooEarly { not_before });
    }
    Ok(())
}

fn check_reason(reason: &str) -> Result<String, EnterpriseRejection> {
    let trimmed = reason.trim();
    if trimmed.is_empty() {
        return Err(EnterpriseRejection::InvalidField {
            field: "reason",
            problem: FieldProblem::Empty,
        });
    }
    if trimmed.chars().count() > CLOSURE_REASON_CHARS_MAX {
        return Err(EnterpriseRejection::InvalidField {
            field: "reason",
            problem: FieldProblem::TooLong {
                chars_max: CLOSURE_REASON_CHARS_MAX,
            },
        });
    }
    Ok(trimmed.to_owned())
}
