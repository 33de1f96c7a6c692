//! Listed supervision of major hazards (挂牌督办) over HTTP, on every backend: the city lists a
//! major hazard of a 许村 enterprise, the town officer reports progress, an inspector verifies
//! the remediation, the town applies to lift the listing and the city lifts it. While listed the
//! hazard vetoes and keeps the enterprise red even once verified; after the lift it does not.
//! Refusals: a general hazard, a town officer listing, another town's officer reporting, a lift
//! requested before the hazard is closed, a lift before it was requested.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::supervision_flow::multipart;
use crate::support::{TestApp, backends, data, error_code};

const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { streamVersion hazardIds } }";
const SUBMIT: &str = "mutation($input: SubmitRectificationInput!, $photos: [Upload!]!) {
  submitRectification(input: $input, photos: $photos) { streamVersion rectificationId } }";
const VERIFY: &str = "mutation($input: VerifyRectificationInput!) {
  verifyRectification(input: $input) { streamVersion } }";
const LIST: &str = "mutation($input: ListHazardInput!) {
  listHazard(input: $input) { streamVersion hazardIds } }";
const PROGRESS: &str = "mutation($input: ReportListingProgressInput!, $files: [Upload!]!) {
  reportListingProgress(input: $input, files: $files) { streamVersion } }";
const REQUEST_LIFT: &str = "mutation($input: RequestListingLiftInput!) {
  requestListingLift(input: $input) { streamVersion } }";
const LIFT: &str = "mutation($input: LiftHazardListingInput!) {
  liftHazardListing(input: $input) { streamVersion } }";
const ENTERPRISE: &str = "query($id: ID!) { enterprise(id: $id) {
  risk { colour rule }
  vetoes { kind hazardId }
  hazards { id state listing { state documentNumber productionSuspended overdue progress { text files { sha256 } }
    liftRequest reviewDue reviewOverdue liftedAt liftNote } } } }";
const LISTED: &str = "query($town: String, $state: ListingSelection, $asOf: DateTime) {
  listedHazards(town: $town, state: $state, asOf: $asOf) { nodes { id town enterpriseName listing { state } } } }";

fn hazard<'a>(enterprise: &'a Value, id: &str) -> &'a Value {
    enterprise["enterprise"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hazard| hazard["id"] == id)
        .unwrap()
}

fn vetoes(enterprise: &Value) -> Vec<String> {
    enterprise["enterprise"]["vetoes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|veto| veto["kind"] == "OPEN_MAJOR_HAZARD")
        .map(|veto| veto["hazardId"].as_str().unwrap().to_owned())
        .collect()
}

fn listed_ids(response: &Value) -> Vec<String> {
    data(response)["listedHazards"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn enterprise(app: &TestApp, token: &str, id: &str) -> Value {
    data(&app.graphql(Some(token), ENTERPRISE, json!({ "id": id })).await).clone()
}

#[tokio::test]
async fn the_city_lists_a_major_hazard_the_town_follows_it_up_and_the_listing_keeps_the_veto_until_lifted() {
    for backend in backends() {
        let app = crate::support::spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
        let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
        let other_officer = app.token(&["--role", "town_officer", "--town", "长安"]);
        let auditor = app.token(&["--role", "auditor"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let elsewhere = register(&app, &admin, "91330100799655058B", "长安").await;
        let owner = app.token(&["--role", "enterprise", "--enterprise", &id]);

        let inspected_at = Utc::now().trunc_subsecs(6) - Duration::minutes(1);
        let input = json!({
            "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": inspected_at, "inspectors": ["王检查"],
            "hazards": [
                { "category": "DUST", "level": "MAJOR", "description": "纺纱车间积尘严重，未落实清理制度",
                  "criterionCatalogue": "mem10_2023", "criterionItem": "dust-10" },
                { "category": "FIRE", "level": "GENERAL", "description": "灭火器过期" },
            ]
        });
        let recorded = multipart(
            &app,
            &inspector,
            RECORD_INSPECTION,
            json!({ "input": input, "documents": [], "photos": [] }),
            &[],
        )
        .await;
        let ids = data(&recorded)["recordInspection"]["hazardIds"]
            .as_array()
            .unwrap()
            .clone();
        let (major, general) = (ids[0].as_str().unwrap(), ids[1].as_str().unwrap());

        let list = |hazard_id: &str| {
            json!({ "input": { "enterpriseId": id, "hazardId": hazard_id,
                               "documentNumber": "海应急督〔2026〕3号",
                               "deadline": Utc::now() + Duration::days(60),
                               "productionSuspended": true } })
        };
        // Only the city lists, and only a major hazard.
        assert_eq!(
            error_code(&app.graphql(Some(&officer), LIST, list(major)).await),
            "FORBIDDEN"
        );
        assert_eq!(
            error_code(&app.graphql(Some(&admin), LIST, list(general)).await),
            "NOT_MAJOR_HAZARD"
        );
        let listed = app.graphql(Some(&admin), LIST, list(major)).await;
        assert_eq!(data(&listed)["listHazard"]["hazardIds"][0], major);
        assert_eq!(
            error_code(&app.graphql(Some(&admin), LIST, list(major)).await),
            "ALREADY_LISTED"
        );

        // The town officer of 许村 reports progress with evidence; 长安's may not.
        let progress =
            |text: &str| json!({ "input": { "enterpriseId": id, "hazardId": major, "text": text }, "files": [null] });
        let reported = multipart(
            &app,
            &officer,
            PROGRESS,
            progress("除尘系统改造已完成一半"),
            &[("files", 1)],
        )
        .await;
        assert!(
            data(&reported)["reportListingProgress"]["streamVersion"].is_string(),
            "{reported}"
        );
        let refused = multipart(&app, &other_officer, PROGRESS, progress("越权"), &[("files", 1)]).await;
        assert_eq!(error_code(&refused), "FORBIDDEN");

        // No lift before the remediation is verified, and no lift before a request.
        let request = json!({ "input": { "enterpriseId": id, "hazardId": major,
                                         "text": "整改完成，经评估合格，申请摘牌复产" } });
        let lift = json!({ "input": { "enterpriseId": id, "hazardId": major, "note": "现场核查合格" } });
        assert_eq!(
            error_code(&app.graphql(Some(&officer), REQUEST_LIFT, request.clone()).await),
            "HAZARD_NOT_CLOSED"
        );
        assert_eq!(
            error_code(&app.graphql(Some(&admin), LIFT, lift.clone()).await),
            "LIFT_NOT_REQUESTED"
        );

        let while_listed = enterprise(&app, &admin, &id).await;
        let view = &hazard(&while_listed, major)["listing"];
        assert_eq!(view["state"], "LISTED");
        assert_eq!(view["documentNumber"], "海应急督〔2026〕3号");
        assert_eq!(view["productionSuspended"], true);
        assert_eq!(view["overdue"], false);
        assert_eq!(view["progress"][0]["text"], "除尘系统改造已完成一半");
        assert_eq!(view["progress"][0]["files"].as_array().unwrap().len(), 1);
        assert_eq!(hazard(&while_listed, general)["listing"], Value::Null);

        // The town's list: 许村's officer sees the listing; 长安's sees none; auditors read it.
        assert_eq!(
            listed_ids(&app.graphql(Some(&officer), LISTED, json!({})).await),
            vec![major]
        );
        assert!(listed_ids(&app.graphql(Some(&other_officer), LISTED, json!({})).await).is_empty());
        assert_eq!(
            error_code(
                &app.graphql(Some(&other_officer), LISTED, json!({ "town": "许村" }))
                    .await
            ),
            "FORBIDDEN"
        );
        let audited = app
            .graphql(Some(&auditor), LISTED, json!({ "state": "IN_FORCE" }))
            .await;
        assert_eq!(listed_ids(&audited), vec![major]);
        assert_eq!(data(&audited)["listedHazards"]["nodes"][0]["town"], "许村");

        // The inspector verifies the remediation: the hazard is closed, but the listing still
        // counts as an open major hazard (veto, red) until the city lifts it.
        let submitted = multipart(
            &app,
            &owner,
            SUBMIT,
            json!({ "input": { "enterpriseId": id, "hazardId": major, "text": "已改造除尘系统" }, "photos": [null] }),
            &[("photos", 1)],
        )
        .await;
        let rectification = data(&submitted)["submitRectification"]["rectificationId"].clone();
        let verified = app
            .graphql(
                Some(&inspector),
                VERIFY,
                json!({ "input": { "enterpriseId": id, "hazardId": major, "rectificationId": rectification,
                                   "decision": "ACCEPT" } }),
            )
            .await;
        assert!(
            data(&verified)["verifyRectification"]["streamVersion"].is_string(),
            "{verified}"
        );
        let verified = enterprise(&app, &admin, &id).await;
        assert_eq!(hazard(&verified, major)["state"], "CLOSED");
        assert_eq!(vetoes(&verified), vec![major]);
        assert_eq!(verified["enterprise"]["risk"]["colour"], "RED");
        assert_eq!(verified["enterprise"]["risk"]["rule"], "open_major_hazard");

        // The town applies; the review is due within 10 days and overdue after them.
        let requested = app.graphql(Some(&officer), REQUEST_LIFT, request.clone()).await;
        assert!(
            data(&requested)["requestListingLift"]["streamVersion"].is_string(),
            "{requested}"
        );
        assert_eq!(
            error_code(&app.graphql(Some(&officer), REQUEST_LIFT, request).await),
            "LIFT_ALREADY_REQUESTED"
        );
        let pending = enterprise(&app, &admin, &id).await;
        let view = &hazard(&pending, major)["listing"];
        assert_eq!(view["state"], "LIFT_REQUESTED");
        assert_eq!(view["reviewOverdue"], false);
        assert!(view["reviewDue"].is_string(), "{view}");
        let later = Utc::now() + Duration::days(11);
        let overdue = app
            .graphql(
                Some(&officer),
                LISTED,
                json!({ "state": "REVIEW_OVERDUE", "asOf": later }),
            )
            .await;
        assert_eq!(listed_ids(&overdue), vec![major]);
        let not_yet = app
            .graphql(Some(&officer), LISTED, json!({ "state": "REVIEW_OVERDUE" }))
            .await;
        assert!(listed_ids(&not_yet).is_empty());

        // Only the city lifts; then the veto and the red go, and the list shows it lifted.
        assert_eq!(
            error_code(&app.graphql(Some(&officer), LIFT, lift.clone()).await),
            "FORBIDDEN"
        );
        let lifted = app.graphql(Some(&admin), LIFT, lift.clone()).await;
        assert!(
            data(&lifted)["liftHazardListing"]["streamVersion"].is_string(),
            "{lifted}"
        );
        assert_eq!(error_code(&app.graphql(Some(&admin), LIFT, lift).await), "NOT_LISTED");
        let after = enterprise(&app, &admin, &id).await;
        assert!(vetoes(&after).is_empty(), "{after}");
        assert_ne!(after["enterprise"]["risk"]["colour"], "RED");
        let view = &hazard(&after, major)["listing"];
        assert_eq!(view["state"], "LIFTED");
        assert_eq!(view["liftNote"], "现场核查合格");
        let in_force = app
            .graphql(Some(&officer), LISTED, json!({ "state": "IN_FORCE" }))
            .await;
        assert!(listed_ids(&in_force).is_empty());
        let lifted = app.graphql(Some(&officer), LISTED, json!({ "state": "LIFTED" })).await;
        assert_eq!(listed_ids(&lifted), vec![major]);
        // Another town's enterprise was never touched.
        assert!(hazard_ids(&enterprise(&app, &admin, &elsewhere).await).is_empty());
    }
}

fn hazard_ids(enterprise: &Value) -> Vec<String> {
    enterprise["enterprise"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hazard| hazard["id"].as_str().unwrap().to_owned())
        .collect()
}
