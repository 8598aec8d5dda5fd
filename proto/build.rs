//! Compiles `warden/v1/*.proto` with protox, a pure-Rust protobuf compiler, so
//! that building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "warden/v1/decision.proto",
        "warden/v1/admin.proto",
        "warden/v1/audit.proto",
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
    Ok(())
}
