//! Client secrets and user passwords: Argon2id hashing, and lookups whose timing reveals
//! neither which names exist nor how much of a secret matched.

mod table;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::error::StsError;

pub(crate) use table::{CredentialTable, HashingLimit};

/// Hashes a secret into an Argon2id PHC string with a random salt.
///
/// Uses the `argon2` crate's default parameters (Argon2id, version 19, 19 MiB of memory,
/// two passes, one lane), the minimum OWASP recommends for Argon2id.
///
/// # Errors
///
/// [`StsError::Hash`] when the OS random number generator fails.
pub fn hash_secret(plaintext: &str) -> Result<String, StsError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(plaintext.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|source| StsError::Hash { source })
}

/// Checks that `hash` is an Argon2id PHC string with parameters Argon2 accepts. The error
/// describes the problem and how to produce a valid hash.
pub(crate) fn check_phc_hash(hash: &str) -> Result<(), String> {
    const FIX: &str = "generate one with `portcullis-sts hash-password`";
    let parsed = PasswordHash::new(hash)
        .map_err(|error| format!("not a PHC hash string ({error}); {FIX}"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "the algorithm is {}, but only argon2id is accepted; {FIX}",
            parsed.algorithm
        ));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(format!("the hash has no salt or no output; {FIX}"));
    }
    Params::try_from(&parsed)
        .map_err(|error| format!("invalid Argon2 parameters ({error}); {FIX}"))?;
    Ok(())
}

/// Verifies `plaintext` against a PHC hash with the hash's own parameters. The final
/// comparison is constant-time; an unparseable hash counts as a mismatch.
pub(crate) fn verify_secret(plaintext: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(plaintext.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes a random secret with the same algorithm, version and parameters as `template`,
/// so verifying against the result costs as much as verifying against `template`. Without a
/// template the default parameters of [`hash_secret`] apply.
pub(crate) fn dummy_hash_like(template: Option<&str>) -> Result<String, StsError> {
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    let salt = SaltString::generate(&mut OsRng);

    let Some(template) = template.and_then(|hash| PasswordHash::new(hash).ok()) else {
        return Argon2::default()
            .hash_password(&random, &salt)
            .map(|hash| hash.to_string())
            .map_err(|source| StsError::Hash { source });
    };
    let params = Params::try_from(&template).map_err(|source| StsError::Hash { source })?;
    Argon2::default()
        .hash_password_customized(
            &random,
            Some(template.algorithm),
            template.version,
            params,
            &salt,
        )
        .map(|hash| hash.to_string())
        .map_err(|source| StsError::Hash { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_own_plaintext() {
        let hash = hash_secret("peter123").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert!(verify_secret("peter123", &hash));
        assert!(!verify_secret("peter124", &hash));
    }

    #[test]
    fn check_accepts_generated_hash() {
        let hash = hash_secret("applicationsecret").unwrap();
        assert_eq!(check_phc_hash(&hash), Ok(()));
    }

    #[test]
    fn check_rejects_plaintext_and_argon2i() {
        let plaintext = check_phc_hash("applicationsecret").unwrap_err();
        assert!(plaintext.contains("hash-password"), "{plaintext}");

        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$L1HNHBiU3Mg7zL+QOTLD2w";
        let error = check_phc_hash(argon2i).unwrap_err();
        assert!(error.contains("argon2id"), "{error}");
    }

    #[test]
    fn dummy_hash_copies_parameters() {
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let template = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"secret", &salt)
            .unwrap()
            .to_string();

        let dummy = dummy_hash_like(Some(&template)).unwrap();

        assert!(
            dummy.starts_with("$argon2id$v=19$m=8192,t=3,p=1$"),
            "{dummy}"
        );
        assert!(!verify_secret("secret", &dummy));
    }
}
