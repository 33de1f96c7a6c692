//! The event catalogue: every fact the platform records, with its stable type name and schema
//! version. `docs/events.md` describes the whole catalogue for the three gates; this enum holds
//! the events implemented so far. A shipped event is never edited: a change is a new schema
//! version with an upcaster in [`Event::decode`], and a fixture under `tests/fixtures/events/`.

use serde::{Deserialize, Serialize};

use crate::agency::event::{
    AgencyBlacklisted, AgencyComplaintFounded, AgencyDelisted, AgencyMisconductFound, AgencyProfileChanged,
    AgencyRegistered, AgencyWarned, ContractConfirmed, ContractFiled, ContractProposed, ContractRejected,
    ContractSigned, ContractTerminated, CreditGraded, CreditRegraded, DataSubjectErased, ReportSpotChecked,
    ServiceRated, ServiceReported, StaffReported,
};
use crate::anchor::AnchorTaken;
use crate::assessment::AnnualAssessmentIssued;
use crate::enterprise::event::{
    AccidentReported, DocumentApproved, DocumentReturned, DocumentUploaded, EnterpriseClosed, EnterpriseProfileChanged,
    EnterpriseRegistered, EnterpriseReopened, HazardDeadlineExtended, HazardDelisted, HazardFound, HazardListed,
    HazardSelfClosed, HazardSpotChecked, InspectionRecorded, ListingLiftRequested, ListingProgressReported,
    MajorHazardBasisStated, MajorHazardConfirmed, PublicTokenRotated, RectificationAccepted, RectificationReturned,
    RectificationSubmitted,
};
use crate::report::MonthlyReportIssued;
use crate::rules::log::{RuleSetPromoted, RuleSetPublished};

/// Why stored event data could not be turned back into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    #[error("event type {event_type} has no schema version {schema_version}")]
    UnknownVersion { event_type: String, schema_version: u32 },
    #[error("event {event_type} v{schema_version} has malformed data")]
    Malformed {
        event_type: String,
        schema_version: u32,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! event_catalogue {
    (
        $($variant:ident => $version:literal),* $(,)?
        ; older: $($old_variant:ident => $old_version:literal),* $(,)?
    ) => {
        /// Every event type the platform records.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $($variant($variant),)*
        }

        impl Event {
            /// Every event type name with its current schema version.
            pub const CATALOGUE: &'static [(&'static str, u32)] = &[$((stringify!($variant), $version),)*];

            /// Returns the stable type name stored beside the data.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => stringify!($variant),)*
                }
            }

            /// Returns the schema version the data is written in.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Event::$variant(_) => $version,)*
                }
            }

            /// Encodes the event's data as compact JSON.
            pub fn encode_data(&self) -> String {
                let encoded = match self {
                    $(Event::$variant(data) => serde_json::to_string(data),)*
                };
                // Event data are plain structs of strings, numbers, ids and maps with string
                // keys, which serde_json always serialises.
                encoded.unwrap_or_default()
            }

            /// Decodes stored data of any known schema version, upcasting old versions.
            pub fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Event, EventDecodeError> {
                let malformed = |source| EventDecodeError::Malformed {
                    event_type: event_type.to_owned(),
                    schema_version,
                    source,
                };
                match (event_type, schema_version) {
                    $((stringify!($variant), $version) => {
                        serde_json::from_str(data).map(Event::$variant).map_err(malformed)
                    })*
                    // Older versions whose fields are a subset of the current ones: the new
                    // fields' serde defaults are the upcast (documented on each event).
                    $((stringify!($old_variant), $old_version) => {
                        serde_json::from_str(data).map(Event::$old_variant).map_err(malformed)
                    })*
                    _ if Self::CATALOGUE.iter().any(|(name, _)| *name == event_type) => {
                        Err(EventDecodeError::UnknownVersion { event_type: event_type.to_owned(), schema_version })
                    }
                    _ => Err(EventDecodeError::UnknownType { event_type: event_type.to_owned() }),
                }
            }
        }
    };
}

event_catalogue! {
    EnterpriseRegistered => 1,
    EnterpriseProfileChanged => 1,
    DocumentUploaded => 1,
    DocumentApproved => 1,
    DocumentReturned => 1,
    InspectionRecorded => 1,
    HazardFound => 1,
    HazardDeadlineExtended => 1,
    RectificationSubmitted => 1,
    RectificationAccepted => 1,
    RectificationReturned => 1,
    AccidentReported => 1,
    PublicTokenRotated => 1,
    MajorHazardBasisStated => 1,
    MajorHazardConfirmed => 1,
    HazardSelfClosed => 1,
    HazardSpotChecked => 1,
    HazardListed => 1,
    ListingProgressReported => 1,
    ListingLiftRequested => 1,
    HazardDelisted => 1,
    EnterpriseClosed => 1,
    EnterpriseReopened => 1,
    AgencyRegistered => 1,
    AgencyProfileChanged => 1,
    StaffReported => 1,
    ContractSigned => 1,
    ContractProposed => 1,
    ContractConfirmed => 1,
    ContractRejected => 1,
    ContractFiled => 1,
    ContractTerminated => 1,
    ServiceReported => 1,
    ServiceRated => 1,
    ReportSpotChecked => 1,
    AgencyComplaintFounded => 1,
    AgencyWarned => 1,
    AgencyMisconductFound => 1,
    CreditGraded => 2,
    CreditRegraded => 1,
    AgencyBlacklisted => 1,
    AgencyDelisted => 1,
    DataSubjectErased => 1,
    RuleSetPublished => 2,
    RuleSetPromoted => 1,
    AnchorTaken => 1,
    MonthlyReportIssued => 1,
    AnnualAssessmentIssued => 1,
    ;
    older:
    CreditGraded => 1,
    RuleSetPublished => 1,
}
