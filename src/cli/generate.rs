//! `regiondb gen --count N`: realistic customer rows (Olist shape) on
//! stdout; needs no configuration and no services.

use std::process::ExitCode;

use super::CliError;
use crate::generate::write;

pub fn run(count: u64, seed: u64) -> Result<ExitCode, CliError> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match write(&mut out, count, seed) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`regiondb gen ... | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(CliError::Output(e)),
    }
}
