//! Reading the Olist customers CSV: every row as a customer or as a bad
//! row, each with its line number.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::domain::Customer;

/// Why a file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: unreadable header: {source}", path.display())]
    Header { path: PathBuf, source: csv::Error },
    #[error("{}: the header has no {column} column (expected {})", path.display(), COLUMNS.join(","))]
    MissingColumn { path: PathBuf, column: &'static str },
}

/// The columns a row must have.
pub const COLUMNS: [&str; 5] = [
    "customer_id",
    "customer_unique_id",
    "customer_zip_code_prefix",
    "customer_city",
    "customer_state",
];

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// Reads `path` as the Olist customers CSV: every row as a customer or as a
/// bad row, each with its line number. Fails only if the file cannot be
/// opened or its header lacks a column.
pub struct Rows {
    reader: csv::Reader<std::fs::File>,
    /// Column index of each of [`COLUMNS`].
    index: [usize; 5],
}

impl Rows {
    pub fn open(path: &Path) -> Result<Rows, FileError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| FileError::Unreadable {
                path: path.to_owned(),
                source: e.into(),
            })?;
        let header = reader
            .headers()
            .map_err(|source| FileError::Header {
                path: path.to_owned(),
                source,
            })?
            .clone();
        let mut index = [0; 5];
        for (slot, column) in index.iter_mut().zip(COLUMNS) {
            *slot = header.iter().position(|h| h == column).ok_or_else(|| {
                FileError::MissingColumn {
                    path: path.to_owned(),
                    column,
                }
            })?;
        }
        Ok(Rows { reader, index })
    }

    /// The next row (`None` at the end).
    pub fn next_row(&mut self, record: &mut csv::StringRecord) -> Option<Result<Customer, BadRow>> {
        let read = self.reader.read_record(record);
        let line = record.position().map_or(0, csv::Position::line);
        match read {
            Ok(false) => None,
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                Some(Err(BadRow {
                    line,
                    reason: format!("unreadable: {e}"),
                }))
            }
            Ok(true) => Some(self.parse(record).map_err(|reason| BadRow { line, reason })),
        }
    }

    fn parse(&self, record: &csv::StringRecord) -> Result<Customer, String> {
        let mut body = Map::new();
        for (name, i) in COLUMNS.iter().zip(self.index) {
            match record.get(i) {
                Some(v) => body.insert((*name).to_owned(), Value::String(v.to_owned())),
                None => {
                    return Err(format!(
                        "{name} is missing (the row has {} fields)",
                        record.len()
                    ));
                }
            };
        }
        Customer::parse(&body).map_err(|e| e.message)
    }
}

/// Counts the data lines of `path` (for the progress bar).
pub fn count_rows(path: &Path) -> Result<u64, FileError> {
    count_lines(path).map_err(|source| FileError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok(lines.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn rows_are_read_by_header_name_with_line_numbers_for_bad_ones() {
        let f = file(
            "customer_state,customer_id,customer_unique_id,customer_zip_code_prefix,customer_city\n\
             \"SP\",\"a\",\"ua\",\"01310\",\"sao paulo\"\n\
             SP,b,ub,not-a-zip,franca\n\
             SP,c\n\
             \"RS\",\"d\",\"ud\",\"90010\",\"porto alegre\"\n",
        );
        let mut rows = Rows::open(f.path()).unwrap();
        let mut record = csv::StringRecord::new();
        let mut got = Vec::new();
        while let Some(row) = rows.next_row(&mut record) {
            got.push(row);
        }
        assert_eq!(got.len(), 4);
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.customer_id.as_str(), "a");
        assert_eq!(a.customer_zip_code_prefix.get(), 1310);
        let bad = got[1].as_ref().unwrap_err();
        assert_eq!(bad.line, 3);
        assert!(
            bad.reason.contains("customer_zip_code_prefix"),
            "{}",
            bad.reason
        );
        let short = got[2].as_ref().unwrap_err();
        assert_eq!(short.line, 4);
        assert!(short.reason.contains("missing"), "{}", short.reason);
        assert!(got[3].is_ok());
        assert_eq!(count_rows(f.path()).unwrap(), 4);
    }

    #[test]
    fn a_header_without_a_column_is_refused_naming_it() {
        let f = file("customer_id,customer_city\nx,y\n");
        let e = Rows::open(f.path()).err().unwrap();
        assert!(e.to_string().contains("customer_unique_id"), "{e}");
    }
}
