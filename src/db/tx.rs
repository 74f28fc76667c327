//! Transactions: one that writes from its first statement, and ones that hold a named
//! database lock, so that with several instances on one Postgres exactly one does a
//! job's work at a time. Every lock id is here, in one list.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};

use crate::error::AppResult;

/// The Postgres advisory locks mailops takes. SQLite serves a single instance, whose own
/// write lock is enough, so there they are no-ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobLock {
    /// Applying migrations at start-up.
    Migrations,
    NodeStatus,
    MetricsRetention,
    DnsblChecks,
    /// Held while a DNSBL check's results are stored, so stores of two instances queue.
    DnsblResults,
    AlertEvaluation,
    MailRetention,
    /// The notifier grouping alert changes.
    Notifications,
}

impl JobLock {
    pub const ALL: [JobLock; 8] = [
        JobLock::Migrations,
        JobLock::NodeStatus,
        JobLock::MetricsRetention,
        JobLock::DnsblChecks,
        JobLock::DnsblResults,
        JobLock::AlertEvaluation,
        JobLock::MailRetention,
        JobLock::Notifications,
    ];

    /// The advisory-lock key. The job locks are "mail" in ASCII and a number; the
    /// migration lock keeps the key earlier releases used, so an old and a new instance
    /// starting together still exclude each other.
    pub fn id(self) -> i64 {
        match self {
            JobLock::Migrations => 7_034_011_455_221,
            JobLock::NodeStatus => 0x6d61_696c_0001,
            JobLock::MetricsRetention => 0x6d61_696c_0002,
            JobLock::DnsblChecks => 0x6d61_696c_0003,
            JobLock::DnsblResults => 0x6d61_696c_0004,
            JobLock::AlertEvaluation => 0x6d61_696c_0005,
            JobLock::MailRetention => 0x6d61_696c_0006,
            JobLock::Notifications => 0x6d61_696c_0007,
        }
    }
}

impl JobLock {
    /// The evaluator and the notifier read for a whole cycle and write at its end. SQLite serves one
    /// instance and needs no advisory lock, but such a transaction must take the write lock
    /// up front there, or its writes fail on a lock another writer took meanwhile. Other
    /// jobs write little and early, and holding the write lock for them would make
    /// requests' transactions fail instead.
    fn writes_after_reading(self) -> bool {
        matches!(self, JobLock::AlertEvaluation | JobLock::Notifications)
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once: a
/// transaction that reads first and writes later fails with "database is locked" (rather
/// than waiting) when another write commits in between, which the check jobs make likely.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Begins a transaction holding `lock`, or `None` when another instance holds it.
pub async fn try_lock(
    db: &DatabaseConnection,
    lock: JobLock,
) -> AppResult<Option<DatabaseTransaction>> {
    let txn = if lock.writes_after_reading() {
        begin_write(db).await?
    } else {
        db.begin().await?
    };
    if txn.get_database_backend() == DbBackend::Postgres {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [lock.id().into()],
            ))
            .await?;
        let locked = match row {
            Some(row) => row.try_get::<bool>("", "locked")?,
            None => false,
        };
        if !locked {
            txn.rollback().await?;
            return Ok(None);
        }
    }
    crate::jobs::mark_ran();
    Ok(Some(txn))
}

/// Waits until this transaction holds `lock` (released at its end).
pub async fn wait_for_lock(txn: &DatabaseTransaction, lock: JobLock) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [lock.id().into()],
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::JobLock;

    #[test]
    fn every_lock_has_its_own_id() {
        let mut ids: Vec<i64> = JobLock::ALL.iter().map(|lock| lock.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), JobLock::ALL.len());
    }
}
