//! Route policy: path safety checks and route matching. Token extraction and the scope and
//! claim checks a route asks for are in [`crate::auth`].
//!
//! The sidecar matches routes on the raw request path, while the app may decode and normalise
//! it. Any path the two could read differently is rejected before matching, so a route's
//! scopes cannot be bypassed by spelling its path another way.

use std::fmt;

use http::Method;

use crate::auth::bearer::CredentialProblem;
use crate::config::{AuthRequirement, ClaimRequirement, PathMatch, RouteRule};

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
    /// Contains a control character, DEL or a byte outside ASCII.
    ControlCharacter,
    /// Contains `%` not followed by two hex digits.
    BadPercentEncoding,
    /// Percent-encodes `/`, `\`, `.`, `%` or a control character: the escape as written.
    EncodedCharacter(String),
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
                f.write_str("contains a control character or a byte outside ASCII")
            }
            PathProblem::BadPercentEncoding => {
                f.write_str("contains a % not followed by two hex digits")
            }
            PathProblem::EncodedCharacter(escape) => write!(
                f,
                "contains the escape {escape}, which encodes a character that changes how the path is read"
            ),
        }
    }
}

/// A request the sidecar rejects with 400 `invalid_request` before looking at a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("the request path {0}")]
    UnsafePath(PathProblem),
    #[error("{0}")]
    Credentials(CredentialProblem),
}

impl InvalidRequest {
    /// Returns a short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidRequest::UnsafePath(_) => "unsafe_path",
            InvalidRequest::Credentials(problem) => problem.reason(),
        }
    }
}

/// Checks that `path` (the request target's path, without the query) reads the same to the
/// sidecar and to any app behind it. See [`PathProblem`] for what is rejected.
pub fn check_path(method: &Method, path: &str) -> Result<(), PathProblem> {
    if path == "*" && method == Method::OPTIONS {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(PathProblem::NotAbsolute);
    }

    let bytes = path.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => return Err(PathProblem::Backslash),
            b';' => return Err(PathProblem::Semicolon),
            byte if !(0x20..0x7f).contains(&byte) => return Err(PathProblem::ControlCharacter),
            b'%' => {
                let escape = path
                    .get(index..index + 3)
                    .ok_or(PathProblem::BadPercentEncoding)?;
                let decoded = u8::from_str_radix(&escape[1..], 16)
                    .map_err(|_| PathProblem::BadPercentEncoding)?;
                if matches!(decoded, b'/' | b'\\' | b'.' | b'%')
                    || decoded < 0x20
                    || decoded == 0x7f
                {
                    return Err(PathProblem::EncodedCharacter(escape.to_owned()));
                }
                index += 3;
                continue;
            }
            _ => {}
        }
        index += 1;
    }

    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (position, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return Err(PathProblem::DotSegment),
            // A trailing slash leaves one empty last segment, which is harmless.
            "" if position != last => return Err(PathProblem::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

/// The route table's requirement for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    /// `auth = "none"`: forward without a token.
    Open,
    /// A valid token with every one of these scopes (possibly none) that meets every one of
    /// these claim requirements.
    TokenRequired {
        scopes: &'a [String],
        claims: &'a [ClaimRequirement],
    },
}

/// The configured routes, in order.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    routes: Vec<RouteRule>,
}

impl RoutePolicy {
    pub fn new(routes: Vec<RouteRule>) -> RoutePolicy {
        RoutePolicy { routes }
    }

    /// Applies the first route that matches `method` and `path`. A path that no route matches
    /// requires a valid token with no particular scope.
    pub fn decide(&self, method: &Method, path: &str) -> RouteDecision<'_> {
        let matched = self
            .routes
            .iter()
            .find(|route| route_matches(route, method, path));
        match matched {
            Some(route) if route.auth == AuthRequirement::None => RouteDecision::Open,
            Some(route) => RouteDecision::TokenRequired {
                scopes: &route.scopes,
                claims: &route.claims,
            },
            None => RouteDecision::TokenRequired {
                scopes: &[],
                claims: &[],
            },
        }
    }
}

fn route_matches(route: &RouteRule, method: &Method, path: &str) -> bool {
    let method_matches = route.methods.is_empty() || route.methods.contains(method);
    let path_matches = match &route.path {
        PathMatch::Exact(exact) => path == exact,
        PathMatch::Prefix(prefix) if prefix == "/" => path.starts_with('/'),
        PathMatch::Prefix(prefix) => path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
    };
    method_matches && path_matches
}

#[cfg(test)]
mod tests;
