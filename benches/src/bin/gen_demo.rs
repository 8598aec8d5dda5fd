//! Writes the demo snapshots: `gen-demo policies/demo`.

use std::path::PathBuf;

use anyhow::Context;
use warden_bench::workload::{Spec, Workload};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "policies/demo".into()),
    );
    let workload = Workload::generate(Spec::DEMO);
    for (name, document) in [
        ("identity.json", &workload.identity),
        ("entitlements.json", &workload.entitlements),
    ] {
        let path = dir.join(name);
        let mut text = serde_json::to_string_pretty(document)?;
        text.push('\n');
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
