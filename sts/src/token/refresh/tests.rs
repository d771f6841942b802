use super::*;

const LIFETIME: u64 = 100;

fn redeem(
    store: &RefreshTokenStore,
    token: &str,
    client_id: &str,
    now: u64,
) -> Result<(RefreshGrant, Zeroizing<String>), RedeemError> {
    let redemption = store.begin_redeem(token, client_id, now)?;
    let grant = RefreshGrant::clone(redemption.grant());
    Ok((grant, redemption.complete()))
}

fn grant() -> RefreshGrant {
    RefreshGrant {
        client_id: "applicationid".to_owned(),
        username: "peter".to_owned(),
        scopes: vec!["foo".to_owned()],
        audiences: vec!["orders".to_owned()],
    }
}

#[test]
fn token_is_256_bit_base64url() {
    let store = RefreshTokenStore::new(LIFETIME);
    let token = store.issue(grant(), 0);
    assert_eq!(token.len(), 43);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[test]
fn redeem_rotates_token() {
    let store = RefreshTokenStore::new(LIFETIME);
    let first = store.issue(grant(), 0);

    let (redeemed, second) = redeem(&store, &first, "applicationid", 10).unwrap();

    assert_eq!(redeemed, grant());
    assert_ne!(first, second);
    let (_, third) = redeem(&store, &second, "applicationid", 20).unwrap();
    assert_ne!(second, third);
}

#[test]
fn reuse_revokes_family() {
    let store = RefreshTokenStore::new(LIFETIME);
    let first = store.issue(grant(), 0);
    let (_, second) = redeem(&store, &first, "applicationid", 1).unwrap();

    assert_eq!(
        redeem(&store, &first, "applicationid", 2).unwrap_err(),
        RedeemError::Reused
    );

    assert_eq!(
        redeem(&store, &second, "applicationid", 3).unwrap_err(),
        RedeemError::Unknown
    );
    assert_eq!(store.len(), 0);
}

#[test]
fn reuse_leaves_other_families_alone() {
    let store = RefreshTokenStore::new(LIFETIME);
    let first = store.issue(grant(), 0);
    let other = store.issue(grant(), 0);
    redeem(&store, &first, "applicationid", 1).unwrap();

    redeem(&store, &first, "applicationid", 2).unwrap_err();

    assert!(redeem(&store, &other, "applicationid", 3).is_ok());
}

#[test]
fn other_client_cannot_redeem() {
    let store = RefreshTokenStore::new(LIFETIME);
    let token = store.issue(grant(), 0);

    assert_eq!(
        redeem(&store, &token, "otherclient", 1).unwrap_err(),
        RedeemError::OtherClient
    );

    assert!(redeem(&store, &token, "applicationid", 2).is_ok());
}

#[test]
fn expired_token_is_rejected() {
    let store = RefreshTokenStore::new(LIFETIME);
    let token = store.issue(grant(), 0);

    assert_eq!(
        redeem(&store, &token, "applicationid", LIFETIME).unwrap_err(),
        RedeemError::Expired
    );
}

#[test]
fn unknown_token_is_rejected() {
    let store = RefreshTokenStore::new(LIFETIME);
    store.issue(grant(), 0);
    assert_eq!(
        redeem(&store, "not-a-token", "applicationid", 1).unwrap_err(),
        RedeemError::Unknown
    );
}

#[test]
fn sweep_drops_expired_tokens() {
    let store = RefreshTokenStore::new(LIFETIME);
    let first = store.issue(grant(), 0);
    redeem(&store, &first, "applicationid", 1).unwrap();
    assert_eq!(store.len(), 2);

    store.issue(grant(), LIFETIME + SWEEP_INTERVAL_SECS + 1);

    assert_eq!(store.len(), 1);
}

#[test]
fn dropped_redemption_leaves_token_unused() {
    let store = RefreshTokenStore::new(LIFETIME);
    let token = store.issue(grant(), 0);

    drop(store.begin_redeem(&token, "applicationid", 1).unwrap());

    assert!(redeem(&store, &token, "applicationid", 2).is_ok());
}
