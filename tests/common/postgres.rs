//! A PostgreSQL server for the tests: the one `RECSYNC_POSTGRES_URL`
//! names (a role that may create schemas), and a schema of each test's own
//! on it. Unset, the tests that need it pass without running and say so
//! once (and fail if `RECSYNC_REQUIRE_POSTGRES` is set, as CI sets it);
//! set, a server that cannot be reached fails them.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use recsync::store::PostgresStore;
use tokio_postgres::{Client, Config, NoTls};

pub const URL_VAR: &str = "RECSYNC_POSTGRES_URL";

/// The server's configuration, or `None` (said once) when the variable is
/// unset.
pub fn server() -> Option<Config> {
    static NOTICE: Once = Once::new();
    let url = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var_os("RECSYNC_REQUIRE_POSTGRES").is_some() => {
            panic!("RECSYNC_REQUIRE_POSTGRES is set but {URL_VAR} is not: the PostgreSQL tests would not run")
        }
        _ => {
            // Past the test harness's capture: one line per run.
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests not run: {URL_VAR} is unset \
                     (run them with: eval \"$(.ci/postgres start)\"; \
                     cargo test --all-features)"
                );
            });
            return None;
        }
    };
    Some(
        url.parse()
            .unwrap_or_else(|e| panic!("{URL_VAR} is not a connection string: {e}")),
    )
}

pub async fn connect(config: &Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR} is set, but the server cannot be reached: {e}"));
    tokio::spawn(connection);
    client
}

/// A schema of one test's own on the server, dropped when the test passes
/// (kept, and named, when it fails).
pub struct Db {
    admin: Config,
    schema: String,
    finished: bool,
}

impl Db {
    pub async fn new(test: &str) -> Option<Db> {
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = server()?;
        let short: String = test.chars().take(36).collect();
        let schema = format!(
            "t_{short}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = connect(&admin).await;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
            ))
            .await
            .unwrap();
        Some(Db {
            admin,
            schema,
            finished: false,
        })
    }

    /// The server's configuration with the schema as `search_path`.
    pub fn config(&self) -> Config {
        let mut config = self.admin.clone();
        let options = match config.get_options() {
            Some(o) => format!("{o} -c search_path={}", self.schema),
            None => format!("-c search_path={}", self.schema),
        };
        config.options(options);
        config
    }

    pub async fn store(&self) -> PostgresStore {
        let connected = PostgresStore::connect_config(&self.config()).await;
        connected
            .unwrap_or_else(|e| panic!("{URL_VAR} is set, but the store cannot connect: {e:?}"))
    }

    /// A plain client in the schema: another program on the tables.
    pub async fn client(&self) -> Client {
        connect(&self.config()).await
    }
}

impl Db {
    /// Drops the schema, once the test has passed. Awaited, not done on
    /// drop: the stores' connection tasks run on the test's runtime, and a
    /// store may still have to send the rollback of a save it refused
    /// before the schema's locks are free.
    pub async fn finish(mut self) {
        self.finished = true;
        let client = connect(&self.admin).await;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .unwrap();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if !self.finished {
            let _ = writeln!(std::io::stderr(), "kept schema {} to look at", self.schema);
        }
    }
}
