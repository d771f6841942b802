//! Checks of the request target and `Host` on the inbound listener, before any route is
//! matched: the target in absolute form (as sent to a proxy, and as HTTP/2 always carries
//! it) is reduced to origin form, and its authority must agree with `Host`.

use std::fmt;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Version};

use crate::path::{self, PathProblem};

/// Reason a request target or `Host` is rejected with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    Connect,
    MultipleHosts,
    MissingHost,
    InvalidHost(String),
    UserInfo,
    UnsupportedScheme(String),
    HostMismatch { target: String, host: String },
    Path(PathProblem),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Connect => {
                f.write_str("CONNECT is not accepted: the inbound listener opens no tunnels")
            }
            TargetError::MultipleHosts => f.write_str("the request has more than one Host header"),
            TargetError::MissingHost => {
                f.write_str("the HTTP/1.1 request has no Host header; add one")
            }
            TargetError::InvalidHost(host) => {
                write!(f, "the Host header `{host}` is not a host and optional port")
            }
            TargetError::UserInfo => {
                f.write_str("the request target contains user information (user@host), which is not allowed")
            }
            TargetError::UnsupportedScheme(scheme) => {
                write!(f, "the request target's scheme `{scheme}` is not http or https")
            }
            TargetError::HostMismatch { target, host } => write!(
                f,
                "the request target names `{target}` but the Host header names `{host}`; they must agree"
            ),
            TargetError::Path(problem) => write!(f, "the request path {problem}"),
        }
    }
}

impl TargetError {
    /// Returns the `reason` label of `portcullis_request_rejections_total`.
    pub fn label(&self) -> &'static str {
        match self {
            TargetError::Connect => "connect_method",
            TargetError::MultipleHosts => "multiple_hosts",
            TargetError::MissingHost => "missing_host",
            TargetError::InvalidHost(_) => "invalid_host",
            TargetError::UserInfo => "userinfo",
            TargetError::UnsupportedScheme(_) => "unsupported_scheme",
            TargetError::HostMismatch { .. } => "host_mismatch",
            TargetError::Path(_) => "unsafe_path",
        }
    }
}

/// A request target that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The normal path and the query as received: the origin-form target the app gets. Its
    /// path, [`Target::path`], is what routes match.
    pub path_and_query: PathAndQuery,
    /// The authority of an absolute-form or HTTP/2 target, for a `Host` header when the
    /// request has none.
    pub authority: Option<Authority>,
}

/// Checks the method, request target and `Host` of `request`, and returns the target in
/// normal origin form.
pub fn check<B>(request: &Request<B>) -> Result<Target, TargetError> {
    if request.method() == Method::CONNECT {
        return Err(TargetError::Connect);
    }
    let host = single_host(request.headers())?;
    if host.is_none()
        && request.version() == Version::HTTP_11
        && request.uri().authority().is_none()
    {
        return Err(TargetError::MissingHost);
    }

    let uri = request.uri();
    let authority = uri.authority().cloned();
    if let Some(authority) = &authority {
        if authority.as_str().contains('@') {
            return Err(TargetError::UserInfo);
        }
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(TargetError::UnsupportedScheme(scheme.to_string()));
        }
        if let Some(host) = &host {
            if !same_origin(authority, host, &scheme) {
                return Err(TargetError::HostMismatch {
                    target: authority.to_string(),
                    host: host.to_string(),
                });
            }
        }
    }

    let path = path::normalize(request.method(), uri.path()).map_err(TargetError::Path)?;
    let path_and_query = match uri.path_and_query() {
        // Already normal: the received target is shared, not copied. The text is compared,
        // because `PathAndQuery::path` reports the empty path of an absolute-form target
        // such as `http://orders?q=1` as `/`, and that target is rebuilt as `/?q=1` below.
        Some(received) if starts_with_path(received.as_str(), &path) => received.clone(),
        _ => {
            let joined = match uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.into_owned(),
            };
            // The path is the normal form of a valid path, and the query comes from a valid
            // URI. So the join parses, and the error arm only guards that reasoning.
            PathAndQuery::try_from(joined)
                .map_err(|_| TargetError::Path(PathProblem::ControlCharacter))?
        }
    };
    Ok(Target {
        path_and_query,
        authority,
    })
}

/// Returns whether `target` is `path`, alone or followed by a query.
fn starts_with_path(target: &str, path: &str) -> bool {
    target
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

impl Target {
    /// Returns the normal form of the path ([`path::normalize`]), which routes match.
    pub fn path(&self) -> &str {
        self.path_and_query.path()
    }
}

/// Returns the request's one `Host` as an authority, or `None` when it has none.
fn single_host(headers: &HeaderMap) -> Result<Option<Authority>, TargetError> {
    let mut hosts = headers.get_all(HOST).iter();
    let Some(value) = hosts.next() else {
        return Ok(None);
    };
    if hosts.next().is_some() {
        return Err(TargetError::MultipleHosts);
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    let authority: Authority = text
        .parse()
        .map_err(|_| TargetError::InvalidHost(text.escape_default().to_string()))?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(TargetError::InvalidHost(text.escape_default().to_string()));
    }
    Ok(Some(authority))
}

/// Compares the target's authority with `Host`: hosts without regard to case, ports after
/// filling in the scheme's default.
fn same_origin(target: &Authority, host: &Authority, scheme: &Scheme) -> bool {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let target_port = target.port_u16().unwrap_or(default_port);
    let host_port = host.port_u16().unwrap_or(default_port);
    target.host().eq_ignore_ascii_case(host.host()) && target_port == host_port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap()
    }

    fn get(uri: &str, hosts: &[&str]) -> Result<Target, TargetError> {
        check(&request(Method::GET, uri, Version::HTTP_11, hosts))
    }

    #[test]
    fn origin_form_normalised() {
        let target = get("/%72eports?x=/healthz", &["orders"]).unwrap();
        assert_eq!(target.path(), "/reports");
        assert_eq!(target.path_and_query.as_str(), "/reports?x=/healthz");
        assert_eq!(target.authority, None);
    }

    #[test]
    fn normal_target_shared_and_escaped_target_rebuilt() {
        let target = get("/orders/7?x=%2F", &["orders"]).unwrap();
        assert_eq!(target.path(), "/orders/7");
        assert_eq!(target.path_and_query.as_str(), "/orders/7?x=%2F");
        // An escape that is already normal keeps its text, rebuilt or not.
        let target = get("/a%3Ab?q", &["orders"]).unwrap();
        assert_eq!(target.path_and_query.as_str(), "/a%3Ab?q");
        let target = get("/a%3ab?q", &["orders"]).unwrap();
        assert_eq!(target.path_and_query.as_str(), "/a%3Ab?q");
        // An absolute-form target without a path gets `/`.
        let target = get("http://orders", &["orders"]).unwrap();
        assert_eq!(target.path(), "/");
        assert_eq!(target.path_and_query.as_str(), "/");
        let target = get("http://orders?q=1", &["orders"]).unwrap();
        assert_eq!(target.path_and_query.as_str(), "/?q=1");
    }

    #[test]
    fn absolute_form_reduced_to_origin_form() {
        let target = get("http://Orders:80/a?b=1", &["orders"]).unwrap();
        assert_eq!(target.path_and_query.as_str(), "/a?b=1");
        assert_eq!(target.authority.unwrap().as_str(), "Orders:80");
        let target = get("https://orders/a", &["orders:443"]).unwrap();
        assert_eq!(target.path(), "/a");
        assert!(get("http://orders/a", &[]).is_ok());
    }

    #[test]
    fn host_problems_rejected() {
        assert_eq!(get("/", &[]), Err(TargetError::MissingHost));
        assert_eq!(get("/", &["a", "b"]), Err(TargetError::MultipleHosts));
        assert_eq!(get("/", &["a", "a"]), Err(TargetError::MultipleHosts));
        assert!(matches!(
            get("/", &["a b"]),
            Err(TargetError::InvalidHost(_))
        ));
        assert!(matches!(
            get("/", &["u@a"]),
            Err(TargetError::InvalidHost(_))
        ));
        assert!(matches!(
            get("http://admin.internal/a", &["orders"]),
            Err(TargetError::HostMismatch { .. })
        ));
        assert!(matches!(
            get("http://orders:8080/a", &["orders"]),
            Err(TargetError::HostMismatch { .. })
        ));
        assert_eq!(
            get("http://u@orders/a", &["orders"]),
            Err(TargetError::UserInfo)
        );
        assert!(matches!(
            get("ftp://orders/a", &["orders"]),
            Err(TargetError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn http10_needs_no_host() {
        let request = request(Method::GET, "/a", Version::HTTP_10, &[]);
        assert!(check(&request).is_ok());
    }

    #[test]
    fn connect_rejected() {
        let request = request(Method::CONNECT, "orders:443", Version::HTTP_11, &["orders"]);
        assert_eq!(check(&request), Err(TargetError::Connect));
    }

    #[test]
    fn unsafe_path_rejected() {
        assert_eq!(
            get("/healthz/../admin", &["orders"]),
            Err(TargetError::Path(PathProblem::DotSegment))
        );
    }
}
