//! The token endpoint, `POST /oauth/token` (RFC 6749): request parsing, client
//! authentication, the password, client credentials and refresh token grants, and signing.
//!
//! Checks run in a fixed order, so each error code means one thing. First come the body's
//! form (`invalid_request`) and the presence and shape of the client credentials. Then the
//! grant type must be supported (`unsupported_grant_type`), the client must authenticate
//! (`invalid_client`) and may need permission for the grant (`unauthorized_client`).
//! The grant's own checks come last.

mod access;
mod error;
mod grants;
mod narrow;
mod refresh;
mod request;

use std::sync::Arc;

use hyper::body::Body;
use hyper::Request;
use tracing::error;
use zeroize::Zeroizing;

use crate::config::{ClientSettings, GrantType, Settings, UserConfig};
use crate::credentials::{CredentialTable, HashingLimit};
use crate::error::StsError;
use crate::keys::KeyStore;
use crate::response::{json_response, no_store, HttpResponse};
use crate::routes::RequestLog;

pub use access::{AccessTokenClaims, ACCESS_TOKEN_TYPE};
pub(crate) use error::{ErrorCode, OAuthError};

use access::{sign, TokenResponse};
use refresh::RefreshTokenStore;
use request::{check_content_type, client_credentials, read_body, ClientCredentials, TokenForm};

/// State of the token endpoint.
pub(crate) struct TokenService {
    issuer: String,
    clients: Arc<CredentialTable<ClientSettings>>,
    users: Arc<CredentialTable<UserConfig>>,
    hashing: HashingLimit,
    refresh_tokens: RefreshTokenStore,
    keys: Arc<KeyStore>,
}

/// Tokens to issue once a grant succeeded.
struct Issue {
    client: Arc<ClientSettings>,
    subject: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    refresh: RefreshOutcome,
}

/// The refresh token part of a successful grant.
enum RefreshOutcome {
    /// No refresh token: client credentials, or a client without the refresh grant.
    None,
    /// Start a new family for this grant once the access token is signed.
    Start(refresh::RefreshGrant),
    /// The refresh grant already rotated the token; send this one.
    Rotated(Zeroizing<String>),
}

impl TokenService {
    /// Builds the endpoint state from validated settings.
    ///
    /// # Errors
    ///
    /// [`StsError::Hash`] when the dummy hashes for unknown names cannot be computed.
    pub(crate) fn new(settings: &Settings, keys: Arc<KeyStore>) -> Result<TokenService, StsError> {
        let clients = CredentialTable::new(
            settings.clients.clone(),
            |client| &client.id,
            |client| &client.secret_hash,
        )?;
        let users = CredentialTable::new(
            settings.users.clone(),
            |user| &user.username,
            |user| &user.password_hash,
        )?;
        Ok(TokenService {
            issuer: settings.issuer.clone(),
            clients: Arc::new(clients),
            users: Arc::new(users),
            hashing: HashingLimit::per_cpu(),
            refresh_tokens: RefreshTokenStore::new(settings.refresh_token_lifetime_secs),
            keys,
        })
    }

    /// Handles one token request and records the client, grant type and error in `log`.
    pub(crate) async fn handle<B>(&self, request: Request<B>, log: &mut RequestLog) -> HttpResponse
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let result = self.process(request, log).await;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                log.error = Some(error.code.as_str());
                error.into_response()
            }
        };
        no_store(response)
    }

    async fn process<B>(
        &self,
        request: Request<B>,
        log: &mut RequestLog,
    ) -> Result<HttpResponse, OAuthError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        check_content_type(&parts.headers)?;
        let body = read_body(&parts.headers, body).await?;
        let mut form = TokenForm::parse(&body)?;

        let grant_name = form.require("grant_type")?.to_owned();
        let credentials = client_credentials(&parts.headers, &mut form)?;
        let grant = GrantType::from_param(&grant_name).ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type {grant_name:?} is not supported; use password, \
                     client_credentials or refresh_token"
                ),
            )
        })?;
        log.grant_type = Some(grant.as_str());

        let client = self.authenticate_client(credentials).await?;
        log.client_id = Some(client.id.clone());
        if !client.allows(grant) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!(
                    "client {:?} may not use the {} grant",
                    client.id,
                    grant.as_str()
                ),
            ));
        }

        let issue = match grant {
            GrantType::Password => self.password_grant(client, &form).await?,
            GrantType::ClientCredentials => self.client_credentials_grant(client, &form)?,
            GrantType::RefreshToken => self.refresh_grant(client, &form)?,
        };
        self.respond(issue)
    }

    async fn authenticate_client(
        &self,
        credentials: ClientCredentials,
    ) -> Result<Arc<ClientSettings>, OAuthError> {
        let authenticated = self
            .clients
            .authenticate(&self.hashing, &credentials.id, credentials.secret)
            .await
            .map_err(|join_error| {
                error!(error = %join_error, "client secret verification task failed");
                OAuthError::server_error()
            })?;
        authenticated
            .ok_or_else(|| OAuthError::invalid_client("the client id or secret is incorrect"))
    }

    /// Signs the access token, starts a refresh token family if the grant calls for one,
    /// and builds the response.
    fn respond(&self, issue: Issue) -> Result<HttpResponse, OAuthError> {
        let now = crate::clock::now_unix();
        let lifetime = issue.client.token_lifetime_secs;
        let claims = AccessTokenClaims::new(
            &self.issuer,
            &issue.subject,
            &issue.client.id,
            &issue.scopes,
            &issue.audiences,
            now,
            lifetime,
        );
        let keys = self.keys.snapshot();
        let access_token = sign(&keys, &claims).map_err(|sign_error| {
            error!(kid = %keys.signing.kid, error = %sign_error, "signing an access token failed");
            OAuthError::server_error()
        })?;

        let refresh_token = match issue.refresh {
            RefreshOutcome::None => None,
            RefreshOutcome::Start(grant) => Some(self.refresh_tokens.issue(grant, now)),
            RefreshOutcome::Rotated(token) => Some(token),
        };
        let body = TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime,
            scope: claims.scope,
            refresh_token: refresh_token.map(|token| token.to_string()),
        };
        Ok(json_response(http::StatusCode::OK, &body))
    }
}
