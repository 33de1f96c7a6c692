//! The agency aggregate: one safety-service agency (中介服务机构) with its profile, staff
//! registry, contracts, service reports, ratings and the city's supervision of it.
//! Stream: `agency-<AgencyId>`.
//!
//! Contracts, reports and ratings live on the agency's stream so that "a blacklisted agency
//! cannot propose" and "only the served enterprise rates a service record, once" are single-stream
//! rules, decided with optimistic concurrency.

pub mod command;
pub mod event;
pub mod rejection;
pub mod state;

pub use command::{
    AgencyCommand, ChangeAgencyProfile, ChangeBlacklist, ConfirmContract, DecisionContext, EraseDataSubject,
    FileContract, FoundComplaint, GradeAgency, HazardReport, ProposeContract, RateService, RecordMisconduct,
    RegisterAgency, RegradeAgency, RejectContract, ReportService, ReportStaff, SpotCheckReport, TerminateContract,
    WarnAgency, misconduct_name,
};
pub use event::{
    AgencyProfile, DataSubjectErased, ErasedStaffEntry, FeeBand, FeeCheck, HazardLevel, Qualification,
    QualificationKind, ReportedHazard, StaffMember, WarningKind,
};
pub use rejection::AgencyRejection;
pub use state::{AgencyRecord, AgencyState, ContractRecord, ContractStatus, GradeRecord, ReportRecord, StaffReport};

use uuid::Uuid;

use crate::ids::AgencyId;

impl crate::aggregate::Aggregate for AgencyState {
    type Command = AgencyCommand;
    type Rejection = AgencyRejection;

    const CATEGORY: &'static str = "agency";

    fn stream_key(command: &AgencyCommand) -> Uuid {
        command.agency_id().as_uuid()
    }

    fn command_name(command: &AgencyCommand) -> &'static str {
        command.name()
    }

    fn apply(&mut self, event: &crate::event::Event) {
        AgencyState::apply(self, event);
    }

    fn authorise(&self, command: &AgencyCommand, actor: &crate::actor::Actor) -> Result<(), AgencyRejection> {
        AgencyState::authorise(self, command, actor)
    }

    fn decide(
        &self,
        command: &AgencyCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<crate::event::Event>, AgencyRejection> {
        AgencyState::decide(self, command, context)
    }
}

/// Returns the event stream name of an agency.
pub fn stream_name(agency_id: AgencyId) -> String {
    format!("agency-{agency_id}")
}
