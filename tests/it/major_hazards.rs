//! Major hazards under the 2023 catalogue over HTTP, on every backend: a textile enterprise
//! (a 家纺 company of 许村) gets a major hazard citing an item of 应急管理部令第10号 (a veto at
//! once) and one on a free-text basis, because 第九条 (textile) is not transcribed: that one is
//! "major, pending confirmation" and counts as general until the town officer confirms it;
//! then both veto.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::supervision_flow::multipart;
use crate::support::{backends, data, error_code};

const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { streamVersion hazardIds } }";
const CONFIRM: &str = "mutation($input: ConfirmMajorHazardInput!) {
  confirmMajorHazard(input: $input) { streamVersion } }";
const ENTERPRISE: &str = "query($id: ID!) { enterprise(id: $id) {
  risk { colour rule }
  vetoes { kind hazardId }
  hazards { id level criterionCatalogue criterionItem criterionText basis pendingConfirmation basisConfirmedAt } } }";

fn hazard<'a>(enterprise: &'a Value, id: &str) -> &'a Value {
    enterprise["enterprise"]["hazards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hazard| hazard["id"] == id)
        .unwrap()
}

fn vetoed(enterprise: &Value) -> Vec<String> {
    let mut ids: Vec<String> = enterprise["enterprise"]["vetoes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|veto| veto["kind"] == "OPEN_MAJOR_HAZARD")
        .map(|veto| veto["hazardId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn a_textile_enterprise_gets_major_hazards_under_the_2023_catalogue_and_a_free_text_one_counts_once_confirmed() {
    for backend in backends() {
        let app = crate::support::spawn_app(backend, &[]).await;
        let admin = app.token(&["--role", "city_admin"]);
        let inspector = app.token(&["--role", "town_inspector", "--town", "许村"]);
        let officer = app.token(&["--role", "town_officer", "--town", "许村"]);
        let id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
        let inspected_at = Utc::now().trunc_subsecs(6) - Duration::minutes(1);
        let basis = "定型机导热油炉与生产车间未分隔（应急管理部令第10号第九条，平台判定标准未收录该条原文）";
        let input = json!({
            "enterpriseId": id, "kind": "ON_SITE", "inspectedAt": inspected_at, "inspectors": ["王检查"],
            "hazards": [
                { "category": "DUST", "level": "MAJOR", "description": "纺纱车间积尘严重，未落实清理制度",
                  "criterionCatalogue": "mem10_2023", "criterionItem": "dust-10" },
                { "category": "FIRE", "level": "MAJOR", "description": "定型机导热油炉设在车间内", "basis": basis },
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
        let (cited, free_text) = (ids[0].as_str().unwrap(), ids[1].as_str().unwrap());

        let before = data(&app.graphql(Some(&admin), ENTERPRISE, json!({ "id": id })).await).clone();
        let cited_view = hazard(&before, cited);
        assert_eq!(cited_view["criterionItem"], "dust-10");
        assert_eq!(cited_view["criterionText"], "未落实粉尘清理制度，造成作业现场积尘严重");
        assert_eq!(cited_view["pendingConfirmation"], false);
        let pending = hazard(&before, free_text);
        assert_eq!(pending["level"], "MAJOR");
        assert_eq!(pending["basis"], basis);
        assert_eq!(pending["pendingConfirmation"], true);
        assert_eq!(pending["basisConfirmedAt"], Value::Null);
        // Only the cited hazard vetoes; red either way (the cited one is an open major hazard).
        assert_eq!(vetoed(&before), vec![cited.to_owned()]);
        assert_eq!(before["enterprise"]["risk"]["colour"], "RED");

        // The inspector who recorded it may not confirm it; the town officer may.
        let confirm = json!({ "input": { "enterpriseId": id, "hazardId": free_text,
                                         "note": "经核对第九条原文，确认为重大事故隐患" } });
        let refused = app.graphql(Some(&inspector), CONFIRM, confirm.clone()).await;
        assert_eq!(error_code(&refused), "FORBIDDEN");
        let confirmed = app.graphql(Some(&officer), CONFIRM, confirm.clone()).await;
        assert!(
            data(&confirmed)["confirmMajorHazard"]["streamVersion"].is_string(),
            "{confirmed}"
        );
        let twice = app.graphql(Some(&officer), CONFIRM, confirm).await;
        assert_eq!(error_code(&twice), "NOT_PENDING_CONFIRMATION");

        let after = data(&app.graphql(Some(&admin), ENTERPRISE, json!({ "id": id })).await).clone();
        let now_major = hazard(&after, free_text);
        assert_eq!(now_major["pendingConfirmation"], false);
        assert!(now_major["basisConfirmedAt"].is_string(), "{now_major}");
        let mut both = vec![cited.to_owned(), free_text.to_owned()];
        both.sort_unstable();
        assert_eq!(vetoed(&after), both);
    }
}
