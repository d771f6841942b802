//! Parsing of token requests: content type, body size, form parameters, and the client
//! credentials from HTTP Basic or the form (RFC 6749 sections 2.3.1, 3.2 and 4).

use std::collections::{HashMap, HashSet};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body_util::BodyExt;
use hyper::body::Body;
use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use super::error::OAuthError;

/// Maximum token request body, in bytes. A token request is a handful of short parameters,
/// and 8 KiB still leaves room for long passwords and scope lists.
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024;

/// Maximum body read and discarded after [`MAX_BODY_BYTES`] was exceeded, so a client
/// that sent a moderately oversized body still receives the error response.
pub(crate) const MAX_DRAINED_BYTES: usize = 64 * 1024;

/// Standard base64 that accepts Basic credentials with or without padding, since clients
/// differ.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Checks that the body is `application/x-www-form-urlencoded`, allowing parameters such
/// as `charset=UTF-8` but no charset other than UTF-8.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
    const EXPECTED: &str = "application/x-www-form-urlencoded";
    let value = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| {
            OAuthError::invalid_request(format!(
                "the Content-Type header is missing; send {EXPECTED}"
            ))
        })?
        .to_str()
        .map_err(|_| OAuthError::invalid_request("the Content-Type header is not ASCII"))?;

    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(EXPECTED) {
        return Err(OAuthError::invalid_request(format!(
            "Content-Type {media_type:?} is not supported; send {EXPECTED}"
        )));
    }
    for parameter in parts {
        let Some((name, charset)) = parameter.split_once('=') else {
            continue;
        };
        let charset = charset.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !charset.eq_ignore_ascii_case("utf-8") {
            return Err(OAuthError::invalid_request(format!(
                "charset {charset:?} is not supported; send UTF-8"
            )));
        }
    }
    Ok(())
}

/// Reads the request body, up to [`MAX_BODY_BYTES`].
///
/// A larger body is an `invalid_request`. The rest of a body up to [`MAX_DRAINED_BYTES`]
/// is read and discarded first, because closing a connection with unread data makes the
/// kernel reset it, which can destroy the error response before the client reads it.
pub(crate) async fn read_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, OAuthError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large =
        || OAuthError::invalid_request(format!("the request body exceeds {MAX_BODY_BYTES} bytes"));
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_DRAINED_BYTES as u64) {
        return Err(too_large());
    }

    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            OAuthError::invalid_request(format!(
                "failed to read the request body: {}",
                error.into()
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.remaining());
        if total <= MAX_BODY_BYTES {
            collected.put(data);
        } else if total > MAX_DRAINED_BYTES {
            break;
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(collected.freeze())
}

/// Form parameters of a token request, each present at most once.
#[derive(Debug, Default)]
pub(crate) struct TokenForm {
    parameters: HashMap<String, Zeroizing<String>>,
}

impl TokenForm {
    /// Parses an `application/x-www-form-urlencoded` body. A parameter with an empty value
    /// counts as omitted (RFC 6749 section 3.1), and a repeated parameter is an
    /// `invalid_request` (section 3.2). Invalid UTF-8 decodes to U+FFFD, which then fails
    /// whatever check the value meets.
    pub(crate) fn parse(body: &[u8]) -> Result<TokenForm, OAuthError> {
        let mut parameters = HashMap::new();
        let mut seen = HashSet::new();
        for (name, value) in form_urlencoded::parse(body) {
            if seen.contains(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is repeated; send each parameter once"
                )));
            }
            if !value.is_empty() {
                parameters.insert(name.to_string(), Zeroizing::new(value.into_owned()));
            }
            seen.insert(name);
        }
        Ok(TokenForm { parameters })
    }

    /// Returns the value of `name`, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(|value| value.as_str())
    }

    /// Returns the value of `name`, or an `invalid_request` naming it.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }

    fn take(&mut self, name: &str) -> Option<Zeroizing<String>> {
        self.parameters.remove(name)
    }
}

/// Credentials a client presented.
pub(crate) struct ClientCredentials {
    pub id: String,
    pub secret: Zeroizing<String>,
}

/// Extracts the client credentials from the `Authorization: Basic` header or from the
/// `client_id` and `client_secret` form parameters, removing the latter from `form`.
///
/// # Errors
///
/// `invalid_request` when both methods are used or the header is malformed, and
/// `invalid_client` when no credentials, or credentials of another scheme, are present.
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    form: &mut TokenForm,
) -> Result<ClientCredentials, OAuthError> {
    let mut authorizations = headers.get_all(header::AUTHORIZATION).iter();
    let authorization = authorizations.next();
    if authorizations.next().is_some() {
        return Err(OAuthError::invalid_request(
            "the Authorization header is repeated; send it once",
        ));
    }
    let form_id = form.take("client_id");
    let form_secret = form.take("client_secret");

    if let Some(authorization) = authorization {
        if form_id.is_some() || form_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "the client authenticated with both HTTP Basic and client_id/client_secret \
                 parameters; use one method",
            ));
        }
        let value = authorization
            .to_str()
            .map_err(|_| OAuthError::invalid_request("the Authorization header is not ASCII"))?;
        return parse_basic(value);
    }

    match (form_id, form_secret) {
        (Some(id), Some(secret)) => Ok(ClientCredentials {
            id: id.to_string(),
            secret,
        }),
        (Some(_), None) => Err(OAuthError::invalid_client(
            "client_secret is missing; every client of this service is confidential",
        )),
        (None, _) => Err(OAuthError::invalid_client(
            "client authentication is missing; use HTTP Basic or the client_id and \
             client_secret parameters",
        )),
    }
}

/// Parses `Basic base64(id:secret)`, where id and secret are each form-urlencoded
/// (RFC 6749 section 2.3.1).
fn parse_basic(value: &str) -> Result<ClientCredentials, OAuthError> {
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(format!(
            "authentication scheme {scheme:?} is not supported; use HTTP Basic"
        )));
    }
    let malformed = || OAuthError::invalid_request("the Basic credentials are malformed");
    let decoded = Zeroizing::new(
        BASIC_BASE64
            .decode(encoded.trim())
            .map_err(|_| malformed())?,
    );
    let decoded = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(ClientCredentials {
        id: form_decode(id).ok_or_else(malformed)?.to_string(),
        secret: form_decode(secret).ok_or_else(malformed)?,
    })
}

/// Decodes one form-urlencoded value: `+` is a space, `%XX` a byte, and the result must be
/// UTF-8.
fn form_decode(value: &str) -> Option<Zeroizing<String>> {
    let spaced = Zeroizing::new(value.replace('+', " "));
    let decoded = percent_decode_str(&spaced).decode_utf8().ok()?;
    Some(Zeroizing::new(decoded.into_owned()))
}

#[cfg(test)]
mod tests;
