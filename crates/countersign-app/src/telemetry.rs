//! Spans for the steps of a call: `countersign.submit` (the decision and its durable record),
//! `countersign.wait` (people deciding) and `countersign.forward` (the approved call sent on),
//! each a child of the trace the call carried (`crate::trace::current`), so an agent's trace
//! shows where its call waited for people. This crate speaks no protocol: it only uses the
//! OpenTelemetry API; the binary installs the OTLP exporter when `telemetry.otlp_endpoint` is
//! set (`countersign_server::telemetry`), and without one no span is made.

use countersign_core::trace::TraceParent;
use opentelemetry::global::{BoxedSpan, BoxedTracer};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

/// Where the gateway's spans go: nowhere ([`Telemetry::off`]) or to a tracer.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<BoxedTracer>,
}

impl Telemetry {
    /// No spans.
    pub fn off() -> Self {
        Telemetry { tracer: None }
    }

    /// Spans made by `tracer`.
    pub fn to(tracer: BoxedTracer) -> Self {
        Telemetry {
            tracer: Some(tracer),
        }
    }

    /// Starts span `name` under the current call's trace (a new trace without one); it ends
    /// when the returned value is dropped or ended. `attributes` is called only when spans are
    /// on: with none configured, a submission pays nothing for them.
    pub fn span(
        &self,
        name: &'static str,
        attributes: impl FnOnce() -> Vec<(&'static str, String)>,
    ) -> Spanned {
        let Some(tracer) = &self.tracer else {
            return Spanned(None);
        };
        let parent = crate::trace::current()
            .map(|t| Context::new().with_remote_span_context(remote(&t)))
            .unwrap_or_default();
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(
                attributes()
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v))
                    .collect::<Vec<_>>(),
            )
            .start_with_context(tracer, &parent);
        Spanned(Some(span))
    }
}

/// The span context a `traceparent` names (the agent's span, in another process).
fn remote(t: &TraceParent) -> SpanContext {
    let s = t.as_str();
    let flags = u8::from_str_radix(&s[53..55], 16).unwrap_or(0);
    SpanContext::new(
        TraceId::from_hex(&s[3..35]).unwrap_or(TraceId::INVALID),
        SpanId::from_hex(&s[36..52]).unwrap_or(SpanId::INVALID),
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    )
}

/// A span in progress (or none, when spans are off).
pub struct Spanned(Option<BoxedSpan>);

impl Spanned {
    /// Adds an attribute learned on the way (the request id, its state).
    pub fn set(&mut self, key: &'static str, value: &str) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value.to_owned()));
        }
    }

    /// Ends the span now.
    pub fn end(mut self) {
        if let Some(span) = &mut self.0 {
            span.end();
        }
    }
}
