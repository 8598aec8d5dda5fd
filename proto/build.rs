//! Compiles `warden/v1/*.proto` (and the etcd API subset in `etcd/`) with protox, a pure-Rust protobuf compiler, so
//! that building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "warden/v1/decision.proto",
        "warden/v1/admin.proto",
        "warden/v1/audit.proto",
        "warden/v1/approval.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection serves this descriptor set, so it must describe exactly what was generated.
    std::fs::write(
        out.join("warden_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::WardenCodec")
        .compile_fds(fds)?;

    // The subset of etcd's v3 API the cluster mode calls, client side only.
    let etcd = ["etcd/mvccpb/kv.proto", "etcd/etcdserverpb/rpc.proto"];
    for file in &etcd {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(protox::compile(etcd, ["."])?)?;
    Ok(())
}
