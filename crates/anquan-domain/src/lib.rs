//! The pure domain of anquan: identifiers, events, commands, `decide`/`evolve` and the rule
//! engine that turns an enterprise's file into "x of 21 implemented".
//!
//! This crate must not know about storage, HTTP, async runtimes or the clock: every instant it
//! needs arrives as a parameter, every fact as an event.

pub mod actor;
pub mod agency;
pub mod aggregate;
pub mod anchor;
pub mod assessment;
pub mod bounds;
pub mod compliance;
pub mod credit;
pub mod credit_code;
pub mod enterprise;
pub mod event;
pub mod ids;
pub mod metrics;
pub mod period;
pub mod personal;
pub mod refusal;
pub mod report;
pub mod risk;
pub mod rules;

pub use actor::{Actor, Role};
pub use aggregate::{Aggregate, DecisionContext, DomainRejection};
pub use credit_code::{CreditCodeError, UnifiedSocialCreditCode};
pub use event::{Event, EventDecodeError};
pub use ids::{
    AgencyId, CommandId, ContractId, DocumentId, EnterpriseId, HazardId, IdError, IndicatorCode, InspectionId,
    RequirementCode, ServiceReportId, StaffId, Town, UserId,
};
pub use period::{Cadence, Period};

/// An instant in time. Every time in the domain is UTC; local calendars (periods) are applied by
/// the rule set's time-zone offset.
pub type Instant = chrono::DateTime<chrono::Utc>;
