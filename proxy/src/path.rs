//! The request path normaliser. Route rules match the normalised path and the app receives
//! exactly that path, so the sidecar and the app never read one request two ways.
//!
//! Normalisation follows RFC 3986 section 6.2.2 where the result is unambiguous:
//! percent-encoded unreserved characters (`A-Z a-z 0-9 - _ ~`) are decoded, and the hex
//! digits of every other escape are upper-cased. Everything that servers and frameworks are
//! known to read differently is rejected instead of guessed at: `.` and `..` segments, empty
//! segments (`//`), `\`, `;` path parameters, encoded `/ \ % ; .`, and control, space and
//! non-ASCII bytes. The rules follow Spring Security's `StrictHttpFirewall`, which rejects the
//! same set for the same reason. Letter case is kept; route matching decides whether it counts.

use std::borrow::Cow;
use std::fmt;

use http::Method;

/// The reason a request path is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Neither starts with `/` nor is `*` on an OPTIONS request.
    NotAbsolute,
    /// Has a `.` or `..` segment, which the app may resolve.
    DotSegment,
    /// Has `//`, which many frameworks merge into one `/`.
    EmptySegment,
    /// Contains a `\`, which some servers treat as `/`.
    Backslash,
    /// Contains `;`, which servlet containers and others strip as a path parameter.
    Semicolon,
    /// Contains a space, a control character, DEL or a byte outside ASCII.
    ControlCharacter,
    /// Contains `%` not followed by two hex digits.
    BadPercentEncoding,
    /// Percent-encodes `/`, `\`, `.`, `%`, `;` or a control character: the escape as written.
    EncodedCharacter(String),
    /// Is valid but not in normal form, so a caller skipped [`normalize`]: the normal form.
    NotNormalized(String),
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::NotAbsolute => f.write_str("does not start with /"),
            PathProblem::DotSegment => f.write_str("contains a . or .. segment"),
            PathProblem::EmptySegment => f.write_str("contains an empty segment (//)"),
            PathProblem::Backslash => f.write_str("contains a backslash"),
            PathProblem::Semicolon => f.write_str("contains a semicolon"),
            PathProblem::ControlCharacter => {
                f.write_str("contains a space, a control character or a byte outside ASCII")
            }
            PathProblem::BadPercentEncoding => {
                f.write_str("contains a % not followed by two hex digits")
            }
            PathProblem::EncodedCharacter(escape) => write!(
                f,
                "contains the escape {escape}, which encodes a character that changes how the path is read"
            ),
            PathProblem::NotNormalized(normal) => {
                write!(f, "is not in normal form; its normal form is {normal}")
            }
        }
    }
}

/// Returns the normal form of `path` (the request target's path, without the query), or the
/// reason it is rejected. `*` is accepted only with OPTIONS. Normalising a normal form
/// returns it unchanged, and borrowed: only a path with a percent escape is copied.
pub fn normalize<'a>(method: &Method, path: &'a str) -> Result<Cow<'a, str>, PathProblem> {
    if path == "*" && method == Method::OPTIONS {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathProblem::NotAbsolute);
    }

    let bytes = path.as_bytes();
    // The rewritten path, started at the first escape with everything before it.
    let mut rewritten: Option<String> = None;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b'%' => {
                let escape = path
                    .get(index..index + 3)
                    .ok_or(PathProblem::BadPercentEncoding)?;
                let decoded = decode_escape(escape).ok_or(PathProblem::BadPercentEncoding)?;
                if changes_reading(decoded) {
                    return Err(PathProblem::EncodedCharacter(escape.to_owned()));
                }
                let normal = rewritten.get_or_insert_with(|| {
                    let mut normal = String::with_capacity(path.len());
                    normal.push_str(&path[..index]);
                    normal
                });
                if is_unreserved(decoded) {
                    normal.push(char::from(decoded));
                } else {
                    normal.push('%');
                    normal.push_str(&escape[1..].to_ascii_uppercase());
                }
                index += 3;
                continue;
            }
            b'\\' => return Err(PathProblem::Backslash),
            b';' => return Err(PathProblem::Semicolon),
            byte if !(0x21..0x7f).contains(&byte) => return Err(PathProblem::ControlCharacter),
            _ => {
                if let Some(normal) = &mut rewritten {
                    normal.push(char::from(byte));
                }
            }
        }
        index += 1;
    }

    let normal = rewritten.map_or(Cow::Borrowed(path), Cow::Owned);
    check_segments(&normal)?;
    Ok(normal)
}

/// Lower-cases the ASCII letters of a normal-form path, except the hex digits of escapes,
/// which stay upper case so the result is still in normal form. Case-insensitive routes are
/// matched on this form.
pub fn fold_case(path: &str) -> String {
    let mut folded = String::with_capacity(path.len());
    let mut escape_digits = 0;
    for c in path.chars() {
        if escape_digits > 0 {
            escape_digits -= 1;
            folded.push(c);
        } else if c == '%' {
            escape_digits = 2;
            folded.push(c);
        } else {
            folded.push(c.to_ascii_lowercase());
        }
    }
    folded
}

/// Rejects `.` and `..` segments and empty segments other than the one a trailing `/` leaves.
fn check_segments(path: &str) -> Result<(), PathProblem> {
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Err(PathProblem::DotSegment),
            "" if segments.peek().is_some() => return Err(PathProblem::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

/// Decodes `%XY` into its byte, or `None` when `X` or `Y` is not a hex digit.
fn decode_escape(escape: &str) -> Option<u8> {
    let digits = escape.get(1..3)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(digits, 16).ok()
}

/// Returns whether `byte` is an RFC 3986 unreserved character other than `.`. Decoding those
/// never changes how a path splits into segments. An encoded `.` is rejected instead,
/// because decoding it could create a dot segment after another server's segment check ran.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~')
}

/// Returns whether servers decode an escape of `byte` at different stages, so the decoded
/// and the encoded reading of a path can route differently.
fn changes_reading(byte: u8) -> bool {
    matches!(byte, b'/' | b'\\' | b'.' | b'%' | b';') || byte < 0x20 || byte == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> Result<String, PathProblem> {
        normalize(&Method::GET, path).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_unchanged() {
        let paths = [
            "/",
            "/orders",
            "/orders/",
            "/orders/7",
            "/orders/a%20b",
            "/files/report.v2.pdf",
            "/a/..b/c.",
            "/healthz.",
            "/~user",
            "/caf%C3%A9",
            "/a:b@c!$&'()*+,=",
        ];
        for path in paths {
            assert_eq!(normal(path).as_deref(), Ok(path), "{path}");
        }
    }

    #[test]
    fn only_escaped_paths_copied() {
        for path in ["/", "/orders/7", "/a:b@c!$&'()*+,="] {
            assert!(
                matches!(normalize(&Method::GET, path), Ok(Cow::Borrowed(_))),
                "{path}"
            );
        }
        let escaped = normalize(&Method::GET, "/a/%72eports").unwrap();
        assert!(matches!(escaped, Cow::Owned(_)));
        assert_eq!(escaped, "/a/reports");
    }

    #[test]
    fn empty_segment_checked_after_rewrite() {
        // A path with an escape has its segments checked on the rewritten copy.
        assert_eq!(normal("/%61//b"), Err(PathProblem::EmptySegment));
        assert_eq!(normal("/a/"), Ok("/a/".to_owned()));
    }

    #[test]
    fn unreserved_escapes_decoded() {
        assert_eq!(normal("/%72eports").as_deref(), Ok("/reports"));
        assert_eq!(normal("/a%2Db%5Fc%7Ed%41").as_deref(), Ok("/a-b_c~dA"));
        assert_eq!(normal("/%30%39").as_deref(), Ok("/09"));
    }

    #[test]
    fn other_escapes_upper_cased() {
        assert_eq!(normal("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(normal("/a%20b%3f").as_deref(), Ok("/a%20b%3F"));
    }

    #[test]
    fn normal_form_is_stable() {
        for path in ["/%72eports", "/caf%c3%a9", "/a%20b%3f/x"] {
            let once = normal(path).unwrap();
            assert_eq!(normal(&once).as_deref(), Ok(once.as_str()), "{path}");
        }
    }

    #[test]
    fn fold_case_keeps_escapes() {
        assert_eq!(fold_case("/Reports/CAF%C3%A9"), "/reports/caf%C3%A9");
        let folded = fold_case("/A%2B");
        assert_eq!(normal(&folded).as_deref(), Ok(folded.as_str()));
    }

    #[test]
    fn asterisk_only_for_options() {
        assert_eq!(normalize(&Method::OPTIONS, "*").as_deref(), Ok("*"));
        assert_eq!(normal("*"), Err(PathProblem::NotAbsolute));
    }

    #[test]
    fn ambiguous_paths_rejected() {
        let cases = [
            ("orders", PathProblem::NotAbsolute),
            ("", PathProblem::NotAbsolute),
            ("/a/../b", PathProblem::DotSegment),
            ("/a/./b", PathProblem::DotSegment),
            ("/./", PathProblem::DotSegment),
            ("/..", PathProblem::DotSegment),
            ("/a/.", PathProblem::DotSegment),
            ("/healthz/../admin", PathProblem::DotSegment),
            ("//healthz/../admin", PathProblem::EmptySegment),
            ("//orders", PathProblem::EmptySegment),
            ("/a//b", PathProblem::EmptySegment),
            ("/a\\b", PathProblem::Backslash),
            ("/admin;x=1", PathProblem::Semicolon),
            ("/a b", PathProblem::ControlCharacter),
            ("/a\0b", PathProblem::ControlCharacter),
            ("/a\tb", PathProblem::ControlCharacter),
            ("/a\u{7f}", PathProblem::ControlCharacter),
            ("/caf\u{e9}", PathProblem::ControlCharacter),
            ("/a%2fb", PathProblem::EncodedCharacter("%2f".into())),
            ("/a%2Fb", PathProblem::EncodedCharacter("%2F".into())),
            ("/a%5cb", PathProblem::EncodedCharacter("%5c".into())),
            ("/a%3bb", PathProblem::EncodedCharacter("%3b".into())),
            (
                "/healthz/%2e%2e/admin",
                PathProblem::EncodedCharacter("%2e".into()),
            ),
            (
                "/healthz%2f..%2fadmin",
                PathProblem::EncodedCharacter("%2f".into()),
            ),
            ("/a%2E", PathProblem::EncodedCharacter("%2E".into())),
            ("/a%252f", PathProblem::EncodedCharacter("%25".into())),
            ("/a%00", PathProblem::EncodedCharacter("%00".into())),
            ("/a%0A", PathProblem::EncodedCharacter("%0A".into())),
            ("/a%7f", PathProblem::EncodedCharacter("%7f".into())),
            ("/a%", PathProblem::BadPercentEncoding),
            ("/a%2", PathProblem::BadPercentEncoding),
            ("/a%zz", PathProblem::BadPercentEncoding),
            ("/a%+1", PathProblem::BadPercentEncoding),
        ];
        for (path, problem) in cases {
            assert_eq!(normal(path), Err(problem), "{path:?}");
        }
    }
}
