//! The relay of hazards from an agency's service report into the enterprise's hazard list
//! (issue 21): right after `reportService` records `ServiceReported` on the agency's stream, the
//! supervision gate records the report's hazards on the enterprise's stream (`HazardFound`, source
//! 中介服务 with the agency and the report). Ids are derived from the report id and the hazard's
//! index, and the command id from the report id, so relaying a report again appends nothing.

use uuid::Uuid;

use anquan_domain::agency::event::{HazardLevel as ReportedLevel, ServiceReported};
use anquan_domain::enterprise::EnterpriseCommand;
use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::enterprise::event::{HazardCategory, HazardLevel};
use anquan_domain::enterprise::supervision::{NewHazard, RecordReportedHazards};
use anquan_domain::rules::Severity;
use anquan_domain::{AgencyId, CommandId, HazardId};

use crate::error::ApiError;
use crate::graphql::command::{CommandArgs, ReadBack, execute_command};

/// The namespace of the ids derived from a report (UUID v5).
const RELAY_NAMESPACE: Uuid = Uuid::from_u128(0x7d1e_52b0_0c4f_4e8a_9a37_e2c5_58f1_a604);

/// Records the hazards of a service report on the enterprise's stream; nothing when it has none.
pub(crate) async fn relay_reported_hazards(
    ctx: &async_graphql::Context<'_>,
    agency_id: AgencyId,
    report: &ServiceReported,
) -> Result<(), ApiError> {
    if report.hazards.is_empty() {
        return Ok(());
    }
    let report_id = report.report_id.as_uuid();
    let hazards = report
        .hazards
        .iter()
        .map(|hazard| {
            let major = hazard.level == ReportedLevel::Major;
            NewHazard {
                hazard_id: HazardId::from_uuid(Uuid::new_v5(
                    &RELAY_NAMESPACE,
                    format!("{report_id}/hazard/{}", hazard.index).as_bytes(),
                )),
                category: category(&hazard.category),
                level: if major {
                    HazardLevel::Major
                } else {
                    HazardLevel::General
                },
                severity: (!major).then_some(Severity::Moderate),
                criterion: None,
                // An agency cites no catalogue item: a major hazard it reports is "major, pending
                // confirmation" on its description until an official confirms it.
                basis: major.then(|| hazard.description.clone()),
                description: hazard.description.clone(),
                photos: hazard.photos.clone(),
                deadline: hazard
                    .suggested_deadline
                    .filter(|deadline| *deadline > report.visited_at),
            }
        })
        .collect();
    let command = EnterpriseCommand::RecordReportedHazards(RecordReportedHazards {
        enterprise_id: report.enterprise_id,
        agency_id,
        report_id,
        found_at: report.visited_at,
        hazards,
    });
    let args = CommandArgs {
        command_id: Some(CommandId::from_uuid(Uuid::new_v5(
            &RELAY_NAMESPACE,
            format!("{report_id}/relay").as_bytes(),
        ))),
        expected_version: None,
    };
    execute_command::<EnterpriseFile>(
        ctx,
        &command,
        args,
        &[],
        ReadBack::BestEffort(anquan_projections::ComplianceProjection::NAME),
    )
    .await?;
    Ok(())
}

/// Reads an agency's free-text category (电气, 消防, …) as the enterprise side's category.
fn category(text: &str) -> HazardCategory {
    let text = text.trim();
    [
        ("电气", HazardCategory::Electrical),
        ("消防", HazardCategory::Fire),
        ("机械", HazardCategory::MachineGuarding),
        ("特种设备", HazardCategory::SpecialEquipment),
        ("危化", HazardCategory::HazardousChemicals),
        ("危险化学品", HazardCategory::HazardousChemicals),
        ("有限空间", HazardCategory::ConfinedSpace),
        ("粉尘", HazardCategory::Dust),
        ("作业环境", HazardCategory::WorkEnvironment),
        ("台账", HazardCategory::Records),
    ]
    .into_iter()
    .find(|(label, _)| text.contains(label))
    .map_or(HazardCategory::Other, |(_, category)| category)
}
