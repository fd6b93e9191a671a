//! Service-name globs: `*` matches any run of characters (also none), `?` exactly one.
//! Service names are ASCII, so matching works on bytes.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    matches_bytes(pattern.as_bytes(), name.as_bytes(), |_| true)
}

/// Whether every name `other` matches is one `pattern` matches too (both globs). `other`
/// is read as a name whose `*` and `?` stand for any run and any one character; names
/// never hold those, so only a wildcard of `pattern` may stand for them. A `*` of
/// `pattern` takes in anything; a `?` takes in a `?` but never a `*`, which may stand
/// for more than one character.
pub fn covers(pattern: &str, other: &str) -> bool {
    matches_bytes(pattern.as_bytes(), other.as_bytes(), |c| c != b'*')
}

/// [`matches`], where a `?` of `pattern` matches only bytes `one` admits.
fn matches_bytes(pattern: &[u8], name: &[u8], one: impl Fn(u8) -> bool) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it is currently stretched to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if (c == b'?' && one(name[n])) || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry from there.
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Checks a list of service-name globs; the error names the field (`services[1]`) and
/// what is wrong.
pub fn check_globs(globs: &[String]) -> Result<(), (String, String)> {
    if globs.is_empty() {
        return Err(("services".into(), "needs at least one glob".into()));
    }
    for (i, pattern) in globs.iter().enumerate() {
        if !switchboard_connectors::is_glob(pattern) {
            return Err((
                format!("services[{i}]"),
                format!("`{pattern}` is not a service-name glob ([A-Za-z0-9._-] with * and ?)"),
            ));
        }
    }
    Ok(())
}

/// Whether any of `patterns` matches `name`.
pub fn any_matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, name))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        let cases = [
            ("pay-*", "pay-api", true),
            ("pay-*", "pay-", true),
            ("pay-*", "payments", false),
            ("*", "", true),
            ("*-svc", "orders-svc", true),
            ("*-svc", "orders-svc2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("**x", "abx", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches(pattern, name), expected, "{pattern} vs {name}");
        }
    }
}
