//! `perch-load`: a load generator and benchmark suite for perch. It provisions users and
//! rooms, drives real SIP/XCCOS clients (TCP or TLS) through scenarios, measures the
//! server from /proc, and compares it with baselines made of the same parts: a null
//! responder on perch's SIP codec and raw SQLite inserts. Loopback only. See
//! bench/README.md.

mod auth;
mod cli;
mod client;
mod error;
mod null_responder;
mod plan;
mod prefill;
mod procfs;
mod provision;
mod random;
mod report;
mod run;
mod scenarios;
mod sqlite_baseline;
mod stats;
mod target;
mod text;
mod xccos;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{BaselineCommand, Cli, Command, Common};
use error::LoadError;
use null_responder::NullOptions;
use provision::ProvisionOptions;
use report::Output;
use scenarios::{
    FanoutOptions, IngestOptions, JoinStormOptions, LyncModelOptions, Scenario, SiegeOptions,
};
use sqlite_baseline::SqliteOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("perch-load: {error}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, LoadError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)
}

/// Thousands of connections need file descriptors: raise the soft limit to the hard one.
fn raise_open_files() {
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("perch-load: cannot raise the open-file limit: {error}");
    }
}

fn dispatch(command: Command) -> Result<ExitCode, LoadError> {
    match command {
        Command::Provision(args) => {
            let summary = provision::run(&ProvisionOptions {
                data: args.data,
                domain: args.domain,
                users: args.users,
                prefix: args.prefix,
                category: args.category,
                rooms_of: if args.lync_model {
                    let mut classes = args.rooms_of;
                    classes.extend(provision::lync_model_rooms(args.users));
                    classes
                } else {
                    args.rooms_of
                },
                privacy: args.privacy,
                password: args.password,
                quiet: args.json,
            })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{} users added ({} existed, {:.0}/s), {} rooms added ({} existed) with {} memberships ({:.0}/s) in category {}, {:.2} s in all",
                    summary.users_added,
                    summary.users_existing,
                    summary.users_per_s,
                    summary.rooms_added,
                    summary.rooms_existing,
                    summary.memberships,
                    summary.memberships_per_s,
                    summary.category,
                    summary.secs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Prefill(args) => prefill::command(args),
        Command::Connections(args) => scenario(Scenario::Connections, args.common),
        Command::History(args) => scenario(Scenario::History(args.options()?), args.common),
        Command::Fanout(args) => scenario(
            Scenario::Fanout(FanoutOptions {
                room: args.room,
                posters: args.posters,
                rate: args.rate,
                size: args.size,
                in_flight: args.in_flight,
            }),
            args.common,
        ),
        Command::Ingest(args) => scenario(
            Scenario::Ingest(IngestOptions {
                in_flight: args.in_flight,
                size: args.size,
                compare_sqlite: args.compare_sqlite,
                sqlite_batch: args.sqlite_batch,
                sqlite_perch_schema: args.sqlite_perch_schema,
                sqlite_savepoint_per_row: args.sqlite_savepoint_per_row,
            }),
            args.common,
        ),
        Command::JoinStorm(args) => scenario(
            Scenario::JoinStorm(JoinStormOptions {
                rounds: args.rounds,
            }),
            args.common,
        ),
        Command::Siege(args) => scenario(
            Scenario::Siege(SiegeOptions {
                attack: args.attack,
                probes: args.probes,
                nonce_flood: args.nonce_flood,
                dialog_flood: args.dialog_flood,
            }),
            args.common,
        ),
        Command::LyncModel(args) => scenario(
            Scenario::LyncModel(LyncModelOptions {
                factor: args.factor,
                size: args.size,
                in_flight: args.in_flight,
            }),
            args.common,
        ),
        Command::Baseline(BaselineCommand::NullResponder(args)) => {
            let listen = cli::null_listen(&args)?;
            raise_open_files();
            let options = NullOptions {
                listen,
                tls_dir: args.tls_dir,
                fanout: args.fanout,
                lifetime: Duration::from_secs(args.lifetime),
            };
            let rt = runtime()?;
            let result = rt.block_on(null_responder::serve(options));
            rt.shutdown_timeout(Duration::from_secs(1));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Baseline(BaselineCommand::Sqlite(args)) => {
            let report = sqlite_baseline::run(&SqliteOptions {
                data: args.data,
                duration: Duration::from_secs(args.duration),
                batch: args.batch,
                row_bytes: args.size,
                perch_schema: args.perch_schema,
                savepoint_per_row: args.savepoint_per_row,
                max_rows: args.max_rows,
            })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "SQLite baseline: {} rows of about {} bytes of text in {:.1} s, batches of {}{}{}: {:.0} rows/s, {:.1} commits/s",
                    report.rows,
                    report.row_bytes,
                    report.secs,
                    report.batch,
                    if report.perch_schema {
                        ", perch's indexes and FTS5"
                    } else {
                        ", no index"
                    },
                    if report.savepoint_per_row {
                        ", a savepoint per row"
                    } else {
                        ""
                    },
                    report.rows_per_s,
                    report.commits_per_s
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn scenario(scenario: Scenario, common: Common) -> Result<ExitCode, LoadError> {
    raise_open_files();
    let json = common.json;
    let rt = runtime()?;
    let result = rt.block_on(scenarios::execute(scenario, common));
    // Clients are bounded by their own deadlines; do not wait on anything left over.
    rt.shutdown_timeout(Duration::from_secs(1));
    let output: Output = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print!("{}", report::table(&output));
    }
    // A run in which no client got as far as a session measured nothing.
    Ok(if output.report.sessions == 0 {
        eprintln!("perch-load: no session was established");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
