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

pub mod cases {
    pub mod v1 {
        package!("redress.cases.v1");
    }
}

pub mod classification {
    pub mod v1 {
        package!("redress.classification.v1");
    }
}

pub mod common {
    pub mod v1 {
        package!("redress.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        package!("redress.events.v1");
    }
}

pub mod intake {
    pub mod v1 {
        package!("redress.intake.v1");
    }
}

pub mod bus;
pub mod contract;
pub mod vocab;

pub use contract::{EVENT_TYPES, EventPayload};
pub use pbjson_types as types;
pub use vocab::Violations;
