//! The three grants: resource owner password, client credentials, and refresh token.

use std::sync::Arc;

use tracing::{error, warn};
use zeroize::Zeroizing;

use super::error::OAuthError;
use super::narrow::{narrow_audiences, narrow_scopes};
use super::refresh::{RedeemError, RefreshGrant};
use super::request::TokenForm;
use super::{Issue, RefreshOutcome, TokenService};
use crate::clock::now_unix;
use crate::config::{ClientSettings, GrantType};

impl TokenService {
    /// Resource owner password credentials grant (RFC 6749 section 4.3). Issues a refresh
    /// token when the client may also use the refresh token grant.
    pub(super) async fn password_grant(
        &self,
        client: Arc<ClientSettings>,
        form: &TokenForm,
    ) -> Result<Issue, OAuthError> {
        let username = form.require("username")?;
        let password = Zeroizing::new(form.require("password")?.to_owned());
        let scopes = narrow_scopes(form.get("scope"), &client.scopes)?;
        let audiences = narrow_audiences(form.get("audience"), &client.audiences)?;

        let user = self
            .users
            .authenticate(&self.hashing, username, password)
            .await
            .map_err(|join_error| {
                error!(error = %join_error, "password verification task failed");
                OAuthError::server_error()
            })?
            .ok_or_else(|| OAuthError::invalid_grant("the username or password is incorrect"))?;

        let refresh = if client.allows(GrantType::RefreshToken) {
            RefreshOutcome::Start(RefreshGrant {
                client_id: client.id.clone(),
                username: user.username.clone(),
                scopes: scopes.clone(),
                audiences: audiences.clone(),
            })
        } else {
            RefreshOutcome::None
        };
        Ok(Issue {
            subject: user.username.clone(),
            client,
            scopes,
            audiences,
            refresh,
        })
    }

    /// Client credentials grant (RFC 6749 section 4.4): the client acts for itself, so the
    /// subject is its id and no refresh token is issued (section 4.4.3).
    pub(super) fn client_credentials_grant(
        &self,
        client: Arc<ClientSettings>,
        form: &TokenForm,
    ) -> Result<Issue, OAuthError> {
        let scopes = narrow_scopes(form.get("scope"), &client.scopes)?;
        let audiences = narrow_audiences(form.get("audience"), &client.audiences)?;
        Ok(Issue {
            subject: client.id.clone(),
            client,
            scopes,
            audiences,
            refresh: RefreshOutcome::None,
        })
    }

    /// Refresh token grant (RFC 6749 section 6). The requested scope and audience may
    /// narrow what the refresh token grants, and the new refresh token grants the same as
    /// the old one. An invalid narrowing leaves the presented token unused.
    pub(super) fn refresh_grant(
        &self,
        client: Arc<ClientSettings>,
        form: &TokenForm,
    ) -> Result<Issue, OAuthError> {
        let token = form.require("refresh_token")?;
        let redemption = self
            .refresh_tokens
            .begin_redeem(token, &client.id, now_unix())
            .map_err(|redeem_error| {
                match redeem_error {
                    RedeemError::Reused => warn!(
                        client_id = %client.id,
                        "a used refresh token was presented again, so its whole chain is revoked"
                    ),
                    RedeemError::OtherClient => warn!(
                        client_id = %client.id,
                        "a client presented a refresh token issued to another client"
                    ),
                    RedeemError::Unknown | RedeemError::Expired => {}
                }
                OAuthError::invalid_grant(describe(redeem_error))
            })?;

        let grant = Arc::clone(redemption.grant());
        let scopes = narrow_scopes(form.get("scope"), &grant.scopes)?;
        let audiences = narrow_audiences(form.get("audience"), &grant.audiences)?;
        let next = redemption.complete();

        Ok(Issue {
            subject: grant.username.clone(),
            client,
            scopes,
            audiences,
            refresh: RefreshOutcome::Rotated(next),
        })
    }
}

fn describe(error: RedeemError) -> &'static str {
    match error {
        RedeemError::Unknown => {
            "the refresh token is unknown or revoked; refresh tokens do not survive a restart \
             of the token service, so request a new one with the password grant"
        }
        RedeemError::Expired => {
            "the refresh token expired; request a new one with the password grant"
        }
        RedeemError::OtherClient => "the refresh token was issued to another client",
        RedeemError::Reused => {
            "the refresh token was already used, so it and every token derived from it are \
             now revoked; request a new one with the password grant"
        }
    }
}
