//! Warden's wire types and gRPC stubs, generated at build time from `proto/`.

/// Version 1 of the API (`warden.v1`).
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("warden.v1");
}

/// The part of etcd's v3 API that cluster mode uses (KV and Watch clients).
pub mod etcd {
    pub mod mvccpb {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("etcdserverpb");
    }
}

/// The encoded `FileDescriptorSet` of every Warden proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");

pub mod codec;
pub mod convert;
