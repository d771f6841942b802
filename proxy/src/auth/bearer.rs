//! Finding a request's bearer token: the `Authorization` header (RFC 6750 section 2.1) and,
//! when configured, a query parameter (section 2.3) or a cookie. Section 2 forbids more than
//! one method per request, so a token found in two places is an error, not a choice.

use std::borrow::Cow;
use std::fmt;

use http::header::{AUTHORIZATION, COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Uri};

use crate::config::TokenSources;

/// The part of a request that carried its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Cookie,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenSource::Header => "the Authorization header",
            TokenSource::Query => "the query string",
            TokenSource::Cookie => "a cookie",
        })
    }
}

/// A token as received, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken<'a> {
    /// The exact token text. A query parameter is form-decoded first, as RFC 6750 section
    /// 2.3 specifies. Bytes outside ASCII in a header token become U+FFFD, which then fails
    /// verification.
    pub text: Cow<'a, str>,
    pub source: TokenSource,
}

/// A request whose credentials cannot be read unambiguously: 400 `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialProblem {
    #[error("the request has more than one Authorization header")]
    MultipleAuthorizationHeaders,
    #[error("the Authorization header is not a valid Bearer credential: {0}")]
    MalformedBearer(&'static str),
    #[error("the query parameter {0} appears more than once")]
    RepeatedQueryParameter(String),
    #[error("the cookie {0} appears more than once")]
    RepeatedCookie(String),
    #[error("the request carries a token in both {first} and {second}; send it in one place only")]
    SeveralSources {
        first: TokenSource,
        second: TokenSource,
    },
}

impl CredentialProblem {
    /// Returns a short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialProblem::MultipleAuthorizationHeaders
            | CredentialProblem::MalformedBearer(_) => "invalid_authorization",
            CredentialProblem::RepeatedQueryParameter(_)
            | CredentialProblem::RepeatedCookie(_)
            | CredentialProblem::SeveralSources { .. } => "ambiguous_token",
        }
    }
}

/// Finds the request's token in the header, and in the query parameter and cookie that
/// `sources` turns on. `query` is the request target's query, without the `?`.
///
/// Returns `Ok(None)` when there is no token: no `Authorization` header or one with another
/// scheme such as `Basic`, and no token from a configured source. A query parameter named
/// `access_token` next to a header token is an error even while the query source is off,
/// because an app that reads that parameter would then act on a token the sidecar never
/// checked.
pub fn extract_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    sources: &TokenSources,
) -> Result<Option<FoundToken<'a>>, CredentialProblem> {
    let mut found = Vec::new();
    if let Some(text) = header_token(headers)? {
        found.push(FoundToken {
            text,
            source: TokenSource::Header,
        });
    }

    let parameter = sources.ambiguous_query_parameter();
    let mut from_query = query_values(query, parameter);
    if sources.query_parameter.is_some() {
        if from_query.len() > 1 {
            return Err(CredentialProblem::RepeatedQueryParameter(
                parameter.to_owned(),
            ));
        }
        if let Some(text) = from_query.pop() {
            found.push(FoundToken {
                text,
                source: TokenSource::Query,
            });
        }
    } else if !from_query.is_empty() && !found.is_empty() {
        return Err(CredentialProblem::SeveralSources {
            first: TokenSource::Header,
            second: TokenSource::Query,
        });
    }

    if let Some(name) = &sources.cookie {
        let mut from_cookie = cookie_values(headers, name);
        if from_cookie.len() > 1 {
            return Err(CredentialProblem::RepeatedCookie(name.clone()));
        }
        if let Some(text) = from_cookie.pop() {
            found.push(FoundToken {
                text: Cow::Borrowed(text),
                source: TokenSource::Cookie,
            });
        }
    }

    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(CredentialProblem::SeveralSources {
            first: found[0].source,
            second: found[1].source,
        }),
    }
}

/// Reads the token of a Bearer `Authorization` header. The scheme matches `Bearer` in any
/// letter case, and exactly one space separates it from the token, which is taken as is
/// and checked by the verifier. Spaces inside mean several tokens, which is an error.
fn header_token(headers: &HeaderMap) -> Result<Option<Cow<'_, str>>, CredentialProblem> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CredentialProblem::MultipleAuthorizationHeaders);
    }

    // Header values are almost always ASCII, which `from_utf8` checks quickly and without a
    // copy; only other bytes pay for the lossy conversion.
    let text = match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    };
    let (scheme, token) = match text.split_once(' ') {
        Some((scheme, token)) => (scheme, token),
        None => (text.as_ref(), ""),
    };
    if scheme.is_empty() {
        return Err(CredentialProblem::MalformedBearer("the scheme is missing"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if token.is_empty() {
        return Err(CredentialProblem::MalformedBearer(
            "no token follows the scheme",
        ));
    }
    if token.starts_with(' ') {
        return Err(CredentialProblem::MalformedBearer(
            "more than one space follows the scheme",
        ));
    }
    // memchr checks many bytes per instruction; the token is most of the header.
    if memchr::memchr(b' ', token.as_bytes()).is_some() {
        return Err(CredentialProblem::MalformedBearer(
            "it contains more than one token",
        ));
    }

    let start = scheme.len() + 1;
    Ok(Some(match text {
        Cow::Borrowed(text) => Cow::Borrowed(&text[start..]),
        Cow::Owned(text) => Cow::Owned(text[start..].to_owned()),
    }))
}

/// Returns every value of the query parameter `name`, form-decoded.
fn query_values<'a>(query: Option<&'a str>, name: &str) -> Vec<Cow<'a, str>> {
    let Some(query) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value)
        .collect()
}

/// Returns every value of the cookie `name` across all `Cookie` headers (HTTP/2 may split
/// cookies over several). Names compare exactly; values are taken as written.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim_matches([' ', '\t']).split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .collect()
}

/// Removes every place the token may come from before a request is forwarded without it:
/// the `Authorization` header, the configured query parameter and the configured cookie.
/// Other query parameters and cookies keep their exact spelling and order.
pub fn strip_token(parts: &mut http::request::Parts, sources: &TokenSources) {
    parts.headers.remove(AUTHORIZATION);
    if let Some(name) = &sources.cookie {
        remove_cookie(&mut parts.headers, name);
    }
    let Some(name) = sources.query_parameter.as_deref() else {
        return;
    };
    let Some(stripped) = parts
        .uri
        .path_and_query()
        .and_then(|path_and_query| remove_query_parameter(path_and_query, name))
    else {
        return;
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(stripped);
    // Replacing the path and query of a valid URI with a valid one keeps it valid.
    if let Ok(uri) = Uri::from_parts(uri) {
        parts.uri = uri;
    }
}

/// Returns `path_and_query` without the query parameter `name`, or `None` when it has none.
fn remove_query_parameter(path_and_query: &PathAndQuery, name: &str) -> Option<PathAndQuery> {
    let pairs: Vec<&str> = path_and_query.query()?.split('&').collect();
    let remaining: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| {
            let key = form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(key, _)| key);
            key.as_deref() != Some(name)
        })
        .collect();
    if remaining.len() == pairs.len() {
        return None;
    }
    let rebuilt = if remaining.is_empty() {
        path_and_query.path().to_owned()
    } else {
        format!("{}?{}", path_and_query.path(), remaining.join("&"))
    };
    // The text is a valid path and query with pairs removed, so it parses again.
    rebuilt.parse().ok()
}

/// Removes the cookie `name` from every `Cookie` header, and headers left empty.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    if values.is_empty() {
        return;
    }
    headers.remove(COOKIE);
    for value in values {
        let Ok(text) = value.to_str() else {
            headers.append(COOKIE, value);
            continue;
        };
        let remaining: Vec<&str> = text
            .split(';')
            .map(|pair| pair.trim_matches([' ', '\t']))
            .filter(|pair| pair.split_once('=').is_none_or(|(key, _)| key != name))
            .filter(|pair| !pair.is_empty())
            .collect();
        if remaining.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&remaining.join("; ")) {
            headers.append(COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests;
