//! Per-test Postgres databases, cloned from a template migrated once
//! (`CREATE DATABASE … TEMPLATE …`), so a test pays for a file copy instead of running
//! every migration.
//!
//! The template is named after a hash of the migrations' sources: a run after a migration
//! changed builds a new one, and runs with the same migrations share it. It is built under
//! an advisory lock, so concurrent runs build it once, and published by a rename, so no
//! run ever clones a half-migrated one.

use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, Statement};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

/// The Postgres server the tests use (`MAILOPS_TEST_POSTGRES`).
pub fn postgres_server() -> String {
    std::env::var("MAILOPS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis server the tests use (`MAILOPS_TEST_REDIS`).
pub fn redis_url() -> String {
    std::env::var("MAILOPS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn admin_connection() -> DatabaseConnection {
    Database::connect(format!("{}/postgres", postgres_server()))
        .await
        .expect("Postgres is reachable at MAILOPS_TEST_POSTGRES")
}

/// A short hash of every migration's source text.
fn migrations_fingerprint() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migration/src");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migration sources")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(
            file.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        hash.update(std::fs::read(&file).expect("readable migration"));
    }
    format!("{:x}", hash.finalize())[..16].to_string()
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The migrated template of this run's migrations, built if no run built it before.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("mailops_template_{}", migrations_fingerprint());
            let admin = admin_connection().await;
            // Any fixed number shared by every run of the tests.
            const BUILD_LOCK: i64 = 0x6d61_696c_7465;
            admin
                .execute_unprepared(&format!("SELECT pg_advisory_lock({BUILD_LOCK})"))
                .await
                .expect("template lock");
            let exists = admin
                .query_one_raw(Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT 1 AS found FROM pg_database WHERE datname = $1",
                    [name.clone().into()],
                ))
                .await
                .expect("look for the template")
                .is_some();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .expect("drop a half-built template");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {building}"))
                    .await
                    .expect("create the template");
                let conn = Database::connect(format!("{}/{building}", postgres_server()))
                    .await
                    .expect("connect to the template");
                mailops::db::migrate(&conn)
                    .await
                    .expect("migrate the template");
                conn.close().await.expect("close the template");
                admin
                    .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .expect("publish the template");
            }
            admin
                .execute_unprepared(&format!("SELECT pg_advisory_unlock({BUILD_LOCK})"))
                .await
                .expect("template unlock");
            name
        })
        .await
}

/// A new database for one test or benchmark, already migrated; returns its name.
pub async fn create_database(prefix: &str) -> String {
    let template = template().await;
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    admin_connection()
        .await
        .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .await
        .expect("create a database from the template");
    name
}

/// Creates database `name` from the template unless it exists.
pub async fn create_named_database_if_missing(name: &str) {
    let template = template().await;
    let admin = admin_connection().await;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 AS found FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .expect("look for the database")
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .expect("create a database from the template");
    }
}

/// The URL of database `name` on the test server.
pub fn database_url(name: &str) -> String {
    format!("{}/{name}", postgres_server())
}

/// Drops database `name`, ending the connections still open to it.
pub async fn drop_database(name: &str) {
    let _ = admin_connection()
        .await
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
