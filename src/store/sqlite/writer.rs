//! The single writer thread: takes queued writes, runs as many as are waiting in one
//! transaction (each in its own savepoint, so one failing write does not undo the others),
//! commits once, and only then tells each writer how it went.
//!
//! It survives every database error, a full disk included: a batch that cannot be committed
//! is answered with the error and the next batch tries again, so writes succeed again by
//! themselves once space is freed. Only a panic (a bug) ends it; [`Writer::died`] reports
//! that, so a server can stop instead of running on with every write failing.

use crate::core::metrics::metrics;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, ErrorCode, Transaction};
use tokio::sync::{oneshot, watch};

use crate::core::ports::{Pending, StoreError};

/// Runs a write inside the batch transaction, or (given the error) only prepares to report
/// the batch's failure when the batch failed before the write's turn.
type Run = Box<dyn FnOnce(Result<&mut Transaction<'_>, BatchError>) -> Ran + Send>;

struct Job {
    run: Run,
    /// Whether the job leaves work for the batch's [`Flush`] (appends do); any other job
    /// runs only after the flush, so it sees that work done.
    defers: bool,
}

/// Work a batch owes for the rows its deferring jobs wrote (their ids), done once in one
/// statement before the batch commits, or before a job that is not deferring. The store
/// indexes posts for full-text search this way: an FTS5 insert per post, as a trigger did,
/// wrote a segment of its own for each (FTS5 flushes at every statement savepoint), which
/// was half of the writer's time per post.
pub type Flush = Box<dyn FnMut(&Connection, &[i64]) -> rusqlite::Result<()> + Send>;
type Completion = Box<dyn FnOnce(Result<(), BatchError>) + Send>;

/// What running a job left behind.
struct Ran {
    /// Reports the write's outcome once the batch's commit result is known.
    complete: Completion,
    /// The write itself failed because the disk is full.
    disk_full: bool,
    /// The row a deferring job wrote, for the flush.
    deferred: Option<i64>,
}

/// Why a whole batch was not committed, as told to each of its writers.
#[derive(Debug, Clone)]
enum BatchError {
    /// The disk is full: nobody's fault but the machine's, and passing.
    Full,
    Failed(String),
}

impl BatchError {
    fn of(error: &rusqlite::Error) -> Self {
        if is_disk_full(error) {
            BatchError::Full
        } else {
            BatchError::Failed(error.to_string())
        }
    }
}

impl From<BatchError> for StoreError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Full => StoreError::Full,
            BatchError::Failed(text) => StoreError::Commit(text),
        }
    }
}

/// SQLITE_FULL: the disk (or the database's page limit) has no room for the write.
pub(super) fn is_disk_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::DiskFull)
}

/// Writes waiting at most; beyond it a write is refused as `Overloaded` at once, never
/// waited for, since submitters run on async workers. Connections already cap the posts
/// they have in flight (64 each), so only a very busy server reaches it.
const QUEUE_DEPTH: usize = 16_384;
/// Upper bound on writes per transaction, so one commit never holds replies back too long.
const MAX_BATCH: usize = 1024;

pub struct Writer {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Why the writer thread died (it panicked), once it has.
    died: watch::Receiver<Option<String>>,
}

impl Writer {
    pub fn start(mut connection: Connection, mut flush: Option<Flush>) -> Result<Self, StoreError> {
        let (sender, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
        let (death, died) = watch::channel(None);
        let thread = std::thread::Builder::new()
            .name("perch-store-writer".into())
            .spawn(move || {
                // A panic here is a bug, and the connection's state after it unknown, so
                // the writer does not go on: the batch in hand and the queued writes are
                // answered `Closed` as they are dropped, and whoever watches `died` is told.
                let run = catch_unwind(AssertUnwindSafe(|| {
                    run(&mut connection, &receiver, &mut flush)
                }));
                if let Err(panic) = run {
                    drop(receiver);
                    let reason = panic_text(panic.as_ref());
                    tracing::error!(%reason, "store: the writer thread panicked; no write can be stored any more");
                    death.send_replace(Some(reason));
                }
            })
            .map_err(|source| StoreError::Io {
                path: "store writer thread".into(),
                source,
            })?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            died,
        })
    }

    /// Why the writer thread died, if it has.
    pub fn death(&self) -> Option<String> {
        self.died.borrow().clone()
    }

    /// Resolves, with the reason, if the writer thread dies; never if it stops normally.
    /// Every later write fails then, so a server should stop rather than run on.
    pub fn died(&self) -> impl Future<Output = String> + Send + 'static {
        let mut died = self.died.clone();
        async move {
            // An error means the thread ended normally (`close`) and dropped the sender.
            let reason = died
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|r| r.clone());
            match reason {
                Some(reason) => reason,
                None => std::future::pending().await,
            }
        }
    }

    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        self.enqueue(move |tx| run_in_savepoint(tx, work))
    }

    /// Like `submit`, and `then` runs on the writer thread once the write committed (before
    /// the submitter hears of it).
    pub fn submit_then<T: Send + 'static, U: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(T) -> U + Send + 'static,
    ) -> Pending<U> {
        self.enqueue_then(move |tx| run_in_savepoint(tx, work), then)
    }

    /// Runs `work` in the batch's transaction without a savepoint: the work is one
    /// statement, which SQLite undoes on its own if it fails. Its row (the id `work`
    /// returns with its value) is completed by the batch's [`Flush`] before the batch
    /// commits. For posts, where a savepoint per write would cost.
    pub fn submit_deferring<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<(T, i64), StoreError> + Send + 'static,
    ) -> Pending<T> {
        self.push(
            true,
            move |tx| work(tx),
            |(value, _)| value,
            |(_, id)| Some(*id),
        )
    }

    fn enqueue<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        self.enqueue_then(work, |value| value)
    }

    fn enqueue_then<T: Send + 'static, U: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(T) -> U + Send + 'static,
    ) -> Pending<U> {
        self.push(false, work, then, |_| None)
    }

    fn push<T: Send + 'static, U: Send + 'static>(
        &self,
        defers: bool,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(T) -> U + Send + 'static,
        deferred_row: impl FnOnce(&T) -> Option<i64> + Send + 'static,
    ) -> Pending<U> {
        let (reply, pending) = oneshot::channel();
        let run: Run = Box::new(move |tx| {
            let outcome = match tx {
                Ok(tx) => work(tx),
                // The batch already failed: the write is not run, only answered.
                Err(error) => Err(error.into()),
            };
            Ran {
                deferred: outcome.as_ref().ok().and_then(deferred_row),
                disk_full: matches!(outcome, Err(StoreError::Full)),
                complete: Box::new(move |commit| {
                    let result = match (commit, outcome) {
                        (Ok(()), outcome) => outcome.map(then),
                        (Err(e), _) => Err(e.into()),
                    };
                    let _ = reply.send(result);
                }),
            }
        });
        // The lock is only held to clone the sender; a poisoned lock means a panic elsewhere
        // already broke the store, so report it closed.
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        let Some(sender) = sender else {
            return failed(StoreError::Closed);
        };
        match sender.try_send(Job { run, defers }) {
            Ok(()) => {
                metrics().writer_queue.inc();
                pending
            }
            Err(TrySendError::Full(_)) => failed(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => failed(StoreError::Closed),
        }
    }

    /// Lets the writer drain its queue, then joins it.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn failed<T>(error: StoreError) -> Pending<T> {
    let (reply, pending) = oneshot::channel();
    let _ = reply.send(Err(error));
    pending
}

fn run_in_savepoint<T>(
    tx: &mut Transaction<'_>,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let savepoint = tx.savepoint()?;
    let outcome = work(&savepoint);
    if outcome.is_ok() {
        savepoint.commit()?;
    }
    // Dropping an uncommitted savepoint rolls it back.
    outcome
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

fn run(connection: &mut Connection, receiver: &Receiver<Job>, flush: &mut Option<Flush>) {
    // Whether the last batches found the disk full: said once when it fills and once when
    // writes succeed again, not for every refused batch.
    let mut disk_full = false;
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let writes = batch.len();
        metrics().writer_queue.dec_by(writes as i64);
        let started = std::time::Instant::now();
        let (committed, found_full) = run_batch(connection, batch, flush);
        metrics()
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics().commit_batch_writes.observe(writes as f64);
        if let Err(BatchError::Failed(error)) = &committed {
            tracing::error!(%error, writes, "store: batch commit failed");
        }
        if found_full || matches!(committed, Err(BatchError::Full)) {
            if !disk_full {
                tracing::error!(
                    "store: the disk is full: writes are refused until space is freed on it"
                );
            }
            disk_full = true;
        } else if disk_full && committed.is_ok() {
            tracing::info!("store: writes are stored again");
            disk_full = false;
        }
    }
}

/// Runs one batch in one transaction, commits it and answers each writer. Returns the
/// batch's result and whether any write in it found the disk full.
fn run_batch(
    connection: &mut Connection,
    batch: Vec<Job>,
    flush: &mut Option<Flush>,
) -> (Result<(), BatchError>, bool) {
    let mut completions = Vec::with_capacity(batch.len());
    let mut found_full = false;
    let committed = match connection.transaction() {
        Err(e) => {
            let error = BatchError::of(&e);
            for job in batch {
                completions.push((job.run)(Err(error.clone())).complete);
            }
            Err(error)
        }
        Ok(mut tx) => {
            let mut aborted: Option<BatchError> = None;
            let mut deferred: Vec<i64> = Vec::new();
            for job in batch {
                if !job.defers {
                    settle(flush, &tx, &mut deferred, &mut aborted, &mut found_full);
                }
                let ran = match &aborted {
                    None => (job.run)(Ok(&mut tx)),
                    Some(error) => (job.run)(Err(error.clone())),
                };
                deferred.extend(ran.deferred);
                found_full |= ran.disk_full;
                completions.push(ran.complete);
                // After SQLITE_FULL or an I/O error SQLite may roll back the whole
                // transaction, not just the failed statement: the batch's earlier writes
                // are gone, and a later one would run (and commit) outside any transaction.
                // So the batch fails as a whole.
                if aborted.is_none() && tx.is_autocommit() {
                    aborted = Some(if ran.disk_full {
                        BatchError::Full
                    } else {
                        BatchError::Failed(
                            "the transaction was rolled back after an error in one of its writes"
                                .into(),
                        )
                    });
                }
            }
            settle(flush, &tx, &mut deferred, &mut aborted, &mut found_full);
            match aborted {
                // Rolled back as the transaction is dropped (or, when SQLite already rolled
                // it back, nothing is left to roll back).
                Some(error) => Err(error),
                // A failed commit is rolled back as the transaction is dropped.
                None => tx.commit().map_err(|e| BatchError::of(&e)),
            }
        }
    };
    for complete in completions {
        complete(committed.clone());
    }
    (committed, found_full)
}

/// Runs the flush for the rows deferred so far (if the batch still stands); a failure
/// fails the batch.
fn settle(
    flush: &mut Option<Flush>,
    tx: &Transaction<'_>,
    deferred: &mut Vec<i64>,
    aborted: &mut Option<BatchError>,
    found_full: &mut bool,
) {
    if let (Some(flush), None, false) = (flush.as_mut(), &aborted, deferred.is_empty())
        && let Err(e) = flush(tx, deferred)
    {
        *found_full |= is_disk_full(&e);
        *aborted = Some(BatchError::of(&e));
    }
    deferred.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::wait;

    /// A WAL database on disk with one table, as the store runs it.
    fn database(label: &str) -> (std::path::PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("perch-writer-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let connection = Connection::open(dir.join("db.sqlite3")).unwrap();
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER, pad BLOB)")
            .unwrap();
        (dir, connection)
    }

    fn insert(writer: &Writer, n: i64) -> Pending<()> {
        writer.submit(move |c| {
            c.execute("INSERT INTO t VALUES (?1, zeroblob(3000))", [n])?;
            Ok(())
        })
    }

    fn stored(writer: &Writer) -> Vec<i64> {
        wait(writer.submit(|c| {
            let mut rows = c.prepare("SELECT n FROM t ORDER BY n")?;
            let numbers = rows
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(numbers)
        }))
        .unwrap()
    }

    /// SQLITE_FULL (here from the database's page limit, as the disk's own is hard to
    /// reach in a unit test) answers `Full`, the writer keeps going, and once there is
    /// room again writes are stored without a restart.
    #[test]
    fn a_full_database_refuses_writes_until_there_is_room() {
        let (dir, connection) = database("full");
        let pages: i64 = connection
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        connection
            .pragma_update(None, "max_page_count", pages + 4)
            .unwrap();
        let writer = Writer::start(connection, None).unwrap();
        let mut acknowledged = Vec::new();
        let refused = (0..100).find_map(|n| match wait(insert(&writer, n)) {
            Ok(()) => {
                acknowledged.push(n);
                None
            }
            Err(error) => Some(error),
        });
        assert!(
            matches!(refused, Some(StoreError::Full)),
            "a full database should refuse with Full: {refused:?}"
        );
        assert!(matches!(wait(insert(&writer, 1000)), Err(StoreError::Full)));

        wait(writer.submit(|c| Ok(c.pragma_update(None, "max_page_count", 1_000_000)?))).unwrap();
        wait(insert(&writer, 2000)).unwrap();
        acknowledged.push(2000);
        assert_eq!(stored(&writer), acknowledged);
        writer.close();
        let _ = std::fs::remove_dir_all(dir);
    }

    /// SQLite may roll back the whole transaction when a statement hits a full disk. Then
    /// no write of the batch may be acknowledged, and none after it may run on outside the
    /// transaction, stored but reported failed.
    #[test]
    fn a_transaction_rolled_back_mid_batch_fails_the_whole_batch() {
        let (dir, connection) = database("rollback");
        let writer = Writer::start(connection, None).unwrap();
        // Hold the writer so that the next three writes queue up and share one batch.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let busy = writer.submit(move |_| {
            let _ = started.send(());
            let _ = held.recv();
            Ok(())
        });
        running.recv().unwrap();
        let before = insert(&writer, 1);
        // What SQLite does on SQLITE_FULL at its worst: the transaction is gone.
        let failing = writer.submit_deferring(|c| {
            c.execute_batch("ROLLBACK")?;
            Err::<((), i64), _>(StoreError::Full)
        });
        let after = insert(&writer, 3);
        release.send(()).unwrap();
        wait(busy).unwrap();
        for (name, outcome) in [
            ("before", wait(before)),
            ("failing", wait(failing)),
            ("after", wait(after)),
        ] {
            assert!(
                matches!(outcome, Err(StoreError::Full)),
                "{name}: {outcome:?}"
            );
        }
        assert_eq!(stored(&writer), Vec::<i64>::new());
        wait(insert(&writer, 4)).unwrap();
        assert_eq!(stored(&writer), vec![4]);
        writer.close();
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A panic in the writer (a bug) is not hidden: `died` tells why, and every write
    /// after it fails at once instead of waiting forever.
    #[test]
    fn a_panicking_writer_says_it_died() {
        let writer = Writer::start(Connection::open_in_memory().unwrap(), None).unwrap();
        let died = writer.died();
        let doomed = writer.submit(|_| -> Result<(), StoreError> { panic!("injected writer bug") });
        assert!(matches!(wait(doomed), Err(StoreError::Closed)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reason = runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), died).await
            })
            .expect("died resolves");
        assert!(reason.contains("injected writer bug"), "{reason}");
        assert!(matches!(wait(insert(&writer, 1)), Err(StoreError::Closed)));
        writer.close();
    }

    /// A writer closed normally did not die.
    #[test]
    fn a_closed_writer_did_not_die() {
        let writer = Writer::start(Connection::open_in_memory().unwrap(), None).unwrap();
        let died = writer.died();
        writer.close();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(200), died).await
        });
        assert!(
            outcome.is_err(),
            "died resolved for a normal close: {outcome:?}"
        );
    }

    /// With the writer busy and its queue full, a submission is refused at once: a
    /// submitter on an async worker must never wait for room in the queue.
    #[test]
    fn a_full_queue_refuses_instead_of_blocking() {
        let writer = Writer::start(Connection::open_in_memory().unwrap(), None).unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let busy = writer.submit(move |_| {
            let _ = started.send(());
            let _ = held.recv();
            Ok(())
        });
        running.recv().unwrap();
        let queued: Vec<_> = (0..QUEUE_DEPTH)
            .map(|_| writer.submit(|_| Ok(())))
            .collect();
        // Time-boxed on another thread: a blocking submission would never return.
        let refused = std::thread::scope(|scope| {
            let submit = scope.spawn(|| wait(writer.submit(|_| Ok(()))));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !submit.is_finished() {
                if std::time::Instant::now() > deadline {
                    let _ = release.send(());
                    panic!("the submission blocked on the full queue");
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            submit.join().unwrap()
        });
        assert!(
            matches!(refused, Err(StoreError::Overloaded)),
            "{refused:?}"
        );
        release.send(()).unwrap();
        wait(busy).unwrap();
        for pending in queued {
            wait(pending).unwrap();
        }
        writer.close();
    }
}
