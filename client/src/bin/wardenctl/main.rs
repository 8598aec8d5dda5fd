//! `wardenctl`: Warden's command-line client.
//!
//! Output is an aligned table (or a short report) for people; the global
//! `--json`, accepted anywhere on the line, prints JSON for scripts: one
//! object for one result, an array for a list, and for `audit query` and
//! `audit tail` one stored entry per line.
//!
//! Exit codes, for scripts (`exit.rs` maps outcomes and gRPC codes to them;
//! `wardenctl --help` lists them too):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; `check`: ALLOW; `bundle replay`: no decision changes |
//! | 1 | `check`: DENY; `audit verify`, `export`, `merge`: a chain is broken; `bundle replay`: some decision changes |
//! | 2 | `check`: REQUIRE_APPROVAL; `bundle replay`: none changes, but some records could not be replayed |
//! | 3 | bad arguments, input or configuration, a confirmation not given, or a request Warden rejected (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `NOT_FOUND`, `ALREADY_EXISTS`, `OUT_OF_RANGE`) |
//! | 4 | Warden unreachable or unavailable: no connection, `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `ABORTED`, `CANCELLED` |
//! | 5 | `UNAUTHENTICATED` or `PERMISSION_DENIED` |
//! | 6 | anything else: a server fault, an unexpected answer, a local failure |

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// `outln!` for standard output that may close early (see `output.rs`).
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod approvals;
mod audit;
mod bundle;
mod check;
mod cli;
mod connection;
mod error;
mod exit;
mod kill;
mod limits;
mod output;
mod replay;
mod search;
mod snapshot;
mod status;
mod table;
use cli::{Cli, Command, parse_duration};
use error::{CtlError, local, usage};
use table::table;
use warden_client::{AdminClient, ClientOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap would exit 2, which `check` means as REQUIRE_APPROVAL;
            // help and version go to standard output and are no error.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    if let Command::Completions { shell } = cli.command {
        return report(completions(shell));
    }
    let connection = match cli.connection.resolve(cli.timeout) {
        Ok(connection) => connection,
        Err(e) => return report(Err(e.into())),
    };
    let (addr, admin_addr, options, json) = (
        connection.addr.as_str(),
        connection.admin_addr.as_str(),
        connection.options,
        cli.json,
    );
    match cli.command {
        Command::Check(args) => check::run(addr, options, args, json).await,
        Command::Search(command) => search::run(addr, options, command, json).await,
        Command::Bundle(command) => report(bundle::run(admin_addr, options, command, json).await),
        Command::Snapshot(command) => {
            report(snapshot::run(admin_addr, options, command, json).await)
        }
        Command::Audit(command) => report(audit::run(admin_addr, options, command, json).await),
        Command::Kill(command) => report(kill::run(admin_addr, options, command, json).await),
        Command::Approvals(command) => {
            report(approvals::run(admin_addr, options, command, json).await)
        }
        Command::Limits(args) => report(limits::run(admin_addr, options, args, json).await),
        Command::Status => report(status::run(admin_addr, options, json).await),
        // Printed above, before any configuration is read.
        Command::Completions { .. } => ExitCode::SUCCESS,
    }
}

fn completions(shell: clap_complete::Shell) -> Result<(), CtlError> {
    // Into memory first: `generate` panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "wardenctl", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| local(format!("cannot write the script: {e}")))
}

fn report(result: Result<(), CtlError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wardenctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn admin(addr: &str, options: ClientOptions) -> Result<AdminClient, CtlError> {
    Ok(AdminClient::connect(addr, options).await?)
}
