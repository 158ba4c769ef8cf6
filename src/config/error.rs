//! Why a configuration was refused, said without quoting a secret.

use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}; create it or pass --config PATH")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {field} {problem}; {fix}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
        fix: String,
    },
    #[error("environment: {0}")]
    Env(String),
}

/// A TOML syntax error as line, column and message, without the
/// offending line itself: it may hold a secret (a token with a missing
/// quote).
pub(super) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(
                "not valid TOML at line {line}, column {column}: {}",
                e.message().trim_end()
            )
        }
        None => format!("not valid TOML: {}", e.message().trim_end()),
    }
}
