//! Where a sign-in returns to: a path on this site, made only of
//! characters that mean the same to every browser, or `/`.

/// Longest `next` kept (longer ones go to `/`).
const MAX_NEXT: usize = 2048;

/// `next` if it is a safe path on this site, else `/`.
///
/// A path must start with one `/` followed by something other than `/`
/// or `\` (browsers read `//host` and `/\host` as another site), and hold
/// only URL characters that need no escaping: letters, digits and
/// `-._~!$&'()*+,;=:@/?%`. Browsers drop tabs and newlines from URLs
/// (`/<TAB>/evil.example` is `//evil.example`), so no control character,
/// space or backslash passes.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_safe_path(n) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn is_safe_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && path.len() <= MAX_NEXT
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_returns_to_this_site() {
        for good in [
            "/",
            "/view-records?zip_min=1&x=%20",
            "/records/a%2Fb",
            "/create-records",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        let long = format!("/{}", "a".repeat(MAX_NEXT));
        for bad in [
            None,
            Some(""),
            Some("view-records"),
            Some("https://evil.example/"),
            Some("//evil.example"),
            Some("/\\evil.example"),
            Some("/\t/evil.example"),
            Some("/\n/evil.example"),
            Some("/\r\n/evil.example"),
            Some("/ /evil.example"),
            Some("/a\\b"),
            Some("/é"),
            Some("/x#frag"),
            Some("/x\"onload"),
            Some("/<script>"),
            Some(long.as_str()),
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
