//! Log output (JSON lines in production, readable lines in embedded mode) and the
//! measurements `/metrics` serves.

mod metrics;

pub use self::metrics::*;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` narrows or widens what is logged.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,tower_http=info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        // Logs go to stderr: stdout is for what a command prints (a key, a schema).
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        // Colour codes only where a person reads them: not in a file or a pipe.
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
    // Already installed (a test harness, say): keep the first one.
    let _ = result;
}
