//! Read connections and what bounds a read. Reads run on blocking threads, each on a
//! pooled read-only connection, and each is stopped through SQLite's interrupt when:
//!
//! - it runs past its time budget (a watchdog thread keeps the deadlines),
//! - whoever asked for it went away (its [`Read`] future was dropped: a client that
//!   disconnected, a server shutting down its connections),
//! - the store is closed (shutdown does not wait for queries nobody will read).
//!
//! Reads also queue in lanes: searches take permits of their own, so however many run,
//! a history page, the history that fills the cache on joining, an invitation or a
//! preference read never waits behind them.
//!
//! SQLite checks for an interrupt between virtual-machine steps. One step of FTS5 can
//! take long (intersecting long doclists happens inside it), which the caps on a search's
//! words keep short; an interrupt that lands between two statements of a read is lost, so
//! the watchdog repeats it until the read has ended.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tokio::sync::Semaphore;

use crate::core::ports::{Read, StoreError};

/// How long one read may run before it is stopped with [`StoreError::TimedOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudgets {
    /// A full-text search.
    pub search: Duration,
    /// Any other read a client's request makes: history pages, the history a join loads,
    /// invitations, preferences. They are index lookups of at most 500 rows; the budget
    /// only catches a store in trouble.
    pub plain: Duration,
    /// Reads made from blocking code (loading the model and the directory at start and
    /// after an administrative change, the admin commands): larger, and not a client's.
    pub blocking: Duration,
}

impl Default for ReadBudgets {
    fn default() -> Self {
        Self {
            search: Duration::from_secs(2),
            plain: Duration::from_secs(5),
            blocking: Duration::from_secs(60),
        }
    }
}

/// Which permits a read waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    Plain,
    Search,
}

/// How often the watchdog repeats the interrupt of a read that was stopped but has not
/// ended yet (the first interrupt fell between two of its statements).
const INTERRUPT_REPEAT: Duration = Duration::from_millis(20);

pub(super) struct Reads {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    /// Reads at once other than searches; more wait their turn, so a burst of reads cannot
    /// take every core (and a blocking thread each) from the rest of the server.
    plain: Arc<Semaphore>,
    /// Searches at once: they are the costly reads, and have permits of their own so that
    /// however many wait, plain reads do not wait behind them.
    search: Arc<Semaphore>,
    budgets: ReadBudgets,
    watchdog: Arc<Watchdog>,
}

impl Reads {
    pub(super) fn new(path: PathBuf, budgets: ReadBudgets) -> Result<Self, StoreError> {
        Ok(Self {
            path,
            pool: Mutex::new(Vec::new()),
            plain: Arc::new(Semaphore::new(concurrent_reads())),
            search: Arc::new(Semaphore::new(concurrent_searches())),
            budgets,
            watchdog: Watchdog::start()?,
        })
    }

    /// Runs a query now, on this thread, within the blocking budget.
    pub(super) fn run_now<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(self.budgets.blocking, &Arc::new(Control::default()), query)
    }

    /// Runs a query on a blocking thread once a permit of its lane is free, within the
    /// lane's budget. Dropping the returned future stops the query.
    pub(super) fn later<T: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Read<T> {
        let reads = self.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let control = Arc::new(Control::default());
            let mut cancel = CancelOnDrop {
                control: Some(control.clone()),
                watchdog: reads.watchdog.clone(),
            };
            let (permits, budget) = match lane {
                Lane::Plain => (&reads.plain, reads.budgets.plain),
                Lane::Search => (&reads.search, reads.budgets.search),
            };
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| StoreError::Closed)?;
            let task = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                reads.run(budget, &control, query)
            });
            let outcome = task.await.map_err(|e| {
                if e.is_cancelled() {
                    // The runtime is shutting down and never ran it.
                    StoreError::Closed
                } else {
                    StoreError::Backend(format!("read task failed: {e}"))
                }
            });
            cancel.disarm();
            let kind = match lane {
                Lane::Plain => "history",
                Lane::Search => "search",
            };
            crate::core::metrics::metrics().read(kind, started.elapsed());
            outcome?
        })
    }

    /// Stops every read: those running are interrupted, those waiting for a permit and
    /// all later ones fail with [`StoreError::Closed`].
    pub(super) fn close(&self) {
        self.plain.close();
        self.search.close();
        self.watchdog.close();
    }

    fn run<T>(
        &self,
        budget: Duration,
        control: &Arc<Control>,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let connection = self.connection()?;
        // Watched before it begins: a close from now on reaches this read.
        let watch = self.watchdog.watch(budget, control.clone());
        let outcome = match control.begin(&connection) {
            Err(stop) => Err(stop.error()),
            Ok(()) => {
                let result = query(&connection);
                match (result, control.end()) {
                    (Ok(value), _) => Ok(value),
                    // Interrupted (or failed while being stopped): the reason is the error.
                    (Err(_), Some(stop)) => Err(stop.error()),
                    (Err(error), None) => Err(error),
                }
            }
        };
        drop(watch);
        self.give_back(connection);
        outcome
    }

    fn connection(&self) -> Result<Connection, StoreError> {
        if let Some(connection) = lock(&self.pool).pop() {
            return Ok(connection);
        }
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        super::configure(&connection)?;
        Ok(connection)
    }

    /// Returns a connection to the pool, unless a stopped read left it inside a
    /// transaction it could not end: pooled, it would keep serving that old snapshot.
    fn give_back(&self, connection: Connection) {
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            tracing::warn!("a read connection stuck in a transaction was closed");
            return;
        }
        lock(&self.pool).push(connection);
    }
}

impl Drop for Reads {
    fn drop(&mut self) {
        self.watchdog.stop_thread();
    }
}

/// Twice the cores: enough to keep them busy while some reads wait on the disk.
pub(super) fn concurrent_reads() -> usize {
    std::thread::available_parallelism().map_or(4, |n| 2 * n.get())
}

/// Half the cores (at least one): searches never hold more, whatever their number.
pub(super) fn concurrent_searches() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// A mutex whose holder panicked still guards consistent data here (every critical section
/// below only assigns whole fields), so its guard is taken rather than propagating a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a read was stopped; the first reason stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Budget(Duration),
    Cancelled,
    Closed,
}

impl Stop {
    fn error(self) -> StoreError {
        match self {
            Stop::Budget(budget) => StoreError::TimedOut { budget },
            Stop::Cancelled => StoreError::Cancelled,
            Stop::Closed => StoreError::Closed,
        }
    }
}

/// One read's state, shared by the thread running it, its future and the watchdog.
#[derive(Default)]
struct Control {
    state: Mutex<ControlState>,
}

#[derive(Default)]
struct ControlState {
    /// The connection's interrupt while the read runs, and only then: an interrupt must
    /// never reach a connection that went back to the pool for another read.
    running: Option<InterruptHandle>,
    stop: Option<Stop>,
}

impl Control {
    fn stop(&self, why: Stop) {
        let mut state = lock(&self.state);
        state.stop.get_or_insert(why);
        if let Some(interrupt) = &state.running {
            interrupt.interrupt();
        }
    }

    fn stopped(&self) -> bool {
        lock(&self.state).stop.is_some()
    }

    /// Marks the read running on `connection`, unless it was stopped before it began.
    fn begin(&self, connection: &Connection) -> Result<(), Stop> {
        let mut state = lock(&self.state);
        if let Some(stop) = state.stop {
            return Err(stop);
        }
        state.running = Some(connection.get_interrupt_handle());
        Ok(())
    }

    /// Marks the read ended; returns why it was stopped, if it was.
    fn end(&self) -> Option<Stop> {
        let mut state = lock(&self.state);
        state.running = None;
        state.stop
    }
}

/// Cancels a read when its future is dropped before the read ended.
struct CancelOnDrop {
    control: Option<Arc<Control>>,
    watchdog: Arc<Watchdog>,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.control = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            control.stop(Stop::Cancelled);
            // So the interrupt is repeated should this one fall between two statements.
            self.watchdog.wake.notify_one();
        }
    }
}

/// Keeps the deadlines of running reads on a thread of its own, so they hold whether or
/// not anyone polls the reads' futures, and for reads made from blocking code too.
struct Watchdog {
    state: Mutex<Watched>,
    wake: Condvar,
}

#[derive(Default)]
struct Watched {
    next_id: u64,
    reads: HashMap<u64, Watch>,
    /// The store was closed: every read is stopped as it begins.
    closed: bool,
    /// The store is gone: the thread ends.
    ended: bool,
    /// When the thread wakes next by itself (`None`: only when woken), so a read whose
    /// deadline comes later wakes nobody: a busy store costs no wake-up per read.
    wakes_at: Option<Instant>,
}

struct Watch {
    deadline: Instant,
    budget: Duration,
    control: Arc<Control>,
}

/// Takes a read off the watchdog's list when it ends, however it ends.
struct WatchGuard<'a> {
    watchdog: &'a Watchdog,
    id: u64,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        lock(&self.watchdog.state).reads.remove(&self.id);
    }
}

impl Watchdog {
    fn start() -> Result<Arc<Self>, StoreError> {
        let watchdog = Arc::new(Self {
            state: Mutex::new(Watched::default()),
            wake: Condvar::new(),
        });
        let thread = watchdog.clone();
        std::thread::Builder::new()
            .name("perch-store-reads".into())
            .spawn(move || thread.run())
            .map_err(|e| StoreError::Backend(format!("cannot start the read watchdog: {e}")))?;
        Ok(watchdog)
    }

    fn watch(&self, budget: Duration, control: Arc<Control>) -> WatchGuard<'_> {
        let mut state = lock(&self.state);
        if state.closed {
            control.stop(Stop::Closed);
        }
        let id = state.next_id;
        state.next_id += 1;
        let deadline = Instant::now() + budget;
        let sooner = state.wakes_at.is_none_or(|at| deadline < at);
        state.reads.insert(
            id,
            Watch {
                deadline,
                budget,
                control,
            },
        );
        drop(state);
        if sooner {
            self.wake.notify_one();
        }
        WatchGuard { watchdog: self, id }
    }

    fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        for watch in state.reads.values() {
            watch.control.stop(Stop::Closed);
        }
        drop(state);
        self.wake.notify_one();
    }

    fn stop_thread(&self) {
        lock(&self.state).ended = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut state = lock(&self.state);
        while !state.ended {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for watch in state.reads.values() {
                let due = if watch.control.stopped() || now >= watch.deadline {
                    // Stopped already (cancelled, closed) or overdue: interrupt, again
                    // until the read ends.
                    watch.control.stop(Stop::Budget(watch.budget));
                    now + INTERRUPT_REPEAT
                } else {
                    watch.deadline
                };
                next = Some(next.map_or(due, |next| next.min(due)));
            }
            state.wakes_at = next;
            state = match next {
                Some(due) => {
                    let wait = due.saturating_duration_since(now);
                    self.wake
                        .wait_timeout(state, wait)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                }
                None => self
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rusqlite::Connection;

    use super::super::SqliteStore;
    use super::*;
    use crate::core::fixtures::TempDir;
    use crate::core::ports::{ArchiveStore, DirectoryStore, HistoryQuery, Store};

    /// Counts to ten billion: minutes of work unless the read is stopped.
    fn runaway(c: &Connection) -> Result<i64, StoreError> {
        Ok(c.query_row(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000000000)
             SELECT count(*) FROM n",
            [],
            |r| r.get(0),
        )?)
    }

    const LONG: Duration = Duration::from_secs(600);

    fn store(dir: &TempDir, budgets: ReadBudgets) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open_with(dir.path(), budgets).unwrap())
    }

    /// A runtime of the test's own: a broken read must fail the test, not hold it until the
    /// runaway query ends, so the runtime is let go without waiting for its blocking
    /// threads, on a failed assertion too.
    fn run<F: Future>(test: F) -> F::Output {
        struct LetGo(Option<tokio::runtime::Runtime>);
        impl Drop for LetGo {
            fn drop(&mut self) {
                if let Some(runtime) = self.0.take() {
                    runtime.shutdown_background();
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let runtime = LetGo(Some(runtime));
        runtime.0.as_ref().unwrap().block_on(test)
    }

    /// A plain read (a history page) within `within`, or the test fails.
    async fn plain_read_within(store: &SqliteStore, within: Duration) -> Duration {
        let started = Instant::now();
        tokio::time::timeout(within, store.history(1, HistoryQuery::Last(5)))
            .await
            .unwrap_or_else(|_| panic!("a plain read waited more than {within:?}"))
            .unwrap();
        started.elapsed()
    }

    #[test]
    fn a_read_past_its_budget_is_stopped_with_a_typed_error() {
        let dir = TempDir::new("read-budget");
        let budgets = ReadBudgets {
            search: Duration::from_millis(200),
            plain: Duration::from_millis(300),
            blocking: Duration::from_millis(400),
        };
        let store = store(&dir, budgets);
        run(async {
            for (lane, budget) in [(Lane::Search, budgets.search), (Lane::Plain, budgets.plain)] {
                let started = Instant::now();
                let outcome =
                    tokio::time::timeout(Duration::from_secs(10), store.read_later(lane, runaway))
                        .await
                        .expect("the read was not stopped");
                let took = started.elapsed();
                assert!(
                    matches!(outcome, Err(StoreError::TimedOut { budget: b }) if b == budget),
                    "{lane:?}: {outcome:?}"
                );
                assert!(
                    took >= budget && took < budget + Duration::from_secs(1),
                    "{took:?}"
                );
            }
            // Reads from blocking code have a budget too.
            let blocking = store.clone();
            let outcome = tokio::task::spawn_blocking(move || blocking.read(runaway))
                .await
                .unwrap();
            assert!(
                matches!(outcome, Err(StoreError::TimedOut { .. })),
                "{outcome:?}"
            );
            // The interrupted connections went back to the pool in working order.
            plain_read_within(&store, Duration::from_secs(1)).await;
            assert!(store.users().unwrap().is_empty());
        });
    }

    #[test]
    fn a_read_whose_requester_went_away_is_stopped_and_frees_its_permit() {
        let dir = TempDir::new("read-cancel");
        let budgets = ReadBudgets {
            search: LONG,
            plain: LONG,
            blocking: LONG,
        };
        let store = store(&dir, budgets);
        run(async {
            let requests: Vec<_> = (0..concurrent_reads())
                .map(|_| tokio::spawn(store.read_later(Lane::Plain, runaway)))
                .collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Every permit is held: a plain read waits.
            let waiting = tokio::time::timeout(
                Duration::from_millis(300),
                store.history(1, HistoryQuery::Last(5)),
            )
            .await;
            assert!(
                waiting.is_err(),
                "the runaway reads did not hold the permits"
            );
            // The requesters go away (their connections closed): the futures are dropped.
            for request in &requests {
                request.abort();
            }
            let took = plain_read_within(&store, Duration::from_secs(2)).await;
            assert!(took < Duration::from_secs(1), "{took:?}");
        });
    }

    #[test]
    fn plain_reads_never_wait_behind_searches() {
        let dir = TempDir::new("read-lanes");
        let budgets = ReadBudgets {
            search: LONG,
            plain: LONG,
            blocking: LONG,
        };
        let store = store(&dir, budgets);
        run(async {
            // More searches than all permits together: those that run hold every search
            // permit, the rest queue.
            let searches: Vec<_> = (0..concurrent_reads() + concurrent_searches())
                .map(|_| tokio::spawn(store.read_later(Lane::Search, runaway)))
                .collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let search = HistoryQuery::Search {
                words: vec!["word".into()],
                count: 5,
            };
            let queued =
                tokio::time::timeout(Duration::from_millis(300), store.history(1, search)).await;
            assert!(queued.is_err(), "a search did not queue behind the others");
            for _ in 0..3 {
                let took = plain_read_within(&store, Duration::from_secs(2)).await;
                assert!(took < Duration::from_millis(500), "{took:?}");
            }
            store.close();
            for search in searches {
                let outcome = tokio::time::timeout(Duration::from_secs(2), search)
                    .await
                    .expect("a search outlived close")
                    .unwrap();
                assert!(matches!(outcome, Err(StoreError::Closed)), "{outcome:?}");
            }
        });
    }

    #[test]
    fn close_stops_running_reads_at_once_and_refuses_later_ones() {
        let dir = TempDir::new("read-close");
        let budgets = ReadBudgets {
            search: LONG,
            plain: LONG,
            blocking: LONG,
        };
        let store = store(&dir, budgets);
        run(async {
            let plain = tokio::spawn(store.read_later(Lane::Plain, runaway));
            let search = tokio::spawn(store.read_later(Lane::Search, runaway));
            let blocking_store = store.clone();
            let blocking = tokio::task::spawn_blocking(move || blocking_store.read(runaway));
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            store.close();
            let stopped = tokio::time::timeout(Duration::from_secs(2), async {
                (plain.await, search.await, blocking.await)
            })
            .await
            .expect("close did not stop the running reads");
            assert!(started.elapsed() < Duration::from_secs(1));
            for outcome in [stopped.0.unwrap(), stopped.1.unwrap(), stopped.2.unwrap()] {
                assert!(matches!(outcome, Err(StoreError::Closed)), "{outcome:?}");
            }
            let later = store.history(1, HistoryQuery::Last(5)).await;
            assert!(matches!(later, Err(StoreError::Closed)), "{later:?}");
            assert!(matches!(store.users(), Err(StoreError::Closed)));
        });
    }
}
