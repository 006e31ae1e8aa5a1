//! Logging: `RUST_LOG` filters (checked by `config`; default
//! [`DEFAULT_LOG_FILTER`](crate::config::DEFAULT_LOG_FILTER)),
//! `LOG_FORMAT=json` for machine-read logs.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::new(filter);
    // Logs go to stderr, so a command's own output (`regiondb repair`'s
    // table) stays clean on stdout. Colours only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
