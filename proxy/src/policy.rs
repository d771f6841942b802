//! Route policy: path safety checks and route matching. Token extraction and the scope and
//! claim checks a route requires are in [`crate::auth`]. The route table is indexed by path
//! segment and method, so matching does not try the routes one by one.
//!
//! Routes match the normal form of the request path ([`crate::path`]), which is also the path
//! the app receives. Any path the two could read differently is rejected before matching, so
//! a route's scopes cannot be bypassed by spelling its path another way.

use http::Method;

use crate::auth::bearer::CredentialProblem;
use crate::config::{AuthRequirement, ClaimRequirement, RouteRule};
use crate::path;
use index::RouteIndex;

mod index;

pub use crate::path::PathProblem;

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

/// Checks that `path` (the request target's path, without the query) is in the normal form
/// [`path::normalize`] produces, which is the form route rules are matched against. An unsafe
/// path gets its [`PathProblem`]; a safe path that is not in normal form gets
/// [`PathProblem::NotNormalized`], because matching it would skip the decoding the app does.
pub fn check_path(method: &Method, path: &str) -> Result<(), PathProblem> {
    let normal = path::normalize(method, path)?;
    if normal != path {
        return Err(PathProblem::NotNormalized(normal.into_owned()));
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

/// The configured routes, in order, with their index.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    routes: Vec<RouteRule>,
    index: RouteIndex,
}

impl RoutePolicy {
    pub fn new(routes: Vec<RouteRule>) -> RoutePolicy {
        let index = RouteIndex::new(&routes);
        RoutePolicy { routes, index }
    }

    /// Applies the first route that matches `method` and `path`. A path that no route matches
    /// requires a valid token with no particular scope.
    pub fn decide(&self, method: &Method, path: &str) -> RouteDecision<'_> {
        // The index stores only positions in `routes`, so indexing cannot panic.
        let matched = self
            .index
            .first_match(method, path)
            .map(|position| &self.routes[position]);
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

#[cfg(test)]
mod tests;
