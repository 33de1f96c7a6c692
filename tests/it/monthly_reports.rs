//! Monthly town reports over a year on the test clock: the service issues each month's report
//! after the month ends (Asia/Shanghai), the January to December reports read back over GraphQL
//! agree with a count of what the test drove, with the metrics recomputed at each month's end
//! with the same rules, and with the brute-force oracle of the metrics over the exported log;
//! a correction is a new version beside the first, and the CSV, XLSX and printable HTML downloads carry the same figures (the XLSX parsed back with calamine, the page
//! opened and printed in headless Chromium).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::{Value, json};

use anquan_domain::Event;
use anquan_domain::metrics::Scope;

use crate::browser::{Browser, Viewport};
use crate::compliance_flow::{register, review, upload};
use crate::supervision_flow::multipart;
use crate::support::{TestApp, backends, binary, data, spawn_app_with_env};

/// The brute-force oracle of `crates/anquan-projections/tests/metrics_oracle.rs`: every metric
/// computed directly over the raw events, sharing no code with the metric computations.
#[path = "../../crates/anquan-projections/tests/oracle/mod.rs"]
mod oracle;

const YEAR: i32 = 2027;
const REPORT: &str = "query($month: String!, $town: String, $version: Int64) {
  monthlyReport(month: $month, town: $town, version: $version) {
    month version versions reason at issuedAt ruleSet ruleSetDigest town
    metrics { code nameZh value numerator denominator previousValue monthOverMonth yearAgoValue yearOverYear }
    colours { red orange yellow blue }
    rankings { code towns { rank town value } }
  } }";
const RECORD_INSPECTION: &str =
    "mutation($input: RecordInspectionInput!, $documents: [Upload!]!, $photos: [Upload!]!) {
  recordInspection(input: $input, documents: $documents, photos: $photos) { hazardIds } }";
const TOWN_METRICS: &str = "query($town: String!, $at: DateTime!) {
  townMetrics(town: $town, asOf: $at) { ruleSet ruleSetDigest metrics { code value numerator denominator } } }";

fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Local 10:00 on the 5th of a month of `YEAR` (month 13: January of the next year).
fn fifth_of(month: u32) -> DateTime<Utc> {
    let (year, month) = if month == 13 { (YEAR + 1, 1) } else { (YEAR, month) };
    shanghai().with_ymd_and_hms(year, month, 5, 10, 0, 0).unwrap().to_utc()
}

fn set_clock(clock: &std::path::Path, to: DateTime<Utc>) {
    let offset = (to - Utc::now()).num_seconds();
    std::fs::write(clock, offset.to_string()).unwrap();
}

/// The month's end: the first instant of the next month, local time (the report's instant).
fn month_end(month: u32) -> DateTime<Utc> {
    let (year, month) = if month == 12 { (YEAR + 1, 1) } else { (YEAR, month + 1) };
    shanghai().with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap().to_utc()
}

/// The enterprises' streams as the auditors' export gives them (`anquan export enterprise`),
/// decoded: the raw log the oracle walks.
fn exported_log(app: &TestApp, enterprise_ids: &[String]) -> oracle::Log {
    let out = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    for id in enterprise_ids {
        let dir = out.path().join(id);
        let mut command = std::process::Command::new(binary());
        command
            .args(["export", "enterprise", id, "--out"])
            .arg(&dir)
            .arg("--data-dir")
            .arg(app.data_dir())
            .env_remove("ANQUAN_DATABASE_URL");
        if let Some(url) = app.database_url() {
            command.arg("--database").arg(url);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        for line in std::fs::read_to_string(dir.join("events.jsonl")).unwrap().lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            let event = &line["event"];
            let decoded = Event::decode(
                event["event_type"].as_str().unwrap(),
                u32::try_from(event["schema_version"].as_u64().unwrap()).unwrap(),
                event["data"].as_str().unwrap(),
            )
            .unwrap();
            log.push((event["stream_id"].as_str().unwrap().to_owned(), decoded));
        }
    }
    log
}

/// A report's summed numerator or denominator (a `Float` holding a whole number) as an integer.
#[allow(clippy::cast_possible_truncation, reason = "checked whole and small just before")]
fn integer(value: &Value) -> i64 {
    let number = value.as_f64().unwrap();
    assert!(number.fract() == 0.0 && number.abs() < 1e15, "{value}");
    number as i64
}

async fn report(app: &TestApp, token: &str, month: &str, town: Option<&str>) -> Value {
    let response = app
        .graphql(Some(token), REPORT, json!({ "month": month, "town": town }))
        .await;
    data(&response)["monthlyReport"].clone()
}

/// Waits for the service to issue `month`'s report.
async fn wait_for_report(app: &TestApp, token: &str, month: &str) -> Value {
    for _ in 0..300 {
        let report = report(app, token, month, None).await;
        if !report.is_null() {
            return report;
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    panic!("the report of {month} was not issued within a minute");
}

fn figure<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|metric| metric["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_monthly_reports_is_issued_frozen_and_downloadable() {
    for backend in backends() {
        let clock_dir = tempfile::tempdir().unwrap();
        let clock = clock_dir.path().join("clock");
        set_clock(&clock, fifth_of(1));
        let clock_env = clock.to_str().unwrap().to_owned();
        let app = spawn_app_with_env(
            backend,
            &[],
            &[("ANQUAN_TEST_CLOCK", &clock_env), ("ANQUAN_TEST_MODE", "1")],
        )
        .await;
        let admin = app.token(&["--role", "city_admin"]);
        let inspector = app.token(&["--role", "city_inspector"]);

        // Enterprises join over the year; each month one of them files an approved plan.
        let joining: BTreeMap<u32, Vec<(&str, &str)>> = BTreeMap::from([
            (1, vec![("91330481MA28A0XX07", "许村"), ("91330481MA2D000017", "长安")]),
            (3, vec![("91330481MA2D00005K", "许村")]),
            (7, vec![("91330481MA2D00004G", "长安")]),
        ]);
        let mut enterprises: Vec<(String, &str)> = Vec::new();
        let mut expected_a01: BTreeMap<u32, BTreeMap<&str, i64>> = BTreeMap::new();
        for month in 1..=12u32 {
            for (code, town) in joining.get(&month).into_iter().flatten() {
                enterprises.push((register(&app, &admin, code, town).await, town));
            }
            let (id, _) = &enterprises[usize::try_from(month).unwrap() % enterprises.len()];
            let uploaded = upload(
                &app,
                &admin,
                json!({ "enterpriseId": id, "requirement": "R10.plan", "title": format!("{month}月应急预案") }),
            )
            .await;
            let document = data(&uploaded)["uploadDocument"]["documentId"]
                .as_str()
                .unwrap()
                .to_owned();
            if month % 3 != 0 {
                data(&review(&app, &admin, id, &document, "APPROVE", None).await);
            }
            // An inspection with a hazard due in ten days: open, then overdue at the month's end.
            let (inspected, _) = &enterprises[usize::try_from(month + 1).unwrap() % enterprises.len()];
            let inspected_at = fifth_of(month) - chrono::Duration::hours(1);
            let input = json!({
                "enterpriseId": inspected, "kind": "ON_SITE", "inspectedAt": inspected_at,
                "inspectors": ["王检查"],
                "hazards": [{ "category": "FIRE", "level": "GENERAL", "description": format!("{month}月消防通道堵塞"),
                              "deadline": inspected_at + chrono::Duration::days(10) }],
            });
            let inspection = multipart(
                &app,
                &inspector,
                RECORD_INSPECTION,
                json!({ "input": input, "documents": [], "photos": [] }),
                &[],
            )
            .await;
            data(&inspection);
            let mut counts = BTreeMap::new();
            for (_, town) in &enterprises {
                *counts.entry(*town).or_insert(0) += 1;
            }
            expected_a01.insert(month, counts);

            set_clock(&clock, fifth_of(month + 1));
            let month_name = format!("{YEAR}-{month:02}");
            let issued = wait_for_report(&app, &admin, &month_name).await;
            assert_eq!(issued["version"], "1", "{backend:?} {month_name}: {issued}");
        }

        // Read January to December back, per town, and check every one.
        let towns = ["许村", "长安"];
        let mut previous: BTreeMap<&str, Value> = BTreeMap::new();
        for town in towns {
            let listed = app
                .graphql(
                    Some(&admin),
                    "query($town: String) { monthlyReports(year: 2027, town: $town) { month town version } }",
                    json!({ "town": town }),
                )
                .await;
            let months: Vec<&str> = data(&listed)["monthlyReports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|report| report["month"].as_str().unwrap())
                .collect();
            assert_eq!(months.len(), 12, "{backend:?} {town}: {listed}");
            assert_eq!((months[0], months[11]), ("2027-01", "2027-12"), "{backend:?}");
        }
        for month in 1..=12u32 {
            let month_name = format!("{YEAR}-{month:02}");
            let city = report(&app, &admin, &month_name, None).await;
            let at = city["at"].as_str().unwrap().to_owned();
            let end = if month == 12 {
                shanghai().with_ymd_and_hms(YEAR + 1, 1, 1, 0, 0, 0)
            } else {
                shanghai().with_ymd_and_hms(YEAR, month + 1, 1, 0, 0, 0)
            }
            .unwrap()
            .to_utc();
            assert_eq!(at.parse::<DateTime<Utc>>().unwrap(), end, "{backend:?} {month_name}");
            let mut colours_total = 0;
            for town in towns {
                let frozen = report(&app, &admin, &month_name, Some(town)).await;
                // The brute-force count: the enterprises the test registered in the town.
                assert_eq!(
                    figure(&frozen, "A01")["value"].as_f64().unwrap(),
                    f64::from(i32::try_from(expected_a01[&month][town]).unwrap()),
                    "{backend:?} {month_name} {town}"
                );
                let colours = &frozen["colours"];
                let total: u64 = ["red", "orange", "yellow", "blue"]
                    .iter()
                    .map(|colour| colours[colour].as_u64().unwrap())
                    .sum();
                assert_eq!(
                    total,
                    u64::try_from(expected_a01[&month][town]).unwrap(),
                    "{backend:?} {month_name} {town}: {colours}"
                );
                colours_total += total;
                // Recomputed now at the month's end with the same rules: the same figures.
                let recomputed = app
                    .graphql(Some(&admin), TOWN_METRICS, json!({ "town": town, "at": at }))
                    .await;
                let recomputed = &data(&recomputed)["townMetrics"];
                assert_eq!(recomputed["ruleSet"], frozen["ruleSet"], "{backend:?}");
                assert_eq!(recomputed["ruleSetDigest"], frozen["ruleSetDigest"], "{backend:?}");
                for metric in recomputed["metrics"].as_array().unwrap() {
                    let code = metric["code"].as_str().unwrap();
                    let kept = figure(&frozen, code);
                    for field in ["value", "numerator", "denominator"] {
                        assert_eq!(
                            kept[field], metric[field],
                            "{backend:?} {month_name} {town} {code} {field}"
                        );
                    }
                }
                // Month over month: against the previous month's frozen figure.
                if let Some(before) = previous.get(town) {
                    for metric in frozen["metrics"].as_array().unwrap() {
                        let code = metric["code"].as_str().unwrap();
                        assert_eq!(
                            metric["previousValue"],
                            figure(before, code)["value"],
                            "{backend:?} {month_name} {town} {code}"
                        );
                    }
                }
                previous.insert(town, frozen);
            }
            let city_colours = &city["colours"];
            let city_total: u64 = ["red", "orange", "yellow", "blue"]
                .iter()
                .map(|colour| city_colours[colour].as_u64().unwrap())
                .sum();
            assert_eq!(city_total, colours_total, "{backend:?} {month_name}");
            assert!(!city["rankings"].as_array().unwrap().is_empty(), "{backend:?}");
        }

        // The brute-force oracle over the log the year left: every town figure of every month.
        let ids: Vec<String> = enterprises.iter().map(|(id, _)| id.clone()).collect();
        let log = exported_log(&app, &ids);
        let rules = anquan_domain::rules::builtin_v1().unwrap();
        let mut nonzero = std::collections::BTreeSet::new();
        for month in 1..=12u32 {
            let month_name = format!("{YEAR}-{month:02}");
            let counted = oracle::oracle(&rules, &log, month_end(month), None);
            for town in towns {
                let frozen = report(&app, &admin, &month_name, Some(town)).await;
                let tallies = counted
                    .iter()
                    .find(|(key, _)| key.as_ref().is_some_and(|key| key.as_str() == town))
                    .map(|(_, tallies)| tallies.clone())
                    .unwrap_or_default();
                for (index, metric) in rules.metrics.metrics.iter().enumerate() {
                    if metric.scope == Scope::City {
                        continue;
                    }
                    let kept = figure(&frozen, &metric.code);
                    let (numerator, denominator) = tallies
                        .get(index)
                        .map_or((0, 0), |tally| (tally.numerator, tally.denominator));
                    if numerator != 0 {
                        nonzero.insert(metric.code.clone());
                    }
                    assert_eq!(
                        (integer(&kept["numerator"]), integer(&kept["denominator"])),
                        (numerator, denominator),
                        "{backend:?} {month_name} {town} {}: the frozen figure against the oracle",
                        metric.code
                    );
                }
            }
        }

        // Not an agreement on zeros: registrations, records, reviews, inspections, open and
        // overdue hazards and the colours all show in the figures compared.
        assert!(nonzero.len() >= 15, "{backend:?}: only {nonzero:?} were non-zero");

        // The annual assessment, scored from December's report by the rule set's weights.
        let mut assessment = Value::Null;
        for _ in 0..150 {
            let response = app
                .graphql(
                    Some(&admin),
                    "{ annualAssessment(year: 2027) { year version reportVersion towns { town score grade items { metric weight value points } } } }",
                    json!({}),
                )
                .await;
            assessment = data(&response)["annualAssessment"].clone();
            if !assessment.is_null() {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        }
        assert_eq!(assessment["reportVersion"], "1", "{backend:?}: {assessment}");
        let weights = [
            ("B02", 30.0),
            ("D03", 20.0),
            ("G02", 20.0),
            ("H01", 15.0),
            ("H02", 15.0),
        ];
        let mut scores = BTreeMap::new();
        for town in assessment["towns"].as_array().unwrap() {
            let name = town["town"].as_str().unwrap();
            let december = report(&app, &admin, "2027-12", Some(name)).await;
            let expected: f64 = weights
                .iter()
                .map(|(code, weight)| {
                    let value = figure(&december, code)["value"].as_f64().unwrap_or(0.0);
                    (weight * value / 100.0 * 10.0).round() / 10.0
                })
                .sum();
            let expected = (expected * 10.0).round() / 10.0;
            let score = town["score"].as_f64().unwrap();
            assert_eq!(score, expected, "{backend:?} {name}: {town}");
            let grade = match score {
                score if score >= 90.0 => "优秀",
                score if score >= 80.0 => "良好",
                score if score >= 60.0 => "合格",
                _ => "不合格",
            };
            assert_eq!(town["grade"], grade, "{backend:?} {name}");
            scores.insert(name.to_owned(), score);
        }
        assert_eq!(scores.len(), 12, "{backend:?}: every town of the catalogue is assessed");
        let officer = app.token(&["--role", "town_officer", "--town", "长安"]);
        let own = app
            .graphql(
                Some(&officer),
                "{ annualAssessment(year: 2027) { towns { town } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&own)["annualAssessment"]["towns"],
            json!([{ "town": "长安" }]),
            "{backend:?}"
        );
        let assessment_csv = app
            .client
            .get(format!("{}/assessments/2027.csv", app.base_url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(assessment_csv.status(), 200, "{backend:?}");
        let assessment_csv = assessment_csv.text().await.unwrap();
        let xucun: Vec<&str> = assessment_csv
            .lines()
            .find(|line| line.starts_with("许村,"))
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(xucun[1].parse::<f64>().unwrap(), scores["许村"], "{backend:?}");

        // A correction is a new version; the first stays readable as it was.
        let first = report(&app, &admin, "2027-12", Some("许村")).await;
        let corrected = app
            .graphql(
                Some(&admin),
                "mutation { issueMonthlyReport(month: \"2027-12\", reason: \"补录检查记录后更正\") { version versions reason } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data(&corrected)["issueMonthlyReport"],
            json!({ "version": "2", "versions": "2", "reason": "补录检查记录后更正" }),
            "{backend:?}"
        );
        let again = app
            .graphql(
                Some(&admin),
                "mutation { issueMonthlyReport(month: \"2027-12\") { version } }",
                json!({}),
            )
            .await;
        assert_eq!(
            again["errors"][0]["extensions"]["code"], "REPORT_ALREADY_ISSUED",
            "{backend:?}"
        );
        let early = app
            .graphql(
                Some(&admin),
                "mutation { issueMonthlyReport(month: \"2028-01\") { version } }",
                json!({}),
            )
            .await;
        assert_eq!(
            early["errors"][0]["extensions"]["code"], "REPORT_MONTH_NOT_OVER",
            "{backend:?}"
        );
        let version_one = app
            .graphql(
                Some(&admin),
                REPORT,
                json!({ "month": "2027-12", "town": "许村", "version": "1" }),
            )
            .await;
        let mut version_one = data(&version_one)["monthlyReport"].clone();
        version_one["versions"] = first["versions"].clone();
        assert_eq!(version_one, first, "{backend:?}");

        // Downloads, with the same rules as the queries.
        let officer_elsewhere = app.token(&["--role", "town_officer", "--town", "长安"]);
        let url = |file: &str| format!("{}/reports/2027-12/{file}", app.base_url);
        let get = |token: Option<&str>, file: &str| {
            let mut request = app.client.get(url(file));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        assert_eq!(get(None, "city.csv").await.unwrap().status(), 401, "{backend:?}");
        assert_eq!(
            get(Some(&officer_elsewhere), "许村.csv").await.unwrap().status(),
            403,
            "{backend:?}"
        );
        assert_eq!(
            get(Some(&admin), "许村.pdf").await.unwrap().status(),
            400,
            "{backend:?}"
        );
        assert_eq!(
            app.client
                .get(format!("{}/reports/2026-01/city.csv", app.base_url))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .status(),
            404,
            "{backend:?}"
        );
        let december = report(&app, &admin, "2027-12", Some("许村")).await;
        let csv = get(Some(&admin), "许村.csv").await.unwrap();
        assert_eq!(csv.status(), 200, "{backend:?}");
        let csv = csv.text().await.unwrap();
        let csv = csv.strip_prefix('\u{feff}').unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().map(|line| line.split(',').collect()).collect();
        assert_eq!(rows[0][0], "指标编号", "{backend:?}");
        for metric in december["metrics"].as_array().unwrap() {
            let code = metric["code"].as_str().unwrap();
            let row = rows
                .iter()
                .find(|row| row[0] == code)
                .unwrap_or_else(|| panic!("{code} not in the CSV"));
            let value = row[2].parse::<f64>().ok();
            assert_eq!(value, metric["value"].as_f64(), "{backend:?} CSV {code}");
            assert_eq!(
                row[3].parse::<f64>().unwrap(),
                metric["numerator"].as_f64().unwrap(),
                "{backend:?} CSV {code}"
            );
        }
        let xlsx = get(Some(&admin), "许村.xlsx").await.unwrap();
        assert_eq!(xlsx.status(), 200, "{backend:?}");
        let bytes = xlsx.bytes().await.unwrap().to_vec();
        let mut workbook: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let sheet = calamine::Reader::worksheet_range(&mut workbook, "指标").unwrap();
        let mut found = 0;
        for row in sheet.rows().skip(2) {
            let code = row[0].to_string();
            let metric = figure(&december, &code);
            let value = match &row[2] {
                calamine::Data::Float(value) => Some(*value),
                calamine::Data::Int(value) => Some(*value as f64),
                _ => None,
            };
            assert_eq!(value, metric["value"].as_f64(), "{backend:?} XLSX {code}");
            found += 1;
        }
        assert_eq!(found, december["metrics"].as_array().unwrap().len(), "{backend:?}");
        assert!(
            calamine::Reader::worksheet_range(&mut workbook, "排名").is_ok(),
            "{backend:?}"
        );

        // The printable page, opened from a saved copy (the download needs the bearer token).
        let html = get(Some(&admin), "许村.html").await.unwrap();
        assert_eq!(html.status(), 200, "{backend:?}");
        let html = html.text().await.unwrap();
        let saved = clock_dir.path().join("report.html");
        std::fs::write(&saved, &html).unwrap();
        if backend == backends()[0]
            && let Some(mut browser) = Browser::start(Viewport::Desktop, "monthly_reports").await
        {
            browser.open(&format!("file://{}", saved.display())).await;
            let title = browser.text("h1").await;
            assert!(title.contains("许村") && title.contains("2027年12月"), "{title}");
            let a01 = browser.texts("tr[data-code=\"A01\"] td").await;
            assert_eq!(a01[0], "A01");
            assert_eq!(a01[2], figure(&december, "A01")["value"].as_f64().unwrap().to_string());
            browser.full_page_screenshot("december_xucun.png").await;
            let pdf = browser.print_pdf().await;
            assert!(pdf.starts_with(b"%PDF"), "printing did not make a PDF");
            let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-output/monthly_reports");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("december_xucun.pdf"), pdf).unwrap();
            browser.stop().await;
        }
    }
}
