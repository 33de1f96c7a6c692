//! The enterprise aggregate: one enterprise's cloud file (云档案), its profile and its records.
//! Stream: `enterprise-<EnterpriseId>`.

pub mod closure;
pub mod command;
pub mod event;
pub mod hazard;
pub mod listing;
pub mod public_token;
pub mod rejection;
pub mod state;
pub mod supervision;

pub use closure::{CloseEnterprise, ClosureRecord, ReopenEnterprise, Reopening};
pub use command::{
    ChangeEnterpriseProfile, DecisionContext, EnterpriseCommand, RegisterEnterprise, ReviewDecision, ReviewDocument,
    UploadDocument,
};
pub use event::{ClosureKind, Coverage, FileRef};
pub use public_token::{PublicToken, RotatePublicToken};
pub use rejection::EnterpriseRejection;
pub use state::{DocumentRecord, EnterpriseFile, Registration, ReviewOutcome};

use uuid::Uuid;

use crate::credit_code::UnifiedSocialCreditCode;
use crate::ids::EnterpriseId;

/// The namespace of enterprise ids derived from credit codes (UUID v5).
const ENTERPRISE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_55c0_2b1f_4f0e_9c3d_7a1b_0e5d_4c21);

/// Derives an enterprise's id from its credit code, so one code can only ever register once:
/// a second registration lands on the same stream and is rejected there.
pub fn enterprise_id_for(code: &UnifiedSocialCreditCode) -> EnterpriseId {
    EnterpriseId(Uuid::new_v5(&ENTERPRISE_ID_NAMESPACE, code.as_str().as_bytes()))
}

impl crate::aggregate::Aggregate for EnterpriseFile {
    type Command = EnterpriseCommand;
    type Rejection = EnterpriseRejection;

    const CATEGORY: &'static str = "enterprise";

    fn stream_key(command: &EnterpriseCommand) -> Uuid {
        command.enterprise_id().as_uuid()
    }

    fn command_name(command: &EnterpriseCommand) -> &'static str {
        command.name()
    }

    fn apply(&mut self, event: &crate::event::Event) {
        EnterpriseFile::apply(self, event);
    }

    fn authorise(&self, command: &EnterpriseCommand, actor: &crate::actor::Actor) -> Result<(), EnterpriseRejection> {
        EnterpriseFile::authorise(self, command, actor)
    }

    fn decide(
        &self,
        command: &EnterpriseCommand,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<crate::event::Event>, EnterpriseRejection> {
        EnterpriseFile::decide(self, command, context)
    }
}

/// Returns the event stream name of an enterprise.
pub fn stream_name(enterprise_id: EnterpriseId) -> String {
    format!("enterprise-{enterprise_id}")
}
