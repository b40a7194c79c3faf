//! Every Redress contract, generated from the `.proto` files beside this crate.
//!
//! Each package is a module (`redress.intake.v1` is [`intake::v1`]); every message also
//! (de)serialises as proto3 JSON through `serde` (pbjson), which is what channels that
//! publish `Content-Type: application/json` send. [`FILE_DESCRIPTOR_SET`] feeds gRPC
//! server reflection so generic tools need none of our files.
//!
//! ```text
//! contract — each event payload's type name and subject, generated from the protos
//! bus      — streams, their retention and promises; non-event subjects; headers
//! vocab    — channels, money, severity, ids, text: one rule each, and FieldViolation
//! ```

/// The encoded `FileDescriptorSet` of every Redress proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/redress_descriptor.bin"));

macro_rules! package {
    ($file:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
        include!(concat!(env!("OUT_DIR"), "/", $file, ".serde.rs"));
    };
}

// `pub mod intake { pub mod v1 { … } }` and so on, one per package (see build.rs).
include!(concat!(env!("OUT_DIR"), "/packages.rs"));

pub mod bus;
pub mod contract;
pub mod vocab;

pub use contract::{EVENT_TYPES, EventPayload};
pub use pbjson_types as types;
pub use vocab::Violations;
