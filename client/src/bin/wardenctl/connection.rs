//! Where Warden is and how to authenticate to it: flags, then
//! `WARDEN_*` environment variables (both through clap), then the config
//! file (`--config`, `WARDEN_CLIENT_CONFIG`, or
//! `~/.config/warden/wardenctl.toml`), then the defaults.
//!
//! Addresses may be URLs or bare `HOST:PORT`, the form `warden serve`
//! takes, so one `WARDEN_ADMIN_ADDR` serves both programs in a shell.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use warden_client::{ClientError, ClientOptions, TlsOptions};

#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Warden's decision listener, `HOST:PORT` or a URL [default:
    /// 127.0.0.1:50051].
    #[arg(long, global = true, env = "WARDEN_ADDR")]
    addr: Option<String>,
    /// Warden's admin listener, `HOST:PORT` or a URL [default:
    /// 127.0.0.1:50052].
    #[arg(long, global = true, env = "WARDEN_ADMIN_ADDR")]
    admin_addr: Option<String>,
    /// Bearer token (prefer --token-file or WARDEN_TOKEN: a flag shows in
    /// the process list).
    #[arg(long, global = true, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, global = true, env = "WARDEN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) for the server's certificate; implies TLS.
    #[arg(long, global = true, env = "WARDEN_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    #[arg(long, global = true, env = "WARDEN_CERT")]
    cert: Option<PathBuf>,
    /// Client certificate's private key (PEM).
    #[arg(long, global = true, env = "WARDEN_KEY")]
    key: Option<PathBuf>,
    /// The name the server's certificate carries, when it differs from the
    /// address's host.
    #[arg(long, global = true, env = "WARDEN_SERVER_NAME")]
    server_name: Option<String>,
    /// Client config file (TOML with the keys above, snake_case).
    #[arg(long, global = true, env = "WARDEN_CLIENT_CONFIG")]
    config: Option<PathBuf>,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<String>,
    admin_addr: Option<String>,
    token_file: Option<PathBuf>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
}

/// What the commands connect with.
pub struct Connection {
    pub addr: String,
    pub admin_addr: String,
    pub options: ClientOptions,
}

impl ConnectionArgs {
    pub fn resolve(self, timeout: Duration) -> Result<Connection, ClientError> {
        let file = self.file_config()?;
        let pick = |flag: Option<String>, file: Option<String>, default: &str| {
            flag.or(file).unwrap_or_else(|| default.to_owned())
        };
        let addr = pick(self.addr, file.addr, "127.0.0.1:50051");
        let admin_addr = pick(self.admin_addr, file.admin_addr, "127.0.0.1:50052");
        let token = match (self.token, self.token_file.or(file.token_file)) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let ca = self.ca.or(file.ca);
        let cert = self.cert.or(file.cert);
        let key = self.key.or(file.key);
        let server_name = self.server_name.or(file.server_name);
        let wants_tls = ca.is_some()
            || cert.is_some()
            || server_name.is_some()
            || addr.starts_with("https://")
            || admin_addr.starts_with("https://");
        let tls = if wants_tls {
            let mut tls = TlsOptions::from_files(ca.as_deref(), cert.as_deref(), key.as_deref())?;
            tls.server_name = server_name;
            Some(tls)
        } else {
            None
        };
        Ok(Connection {
            addr: url(&addr, tls.is_some()),
            admin_addr: url(&admin_addr, tls.is_some()),
            options: ClientOptions {
                connect_timeout: timeout,
                request_timeout: timeout,
                tls,
                token,
                // One command, a few calls: nothing to keep warm.
                keepalive: None,
            },
        })
    }

    fn file_config(&self) -> Result<FileConfig, ClientError> {
        let (path, must_exist) = match &self.config {
            Some(path) => (path.clone(), true),
            None => match std::env::var_os("HOME") {
                Some(home) => (
                    Path::new(&home).join(".config/warden/wardenctl.toml"),
                    false,
                ),
                None => return Ok(FileConfig::default()),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default());
            }
            Err(e) => return Err(ClientError::Config(format!("{}: {e}", path.display()))),
        };
        toml::from_str(&text).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }
}

/// Where and how to reach one `--replica` (`HOST:PORT` or a URL): the TLS
/// and token options apply to each, and an `https://` address alone asks
/// for TLS, as for --admin-addr.
pub fn replica(
    replica: &str,
    options: &ClientOptions,
) -> Result<(String, ClientOptions), ClientError> {
    let mut options = options.clone();
    if options.tls.is_none() && replica.starts_with("https://") {
        options.tls = Some(TlsOptions::from_files(None, None, None)?);
    }
    // `connect_channel` dials a bare address as https:// when TLS is
    // configured.
    Ok((url(replica, false), options))
}

/// `addr` as a URL: a bare `HOST:PORT` gets the scheme the TLS settings
/// call for; a URL is kept as written.
fn url(addr: &str, tls: bool) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses_take_the_scheme_tls_calls_for() {
        assert_eq!(url("127.0.0.1:50052", false), "http://127.0.0.1:50052");
        assert_eq!(
            url("warden.internal:50052", true),
            "https://warden.internal:50052"
        );
        assert_eq!(url("[::1]:50051", false), "http://[::1]:50051");
        assert_eq!(
            url("http://127.0.0.1:50052", false),
            "http://127.0.0.1:50052"
        );
        assert_eq!(url("https://warden:443", false), "https://warden:443");
    }

    fn resolve(args: &[&str]) -> Connection {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            connection: ConnectionArgs,
        }
        let config = empty_config();
        let cli = <Cli as clap::Parser>::try_parse_from(
            ["wardenctl", "--config", config.as_str()]
                .iter()
                .chain(args),
        )
        .unwrap();
        cli.connection.resolve(Duration::from_secs(1)).unwrap()
    }

    /// An empty config file, so a developer's own never leaks into a test.
    fn empty_config() -> String {
        let path = std::env::temp_dir().join(format!("wardenctl-test-{}.toml", std::process::id()));
        std::fs::write(&path, "").unwrap();
        path.display().to_string()
    }

    // Flags, not defaults: clap also reads `WARDEN_*` from the environment
    // the tests run in, and flags win over it.
    #[test]
    fn flags_resolve_to_urls() {
        let named = resolve(&["--addr", "10.0.0.7:7000", "--admin-addr", "http://h:1"]);
        assert_eq!(named.addr, "http://10.0.0.7:7000");
        assert_eq!(named.admin_addr, "http://h:1");
        // TLS through the server name alone: no files to read.
        let tls = resolve(&[
            "--addr",
            "warden:50051",
            "--admin-addr",
            "warden:50052",
            "--server-name",
            "warden",
        ]);
        assert_eq!(tls.addr, "https://warden:50051");
        assert_eq!(tls.admin_addr, "https://warden:50052");
    }
}
