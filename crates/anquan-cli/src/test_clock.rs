//! The one clock `anquan serve` reads "now" from, and the controllable clock of black-box tests.
//!
//! Normally the clock is the system's. A test may move it: with `ANQUAN_TEST_CLOCK=<file>` the
//! clock is the system's plus an offset in whole seconds read from that file at every reading
//! (absent or empty: 0; a test moves time by writing a larger number). It is accepted only in
//! test mode, which needs both a binary built with the cargo feature `test-clock` (the default
//! and release builds have none) and `ANQUAN_TEST_MODE=1`; otherwise `serve` refuses to start,
//! so a production node can never run on a moved clock by a stray variable.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// The variable naming the offset file.
pub const TEST_CLOCK_ENV: &str = "ANQUAN_TEST_CLOCK";
/// The variable that puts the service in test mode.
pub const TEST_MODE_ENV: &str = "ANQUAN_TEST_MODE";
/// The largest offset accepted: 200 years, far inside chrono's range.
const OFFSET_SECONDS_MAX: i64 = 200 * 366 * 24 * 3600;

/// The clock the environment asks for: the system's, or in test mode the controllable one.
pub fn from_env() -> anyhow::Result<anquan_api::Clock> {
    let Some(file) = std::env::var_os(TEST_CLOCK_ENV).filter(|value| !value.is_empty()) else {
        return Ok(Arc::new(Utc::now));
    };
    if !cfg!(feature = "test-clock") {
        anyhow::bail!(
            "{TEST_CLOCK_ENV} is set, but this binary was built without the cargo feature `test-clock`: \
             a controllable clock exists only in test builds; unset {TEST_CLOCK_ENV}"
        );
    }
    if std::env::var(TEST_MODE_ENV).ok().as_deref() != Some("1") {
        anyhow::bail!(
            "{TEST_CLOCK_ENV} is set, but the service is not in test mode ({TEST_MODE_ENV}=1): refusing to run \
             on a controllable clock; unset {TEST_CLOCK_ENV}"
        );
    }
    let file = PathBuf::from(file);
    tracing::warn!(
        file = %file.display(),
        "TEST MODE: the service's clock is the system's plus the offset in this file"
    );
    Ok(Arc::new(move || moved(Utc::now(), offset(&file))))
}

/// The offset in the file, in seconds; 0 when it is absent, empty or not a number in range.
fn offset(file: &std::path::Path) -> i64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|seconds| seconds.abs() <= OFFSET_SECONDS_MAX)
        .unwrap_or(0)
}

fn moved(now: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    TimeDelta::try_seconds(seconds)
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_the_clock_and_a_bad_file_moves_nothing() {
        let file = std::env::temp_dir().join(format!("anquan-test-clock-{}", uuid::Uuid::now_v7()));
        assert_eq!(offset(&file), 0);
        std::fs::write(&file, "86400\n").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(offset(&file), 86_400);
        std::fs::write(&file, "soon").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(offset(&file), 0);
        let now = Utc::now();
        assert_eq!(moved(now, 60) - now, TimeDelta::seconds(60));
        assert_eq!(moved(DateTime::<Utc>::MAX_UTC, 60), DateTime::<Utc>::MAX_UTC);
        std::fs::remove_file(&file).unwrap_or_else(|error| panic!("{error}"));
    }
}
