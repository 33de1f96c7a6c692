//! The service gate over HTTP: the city registers an agency, the agency reports its staff and
//! proposes a contract to a registered enterprise (confirmed, filed by the town), reports a visit, the enterprise rates it, the
//! city grades the half-year; a blacklisted agency's contract is refused with a stable code, and
//! the public directory without a token shows no private field.

use chrono::{Datelike, Duration, FixedOffset, Utc};
use serde_json::{Value, json};

use crate::compliance_flow::register;
use crate::support::{Backend, TestApp, backends, data, error_code, spawn_app};

const REGISTER_AGENCY: &str = "mutation($profile: AgencyProfileInput!) {
  registerAgency(profile: $profile) { agencyId eventTypes } }";
const REPORT_STAFF: &str = "mutation($agency: ID!, $halfYear: String!, $staff: [StaffMemberInput!]!) {
  reportAgencyStaff(agencyId: $agency, halfYear: $halfYear, staff: $staff) { eventTypes } }";
pub(crate) const SIGN: &str =
    "mutation($input: ProposeContractInput!) { proposeContract(input: $input) { contractId eventTypes } }";
const REPORT_SERVICE: &str = "mutation($input: ReportServiceInput!, $file: Upload!) {
  reportService(input: $input, reportFile: $file) { reportId eventTypes } }";
const RATE: &str = "mutation($agency: ID!, $report: ID!, $stars: Int!) {
  rateService(agencyId: $agency, reportId: $report, stars: $stars, comment: \"认真负责\") { eventTypes } }";
const GRADE: &str = "mutation($input: GradeAgencyInput!) { gradeAgency(input: $input) {
  eventTypes grade { halfYear grade provisional notGradedReason computedGrade computedScore evidencePoints
  components { component points maxPoints evidence } } } }";
const SPOT_CHECK: &str = "mutation($agency: ID!, $report: ID!) {
  spotCheckServiceReport(agencyId: $agency, reportId: $report, qualified: true) { eventTypes } }";
const BLACKLIST: &str = "mutation($agency: ID!) {
  setAgencyBlacklisted(agencyId: $agency, blacklisted: true, reason: \"出具虚假报告\") { eventTypes } }";
const SERVICES: &str = "query($id: ID!) { enterpriseServices(enterpriseId: $id) {
  contracts { id feeYuan feeCheck feeFlagged } reports { id stars onTime staffIds hazards { index level } } } }";
const COVERAGE: &str = "query { serviceCoverage { enterprisesCovered enterpriseIds } }";
const DIRECTORY: &str = "query { agencyDirectory(includeBlacklisted: true) {
  id name serviceScope feeBand { minYuan maxYuan } latestGrade { halfYear grade } blacklisted
  statistics { year enterprisesServed services ratings totalStars averageStars } } }";
const PUBLIC_AGENCY: &str = "query($id: ID!) { publicAgency(id: $id) {
  name licence serviceStandards staff { id name qualifications } statistics { services totalStars } grades { halfYear grade } } }";
const PRIVATE_AGENCY: &str = "query($id: ID!) { agency(id: $id) {
  contactPhone staff { name phone qualifications { kind certificateNumber } } staffReports { halfYear late } } }";

const CERTIFICATE: &str = "CERT-SECRET-0001";
const STAFF_PHONE: &str = "13900001234";
const AGENCY_PHONE: &str = "0573-87001234";

#[tokio::test]
async fn an_agency_serves_an_enterprise_is_rated_and_graded_and_the_public_sees_no_private_field() {
    for backend in backends() {
        run_flow(backend).await;
    }
}

pub(crate) fn current_half_year() -> String {
    let local = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    format!("{}-H{}", local.year(), if local.month() <= 6 { 1 } else { 2 })
}

async fn ok(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let response = app.graphql(token, query, variables).await;
    data(&response).clone()
}

/// Registers the agency 海宁市安信安全技术服务有限公司 (fee band 3,000-12,000 yuan); returns its id.
pub(crate) async fn register_agency(app: &TestApp, admin: &str) -> String {
    let profile = json!({
        "name": "海宁市安信安全技术服务有限公司", "licence": "APJ-(浙)-001", "serviceScope": ["安全管家", "隐患排查"],
        "serviceStandards": "每季度上门一次，七日内出具报告", "feeBand": { "minYuan": 3000, "maxYuan": 12000 },
        "contactPhone": AGENCY_PHONE
    });
    let registered = ok(app, Some(admin), REGISTER_AGENCY, json!({ "profile": profile })).await;
    registered["registerAgency"]["agencyId"].as_str().unwrap().to_owned()
}

async fn run_flow(backend: Backend) {
    let app = spawn_app(backend, &[]).await;
    let admin = app.token(&["--role", "city_admin"]);
    let enterprise_id = register(&app, &admin, "91330481MA28A0XX07", "许村").await;
    let owner = app.token(&["--role", "enterprise", "--enterprise", &enterprise_id]);

    let agency_id = register_agency(&app, &admin).await;
    let agency = app.token(&["--role", "agency", "--agency", &agency_id]);

    // The agency reports its staff for the current half-year.
    let staff_id = uuid::Uuid::now_v7().to_string();
    let staff = json!([{ "staffId": staff_id, "name": "张伟", "phone": STAFF_PHONE,
        "qualifications": [{ "kind": "REGISTERED_SAFETY_ENGINEER", "certificateNumber": CERTIFICATE }] }]);
    let variables = json!({ "agency": agency_id, "halfYear": current_half_year(), "staff": staff });
    ok(&app, Some(&agency), REPORT_STAFF, variables).await;

    // A contract below the published band is recorded and flagged.
    let now = Utc::now();
    let contract = json!({ "agencyId": agency_id, "enterpriseId": enterprise_id,
        "validFrom": now - Duration::days(1), "validUntil": now + Duration::days(365),
        "services": ["安全管家"], "visitsPromised": 4, "feeYuan": 2000 });
    let signed = ok(&app, Some(&agency), SIGN, json!({ "input": contract })).await;
    let contract_id = signed["proposeContract"]["contractId"].as_str().unwrap().to_owned();
    // The enterprise confirms; the town files it, with a reason as the fee is below the band.
    crate::contracts::confirm_and_file(&app, &agency_id, &contract_id, &enterprise_id, "许村", Some("首年优惠")).await;

    // An unregistered enterprise cannot be signed with.
    let mut stranger = contract.clone();
    stranger["enterpriseId"] = json!(uuid::Uuid::now_v7().to_string());
    let refused = app.graphql(Some(&agency), SIGN, json!({ "input": stranger })).await;
    assert_eq!(error_code(&refused), "UNKNOWN_ENTERPRISE");

    // The visit, with one hazard, and its report file.
    let input = json!({ "agencyId": agency_id, "contractId": contract_id, "visitedAt": now - Duration::hours(1),
        "staffIds": [staff_id], "findings": "配电箱未接地",
        "hazards": [{ "category": "电气", "level": "GENERAL", "description": "配电箱未接地" }] });
    let (status, reported) = app
        .graphql_upload(
            &agency,
            REPORT_SERVICE,
            json!({ "input": input, "file": null }),
            b"%PDF-1.4 report".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{reported}");
    let report_id = data(&reported)["reportService"]["reportId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Only the served enterprise rates, once, 1 to 5 stars.
    let rate = |stars: i64| json!({ "agency": agency_id, "report": report_id, "stars": stars });
    assert_eq!(
        error_code(&app.graphql(Some(&owner), RATE, rate(6)).await),
        "STARS_OUT_OF_RANGE"
    );
    assert_eq!(
        error_code(&app.graphql(Some(&agency), RATE, rate(5)).await),
        "FORBIDDEN"
    );
    ok(&app, Some(&owner), RATE, rate(5)).await;
    assert_eq!(
        error_code(&app.graphql(Some(&owner), RATE, rate(4)).await),
        "ALREADY_RATED"
    );

    let services = ok(&app, Some(&owner), SERVICES, json!({ "id": enterprise_id })).await;
    let services = &services["enterpriseServices"];
    assert_eq!(services["contracts"][0]["feeCheck"], "BELOW_BAND");
    assert_eq!(services["contracts"][0]["feeFlagged"], true);
    assert_eq!(services["reports"][0]["stars"], 5);
    assert_eq!(services["reports"][0]["onTime"], true);
    assert_eq!(services["reports"][0]["hazards"][0]["index"], 0);
    let coverage = ok(&app, Some(&admin), COVERAGE, json!({})).await;
    assert_eq!(coverage["serviceCoverage"]["enterprisesCovered"], 1);

    // One visit is too little activity to grade (issue #21: idleness earns nothing): the city
    // may not give it A or B, only "not graded" with the reason; before the half-year ends the
    // grade is provisional.
    let half_year = current_half_year();
    let refused = app
        .graphql(
            Some(&admin),
            GRADE,
            json!({ "input": { "agencyId": agency_id, "halfYear": half_year, "grade": "B", "reason": "表现良好" } }),
        )
        .await;
    assert_eq!(error_code(&refused), "NOT_GRADABLE");
    let grade = json!({ "agencyId": agency_id, "halfYear": half_year, "grade": null });
    let graded = ok(&app, Some(&admin), GRADE, json!({ "input": grade })).await;
    let graded = &graded["gradeAgency"];
    assert_eq!(graded["eventTypes"], json!(["CreditGraded"]));
    assert_eq!(graded["grade"]["grade"], Value::Null, "{graded}");
    assert_eq!(graded["grade"]["computedGrade"], Value::Null, "{graded}");
    assert_eq!(graded["grade"]["provisional"], true);
    assert_eq!(
        graded["grade"]["notGradedReason"],
        "未评级：该半年度服务报告 1 份，少于 2 份"
    );
    assert_eq!(graded["grade"]["components"].as_array().unwrap().len(), 6);

    // A second visit, rated, and a qualified spot check: graded by its record. Ratings 30 (two
    // five-star), report quality 25, hazard findings 10, the contract outside the band 0, staff 7
    // (the registry's 3 only if on time); timeliness has no evidence yet (no visit is due a day
    // into a year's contract): 72 or 75 of 85 points, scaled to 100, is B.
    let input = json!({ "agencyId": agency_id, "contractId": contract_id, "visitedAt": Utc::now() - Duration::minutes(30),
        "staffIds": [staff_id], "findings": "消防通道畅通", "hazards": [] });
    let (status, reported) = app
        .graphql_upload(
            &agency,
            REPORT_SERVICE,
            json!({ "input": input, "file": null }),
            b"%PDF-1.4 second report".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{reported}");
    let second = data(&reported)["reportService"]["reportId"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &app,
        Some(&owner),
        RATE,
        json!({ "agency": agency_id, "report": second, "stars": 5 }),
    )
    .await;
    ok(
        &app,
        Some(&admin),
        SPOT_CHECK,
        json!({ "agency": agency_id, "report": report_id }),
    )
    .await;
    let grade = json!({ "agencyId": agency_id, "halfYear": half_year, "grade": "B" });
    let graded = ok(&app, Some(&admin), GRADE, json!({ "input": grade })).await;
    let graded = &graded["gradeAgency"]["grade"];
    assert_eq!(graded["computedGrade"], "B", "{graded}");
    assert_eq!(graded["grade"], "B");
    assert_eq!(graded["provisional"], true);
    assert_eq!(graded["evidencePoints"], 85);

    // The public directory and page, without a token: the facts, no private field.
    let directory = ok(&app, None, DIRECTORY, json!({})).await;
    let listing = &directory["agencyDirectory"][0];
    assert_eq!(listing["id"], agency_id);
    // A provisional grade is not public.
    assert_eq!(listing["latestGrade"], Value::Null);
    assert_eq!(listing["statistics"]["services"], 2);
    assert_eq!(listing["statistics"]["totalStars"], 10);
    assert_eq!(listing["statistics"]["enterprisesServed"], 1);
    let page = ok(&app, None, PUBLIC_AGENCY, json!({ "id": agency_id })).await;
    assert_eq!(
        page["publicAgency"]["staff"][0]["qualifications"],
        json!(["REGISTERED_SAFETY_ENGINEER"])
    );
    for public in [directory.to_string(), page.to_string()] {
        for secret in [CERTIFICATE, STAFF_PHONE, AGENCY_PHONE] {
            assert!(!public.contains(secret), "{secret} leaked: {public}");
        }
    }
    let private = app.graphql(None, PRIVATE_AGENCY, json!({ "id": agency_id })).await;
    assert_eq!(error_code(&private), "UNAUTHENTICATED");
    let private = app
        .graphql(Some(&owner), PRIVATE_AGENCY, json!({ "id": agency_id }))
        .await;
    assert_eq!(error_code(&private), "FORBIDDEN");
    let private = ok(&app, Some(&agency), PRIVATE_AGENCY, json!({ "id": agency_id })).await;
    assert_eq!(
        private["agency"]["staff"][0]["qualifications"][0]["certificateNumber"],
        CERTIFICATE
    );

    // A blacklisted agency cannot sign.
    ok(&app, Some(&admin), BLACKLIST, json!({ "agency": agency_id })).await;
    let refused = app.graphql(Some(&agency), SIGN, json!({ "input": contract })).await;
    assert_eq!(error_code(&refused), "AGENCY_BLACKLISTED");
    let directory = ok(&app, None, "query { agencyDirectory { id } }", json!({})).await;
    assert_eq!(directory["agencyDirectory"], json!([]));

    app.stop().await;
}
