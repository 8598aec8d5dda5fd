//! The `warden` command: `serve` runs the decision point, `test` runs a
//! bundle's Rego unit tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use warden::config::{Config, RawConfig};

/// Checks allocate and free many small values (policy evaluation above
/// all); mimalloc's thread-local free lists make that markedly cheaper than
/// glibc's malloc (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "A policy decision point for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve decisions. With no flags: the bundle in `policies/`, the demo
    /// snapshots there, state in `./warden-data`.
    Serve(ServeArgs),
    /// Compile a directory of Rego and data (or a bundle) into an OPA bundle
    /// whose `policy.wasm` implements OPA's Wasm ABI.
    Build {
        /// A directory of Rego and data, or a bundle `.tar.gz`.
        bundle: PathBuf,
        /// Where to write the bundle.
        #[arg(short, long, default_value = "bundle.tar.gz")]
        output: PathBuf,
    },
    /// Make a bearer token: prints the token (give it to the caller) and the
    /// `[[auth.tokens]]` entry for the configuration, which holds only its
    /// SHA-256. With `--hash`, prints the digest of a token read from stdin.
    Token {
        /// The caller's name in the configuration.
        #[arg(long, default_value = "caller")]
        name: String,
        /// Its role: `platform:<id>`, `policy_admin`, `incident_responder`
        /// or `auditor` (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Hash a token from stdin instead of making one.
        #[arg(long)]
        hash: bool,
    },
    /// Run a bundle's Rego unit tests (`test_*` rules) and report each.
    Test {
        /// A directory of Rego and data, or a bundle `.tar.gz`.
        #[arg(default_value = "policies")]
        bundle: PathBuf,
    },
}

/// Flags override the config file and `WARDEN_<SECTION>_<KEY>` variables.
#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Decision listener (gRPC), HOST:PORT.
    #[arg(long, env = "WARDEN_DECISION_ADDR")]
    decision_addr: Option<String>,
    /// Admin listener (gRPC: bundles, snapshots, status), HOST:PORT.
    #[arg(long, env = "WARDEN_ADMIN_ADDR")]
    admin_addr: Option<String>,
    /// HTTP listener (AuthZEN 1.0 access evaluation), HOST:PORT; empty: off.
    #[arg(long, env = "WARDEN_HTTP_ADDR")]
    http_addr: Option<String>,
    /// Ops listener (HTTP: /healthz, /readyz, /metrics), HOST:PORT.
    #[arg(long, env = "WARDEN_OPS_ADDR")]
    ops_addr: Option<String>,
    /// Directory for Warden's state (sled).
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<String>,
    /// Policy bundle: a directory of Rego and data, or a bundle `.tar.gz`.
    #[arg(long, env = "WARDEN_BUNDLE")]
    bundle: Option<String>,
    /// Identity snapshot (JSON).
    #[arg(long, env = "WARDEN_IDENTITY")]
    identity: Option<String>,
    /// Entitlement snapshot (JSON).
    #[arg(long, env = "WARDEN_ENTITLEMENTS")]
    entitlements: Option<String>,
    /// Serve on a non-loopback address without TLS or credentials.
    #[arg(long)]
    insecure: bool,
}

impl ServeArgs {
    fn config(self) -> anyhow::Result<Config> {
        let mut raw = RawConfig::load(self.config.as_deref(), |name| std::env::var(name).ok())?;
        let overrides = [
            (self.decision_addr, &mut raw.server.decision_addr),
            (self.admin_addr, &mut raw.server.admin_addr),
            (self.http_addr, &mut raw.server.http_addr),
            (self.ops_addr, &mut raw.server.ops_addr),
            (self.data_dir, &mut raw.server.data_dir),
            (self.bundle, &mut raw.policy.bundle),
            (self.identity, &mut raw.snapshots.identity),
            (self.entitlements, &mut raw.snapshots.entitlements),
        ];
        for (flag, key) in overrides {
            if let Some(value) = flag {
                *key = value;
            }
        }
        raw.server.insecure |= self.insecure;
        Ok(Config::try_from(raw)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Test { bundle } => test(&bundle),
        Command::Token { name, roles, hash } => token(&name, &roles, hash),
        Command::Build { bundle, output } => build(&bundle, &output),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let telemetry = warden::telemetry::init(&config.telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async {
        // Registered before anything listens: a SIGTERM that arrives while
        // the server starts must stop it cleanly, not kill it.
        let shutdown = shutdown_signal();
        warden::server::serve(config, shutdown, |listener, addr| {
            // One JSON line per listener on stdout, so that scripts and tests
            // started on port 0 learn the real port; logs go to stderr.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                r#"{{"event":"listening","listener":"{listener}","addr":"{addr}"}}"#
            );
            let _ = out.flush();
        })
        .await
    });
    // Outside the runtime: the span exporter flushes on its own thread.
    drop(runtime);
    telemetry.shutdown();
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is
/// called, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        // Without one of the handlers, the other still stops the server.
        let terminate = async {
            match terminate {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let interrupt = async {
            match interrupt {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}

fn token(name: &str, roles: &[String], hash: bool) -> anyhow::Result<ExitCode> {
    let parsed = roles
        .iter()
        .map(|role| warden::auth::Role::parse(role))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    // The same rules `serve` applies to the entry (a name, at least one
    // role, never platform and operator roles together), so that what is
    // printed here is accepted there.
    warden::auth::Principal::new(name.to_owned(), parsed).map_err(anyhow::Error::msg)?;
    let token = if hash {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the token from stdin")?;
        line.trim().to_owned()
    } else {
        warden::auth::new_token().context("cannot read random bytes")?
    };
    anyhow::ensure!(!token.is_empty(), "the token is empty");
    let digest = warden::auth::hash_token(&token);
    if !hash {
        println!("token: {token}");
        println!("# Give the token to the caller; put only this in warden.toml:");
    }
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    println!("[[auth.tokens]]");
    println!("name = {name:?}");
    println!("sha256 = \"{digest}\"");
    println!("roles = [{}]", roles.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn build(path: &std::path::Path, output: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bundle = warden::bundle::Bundle::load(path, &warden::bundle::ArchiveLimits::default())
        .with_context(|| format!("cannot load `{}`", path.display()))?;
    let bytes = warden::wasm::build_bundle(&bundle)?;
    std::fs::write(output, &bytes)
        .with_context(|| format!("cannot write `{}`", output.display()))?;
    println!(
        "wrote {} ({} bytes; entrypoint {})",
        output.display(),
        bytes.len(),
        bundle.entrypoint
    );
    Ok(ExitCode::SUCCESS)
}

fn test(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bundle = warden::bundle::Bundle::load(path, &warden::bundle::ArchiveLimits::default())
        .with_context(|| format!("cannot load `{}`", path.display()))?;
    let outcomes = warden::regotest::run(&bundle)?;
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    for outcome in &outcomes {
        match &outcome.failure {
            None => println!("PASS {}", outcome.name),
            Some(why) => println!("FAIL {}: {why}", outcome.name),
        }
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    Ok(if failed == 0 && !outcomes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
