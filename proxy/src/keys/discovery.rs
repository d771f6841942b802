//! Reading an OpenID Connect discovery document (OpenID Connect Discovery 1.0, section 3) to
//! find a provider's JWKS.

use http::Uri;
use serde_json::Value;

/// Returns the `jwks_uri` of a discovery document published for `issuer`.
///
/// Fails when the document is not a JSON object, when its `issuer` is not exactly `issuer`
/// (section 4.3 requires the match, so a document cannot redirect one issuer's trust to
/// another), or when `jwks_uri` is not an absolute `https://` URI. A plain `http://`
/// `jwks_uri` is accepted only for an `http://` issuer, so discovery never downgrades an
/// HTTPS issuer to unencrypted key fetches.
pub fn parse_discovery(document: &[u8], issuer: &str) -> Result<Uri, String> {
    let value: Value = serde_json::from_slice(document)
        .map_err(|err| format!("the discovery document is not valid JSON: {err}"))?;
    let object = value
        .as_object()
        .ok_or("the discovery document is not a JSON object")?;

    match object.get("issuer") {
        Some(Value::String(found)) if found == issuer => {}
        Some(Value::String(found)) => {
            return Err(format!(
                "the discovery document names the issuer {found:?}, not {issuer:?}; check the provider's `issuer`"
            ))
        }
        _ => return Err("the discovery document has no string `issuer`".to_owned()),
    }

    let Some(Value::String(text)) = object.get("jwks_uri") else {
        return Err("the discovery document has no string `jwks_uri`".to_owned());
    };
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("the discovery document's jwks_uri {text:?} is not a valid URI"))?;
    let issuer_is_https = issuer.starts_with("https://");
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => !issuer_is_https,
        _ => false,
    };
    if !scheme_ok || uri.host().is_none() {
        let expected = if issuer_is_https {
            "an absolute https:// URI"
        } else {
            "an absolute http:// or https:// URI"
        };
        return Err(format!(
            "the discovery document's jwks_uri {text:?} is not {expected}"
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://sts.test";

    #[test]
    fn discovery_yields_jwks_uri() {
        let document = br#"{"issuer":"https://sts.test","jwks_uri":"https://sts.test/keys","x":1}"#;
        let uri = parse_discovery(document, ISSUER).expect("valid document");
        assert_eq!(uri, "https://sts.test/keys");
    }

    #[test]
    fn discovery_issuer_must_match_exactly() {
        for issuer in [
            r#""https://sts.test/""#,
            r#""https://STS.test""#,
            r#""https://evil.test""#,
            "null",
            "7",
        ] {
            let document = format!(r#"{{"issuer":{issuer},"jwks_uri":"https://sts.test/keys"}}"#);
            let result = parse_discovery(document.as_bytes(), ISSUER);
            assert!(result.is_err(), "{issuer}: {result:?}");
        }
        let missing = parse_discovery(br#"{"jwks_uri":"https://sts.test/keys"}"#, ISSUER);
        assert!(missing.is_err());
    }

    #[test]
    fn discovery_jwks_uri_must_be_usable() {
        for jwks_uri in [
            r#""http://sts.test/keys""#,
            r#""/keys""#,
            r#""file:///etc/keys""#,
            r#""not a uri""#,
            "[]",
        ] {
            let document = format!(r#"{{"issuer":"https://sts.test","jwks_uri":{jwks_uri}}}"#);
            let result = parse_discovery(document.as_bytes(), ISSUER);
            assert!(result.is_err(), "{jwks_uri}: {result:?}");
        }
    }

    #[test]
    fn http_issuer_may_use_http_jwks_uri() {
        let document = br#"{"issuer":"http://127.0.0.1:1","jwks_uri":"http://127.0.0.1:1/k"}"#;
        assert!(parse_discovery(document, "http://127.0.0.1:1").is_ok());
    }

    #[test]
    fn discovery_document_must_be_object() {
        assert!(parse_discovery(b"[]", ISSUER).is_err());
        assert!(parse_discovery(b"{", ISSUER).is_err());
    }
}
