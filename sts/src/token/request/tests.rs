use http::HeaderValue;
use http_body_util::Full;

use super::*;
use crate::token::error::ErrorCode;

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    map
}

fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[test]
fn content_type_accepts_charset_parameter() {
    for value in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded;charset=UTF-8",
        "Application/X-WWW-Form-URLEncoded; charset=\"utf-8\"",
    ] {
        let result = check_content_type(&headers(&[(header::CONTENT_TYPE, value)]));
        assert_eq!(result, Ok(()), "{value}");
    }
}

#[test]
fn content_type_rejects_json_and_latin1() {
    for value in [
        "application/json",
        "application/x-www-form-urlencoded; charset=ISO-8859-1",
    ] {
        let error = check_content_type(&headers(&[(header::CONTENT_TYPE, value)])).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest, "{value}");
    }
    let missing = check_content_type(&HeaderMap::new()).unwrap_err();
    assert_eq!(missing.code, ErrorCode::InvalidRequest);
}

#[test]
fn form_decodes_and_omits_empty_values() {
    let form =
        TokenForm::parse(b"grant_type=password&username=pe%74er&password=a+b%26c&scope=").unwrap();
    assert_eq!(form.get("grant_type"), Some("password"));
    assert_eq!(form.get("username"), Some("peter"));
    assert_eq!(form.get("password"), Some("a b&c"));
    assert_eq!(form.get("scope"), None);
}

#[test]
fn form_rejects_repeated_parameter() {
    let error = TokenForm::parse(b"scope=foo&grant_type=password&scope=bar").unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(
        error.description.contains("\"scope\""),
        "{}",
        error.description
    );

    let empty_repeat = TokenForm::parse(b"scope=&scope=foo").unwrap_err();
    assert_eq!(empty_repeat.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn body_over_limit_is_rejected() {
    let body = Full::new(Bytes::from(vec![b'a'; MAX_BODY_BYTES + 1]));
    let error = read_body(&HeaderMap::new(), body).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidRequest);

    let announced = headers(&[(header::CONTENT_LENGTH, "1000000")]);
    // The announced length alone decides, so the empty body is never read.
    let error = read_body(&announced, Full::new(Bytes::new()))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidRequest);

    let body = Full::new(Bytes::from(vec![b'a'; MAX_BODY_BYTES]));
    assert_eq!(
        read_body(&HeaderMap::new(), body).await.unwrap().len(),
        MAX_BODY_BYTES
    );
}

#[test]
fn basic_credentials_are_form_decoded() {
    let mut form = TokenForm::default();
    let value = basic("my%20client:s%3Acret+x");
    let credentials =
        client_credentials(&headers(&[(header::AUTHORIZATION, &value)]), &mut form).unwrap();
    assert_eq!(credentials.id, "my client");
    assert_eq!(credentials.secret.as_str(), "s:cret x");
}

#[test]
fn basic_credentials_split_at_first_colon() {
    let mut form = TokenForm::default();
    let value = basic("applicationid:application:secret");
    let credentials =
        client_credentials(&headers(&[(header::AUTHORIZATION, &value)]), &mut form).unwrap();
    assert_eq!(credentials.id, "applicationid");
    assert_eq!(credentials.secret.as_str(), "application:secret");
}

#[test]
fn form_credentials_are_accepted() {
    let mut form =
        TokenForm::parse(b"client_id=applicationid&client_secret=applicationsecret").unwrap();
    let credentials = client_credentials(&HeaderMap::new(), &mut form).unwrap();
    assert_eq!(credentials.id, "applicationid");
    assert_eq!(credentials.secret.as_str(), "applicationsecret");
    assert_eq!(form.get("client_secret"), None);
}

#[test]
fn both_methods_are_invalid_request() {
    let mut form = TokenForm::parse(b"client_secret=applicationsecret").unwrap();
    let value = basic("applicationid:applicationsecret");
    let error = client_credentials(&headers(&[(header::AUTHORIZATION, &value)]), &mut form)
        .err()
        .unwrap();
    assert_eq!(error.code, ErrorCode::InvalidRequest);
}

#[test]
fn missing_or_foreign_credentials_are_invalid_client() {
    let cases = [
        (HeaderMap::new(), &b""[..]),
        (HeaderMap::new(), &b"client_id=applicationid"[..]),
        (headers(&[(header::AUTHORIZATION, "Bearer abc")]), &b""[..]),
    ];
    for (headers, body) in cases {
        let mut form = TokenForm::parse(body).unwrap();
        let error = client_credentials(&headers, &mut form).err().unwrap();
        assert_eq!(error.code, ErrorCode::InvalidClient);
    }
}

#[test]
fn malformed_basic_is_invalid_request() {
    for value in ["Basic !!!", &basic("no-colon"), &basic("id:%ff")] {
        let mut form = TokenForm::default();
        let error = client_credentials(&headers(&[(header::AUTHORIZATION, value)]), &mut form)
            .err()
            .unwrap();
        assert_eq!(error.code, ErrorCode::InvalidRequest, "{value}");
    }
}

#[test]
fn basic_without_padding_is_accepted() {
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("a:b");
    let value = format!("Basic {encoded}");
    let mut form = TokenForm::default();
    let credentials =
        client_credentials(&headers(&[(header::AUTHORIZATION, &value)]), &mut form).unwrap();
    assert_eq!(credentials.id, "a");
}

#[test]
fn random_input_never_panics() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    // A fixed seed keeps failures reproducible; the alphabet favours the bytes that the
    // form and Basic parsers treat specially.
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let alphabet = b"%&=+:;, aZ09\xff\xc3\x00";
    for _ in 0..5_000 {
        let length = rng.gen_range(0..64);
        let input: Vec<u8> = (0..length)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();

        let _ = TokenForm::parse(&input);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&input);
        let mut form = TokenForm::default();
        let value = format!("Basic {encoded}");
        let _ = client_credentials(&headers(&[(header::AUTHORIZATION, &value)]), &mut form);
    }
}
