//! The command line of `perch-load`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use perch::core::model::Privacy;

use crate::auth::AuthMethod;
use crate::null_responder::FanoutMode;
use crate::prefill::PrefillArgs;
use crate::provision::RoomClass;
use crate::scenarios::Attack;
use crate::scenarios::HistoryArgs;

const ABOUT: &str = "Load generator and benchmarks for perch: real SIP (TCP or TLS), XCCOS, \
measured against baselines. Loopback only: every target must be in 127.0.0.0/8 or be ::1; \
any other address is refused, with or without --target.";

#[derive(Parser)]
#[command(name = "perch-load", version, about = ABOUT, long_about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write users (no password), a category open to the domain and rooms of given sizes
    /// with members straight into a data directory (fast bulk path through the store).
    Provision(ProvisionArgs),
    /// Write N messages of varied text (and marker words of known frequency) into the
    /// rooms of a provisioned data directory, straight into SQLite: fast history for the
    /// `history` scenario. perch must not be running on the directory.
    Prefill(PrefillArgs),
    /// Idle registered sessions (REGISTER, chat dialog, bjoin): logins/s and the server's
    /// memory per session.
    Connections(ConnectionsArgs),
    /// N clients in one room, posters at a rate: post→delivery latency and deliveries/s.
    Fanout(FanoutArgs),
    /// Clients posting as fast as acknowledgements come back: acknowledged (committed) posts/s.
    Ingest(IngestArgs),
    /// Clients bjoin all their rooms at once, in rounds: joins/s.
    JoinStorm(JoinStormArgs),
    /// Lync's capacity model, scaled: every client joins its rooms of 30, 150 and up to
    /// 16,000 members (provision --lync-model) and posts at the model's rates per room size
    /// × clients ÷ 80,000 × --factor: post→delivery latency, 0 errors expected.
    LyncModel(LyncModelArgs),
    /// Clients in their rooms read history (cmd:bccontext), one query outstanding each:
    /// `last` from perch's cache, `before msgid` pages from the store, full-text searches
    /// for terms with known hit counts (prefill's marker words); every answer checked
    /// against the store. Latency per kind.
    History(HistoryArgs),
    /// --connections hostile connections (idle, half-open, slowloris) held open while a
    /// legitimate client signs in and joins a room --probes times: how long that takes.
    Siege(SiegeArgs),
    /// The limits perch is compared with.
    #[command(subcommand)]
    Baseline(BaselineCommand),
}

#[derive(Args, Debug, Clone)]
pub struct ProvisionArgs {
    /// perch data directory (created if missing).
    #[arg(long)]
    pub data: PathBuf,
    /// Users to create: PREFIX000000@DOMAIN, PREFIX000001@DOMAIN, ...
    #[arg(long)]
    pub users: usize,
    /// COUNT rooms of SIZE members each, e.g. `--rooms-of 30:100 --rooms-of 1000:1`.
    /// Members of a class are taken from the users in order, wrapping around.
    #[arg(long = "rooms-of", value_name = "SIZE:COUNT")]
    pub rooms_of: Vec<RoomClass>,
    #[arg(long, default_value = "example.test")]
    pub domain: String,
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// The category that holds the rooms (allowed: the whole domain).
    #[arg(long, default_value = "LoadTest")]
    pub category: String,
    /// open, closed (members only) or secret.
    #[arg(long, default_value = "closed")]
    pub privacy: Privacy,
    /// Every user's password (Digest; only its hashes are stored). Without it users have
    /// none and perch must trust the load generator's addresses.
    #[arg(long)]
    pub password: Option<String>,
    /// Add the room mix of Lync's capacity model for --users (rooms of 30, 150 and up to
    /// 16,000 members; each user in 20, 2 and 2 of them: 24 rooms to join).
    #[arg(long)]
    pub lync_model: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options every scenario shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server address, loopback only: 127.0.0.0/8 or [::1] (anything else is refused).
    /// [default: 127.0.0.1:5060, or 127.0.0.1:5061 with --tls]
    #[arg(long)]
    pub target: Option<String>,
    /// Speak SIP over TLS, trusting only the server's certificate (--cert).
    #[arg(long)]
    pub tls: bool,
    /// The certificate to pin with --tls [default: DATA/dev-cert.pem].
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The server's data directory: users and rooms are read from its store. Without it,
    /// users and rooms are made up (useful only against the null responder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "example.test")]
    pub domain: String,
    /// The chat endpoint clients INVITE [default: sip:ocschat@DOMAIN].
    #[arg(long)]
    pub chat_uri: Option<String>,
    /// Every user's password: REGISTER answers perch's challenge with it (provision
    /// --password sets it), see --auth. Without it perch must trust the clients' addresses.
    #[arg(long)]
    pub password: Option<String>,
    /// How REGISTER answers perch's challenge: `digest`, or `ntlm` (NTLMv2 with MS-SIPAE
    /// signing of every message, as Pidgin-SIPE and Lync sign in). Needs --password.
    /// [default: digest with --password; without one, none: trusted network]
    #[arg(long, value_enum, requires = "password")]
    pub auth: Option<AuthMethod>,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Connections (clients) to open, at most.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Use only rooms with exactly this many members (e.g. 1 for ingest without fan-out).
    #[arg(long)]
    pub room_size: Option<usize>,
    /// Rooms each client joins with bjoin, at most (of those that list it as a member).
    #[arg(long, default_value_t = 24)]
    pub rooms_per_user: usize,
    /// How long one request may wait for its answer, seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// How long logging in and joining may take for all clients, seconds.
    #[arg(long, default_value_t = 120)]
    pub setup_timeout: u64,
    /// After the window, how long to wait for the answers and deliveries still due, seconds.
    #[arg(long, default_value_t = 5)]
    pub drain: u64,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Connections per loopback source address (127.0.0.1, 127.0.0.2, ...), to stay under
    /// a server's per-address cap; 0 lets the system choose.
    #[arg(long, default_value_t = 200)]
    pub per_source: usize,
    /// The server's process id: its RSS and CPU are read from /proc/PID.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// What the target is, for the report.
    #[arg(long, default_value = "perch")]
    pub label: String,
    /// Then run the same scenario against a null responder started for the purpose (a child
    /// process of this binary) and report perch ÷ null responder.
    #[arg(long)]
    pub compare_null: bool,
    /// Null responder fan-out: to the post's room (as perch) or to every connection.
    #[arg(long, default_value = "room")]
    pub null_fanout: FanoutMode,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// The room [default: the smallest room with at least --connections members].
    #[arg(long)]
    pub room: Option<String>,
    /// Clients that post (the first ones of the room).
    #[arg(long, default_value_t = 1)]
    pub posters: usize,
    /// Posts per second, all posters together.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Bytes of text per post (words of a 4,000-word vocabulary, at least this many).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Posts a poster may have unacknowledged; a post due beyond that is skipped and counted.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
}

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    #[command(flatten)]
    pub common: Common,
    /// Posts each client keeps unacknowledged.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Bytes of text per post (words of a 4,000-word vocabulary, at least this many).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Then measure raw SQLite inserts in this directory (same disk as the data) and report
    /// acknowledged posts/s ÷ rows/s.
    #[arg(long)]
    pub compare_sqlite: Option<PathBuf>,
    /// Rows per transaction for --compare-sqlite [default: --connections, the most posts
    /// perch's writer can find queued at once when each connection awaits its own commit].
    #[arg(long)]
    pub sqlite_batch: Option<usize>,
    /// With --compare-sqlite: build perch's message indexes and FTS5 index too.
    #[arg(long)]
    pub sqlite_perch_schema: bool,
    /// With --compare-sqlite: one savepoint per row, as perch's writer.
    #[arg(long)]
    pub sqlite_savepoint_per_row: bool,
}

#[derive(Args, Debug, Clone)]
pub struct JoinStormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Rounds of bjoin (then BYE and a new INVITE) per client; 0 = as many as the window
    /// holds. One round is one storm: everyone joins at once.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

#[derive(Args, Debug, Clone)]
pub struct SiegeArgs {
    #[command(flatten)]
    pub common: Common,
    /// What the hostile connections do.
    #[arg(long, value_enum, default_value = "mix")]
    pub attack: Attack,
    /// Sign-ins by the legitimate client, spread over the window: REGISTER (answering the
    /// challenge with --password), chat dialog, join of one room, a post acknowledged and
    /// echoed back, BYE.
    #[arg(long, default_value_t = 20)]
    pub probes: usize,
    /// Also, through the window, N connections (from 127.0.1.1 on: another /24 than the
    /// probe's) that send REGISTERs without credentials back to back, each with a new
    /// Call-ID and branch, and reopen when closed; one in ten answers every challenge with
    /// a wrong password. 0: none.
    #[arg(long, default_value_t = 0)]
    pub nonce_flood: usize,
    /// Also, through the window, one user (signed in as the probe is, from an address of
    /// its own) tries to open N chat dialogs: half of them on one connection, the rest 16
    /// per connection on new ones, all held open. perch's caps (8 per connection, 32 per
    /// user by default) should refuse most. 0: none.
    #[arg(long, default_value_t = 0)]
    pub dialog_flood: usize,
}

#[derive(Args, Debug, Clone)]
pub struct LyncModelArgs {
    #[command(flatten)]
    pub common: Common,
    /// Multiplies the model's post rates (the target: ×100).
    #[arg(long, default_value_t = 100.0)]
    pub factor: f64,
    /// Bytes of text per post (words of a 4,000-word vocabulary, at least this many).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Posts a client may have unacknowledged; a post due beyond that is skipped and counted.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
}

#[derive(Subcommand)]
pub enum BaselineCommand {
    /// A server made of perch's SIP codec alone: answers everything 200, echoes commands,
    /// fans posts out. Point the scenarios at it (--target ... --label null-responder).
    NullResponder(NullArgs),
    /// Raw SQLite batched inserts of message-sized rows, WAL + synchronous=FULL: rows/s.
    Sqlite(SqliteArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NullArgs {
    /// Where to listen: loopback only.
    #[arg(long, default_value = "127.0.0.1:5070")]
    pub listen: String,
    /// Serve TLS with a development certificate generated into this directory
    /// (clients pin DIR/dev-cert.pem).
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    #[arg(long, default_value = "room")]
    pub fanout: FanoutMode,
    /// Stop by itself after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub lifetime: u64,
}

#[derive(Args, Debug, Clone)]
pub struct SqliteArgs {
    /// Directory on the disk to measure (the data directory's disk); a scratch database
    /// is created there and removed afterwards.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Rows per transaction (perch's writer takes at most 1024 queued writes per commit).
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Mean bytes of text per row (chat-like sentences, as prefill writes).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Build perch's message indexes and FTS5 index too.
    #[arg(long)]
    pub perch_schema: bool,
    /// Wrap each row in its own savepoint, as perch's writer does with each write.
    #[arg(long)]
    pub savepoint_per_row: bool,
    /// Stop after this many rows.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_rows: u64,
    #[arg(long)]
    pub json: bool,
}

/// The null responder's listen address, checked like a target.
pub fn null_listen(args: &NullArgs) -> Result<SocketAddr, crate::target::TargetError> {
    crate::target::parse_loopback(&args.listen)
}
