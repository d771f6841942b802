//! The identity headers the app trusts: client-sent copies are removed, verified values set.

use crate::config::ClaimHeader;
use crate::verify::VerifiedToken;

/// Removes every header whose name starts with IDENTITY_HEADER_PREFIX (all copies).
pub fn strip_identity_headers(headers: &mut http::HeaderMap) {
    let _ = headers;
    todo!()
}

/// Sets X-Portcullis-Subject, X-Portcullis-Scope (space-separated), X-Portcullis-Client-Id,
/// X-Portcullis-Issuer and the configured claim headers from a verified token.
pub fn set_identity_headers(
    headers: &mut http::HeaderMap,
    token: &VerifiedToken,
    claim_headers: &[ClaimHeader],
) {
    let _ = (headers, token, claim_headers);
    todo!()
}
