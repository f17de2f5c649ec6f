//! Trace spans over OTLP (`telemetry:` in the config): when `otlp_endpoint` is set, the
//! gateway's spans (`countersign_app::telemetry`: submit, wait, forward) are exported to it over
//! OTLP/HTTP with protobuf (`<otlp_endpoint>/v1/traces`), in batches from the exporter's own
//! thread, never on a request's path.

use countersign_app::settings::human_duration;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP receiver's base URL (e.g. `http://127.0.0.1:4318`); unset: no spans.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// How often a batch of spans is sent.
    #[serde(
        default = "default_export_interval",
        deserialize_with = "human_duration"
    )]
    pub export_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            export_interval: default_export_interval(),
        }
    }
}

fn default_service_name() -> String {
    "countersign".into()
}

fn default_export_interval() -> Duration {
    Duration::from_secs(5)
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.otlp_endpoint {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && reqwest::Url::parse(url).is_ok();
            if !ok {
                return Err(format!(
                    "`otlp_endpoint` must be an http(s) URL such as http://127.0.0.1:4318, not {url:?}"
                ));
            }
        }
        if self.export_interval.is_zero() {
            return Err("`export_interval` must be more than 0".into());
        }
        Ok(())
    }
}

/// The exporter and what the gateway makes spans with, when configured. Dropping the provider
/// (with the running gateway) sends what is left.
pub fn start(
    config: &TelemetryConfig,
) -> Result<Option<(SdkTracerProvider, countersign_app::telemetry::Telemetry)>, String> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| format!("`telemetry.otlp_endpoint`: {e}"))?;
    let batches = BatchConfigBuilder::default()
        .with_scheduled_delay(config.export_interval)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batches)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = opentelemetry::global::BoxedTracer::new(Box::new(provider.tracer("countersign")));
    Ok(Some((
        provider,
        countersign_app::telemetry::Telemetry::to(tracer),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_otlp_endpoint_must_be_an_http_url() {
        let with = |url: &str| TelemetryConfig {
            otlp_endpoint: Some(url.into()),
            ..TelemetryConfig::default()
        };
        assert!(TelemetryConfig::default().validate().is_ok());
        assert!(with("http://127.0.0.1:4318").validate().is_ok());
        assert!(with("https://otel.example.com/").validate().is_ok());
        for bad in ["127.0.0.1:4318", "grpc://collector:4317", "http://", ""] {
            assert!(with(bad).validate().is_err(), "{bad}");
        }
        let zero = TelemetryConfig {
            export_interval: Duration::ZERO,
            ..TelemetryConfig::default()
        };
        assert!(zero.validate().is_err());
        // Without an endpoint nothing is started.
        assert!(start(&TelemetryConfig::default()).unwrap().is_none());
    }
}
