//! Hazard sources over HTTP, on every backend (issue 21): a hazard the enterprise reports
//! itself is closed by its own rectification with a photo, counts toward neither the colour nor
//! the veto while open, and an inspector's failed spot check reopens it; a hazard in an agency's
//! service report enters the enterprise's hazard list with the agency and the report.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::agency_flow::{SIGN, register_agency};
use crate::compliance_flow::register;
use crate::supervision_flow::multipart;
use crate::support::{TestApp, backends, data, error_code};

const RECORD_HAZARD: &str = "mutation($input: RecordHazardInput!) {
  recordHazard(input: $input) { hazardIds } }";
const SUBMIT: &str = "mutation($input: SubmitRectificationInput!, $photos: [Upload!]!) {
  submitRectification(input: $input, photos: $photos) { streamVersion rectificationId } }";
const SPOT_CHECK: &str = "mutation($input: SpotCheckHazardInput!) { spotCheckHazard(input: $input) { streamVersion } }";
const REPORT_STAFF: &str = "mutation($agency: ID!, $halfYear: String!, $staff: [StaffMemberInput!]!) {
  reportAgencyStaff(agencyId: $agency, halfYear: $halfYear, staff: $staff) { eventTypes } }";
const REPORT_SERVICE: &str = "mutation($input: ReportServiceInput!, $file: Upload!) {
  reportService(input: $input, reportFile: $file) { reportId eventTypes } }";
const ENTERPRISE: &str = "query($id: ID!) { enterprise(id: $id) {
  vetoes { kind hazardId }
  hazards { id source state level agencyId reportId pendingConfirmation
    rectifications { selfClosedAt spotCheckDrawn spotCheckPassed spotCheckReason } } } }";

fn hazard<'a>(enterprise: &'a Value, id: &str) -> &'a Value {
    enterprise["enterprise"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hazard| hazard["id"] == id)
        .unwrap_or_else(|| panic!("no hazard {id} in {enterprise}"))
}

async fn read(app: &TestApp, token: &str, id: &str) -> Value {
    data(&app.graphql(Some(token), ENTERPRISE, json!({ "id": id })).await).clone()
}

#[tokio::test]
async fn a_self_reported_hazard_closes_by_the_enterprise_and_a_failed_spot_check_reopens_it() {
    for backend in backends() {
        let app = crate::support::spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);
        let input = json!({ "enterpriseId": id,
            "hazard": { "category": "FIRE", "level": "GENERAL", "description": "消防通道堵塞" } });
        let recorded = app
            .graphql(Some(&owner), RECORD_HAZARD, json!({ "input": input }))
            .await;
        let hazard_id = data(&recorded)["recordHazard"]["hazardIds"][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            read(&app, &admin, &id).await["enterprise"]["vetoes"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        // Without a photo there is no evidence: refused, nothing changes.
        let input = json!({ "enterpriseId": id, "hazardId": hazard_id, "text": "已清理通道" });
        let bare = multipart(&app, &owner, SUBMIT, json!({ "input": input, "photos": [] }), &[]).await;
        assert_eq!(error_code(&bare), "INVALID_FIELD", "{bare}");
        assert_eq!(hazard(&read(&app, &admin, &id).await, &hazard_id)["state"], "OPEN");

        // Nothing to spot-check before the enterprise closed it.
        let check = json!({ "enterpriseId": id, "hazardId": hazard_id, "failedBecause": "通道仍堵塞" });
        let early = app
            .graphql(Some(&inspector), SPOT_CHECK, json!({ "input": check.clone() }))
            .await;
        assert_eq!(error_code(&early), "NOT_SELF_CLOSED");

        // With a photo the enterprise closes it itself: no inspector accepts it.
        let closed = multipart(
            &app,
            &owner,
            SUBMIT,
            json!({ "input": input, "photos": [null] }),
            &[("photos", 1)],
        )
        .await;
        data(&closed);
        let view = read(&app, &admin, &id).await;
        let closed_view = hazard(&view, &hazard_id);
        assert_eq!(closed_view["state"], "CLOSED");
        assert_eq!(closed_view["source"], "SELF_INSPECTION");
        assert!(closed_view["rectifications"][0]["selfClosedAt"].is_string());
        assert!(closed_view["rectifications"][0]["spotCheckDrawn"].is_boolean());

        // The enterprise cannot spot-check itself; an inspector of its town can, and a failed
        // check reopens the hazard.
        let itself = app
            .graphql(Some(&owner), SPOT_CHECK, json!({ "input": check.clone() }))
            .await;
        assert_eq!(error_code(&itself), "FORBIDDEN");
        data(
            &app.graphql(Some(&inspector), SPOT_CHECK, json!({ "input": check.clone() }))
                .await,
        );
        let view = read(&app, &admin, &id).await;
        let reopened = hazard(&view, &hazard_id);
        assert_eq!(reopened["state"], "OPEN");
        assert_eq!(reopened["rectifications"][0]["spotCheckPassed"], false);
        assert_eq!(reopened["rectifications"][0]["spotCheckReason"], "通道仍堵塞");
        // Checked once: a second check of the same closure is refused.
        let again = app
            .graphql(Some(&inspector), SPOT_CHECK, json!({ "input": check }))
            .await;
        assert_eq!(error_code(&again), "NOT_SELF_CLOSED");
    }
}

#[tokio::test]
async fn a_hazard_in_an_agency_report_enters_the_enterprise_hazard_list_with_its_source() {
    for backend in backends() {
        let app = crate::support::spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let agency_id = register_agency(&app, &admin).await;
        let agency = app.token(&["--role", "agency", "--agency", &agency_id]);
        let staff_id = uuid::Uuid::now_v7().to_string();
        let staff = json!([{ "staffId": staff_id, "name": "张伟", "phone": "13900001234",
            "qualifications": [{ "kind": "REGISTERED_SAFETY_ENGINEER", "certificateNumber": "CERT-1" }] }]);
        let half_year = crate::agency_flow::current_half_year();
        let variables = json!({ "agency": agency_id, "halfYear": half_year, "staff": staff });
        data(&app.graphql(Some(&agency), REPORT_STAFF, variables).await);
        let now = Utc::now();
        let contract = json!({ "agencyId": agency_id, "enterpriseId": id,
            "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
            "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 5000 });
        let signed = app.graphql(Some(&agency), SIGN, json!({ "input": contract })).await;
        let contract_id = data(&signed)["proposeContract"]["contractId"]
            .as_str()
            .unwrap()
            .to_owned();
        crate::contracts::confirm_and_file(&app, &agency_id, &contract_id, &id, "许村", None).await;
        let input = json!({ "agencyId": agency_id, "contractId": contract_id, "visitedAt": now - Duration::hours(1),
            "staffIds": [staff_id], "findings": "配电箱未接地；喷漆间无可燃气体报警",
            "hazards": [
                { "category": "电气", "level": "GENERAL", "description": "配电箱未接地" },
                { "category": "危化", "level": "MAJOR", "description": "喷漆间未设可燃气体报警装置" },
            ] });
        let command_id = uuid::Uuid::now_v7().to_string();
        let (status, reported) = app
            .graphql_upload(
                &agency,
                &REPORT_SERVICE.replace(
                    "reportFile: $file)",
                    &format!("reportFile: $file, commandId: \"{command_id}\")"),
                ),
                json!({ "input": input, "file": null }),
                b"%PDF-1.4 report".to_vec(),
            )
            .await;
        assert_eq!(status, 200, "{reported}");
        let report_id = data(&reported)["reportService"]["reportId"]
            .as_str()
            .unwrap()
            .to_owned();

        let view = read(&app, &admin, &id).await;
        let hazards: Vec<&Value> = view["enterprise"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|hazard| hazard["source"] == "AGENCY_SERVICE")
            .collect();
        assert_eq!(hazards.len(), 2, "{view}");
        for hazard in &hazards {
            assert_eq!(hazard["agencyId"], agency_id.as_str());
            assert_eq!(hazard["reportId"], report_id.as_str());
            assert_eq!(hazard["state"], "OPEN");
        }
        // The agency's major hazard cites no catalogue item: pending an official's confirmation,
        // so it is no veto yet.
        let major = hazards.iter().find(|hazard| hazard["level"] == "MAJOR").unwrap();
        assert_eq!(major["pendingConfirmation"], true);
        assert!(view["enterprise"]["vetoes"].as_array().unwrap().is_empty(), "{view}");

        // A retry with the same commandId relays nothing twice.
        let (status, again) = app
            .graphql_upload(
                &agency,
                &REPORT_SERVICE.replace(
                    "reportFile: $file)",
                    &format!("reportFile: $file, commandId: \"{command_id}\")"),
                ),
                json!({ "input": input, "file": null }),
                b"%PDF-1.4 report".to_vec(),
            )
            .await;
        assert_eq!(status, 200, "{again}");
        let view = read(&app, &admin, &id).await;
        let count = view["enterprise"]["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|hazard| hazard["source"] == "AGENCY_SERVICE")
            .count();
        assert_eq!(count, 2);
    }
}
