//! The single writer thread: takes queued writes, runs as many as are waiting in one
//! transaction (each in its own savepoint, so one failing write does not undo the others),
//! commits once, and only then tells each writer how it went.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

use crate::core::ports::{Pending, StoreError};

/// Runs a write inside the batch transaction and returns how to report its outcome once
/// the batch's commit result is known.
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Writes waiting at most; beyond it a write is refused as `Overloaded` at once, never
/// waited for, since submitters run on async workers. Connections already cap the posts
/// they have in flight (64 each), so only a very busy server reaches it.
const QUEUE_DEPTH: usize = 16_384;
/// Upper bound on writes per transaction, so one commit never holds replies back too long.
const MAX_BATCH: usize = 1024;

pub struct Writer {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(connection: Connection) -> Result<Self, StoreError> {
        let (sender, receiver) = sync_channel::<Job>(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("perch-store-writer".into())
            .spawn(move || run(connection, receiver))
            .map_err(|source| StoreError::Io {
                path: "store writer thread".into(),
                source,
            })?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
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

    /// Like `submit`, for work that runs exactly one SQL statement: SQLite undoes a failed
    /// statement (triggers included) on its own and keeps the rest of the transaction, so
    /// no savepoint is needed. That matters for posts: FTS5 writes its pending index to
    /// disk at every savepoint release, one tiny segment per post.
    pub fn submit_statement<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        self.enqueue(move |tx| work(tx))
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
        let (reply, pending) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let outcome = work(tx);
            Box::new(move |commit| {
                let result = match (commit, outcome) {
                    (Ok(()), outcome) => outcome.map(then),
                    (Err(e), _) => Err(StoreError::Commit(e)),
                };
                let _ = reply.send(result);
            })
        });
        // The lock is only held to clone the sender; a poisoned lock means a panic elsewhere
        // already broke the store, so report it closed.
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        let Some(sender) = sender else {
            return failed(StoreError::Closed);
        };
        match sender.try_send(job) {
            Ok(()) => pending,
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

fn run(mut connection: Connection, receiver: Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut tx = match connection.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "store: cannot begin a write transaction");
                // Dropping the jobs drops their reply senders: each writer sees `Closed`.
                drop(batch);
                continue;
            }
        };
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&mut tx)).collect();
        let commit = tx.commit().map_err(|e| e.to_string());
        if let Err(e) = &commit {
            tracing::error!(error = %e, "store: batch commit failed");
        }
        for completion in completions {
            completion(commit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ports::wait;

    /// With the writer busy and its queue full, a submission is refused at once: a
    /// submitter on an async worker must never wait for room in the queue.
    #[test]
    fn a_full_queue_refuses_instead_of_blocking() {
        let writer = Writer::start(Connection::open_in_memory().unwrap()).unwrap();
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
