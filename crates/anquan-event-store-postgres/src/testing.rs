//! Test support (feature `test-support`): a fresh database per test on the server named by
//! `ANQUAN_TEST_POSTGRES_URL`, with the skip rule every PostgreSQL test follows.
//!
//! - `ANQUAN_TEST_POSTGRES_URL` unset: the test prints why it is skipped and returns.
//! - `ANQUAN_TEST_REQUIRE_POSTGRES=1` (CI): an unset URL or an unreachable server is an error,
//!   so the test fails instead of skipping.
//! - URL set, server unreachable, not required: the test prints why it is skipped and returns.
//!
//! A test never falls back to another store: skipping is the only alternative to PostgreSQL.
//!
//! ```text
//! let Some(database) = fresh_database("my test").await.expect("PostgreSQL is required") else {
//!     return; // the reason is printed
//! };
//! ```

use std::time::Duration;

use tokio_postgres::NoTls;
use uuid::Uuid;

/// The variable naming the admin URL of the test server.
pub const URL_VARIABLE: &str = "ANQUAN_TEST_POSTGRES_URL";
/// The variable that, set to `1`, makes a missing or unreachable server fail the tests.
pub const REQUIRE_VARIABLE: &str = "ANQUAN_TEST_REQUIRE_POSTGRES";
/// How long connecting to the test server may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a test that needs PostgreSQL cannot run and must fail.
#[derive(Debug, thiserror::Error)]
pub enum TestDatabaseError {
    #[error("{REQUIRE_VARIABLE}=1 but {URL_VARIABLE} is not set")]
    UrlUnset,
    #[error("{URL_VARIABLE} is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("{REQUIRE_VARIABLE}=1 but the server named by {URL_VARIABLE} is unreachable")]
    Unreachable(#[source] tokio_postgres::Error),
    #[error("cannot create the test database {name}")]
    Create {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// True when `ANQUAN_TEST_REQUIRE_POSTGRES=1`: PostgreSQL tests must run, never skip.
pub fn postgres_required() -> bool {
    std::env::var(REQUIRE_VARIABLE).as_deref() == Ok("1")
}

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// The URL of the fresh database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// The database's name (`anquan_test_<uuid>`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for TestDatabase {
    // The URL may hold a password: show the name only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("name", &self.name).finish()
    }
}

/// Returns `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Connects to the admin database, bounded by [`CONNECT_TIMEOUT`].
async fn connect_admin(
    admin_url: &str,
) -> Result<Result<tokio_postgres::Client, tokio_postgres::Error>, TestDatabaseError> {
    let mut config: tokio_postgres::Config = admin_url.parse().map_err(TestDatabaseError::InvalidUrl)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config.connect(NoTls).await.map(|(client, connection)| {
        tokio::spawn(connection);
        client
    }))
}

/// Creates a fresh database for `test`.
///
/// Returns `Ok(None)` after printing why the test is skipped (no URL, or an unreachable server
/// while PostgreSQL is not required), and an error when the test must fail instead.
pub async fn fresh_database(test: &str) -> Result<Option<TestDatabase>, TestDatabaseError> {
    fresh_database_on(test, std::env::var(URL_VARIABLE).ok(), postgres_required()).await
}

/// [`fresh_database`] with the variables' values passed in.
async fn fresh_database_on(
    test: &str,
    admin_url: Option<String>,
    required: bool,
) -> Result<Option<TestDatabase>, TestDatabaseError> {
    let Some(admin_url) = admin_url else {
        if required {
            return Err(TestDatabaseError::UrlUnset);
        }
        eprintln!(
            "skipping {test}: {URL_VARIABLE} is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
             this test runs on PostgreSQL only"
        );
        return Ok(None);
    };
    let client = match connect_admin(&admin_url).await? {
        Ok(client) => client,
        Err(error) if required => return Err(TestDatabaseError::Unreachable(error)),
        Err(error) => {
            let cause = std::error::Error::source(&error)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            eprintln!(
                "skipping {test}: the server named by {URL_VARIABLE} is unreachable ({error}{cause}); \
                 set {REQUIRE_VARIABLE}=1 to fail instead"
            );
            return Ok(None);
        }
    };
    let name = format!("anquan_test_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|source| TestDatabaseError::Create {
            name: name.clone(),
            source,
        })?;
    Ok(Some(TestDatabase {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    }))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Async work in Drop: a private runtime on a private thread (the test's runtime may be
        // shutting down, or be a current-thread one we must not block).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let client = connect_admin(&admin_url).await.ok()?.ok()?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TestDatabaseError, fresh_database_on, with_database};

    /// Nothing listens on port 1 (it needs root to bind).
    const UNREACHABLE: &str = "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5";

    #[tokio::test]
    async fn no_url_skips_unless_postgres_is_required() {
        assert!(matches!(fresh_database_on("t", None, false).await, Ok(None)));
        assert!(matches!(
            fresh_database_on("t", None, true).await,
            Err(TestDatabaseError::UrlUnset)
        ));
    }

    #[tokio::test]
    async fn an_unreachable_server_skips_unless_postgres_is_required() {
        let url = || Some(UNREACHABLE.to_owned());
        assert!(matches!(fresh_database_on("t", url(), false).await, Ok(None)));
        assert!(matches!(
            fresh_database_on("t", url(), true).await,
            Err(TestDatabaseError::Unreachable(_))
        ));
    }

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
