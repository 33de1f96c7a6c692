//! `anquan bench store` on a small generated workload: every phase runs through the store and
//! passes its checks (event count, every event read once, phase E's digest from the
//! generator's meta file), on SQLite and, when configured, PostgreSQL, so the figures in
//! BENCHMARKS.md come from a command that still works.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Backend, backends, binary};

const EVENTS: u64 = 2_000;
const STREAMS: u64 = 100;

/// The shared workload generator, beside the checkout (`<repo>/../shared/bench`).
fn generator() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/gen_workload.py")
}

#[test]
fn bench_store_runs_every_phase_and_passes_its_checks() {
    let generator = generator();
    if !generator.exists() {
        eprintln!("skipping: the workload generator {} is not there", generator.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("workload.jsonl");
    let generated = Command::new("python3")
        .arg(&generator)
        .args([
            "--events",
            &EVENTS.to_string(),
            "--streams",
            &STREAMS.to_string(),
            "--out",
        ])
        .arg(&workload)
        .output();
    let generated = match generated {
        Ok(output) => output,
        Err(error) => {
            eprintln!("skipping: cannot run python3 ({error})");
            return;
        }
    };
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("workload.jsonl.meta.json")).unwrap()).unwrap();
    let digest = meta["projection_digest"].as_str().unwrap();

    for backend in backends() {
        let all = bench(backend, &workload, dir.path(), "all");
        let phases: Vec<&str> = all.iter().map(|line| line["phase"].as_str().unwrap()).collect();
        assert_eq!(phases, ["A", "D", "E", "B", "C"], "groups in the workload's order");
        for line in &all {
            assert_passed(line, backend);
            assert!(
                line["settings"].get("fill").is_none(),
                "D and E read what A wrote: {line}"
            );
        }
        assert_eq!(all[2]["checks"]["digest"], digest);
        assert_eq!(all[2]["checks"]["projection_keys"], meta["projection_keys"]);

        // E alone fills its fresh database with an untimed phase A first, and says so.
        let alone = bench(backend, &workload, dir.path(), "E");
        assert_eq!(alone.len(), 1);
        assert_passed(&alone[0], backend);
        assert_eq!(alone[0]["checks"]["digest"], digest);
        assert!(alone[0]["settings"]["fill"].is_string());
    }
}

/// Runs one benchmark invocation (one repetition) and returns its JSON lines.
fn bench(backend: Backend, workload: &Path, dir: &Path, phase: &str) -> Vec<Value> {
    let mut command = Command::new(binary());
    command
        .args(["bench", "store", "--workload"])
        .arg(workload)
        .args(["--phase", phase, "--reps", "1"]);
    match backend {
        Backend::Sqlite => command.args(["--backend", "sqlite", "--dir"]).arg(dir),
        Backend::Postgres => command.args([
            "--backend",
            "postgres",
            "--database",
            &std::env::var("ANQUAN_TEST_POSTGRES_URL").unwrap(),
        ]),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "bench {phase} on {backend:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn assert_passed(line: &Value, backend: Backend) {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(line["checks"]["passed"], true, "{line}");
    assert_eq!(line["key"], format!("anquan-{name}"));
    assert_eq!(line["backend"], name);
    assert_eq!(line["rep"], 1);
    assert_eq!(line["events"], EVENTS);
    assert!(line["seconds"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["events_per_s"].as_f64().unwrap() > 0.0, "{line}");
    assert!(line["peak_rss_mb"].as_f64().unwrap() > 0.0, "{line}");
    assert_eq!(line["settings"]["acknowledged_is_durable"], true, "{line}");
    match backend {
        Backend::Sqlite => assert_eq!(line["settings"]["synchronous"], "FULL"),
        Backend::Postgres => {
            assert_eq!(line["settings"]["fsync"], "on");
            assert!(line["settings"]["synchronous_commit"].is_string());
        }
    }
}
