//! The `perch` command: `serve`, `admin` and `check`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use perch::app::admin::{self, AdminError, user::PasswordSource};
use perch::app::config::{Config, LogFormat};
use perch::app::server;
use perch::core::ports::Store;
use perch::store::SqliteStore;

#[derive(Parser)]
#[command(
    name = "perch",
    version,
    about = "Persistent group chat server (SIP/XCCOS)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Configuration file (perch.toml); see perch.example.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (store, generated certificate); overrides `data_dir`.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store in the data directory (or bring its schema up to date) and exit.
    /// `serve` does the same when it starts; `admin` needs a store that exists.
    Init {
        #[command(flatten)]
        common: Common,
    },
    /// Run the server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Start with demo users (known passwords) on a loopback-only server.
        #[arg(long)]
        demo: bool,
        /// With --demo: also let clients on this machine sign in as any user without a
        /// password (the old demo behaviour, for bots and scripts).
        #[arg(long, requires = "demo")]
        trust_loopback: bool,
        /// Log as JSON lines instead of readable text.
        #[arg(long)]
        log_json: bool,
    },
    /// Shell completions and manual pages (what a package installs).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Check a running server as a monitoring system would: two probe users sign in over
    /// TLS, join a room, one posts, the other must receive it, and the history must hold
    /// it. Prints one line (monitoring-plugin format, with each step's time) and exits 0
    /// OK, 1 WARNING (slower than --warn), 2 CRITICAL (a step failed or was slower than
    /// --critical), 3 UNKNOWN (the check's own arguments or configuration are wrong).
    Check {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: CheckArgs,
    },
    /// Administer users, groups, policy, settings, categories, rooms and add-ins in the data
    /// directory. A running server picks changes up within a second.
    Admin {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: Box<AdminCommand>,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The server's SIP over TLS address (default: the configuration's listen.tls, on
    /// loopback if it listens on every address).
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// The SIP domain (default: the configuration's domain).
    #[arg(long)]
    domain: Option<String>,
    /// The room to post in: its name, or its ma-chan:// URI.
    #[arg(long, value_name = "NAME")]
    room: Option<String>,
    /// The probe user who posts (user@domain, or user in the domain).
    #[arg(long)]
    user: Option<String>,
    /// The probe user who must receive the post.
    #[arg(long)]
    peer: Option<String>,
    /// A file with the probe users' passwords: the first line the user's, the second the
    /// peer's (the first if there is none). Without it: PERCH_CHECK_PASSWORD and
    /// PERCH_CHECK_PEER_PASSWORD.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Trust this certificate (PEM: the server's own, or the CA that signed it) instead of
    /// the system's CA bundle.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Sign in with NTLM and MS-SIPAE signing, as Lync and SIPE do, instead of Digest.
    #[arg(long)]
    ntlm: bool,
    /// Seconds to wait to connect and for any one answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// WARNING when the whole check, or one step, takes longer (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    warn: u64,
    /// CRITICAL when the whole check, or one step, takes longer (milliseconds).
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    critical: u64,
    /// Check `perch serve --demo` on this machine: its address, domain, room Lobby, alice
    /// and bob with their demo passwords, and its generated certificate (read from the
    /// demo's data directory; --data if it was given one). Options given still apply.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// Print the completion script for a shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (perch.1, and one per command: perch-admin-room.1 ...).
    Man {
        /// The directory to write them to (it must exist).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Users: add, set, remove, unlock, prefs, list.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of users and groups: add, member add|remove, remove, list.
    #[command(subcommand)]
    Group(admin::group::Command),
    /// EnablePersistentChat for global, a group or a user: set, remove, list.
    #[command(subcommand)]
    Policy(admin::policy::Command),
    /// Server chat settings: show, set.
    #[command(subcommand)]
    Config(admin::config::Command),
    /// Room categories: create, set, remove, list, show.
    #[command(subcommand)]
    Category(admin::category::Command),
    /// Rooms: create, set, disable, enable, remove, clear, show, list.
    #[command(subcommand)]
    Room(admin::room::Command),
    /// Room add-ins: create, set, remove, list.
    #[command(subcommand)]
    Addin(admin::addin::Command),
    /// Tokens of the HTTPS admin API: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy the store, consistently, to a new file while the server runs (restore: stop
    /// the server, put the copy in place of the data directory's perch.sqlite3, start it).
    Backup {
        /// The copy to write; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print its secret (only its digest is kept: store the secret now).
    Create {
        /// What the token is for, e.g. ansible or grafana.
        name: String,
    },
    /// List tokens: name, created, last used.
    List,
    /// Revoke a token: requests with it are refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is asked for unless --password-stdin or --no-password.
    Add {
        /// user@domain or sip:user@domain
        uri: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// No Digest password: the user can sign in only from a trusted network.
        #[arg(long)]
        no_password: bool,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a user's display name, password or enabled flag.
    Set {
        uri: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// Set a new password, read from the first line of standard input.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// Set a new password, asked for on the terminal.
        #[arg(long)]
        password: bool,
        /// Let the user sign in again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Refuse the user's sign-ins and end their registrations at once.
        #[arg(long)]
        disable: bool,
    },
    /// Remove a user.
    Remove { uri: String },
    /// Show a user's client preferences (label, version, bytes), or clear them.
    Prefs {
        uri: String,
        /// Remove them all: the user's client starts again from its defaults.
        #[arg(long)]
        clear: bool,
    },
    /// Lift a user's sign-in throttle: the running server forgets their failed sign-ins
    /// from every address.
    Unlock { uri: String },
    /// List users: URI, state, whether a password is set, display name.
    List,
}

/// Exit status when the store's writer thread died while serving: distinct from 1 (perch
/// refused to start or an admin command failed) and from 101 (a panic elsewhere), so a
/// supervisor or operator can tell that the store failed. 70 is sysexits' EX_SOFTWARE.
const EXIT_STORE_DIED: u8 = 70;

/// How long a server whose store died gives its connections to end before it exits.
const SHUTDOWN_AFTER_STORE_DIED: Duration = Duration::from_secs(10);

/// Why perch stops with a failure; each kind has its own exit status.
enum Failure {
    /// Configuration, arguments or the data directory: status 1.
    Refused(String),
    /// The store's writer thread died while serving: status [`EXIT_STORE_DIED`].
    StoreDied(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Refused(message)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let result = match cli.command {
        Command::Init { common } => init(&common).map_err(Failure::from),
        Command::Serve {
            common,
            demo,
            trust_loopback,
            log_json,
        } => serve(&common, demo.then_some(trust_loopback), log_json),
        Command::Admin { common, command } => run_admin(&common, *command).map_err(Failure::from),
        Command::Generate(command) => generate(command).map_err(Failure::from),
        Command::Check { common, args } => return check(&common, &args),
    };
    // Written, not `eprintln!`ed: a failing stderr must not turn the exit status into a
    // panic's 101.
    let mut stderr = std::io::stderr();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            let _ = writeln!(stderr, "perch: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::StoreDied(reason)) => {
            let _ = writeln!(
                stderr,
                "perch: stopped because the store writer died ({reason}); exit status {EXIT_STORE_DIED}"
            );
            ExitCode::from(EXIT_STORE_DIED)
        }
    }
}

/// Help and version go to standard output with status 0; a usage error is one line on
/// standard error and status 1, like every other refusal, except under `perch check`,
/// whose usage errors are its UNKNOWN line and status 3, as a monitoring system expects.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's message is its first paragraph; usage and tips follow blank lines.
    let rendered = error.render().to_string();
    let paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let message = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let subcommand = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if subcommand.as_deref() == Some("check") {
        return check_outcome(&perch::app::check::Outcome::unknown(&format!(
            "{message} (perch check --help lists what it takes)"
        )));
    }
    let _ = writeln!(
        std::io::stderr(),
        "perch: {message} (perch --help, or --help after a command, lists what it takes)"
    );
    ExitCode::FAILURE
}

/// The configuration from the file, the environment and `--data`, over `defaults`.
/// `PERCH_*` variables that name no setting are ignored, with a warning each.
fn load_config(common: &Common, defaults: toml::Table) -> Result<Config, String> {
    let loaded = Config::load_over(defaults, common.config.as_deref(), std::env::vars())
        .map_err(|e| e.to_string())?;
    for name in &loaded.ignored_variables {
        let _ = writeln!(
            std::io::stderr(),
            "perch: warning: ignoring environment variable {name}: it names no setting"
        );
    }
    let mut config = loaded.config;
    if let Some(data) = &common.data {
        config.data_dir = data.clone();
    }
    Ok(config)
}

fn generate(command: GenerateCommand) -> Result<(), String> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    match command {
        GenerateCommand::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli, "perch", &mut script);
            std::io::stdout()
                .write_all(&script)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::BrokenPipe => Ok(()),
                    _ => Err(format!("cannot write the completions: {e}")),
                })
        }
        GenerateCommand::Man { out } => clap_mangen::generate_to(cli, &out)
            .map_err(|e| format!("cannot write manual pages to {}: {e}", out.display())),
    }
}

/// `perch check`: one line on standard output, the monitoring-plugin exit status.
fn check(common: &Common, args: &CheckArgs) -> ExitCode {
    use perch::app::check::{self, Options, Outcome};
    let defaults = if args.demo {
        perch::app::admin::demo::config_defaults()
    } else {
        toml::Table::new()
    };
    let options = Options {
        server: args.server.clone(),
        domain: args.domain.clone(),
        room: args.room.clone(),
        user: args.user.clone(),
        peer: args.peer.clone(),
        password_file: args.password_file.clone(),
        ca: args.ca.clone(),
        ntlm: args.ntlm,
        timeout: Duration::from_secs(args.timeout.max(1)),
        warn: Duration::from_millis(args.warn),
        critical: Duration::from_millis(args.critical),
        demo: args.demo,
    };
    let probe = load_config(common, defaults)
        .and_then(|config| options.probe(&config, |name| std::env::var(name).ok()));
    let outcome = match probe {
        Err(message) => Outcome::unknown(&message),
        Ok(probe) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(check::run(&probe)),
            Err(e) => Outcome::unknown(&format!("cannot start: {e}")),
        },
    };
    check_outcome(&outcome)
}

fn check_outcome(outcome: &perch::app::check::Outcome) -> ExitCode {
    let _ = writeln!(std::io::stdout(), "{}", outcome.line);
    ExitCode::from(outcome.state.exit_code())
}

fn init(common: &Common) -> Result<(), String> {
    let config = load_config(common, toml::Table::new())?;
    let existed = SqliteStore::exists(&config.data_dir);
    let store = SqliteStore::open(&config.data_dir).map_err(|e| e.to_string())?;
    store.close();
    let verb = if existed { "is up to date" } else { "created" };
    let _ = writeln!(
        std::io::stdout(),
        "store in {} {verb}",
        config.data_dir.display()
    );
    Ok(())
}

/// Standard error for log lines, with every write error swallowed. A log that cannot be
/// written (its disk full, a closed pipe) costs the line, never the server: the fmt
/// layer answers a failed write with `eprintln!`, which panics when stderr fails, in
/// whichever thread logged (a connection's task, the store writer).
struct LossyStderr(std::io::Stderr);

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // All of it or nothing: the event is one line, written with one call.
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

/// Swaps the log filter of a running server (SIGHUP with a new `log.level`).
type LogFilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Logging to standard error; `RUST_LOG`, when set, overrides `log.level` (then a reload
/// leaves the filter as it is: `None`).
fn init_logging(config: &Config, json: bool) -> Option<LogFilterHandle> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt, reload};
    let from_env = EnvFilter::try_from_default_env().ok();
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(&config.log.level));
    let (filter, handle) = reload::Layer::new(filter);
    let layer = fmt::layer()
        .with_writer(|| LossyStderr(std::io::stderr()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let layer = if json || config.log.format == LogFormat::Json {
        layer.json().boxed()
    } else {
        layer.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    (!fixed).then_some(handle)
}

/// SIGHUP: reads the configuration again, reloads the TLS certificate and the log level
/// without dropping a connection, and says which other changes wait for a restart. A
/// configuration that does not load changes nothing.
fn reload(
    running: &mut server::RunningServer,
    current: &mut Config,
    load: &dyn Fn() -> Result<Config, String>,
    log_filter: Option<&LogFilterHandle>,
) {
    let new = match load() {
        Ok(new) => new,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: configuration not reloaded; nothing changed");
            return;
        }
    };
    if let Err(error) = running.reload_certificate(&new) {
        tracing::error!(%error, "SIGHUP: certificate not reloaded; the one in use stays");
    }
    if let Some(handle) = log_filter
        && new.log.level != current.log.level
    {
        match tracing_subscriber::EnvFilter::try_new(&new.log.level) {
            Ok(filter) => {
                let _ = handle.reload(filter);
            }
            Err(error) => tracing::error!(%error, "SIGHUP: log.level not applied"),
        }
    }
    // Everything else is wired into listeners, sessions and limits at start.
    let rest = |config: &Config| {
        let mut config = config.clone();
        config.tls = Default::default();
        config.log.level.clear();
        format!("{config:?}")
    };
    if rest(&new) != rest(current) {
        tracing::warn!("SIGHUP: other changed settings take effect at the next restart");
    }
    tracing::info!("SIGHUP: configuration reloaded (certificate, log level)");
    *current = new;
}

/// `demo`: `None` for a normal server, `Some(trust_loopback)` for `--demo`.
fn serve(common: &Common, demo: Option<bool>, log_json: bool) -> Result<(), Failure> {
    let defaults = match demo {
        Some(_) => perch::app::admin::demo::config_defaults(),
        None => toml::Table::new(),
    };
    let mut config = load_config(common, defaults)?;
    if demo == Some(true) {
        perch::app::admin::demo::trust_loopback(&mut config);
    }
    let trust_loopback = demo == Some(true);
    let demo = demo.is_some();
    let log_filter = init_logging(&config, log_json);
    let load_again = || -> Result<Config, String> {
        let defaults = if demo {
            perch::app::admin::demo::config_defaults()
        } else {
            toml::Table::new()
        };
        let mut config = load_config(common, defaults)?;
        if trust_loopback {
            perch::app::admin::demo::trust_loopback(&mut config);
        }
        Ok(config)
    };
    raise_open_file_limit();
    // Sockets and a configured certificate first: nothing is created on disk for a server
    // that cannot start.
    let prepared = server::prepare(&config).map_err(|e| e.to_string())?;
    let new_store = !SqliteStore::exists(&config.data_dir);
    let sqlite = SqliteStore::open(&config.data_dir).map_err(|e| e.to_string())?;
    let store_died = sqlite.writer_died();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    if demo && new_store {
        perch::app::admin::demo::provision(store.as_ref(), &config.domain)
            .map_err(|e| e.to_string())?;
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async {
        let stop = stop_signal();
        tokio::pin!(stop);
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        tokio::pin!(store_died);
        let mut running = server::start_prepared(&config, store.clone(), prepared)
            .await
            .map_err(|e| e.to_string())?;
        if demo {
            let instructions =
                perch::app::admin::demo::instructions(&config, &running, store.as_ref());
            let _ = writeln!(std::io::stdout(), "{instructions}");
        }
        loop {
            tokio::select! {
                () = &mut stop => {
                    tracing::info!("shutting down");
                    running.shutdown().await;
                    tracing::info!("stopped");
                    return Ok(());
                }
                Some(()) = hangup.recv() => {
                    reload(&mut running, &mut config, &load_again, log_filter.as_ref());
                }
                // Without its writer perch would go on signing users in and refusing every
                // post; stopping lets a supervisor restart it with a working store.
                reason = &mut store_died => {
                    tracing::error!(
                        %reason,
                        exit_status = EXIT_STORE_DIED,
                        "the store writer died: no write can be stored; stopping"
                    );
                    let _ = tokio::time::timeout(SHUTDOWN_AFTER_STORE_DIED, running.shutdown()).await;
                    return Err(Failure::StoreDied(reason));
                }
            }
        }
    })
}

/// Registers for SIGTERM and SIGINT at once, so that a signal arriving before the server
/// has announced itself stops it gracefully too; resolves when one arrives. Must be called
/// inside the runtime.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            // Without handlers the default action (ending the process) still applies.
            _ => std::future::pending().await,
        }
    }
}

/// Tens of thousands of connections need as many descriptors; the soft limit is often 1024.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

fn run_admin(common: &Common, command: AdminCommand) -> Result<(), String> {
    let config = load_config(common, toml::Table::new())?;
    // An edit in a store the server never reads would look like it worked.
    if !SqliteStore::exists(&config.data_dir) {
        return Err(format!(
            "no store in {}: give the server's data directory (--data DIR, or data_dir in --config), or create one with `perch init`",
            config.data_dir.display()
        ));
    }
    if let AdminCommand::Backup { to } = &command {
        let bytes =
            perch::store::sqlite::backup(&config.data_dir, to).map_err(|e| e.to_string())?;
        let _ = writeln!(
            std::io::stdout(),
            "backed up {} to {} ({bytes} bytes)",
            config.data_dir.display(),
            to.display()
        );
        return Ok(());
    }
    let store = SqliteStore::open(&config.data_dir).map_err(|e| e.to_string())?;
    // The chat-model commands work on the model as stored when they start.
    let model = || admin::Context::load(&store, &config.domain);
    let lines = match command {
        AdminCommand::User(command) => run_user(&store, &config.domain, command),
        AdminCommand::Group(command) => model().and_then(|ctx| admin::group::run(&ctx, command)),
        AdminCommand::Policy(command) => model().and_then(|ctx| admin::policy::run(&ctx, command)),
        AdminCommand::Config(command) => model().and_then(|ctx| admin::config::run(&ctx, command)),
        AdminCommand::Category(command) => {
            model().and_then(|ctx| admin::category::run(&ctx, command))
        }
        AdminCommand::Room(command) => model().and_then(|ctx| admin::room::run(&ctx, command)),
        AdminCommand::Addin(command) => model().and_then(|ctx| admin::addin::run(&ctx, command)),
        AdminCommand::Token(command) => run_token(&store, command).map_err(AdminError::from),
        AdminCommand::Backup { .. } => Ok(Vec::new()), // done above, without the writer
    };
    store.close();
    for line in lines.map_err(|e| e.to_string())? {
        // A closed pipe (`perch admin room list | head`) ends the listing, not in a panic.
        if writeln!(std::io::stdout(), "{line}").is_err() {
            break;
        }
    }
    Ok(())
}

fn run_token(
    store: &dyn Store,
    command: TokenCommand,
) -> Result<Vec<String>, perch::core::service::ServiceError> {
    use perch::core::service;
    let time = |ticks: i64| match ticks {
        0 => "never".to_owned(),
        ticks => admin::format_ticks(ticks),
    };
    Ok(match command {
        TokenCommand::Create { name } => {
            let secret = service::create_admin_token(store, &name)?;
            vec![
                format!("created token {name}; its secret (shown only now):"),
                secret,
            ]
        }
        TokenCommand::List => service::admin_tokens(store)?
            .into_iter()
            .map(|t| {
                format!(
                    "{}\t{}\t{}",
                    t.name,
                    time(t.created_at),
                    time(t.last_used_at)
                )
            })
            .collect(),
        TokenCommand::Revoke { name } => {
            service::revoke_admin_token(store, &name)?;
            vec![format!("revoked token {name}")]
        }
    })
}

fn run_user(
    store: &dyn Store,
    domain: &str,
    command: UserCommand,
) -> Result<Vec<String>, AdminError> {
    let mut lines = Vec::new();
    match command {
        UserCommand::Add {
            uri,
            name,
            password_stdin,
            no_password,
            disabled,
        } => {
            let password = match (no_password, password_stdin) {
                (true, _) => None,
                (false, true) => Some(admin::user::read_password(PasswordSource::Stdin)?),
                (false, false) => Some(admin::user::read_password(PasswordSource::Prompt)?),
            };
            let user = perch::core::service::add_user(
                store,
                &uri,
                name.as_deref(),
                password.as_deref(),
                !disabled,
            )?;
            lines.push(format!("added sip:{}", user.aor));
            if !user.aor.ends_with(&format!("@{domain}")) {
                let _ = writeln!(
                    std::io::stderr(),
                    "perch: warning: sip:{} is not in the server's domain {domain}: it cannot sign in to this server",
                    user.aor
                );
            }
        }
        UserCommand::Set {
            uri,
            name,
            password_stdin,
            password,
            enable,
            disable,
        } => {
            let password = if password_stdin {
                Some(admin::user::read_password(PasswordSource::Stdin)?)
            } else if password {
                Some(admin::user::read_password(PasswordSource::Prompt)?)
            } else {
                None
            };
            let enabled = match (enable, disable) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let user = perch::core::service::set_user(
                store,
                &uri,
                name.as_deref(),
                password.as_deref(),
                enabled,
            )?;
            lines.push(format!("updated sip:{}", user.aor));
        }
        UserCommand::Remove { uri } => {
            let snapshot = perch::core::Snapshot::from_model(store.load_model()?);
            let removed = perch::core::service::remove_user(store, &snapshot, &uri)?;
            lines.push(format!("removed sip:{}", removed.aor));
            for (kind, names) in [
                ("rooms", &removed.rooms),
                ("categories", &removed.categories),
                ("groups", &removed.groups),
            ] {
                if !names.is_empty() {
                    lines.push(format!("removed from {kind}: {}", names.join(", ")));
                }
            }
        }
        UserCommand::Prefs { uri, clear: false } => {
            for entry in perch::core::service::preferences(store, &uri)? {
                lines.push(format!("{}\t{}\t{}", entry.label, entry.seqid, entry.bytes));
            }
        }
        UserCommand::Prefs { uri, clear: true } => {
            let (aor, removed) = perch::core::service::clear_preferences(store, &uri)?;
            lines.push(format!("removed {removed} preferences of sip:{aor}"));
        }
        UserCommand::Unlock { uri } => {
            let aor = perch::core::service::unlock_user(store, &uri)?;
            lines.push(format!("unlocked sip:{aor}"));
        }
        UserCommand::List => lines = admin::user::list(store)?,
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and every flag or argument says what it is in `--help`.
    #[test]
    fn every_command_and_flag_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                for arg in sub.get_arguments() {
                    let id = arg.get_id().as_str();
                    if arg.is_positional() || matches!(id, "help" | "version") {
                        continue;
                    }
                    if arg.get_help().is_none() && arg.get_long_help().is_none() {
                        missing.push(format!("{path} --{id}"));
                    }
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "perch", &mut missing);
        assert!(missing.is_empty(), "without a description: {missing:#?}");
        Cli::command().debug_assert();
    }
}
