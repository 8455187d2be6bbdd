//! Generates the protocol types, the tonic services and their proto3 JSON mapping from
//! `protos/` into `OUT_DIR`. `protox` compiles the files in-process, so no system `protoc`
//! is needed.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: &[&str] = &[
    "skywalking/v3/common.proto",
    "skywalking/v3/command.proto",
    "skywalking/v3/tracing.proto",
    "skywalking/v3/management.proto",
    "skywalking/v3/meter.proto",
    "skywalking/v3/logging.proto",
    "skywalking/v3/profile.proto",
    "skywalking/v3/configuration_discovery.proto",
    "skywalking/v3/event.proto",
    "compat/compat.proto",
    "oap/remote/v1/remote.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=protos");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let file_descriptors = protox::compile(PROTO_FILES, ["protos"])?;
    // pbjson needs a package on every file; the compat file declares services only.
    let mut packaged = file_descriptors.clone();
    packaged.file.retain(|file| file.package.as_deref().is_some_and(|p| !p.is_empty()));
    let descriptor_bytes = packaged.encode_to_vec();

    // The services only with the `grpc` feature: the messages alone need no tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure().build_client(grpc).build_server(grpc).compile_fds(file_descriptors)?;

    // Unknown JSON fields are skipped, as protobuf skips unknown fields on the wire: newer agents
    // may send fields this server does not know yet.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .ignore_unknown_fields()
        .out_dir(&out_dir)
        .build(&[".skywalking"])?;
    Ok(())
}
