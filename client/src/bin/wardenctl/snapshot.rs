//! `wardenctl snapshot`: push identity and entitlement snapshots, and
//! show the loaded ones.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value as Json, json};
use warden_client::ClientOptions;
use warden_client::admin::SnapshotInfo;

use super::{CtlError, admin, table, usage};

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Replace a snapshot; its version must be newer than the current one.
    Push {
        #[arg(value_parser = ["identity", "entitlements"])]
        kind: String,
        file: PathBuf,
    },
    /// Versions and ages of the loaded snapshots.
    #[command(visible_alias = "list")]
    Status,
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    command: SnapshotCommand,
    json: bool,
) -> Result<(), CtlError> {
    match command {
        SnapshotCommand::Push { kind, file } => {
            let document =
                std::fs::read(&file).map_err(|e| usage(format!("`{}`: {e}", file.display())))?;
            let snapshot = admin(addr, options)
                .await?
                .put_snapshot(&kind, document)
                .await?;
            if json {
                outln!("{}", snapshot_json(&snapshot));
            } else {
                print_snapshots(&[snapshot], false);
            }
            Ok(())
        }
        SnapshotCommand::Status => {
            print_snapshots(&admin(addr, options).await?.status().await?.snapshots, json);
            Ok(())
        }
    }
}

pub fn snapshot_json(snapshot: &SnapshotInfo) -> Json {
    json!({
        "kind": snapshot.kind,
        "version": snapshot.version,
        "generated_at": snapshot.generated_at,
        "age_seconds": snapshot.age_seconds,
        "stale": snapshot.stale,
        "sha256": snapshot.sha256,
        "size_bytes": snapshot.size_bytes,
    })
}

pub fn print_snapshots(snapshots: &[SnapshotInfo], json: bool) {
    if json {
        outln!(
            "{}",
            Json::Array(snapshots.iter().map(snapshot_json).collect())
        );
        return;
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| {
            vec![
                s.kind.clone(),
                s.version.clone(),
                s.generated_at.clone(),
                format!("{}s", s.age_seconds),
                if s.stale { "STALE" } else { "fresh" }.to_owned(),
                s.size_bytes.to_string(),
            ]
        })
        .collect();
    table(
        &["KIND", "VERSION", "GENERATED", "AGE", "STATE", "BYTES"],
        &rows,
    );
}
