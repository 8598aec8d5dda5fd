//! `wardenctl bundle`: build, push, list, activate and roll back policy
//! bundles.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value as Json, json};
use warden_bundle::signature;
use warden_client::admin::{BundleInfo, BundleTarget};
use warden_client::{AdminClient, ClientOptions};

use super::{CtlError, admin, local, table, usage};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pack a directory of Rego and data into an OPA bundle `.tar.gz`,
    /// optionally signed (`.signatures.json`, OPA's format).
    Build {
        /// The bundle directory.
        dir: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "bundle.tar.gz")]
        output: PathBuf,
        /// Private key (PEM) for RS256/ES256, or a file holding the HS256 secret.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// RS256, ES256 or HS256.
        #[arg(long, default_value = "RS256")]
        signing_alg: String,
        /// The key id Warden's configuration knows the key by.
        #[arg(long, default_value = "default")]
        key_id: String,
        /// Scope claim, when the verifying key requires one.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Push a bundle `.tar.gz`; it becomes active unless told otherwise.
    Push {
        file: PathBuf,
        /// Evaluate it beside the active bundle instead (answers still come
        /// from the active one).
        #[arg(long, conflicts_with = "store_only")]
        shadow: bool,
        /// Store it without serving it.
        #[arg(long)]
        store_only: bool,
    },
    /// The stored bundles, newest first.
    List,
    /// Serve a stored bundle (by digest or a unique prefix of 8+ digits).
    Activate {
        digest: String,
        /// As the shadow instead of the active bundle.
        #[arg(long)]
        shadow: bool,
    },
    /// Serve the previously active bundle again.
    Rollback,
    /// Stop evaluating the shadow bundle (it stays stored, until pruned).
    ClearShadow,
    /// The active and shadow bundles.
    Status,
    /// What a candidate bundle would have decided on recorded traffic:
    /// changed decisions grouped, from the server's audit log or, with
    /// `--audit-file`, offline. Exit 1 when a decision changes.
    Replay(super::replay::ReplayArgs),
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: BundleCommand,
    json: bool,
) -> Result<(), CtlError> {
    match command {
        BundleCommand::Build {
            dir,
            output,
            signing_key,
            signing_alg,
            key_id,
            scope,
        } => {
            let limits = warden_bundle::ArchiveLimits::default();
            let mut files = warden_bundle::read_dir(&dir, &limits)
                .map_err(|e| usage(format!("`{}`: {e}", dir.display())))?;
            files.remove(signature::SIGNATURES_FILE);
            let signed = signing_key.is_some();
            if let Some(path) = signing_key {
                let algorithm = signature::algorithm(&signing_alg).ok_or_else(|| {
                    usage(format!("`{signing_alg}` is not RS256, ES256 or HS256"))
                })?;
                let material = std::fs::read(&path)
                    .map_err(|e| usage(format!("`{}`: {e}", path.display())))?;
                let key =
                    signature::SigningKey::new(&key_id, algorithm, &material).map_err(usage)?;
                let signatures = signature::sign(&files, &key, scope.as_deref()).map_err(local)?;
                files.insert(signature::SIGNATURES_FILE.to_owned(), signatures);
            }
            let archive = warden_bundle::write_tar_gz(&files).map_err(local)?;
            std::fs::write(&output, &archive)
                .map_err(|e| local(format!("`{}`: {e}", output.display())))?;
            if json {
                outln!(
                    "{}",
                    json!({
                        "output": output.display().to_string(),
                        "files": files.len(),
                        "size_bytes": archive.len(),
                        "signed": signed,
                    })
                );
            } else {
                outln!(
                    "wrote {} ({} files, {} bytes{})",
                    output.display(),
                    files.len(),
                    archive.len(),
                    if signed { ", signed" } else { "" }
                );
            }
            Ok(())
        }
        BundleCommand::Push {
            file,
            shadow,
            store_only,
        } => {
            let archive =
                std::fs::read(&file).map_err(|e| usage(format!("`{}`: {e}", file.display())))?;
            let bar = indicatif::ProgressBar::new(archive.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message("uploading");
            // Only worth drawing for a push that takes a moment, and only
            // for people.
            if json
                || archive.len() < 1024 * 1024
                || !std::io::IsTerminal::is_terminal(&std::io::stderr())
            {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let progress_bar = bar.clone();
            let progress: warden_client::admin::UploadProgress =
                std::sync::Arc::new(move |n| progress_bar.inc(n as u64));
            let options = ClientOptions {
                request_timeout: options.request_timeout.max(Duration::from_secs(300)),
                ..options
            };
            let mut client =
                AdminClient::connect_with_progress(addr, options, Some(progress)).await?;
            let target = if shadow {
                BundleTarget::Shadow
            } else if store_only {
                BundleTarget::Stored
            } else {
                BundleTarget::Active
            };
            bar.set_message("uploading");
            let result = client.put_bundle(archive, target).await;
            bar.finish_and_clear();
            print_bundle(&result?, json);
            Ok(())
        }
        BundleCommand::List => {
            print_bundles(&admin(addr, options).await?.list_bundles().await?, json);
            Ok(())
        }
        BundleCommand::Activate { digest, shadow } => {
            let target = if shadow {
                BundleTarget::Shadow
            } else {
                BundleTarget::Active
            };
            print_bundle(
                &admin(addr, options)
                    .await?
                    .activate(&digest, target)
                    .await?,
                json,
            );
            Ok(())
        }
        BundleCommand::Rollback => {
            print_bundle(&admin(addr, options).await?.rollback().await?, json);
            Ok(())
        }
        BundleCommand::ClearShadow => {
            match admin(addr, options).await?.clear_shadow().await? {
                Some(bundle) => print_bundle(&bundle, json),
                None if json => outln!("null"),
                None => outln!("no shadow bundle was being evaluated"),
            }
            Ok(())
        }
        BundleCommand::Replay(args) => super::replay::run(addr, options, args, json).await,
        BundleCommand::Status => {
            let status = admin(addr, options).await?.status().await?;
            let serving: Vec<BundleInfo> = status.active.into_iter().chain(status.shadow).collect();
            print_bundles(&serving, json);
            Ok(())
        }
    }
}

pub fn bundle_json(bundle: &BundleInfo) -> Json {
    json!({
        "revision": bundle.revision,
        "digest": bundle.digest,
        "entrypoint": bundle.entrypoint,
        "engine": bundle.engine,
        "pushed_at": bundle.pushed_at,
        "size_bytes": bundle.size_bytes,
        "signed_by": bundle.signed_by,
        "active": bundle.active,
        "shadow": bundle.shadow,
        "tests_passed": bundle.tests_passed,
    })
}

/// One bundle, the answer to a push, an activation or a rollback.
fn print_bundle(bundle: &BundleInfo, json: bool) {
    if json {
        outln!("{}", bundle_json(bundle));
    } else {
        print_bundles(std::slice::from_ref(bundle), false);
    }
}

pub fn print_bundles(bundles: &[BundleInfo], json: bool) {
    if json {
        outln!("{}", Json::Array(bundles.iter().map(bundle_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = bundles
        .iter()
        .map(|b| {
            vec![
                if b.active {
                    "active"
                } else if b.shadow {
                    "shadow"
                } else {
                    ""
                }
                .to_owned(),
                b.revision.clone(),
                b.digest.chars().take(12).collect(),
                b.engine.clone(),
                if b.signed_by.is_empty() {
                    "-".to_owned()
                } else {
                    b.signed_by.clone()
                },
                b.tests_passed.to_string(),
                b.pushed_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "STATE",
            "REVISION",
            "DIGEST",
            "ENGINE",
            "SIGNED BY",
            "TESTS",
            "PUSHED",
        ],
        &rows,
    );
}
