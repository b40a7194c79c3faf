//! Compiles every `.proto` under `redress/` into Rust (prost + tonic), proto3 JSON (pbjson)
//! and one encoded descriptor set for gRPC reflection. protoc comes from the
//! `protoc-bin-vendored` crate, so a fresh clone builds with nothing installed.
//!
//! It also generates the bus contract (`contract.rs`) from the descriptor set: for each
//! field of `redress.events.v1.Event`'s `payload` oneof, its event type (the field name), the
//! subject template of its `(redress.bus.v1.subject)` option and the code that fills it in. So
//! adding an event is an edit of the .proto files only.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut protos = Vec::new();
    collect_protos(&root.join("redress"), &mut protos)?;
    protos.sort();
    println!("cargo:rerun-if-changed=redress");

    let descriptor_path = out_dir.join("redress_descriptor.bin");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_with_config(config, &protos, std::slice::from_ref(&root))?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".redress"])?;

    let set = descriptor::FileDescriptorSet::decode(descriptors.as_slice())?;
    std::fs::write(out_dir.join("contract.rs"), contract(&set)?)?;
    std::fs::write(out_dir.join("packages.rs"), packages(&set)?)?;
    Ok(())
}

/// One module per package (`redress.intake.v1` → `intake::v1`), so a new package needs no
/// edit of `lib.rs`. Packages with no messages (the bus options) generate no code.
fn packages(set: &descriptor::FileDescriptorSet) -> Result<String, String> {
    let mut tree: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in &set.file {
        let Some(rest) = file.package.strip_prefix("redress.") else {
            continue;
        };
        if file.message_type.is_empty() && file.enum_type.is_empty() {
            continue;
        }
        let Some((outer, version)) = rest.split_once('.') else {
            return Err(format!(
                "package {} is not redress.<name>.<version>",
                file.package
            ));
        };
        let versions = tree.entry(outer.to_owned()).or_default();
        if !versions.iter().any(|v| v == version) {
            versions.push(version.to_owned());
        }
    }
    let mut out = String::new();
    for (outer, versions) in tree {
        let _ = writeln!(out, "pub mod {outer} {{");
        for version in versions {
            let _ = writeln!(
                out,
                "    pub mod {version} {{ package!(\"redress.{outer}.{version}\"); }}"
            );
        }
        out.push_str("}\n");
    }
    Ok(out)
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

/// Just the parts of `google/protobuf/descriptor.proto` the contract needs, plus our
/// `redress.bus.v1.subject` extension, which prost-types would drop as an unknown field.
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorProto {
        #[prost(string, tag = "2")]
        pub package: String,
        #[prost(message, repeated, tag = "4")]
        pub message_type: Vec<DescriptorProto>,
        #[prost(message, repeated, tag = "5")]
        pub enum_type: Vec<EnumDescriptorProto>,
        #[prost(message, optional, tag = "9")]
        pub source_code_info: Option<SourceCodeInfo>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, repeated, tag = "2")]
        pub field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "8")]
        pub oneof_decl: Vec<OneofDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FieldDescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int32, tag = "3")]
        pub number: i32,
        #[prost(int32, tag = "5")]
        pub r#type: i32,
        #[prost(string, tag = "6")]
        pub type_name: String,
        #[prost(message, optional, tag = "8")]
        pub options: Option<FieldOptions>,
        #[prost(int32, optional, tag = "9")]
        pub oneof_index: Option<i32>,
        #[prost(string, tag = "10")]
        pub json_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FieldOptions {
        /// `redress.bus.v1.subject` (proto/redress/bus/v1/options.proto).
        #[prost(string, optional, tag = "50001")]
        pub subject: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OneofDescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EnumDescriptorProto {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SourceCodeInfo {
        #[prost(message, repeated, tag = "1")]
        pub location: Vec<Location>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(int32, repeated, tag = "1")]
        pub path: Vec<i32>,
        #[prost(string, optional, tag = "3")]
        pub leading_comments: Option<String>,
    }

    pub const TYPE_STRING: i32 = 9;
    pub const TYPE_MESSAGE: i32 = 11;
    pub const TYPE_ENUM: i32 = 14;
}

use descriptor::{DescriptorProto, FileDescriptorSet};

/// Every message of the set by full name (`.redress.events.v1.CaseHeader`), with the leading
/// comment of its declaration.
struct Types<'a> {
    messages: HashMap<String, (&'a DescriptorProto, String)>,
    enums: HashMap<String, String>,
}

impl<'a> Types<'a> {
    fn new(set: &'a FileDescriptorSet) -> Self {
        let mut messages = HashMap::new();
        let mut enums = HashMap::new();
        for file in &set.file {
            let comments: HashMap<Vec<i32>, String> = file
                .source_code_info
                .iter()
                .flat_map(|info| &info.location)
                .filter_map(|l| Some((l.path.clone(), l.leading_comments.clone()?)))
                .collect();
            for (index, message) in file.message_type.iter().enumerate() {
                let comment = comments
                    .get(&vec![4, index as i32])
                    .cloned()
                    .unwrap_or_default();
                let name = format!(".{}.{}", file.package, message.name);
                messages.insert(name, (message, comment));
            }
            for e in &file.enum_type {
                enums.insert(format!(".{}.{}", file.package, e.name), e.name.clone());
            }
        }
        Self { messages, enums }
    }

    fn message(&self, name: &str) -> Result<&'a DescriptorProto, String> {
        self.messages
            .get(name)
            .map(|(m, _)| *m)
            .ok_or_else(|| format!("message {name} is not in the descriptor set"))
    }
}

/// `.redress.events.v1.CaseHeader` → `crate::events::v1::CaseHeader` (top-level types only).
fn rust_path(full_name: &str) -> Result<String, String> {
    let parts: Vec<&str> = full_name.trim_start_matches('.').split('.').collect();
    match parts.as_slice() {
        ["redress", area, version, name] => Ok(format!("crate::{area}::{version}::{name}")),
        _ => Err(format!(
            "{full_name}: only top-level redress messages and enums can appear in a subject"
        )),
    }
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One `{path|fallback}` of a subject template as a Rust expression yielding its token.
fn token_expr(types: &Types<'_>, payload: &str, var: &str) -> Result<String, String> {
    let (path, fallback) = var.split_once('|').unwrap_or((var, ""));
    let segments: Vec<&str> = path.split('.').collect();
    let mut message = types.message(payload)?;
    let mut expr = String::from("self");
    let mut optional = false;
    for (i, segment) in segments.iter().enumerate() {
        let field = message
            .field
            .iter()
            .find(|f| f.name == *segment)
            .ok_or_else(|| {
                format!("{payload}: subject names `{path}`, which has no `{segment}`")
            })?;
        let last = i + 1 == segments.len();
        let access = if optional {
            format!("{expr}.map(|v| &v.{segment})")
        } else {
            format!("{expr}.{segment}")
        };
        match (field.r#type, last) {
            (descriptor::TYPE_MESSAGE, false) => {
                expr = if optional {
                    format!("{expr}.and_then(|v| v.{segment}.as_ref())")
                } else {
                    format!("{expr}.{segment}.as_ref()")
                };
                optional = true;
                message = types.message(&field.type_name)?;
            }
            (descriptor::TYPE_STRING, true) => {
                let value = if optional {
                    format!("{access}.map(String::as_str).unwrap_or_default()")
                } else {
                    format!("{access}.as_str()")
                };
                return Ok(format!("crate::contract::token({value}, {fallback:?})"));
            }
            (descriptor::TYPE_ENUM, true) => {
                let name = types
                    .enums
                    .get(&field.type_name)
                    .ok_or_else(|| format!("enum {} not found", field.type_name))?;
                let number = if optional {
                    format!("{access}.copied().unwrap_or_default()")
                } else {
                    access
                };
                return Ok(format!(
                    "crate::contract::enum_token({}::try_from({number}).map(|e| e.as_str_name()).unwrap_or_default(), \"{}_\", {fallback:?})",
                    rust_path(&field.type_name)?,
                    screaming_snake(name)
                ));
            }
            _ => {
                return Err(format!(
                    "{payload}: `{path}` must end at a string or enum field and pass only through messages"
                ));
            }
        }
    }
    Err(format!("{payload}: empty subject variable"))
}

/// The template with every variable replaced: a `format!` call, and the wildcard filter.
fn subject_code(
    types: &Types<'_>,
    payload: &str,
    template: &str,
) -> Result<(String, String), String> {
    let mut format = String::new();
    let mut args = Vec::new();
    let mut filter = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("{payload}: unclosed `{{` in subject `{template}`"))?;
        format.push_str(&rest[..open]);
        format.push_str("{}");
        filter.push_str(&rest[..open]);
        filter.push('*');
        args.push(token_expr(types, payload, &rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    format.push_str(rest);
    filter.push_str(rest);
    let valid = |s: &str| {
        s.split('.').all(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-{}*".contains(c))
        })
    };
    if !valid(&filter) {
        return Err(format!(
            "{payload}: subject `{template}` must be lower-case dot-separated tokens"
        ));
    }
    let code = if args.is_empty() {
        format!("{format:?}.to_owned()")
    } else {
        format!("format!({format:?}, {})", args.join(", "))
    };
    Ok((code, filter))
}

fn contract(set: &FileDescriptorSet) -> Result<String, String> {
    let types = Types::new(set);
    let event = types.message(".redress.events.v1.Event")?;
    let oneof = event
        .oneof_decl
        .iter()
        .position(|o| o.name == "payload")
        .ok_or("redress.events.v1.Event has no `payload` oneof")? as i32;
    let mut out = String::from(
        "// @generated by proto/build.rs from the descriptor set and the \
         (redress.bus.v1.subject) options: do not edit.\n\n",
    );
    let mut event_types = String::new();
    let mut event_type_arms = String::new();
    let mut subject_arms = String::new();
    let mut seen = HashMap::new();
    for field in event.field.iter().filter(|f| f.oneof_index == Some(oneof)) {
        let variant = camel(&field.name);
        let rust = rust_path(&field.type_name)?;
        if let Some(other) = seen.insert(field.type_name.clone(), field.name.clone()) {
            return Err(format!(
                "{} is the payload of both `{other}` and `{}`: give each event its own message",
                field.type_name, field.name
            ));
        }
        let template = field
            .options
            .as_ref()
            .and_then(|o| o.subject.clone())
            .ok_or_else(|| {
                format!(
                    "Event.{} has no (redress.bus.v1.subject) option: every event needs a subject",
                    field.name
                )
            })?;
        let (subject, filter) = subject_code(&types, &field.type_name, &template)?;
        let description = types
            .messages
            .get(&field.type_name)
            .map(|(_, c)| c.trim().replace('\n', " "))
            .unwrap_or_default();
        let name = &field.name;
        let _ = writeln!(
            out,
            "impl crate::contract::EventPayload for {rust} {{\n    \
                const EVENT_TYPE: &'static str = {name:?};\n    \
                const SUBJECT_FILTER: &'static str = {filter:?};\n    \
                fn subject(&self) -> String {{\n        {subject}\n    }}\n    \
                fn into_payload(self) -> crate::events::v1::event::Payload {{\n        \
                    crate::events::v1::event::Payload::{variant}(self)\n    }}\n    \
                fn from_payload(payload: crate::events::v1::event::Payload) -> Option<Self> {{\n        \
                    match payload {{\n            \
                        crate::events::v1::event::Payload::{variant}(p) => Some(p),\n            \
                        _ => None,\n        }}\n    }}\n}}\n"
        );
        let _ = writeln!(
            event_types,
            "    crate::contract::EventType {{ name: {name:?}, field: {}, message: {:?}, \
             subject: {template:?}, subject_filter: {filter:?}, description: {description:?} }},",
            field.number,
            field.type_name.trim_start_matches('.')
        );
        let _ = writeln!(
            event_type_arms,
            "            Self::{variant}(_) => {name:?},"
        );
        let _ = writeln!(
            subject_arms,
            "            Self::{variant}(p) => crate::contract::EventPayload::subject(p),"
        );
    }
    let _ = write!(
        out,
        "impl crate::events::v1::event::Payload {{\n    \
            /// The `Redress-Event-Type` header: the payload's field name in the envelope.\n    \
            pub fn event_type(&self) -> &'static str {{\n        match self {{\n{event_type_arms}        }}\n    }}\n\n    \
            /// The subject this event is published on (without a namespace).\n    \
            pub fn subject(&self) -> String {{\n        match self {{\n{subject_arms}        }}\n    }}\n}}\n\n\
         /// Every event of the contract, in the order of the envelope's fields.\n\
         pub const EVENT_TYPES: &[crate::contract::EventType] = &[\n{event_types}];\n"
    );
    Ok(out)
}
