//! Logs and traces: `tracing` JSON logs with trace ids, OpenTelemetry export over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried in NATS headers and
//! gRPC metadata so one trace follows a complaint through every service.

use std::sync::OnceLock;

use opentelemetry::{
    Context, global,
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Flushes buffered spans when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the global subscriber once per process (`redress dev` runs several services in
/// one process; later calls are no-ops). `RUST_LOG` filters, default `info`.
pub fn init(service: &str, format: LogFormat) -> TelemetryGuard {
    let mut guard = TelemetryGuard { provider: None };
    if INSTALLED.set(()).is_err() {
        return guard;
    }
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));

    // The OpenTelemetry layer is always installed, exporter or not, so trace ids reach the
    // logs and a received `traceparent` is passed on even when nothing is exported.
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(format!("redress-{service}"))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => eprintln!("OTLP exporter disabled: {error}"),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer("redress");
    global::set_tracer_provider(provider.clone());
    guard.provider = Some(provider);
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer);

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
    if let Err(error) = result {
        eprintln!("logging was already set up: {error}");
    }
    guard
}

/// Writes the current span's trace context into NATS headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let context = Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut NatsHeaders(headers)));
}

/// Reads a trace context from NATS headers (the parent of the span that handles the message).
pub fn extract_nats(headers: Option<&async_nats::HeaderMap>) -> Context {
    match headers {
        Some(headers) => global::get_text_map_propagator(|p| p.extract(&NatsHeadersRef(headers))),
        None => Context::new(),
    }
}

/// A span for handling one message, child of the trace its publisher started.
pub fn message_span(headers: Option<&async_nats::HeaderMap>, subject: &str) -> Span {
    let span = tracing::info_span!("message", %subject);
    let _ = span.set_parent(extract_nats(headers));
    span
}

/// A span for one gRPC call, child of the caller's trace (`traceparent` in its metadata).
pub fn grpc_span(headers: &http::HeaderMap, method: &str) -> Span {
    let metadata = tonic::metadata::MetadataMap::from_headers(headers.clone());
    let span = tracing::info_span!("grpc", %method);
    let _ = span.set_parent(extract_grpc(&metadata));
    span
}

/// Reads a trace context from gRPC metadata.
pub fn extract_grpc(metadata: &tonic::metadata::MetadataMap) -> Context {
    global::get_text_map_propagator(|p| p.extract(&GrpcMetadata(metadata)))
}

/// Writes the current span's trace context into outgoing gRPC metadata.
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    let context = Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut GrpcMetadataMut(metadata)));
}

/// The current W3C `traceparent`/`tracestate`, as pairs to store beside an outbox row.
pub fn current_trace_headers() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let context = Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut PairInjector(&mut pairs)));
    pairs
}

struct NatsHeaders<'a>(&'a mut async_nats::HeaderMap);
struct NatsHeadersRef<'a>(&'a async_nats::HeaderMap);
struct GrpcMetadata<'a>(&'a tonic::metadata::MetadataMap);
struct GrpcMetadataMut<'a>(&'a mut tonic::metadata::MetadataMap);
struct PairInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

impl Extractor for NatsHeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

impl Extractor for GrpcMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

impl Injector for GrpcMetadataMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

impl Injector for PairInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};

    #[test]
    fn trace_context_round_trips_through_nats_headers() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap_or(TraceId::INVALID),
            opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7")
                .unwrap_or(opentelemetry::trace::SpanId::INVALID),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let context = Context::new().with_remote_span_context(span_context);
        let mut headers = async_nats::HeaderMap::new();
        global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut NatsHeaders(&mut headers))
        });
        assert_eq!(
            headers.get("traceparent").map(|v| v.as_str()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let extracted = extract_nats(Some(&headers));
        assert_eq!(
            extracted.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
