//! The `.env` file: read whole before anything is used, so one bad line
//! stops the start (naming the file, the line and why) instead of silently
//! dropping every line after it. Only the file asked for is read: `.env` in
//! the working directory, or the one given with `--env-file`; never one in
//! a parent folder.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// The variables of the file at `path`, the first of each name winning (as
/// in dotenv). A missing file is no variables, unless it was `required`
/// (given explicitly).
pub fn read_env_file(path: &Path, required: bool) -> Result<HashMap<String, String>, ConfigError> {
    let shown = path.display();
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() && !required => return Ok(HashMap::new()),
        Err(e) => return Err(ConfigError(format!("{shown}: cannot read it: {e}"))),
    };
    let mut vars = HashMap::new();
    for item in iter {
        match item {
            Ok((name, value)) => {
                vars.entry(name).or_insert(value);
            }
            Err(dotenvy::Error::LineParse(part, _)) => {
                let (number, line) = find_line(path, &part);
                return Err(ConfigError(format!(
                    "{shown}:{number}: cannot parse this line: {line:?}; quote a value that has \
                     spaces or '#' (KEY=\"a b\"); nothing was started"
                )));
            }
            Err(e) => return Err(ConfigError(format!("{shown}: {e}"))),
        }
    }
    Ok(vars)
}

/// The first line of the file holding `part` (what the parser could not
/// read: a value, or a whole line): its 1-based number and text; 0 and
/// `part` itself if it cannot be found.
fn find_line(path: &Path, part: &str) -> (usize, String) {
    let first = part.lines().next().unwrap_or_default().trim();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    (text.lines().enumerate())
        .find(|(_, l)| !first.is_empty() && l.contains(first))
        .map_or((0, first.to_owned()), |(i, l)| (i + 1, l.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding `.env` with `text`.
    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_bad_line_names_the_file_and_line_and_nothing_is_kept() {
        let (_dir, path) = file("PORT=8001\nLOG_FORMAT=text json\nADMIN_TOKEN=0123456789abcdef0\n");
        let err = read_env_file(&path, false).unwrap_err().to_string();
        let at = format!("{}:2:", path.display());
        assert!(err.contains(&at), "{err}");
        assert!(err.contains("LOG_FORMAT=text json"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn good_lines_are_read_first_one_wins_and_a_missing_file_is_empty_unless_required() {
        let (_dir, path) = file("# comment\nA=1\nB=\"two words\"\nA=2\n");
        let vars = read_env_file(&path, true).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        let missing = Path::new("/nonexistent/regiondb.env");
        assert!(read_env_file(missing, false).unwrap().is_empty());
        let err = read_env_file(missing, true).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/regiondb.env"), "{err}");
    }
}
