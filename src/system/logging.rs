//! Log output: journald with structured fields under systemd, readable lines
//! on stderr otherwise, or JSON for other collectors.
//!
//! Fields such as `message_id` become journald fields (`MESSAGE_ID`), so
//! `journalctl -u drainerd MESSAGE_ID=...` finds one job's lines.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when started by systemd (JOURNAL_STREAM set), else text.
    Auto,
    Text,
    Json,
    Journald,
}

/// Installs the global subscriber. `level` is a tracing filter directive.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let layer = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(l) => l
                .with_field_prefix(None)
                .with_syslog_identifier("drainerd".into())
                .boxed(),
            Err(e) => {
                eprintln!("drainerd: journald unavailable ({e}); logging to stderr");
                text_layer()
            }
        },
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text | LogFormat::Auto => text_layer(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

fn text_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .boxed()
}
