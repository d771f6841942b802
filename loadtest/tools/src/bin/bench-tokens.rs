//! `bench-tokens`: writes a signing key, its JWKS and public key, and the token sets the load
//! tests send.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rand::Rng;
use serde_json::json;

use portcullis_loadtest::files::{write_atomically, PRIVATE_FILE_MODE, PUBLIC_FILE_MODE};
use portcullis_loadtest::keys::{jwks_document, SigningAlgorithm, SigningKey};
use portcullis_loadtest::tokens::{sign_batch, TokenSpec, Validity};

/// Generates a signing key (or loads one) and signs token sets with it.
///
/// Writes into --out: jwks.json and public-key.pem with the public key, and signing-key.pem
/// (mode 0600) when the key was generated. The token files contain one token per line:
/// valid.txt one token, unique.txt --unique distinct tokens, expired.txt and forged.txt
/// --invalid tokens each. Forged tokens carry the real kid but are signed by another key.
/// tokens.json describes the set.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Folder to write into; created when missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Signature algorithm of the tokens.
    #[arg(long, value_enum, default_value = "RS256", ignore_case = true)]
    alg: SigningAlgorithm,

    /// The `iss` claim.
    #[arg(long, default_value = "https://localhost:8443")]
    issuer: String,

    /// The `aud` claim.
    #[arg(long, default_value = "orders")]
    audience: String,

    /// The `scope` claim, space-separated.
    #[arg(long, default_value = "foo bar")]
    scope: String,

    /// The `client_id` claim.
    #[arg(long, default_value = "applicationid")]
    client_id: String,

    /// The header `typ`; `at+jwt` marks an RFC 9068 access token, as the demo STS issues.
    #[arg(long, default_value = "at+jwt")]
    typ: String,

    /// Number of distinct valid tokens in unique.txt.
    #[arg(long, default_value_t = 1000)]
    unique: usize,

    /// Number of tokens in each of expired.txt and forged.txt.
    #[arg(long, default_value_t = 100)]
    invalid: usize,

    /// Lifetime of the valid tokens, in seconds.
    #[arg(long, default_value_t = 86_400)]
    lifetime_secs: i64,

    /// Sign with this PKCS#8 PEM private key instead of a new one, for example the demo STS's
    /// key, so the demo's sidecars accept the tokens. Requires --kid.
    #[arg(long, value_name = "FILE", requires = "kid")]
    signing_key: Option<PathBuf>,

    /// The `kid` header of the tokens and of the JWK. With --signing-key, the `kid` the issuer
    /// publishes for that key.
    #[arg(long, default_value = "bench-key")]
    kid: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|err| format!("cannot create {}: {err}", args.out.display()))?;
    let started = Instant::now();

    let key = match &args.signing_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            SigningKey::from_pem(args.alg, &args.kid, &pem)
                .map_err(|err| format!("{}: {err}", path.display()))?
        }
        None => {
            let key = SigningKey::generate(args.alg, &args.kid).map_err(|err| err.to_string())?;
            write_file(
                &args.out,
                "signing-key.pem",
                key.private_pem().as_bytes(),
                PRIVATE_FILE_MODE,
            )?;
            key
        }
    };
    // Forged tokens carry the real kid, signed with a key the issuer never published.
    let forger = SigningKey::generate(args.alg, &args.kid).map_err(|err| err.to_string())?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|err| format!("the system clock is before 1970: {err}"))?
        .as_secs();
    let spec = TokenSpec {
        issuer: args.issuer.clone(),
        audience: args.audience.clone(),
        client_id: args.client_id.clone(),
        scope: args.scope.clone(),
        lifetime_secs: args.lifetime_secs,
        now: i64::try_from(now).map_err(|_| "the system clock is out of range".to_owned())?,
        typ: args.typ.clone(),
        run_id: format!("{:016x}", rand::thread_rng().gen::<u64>()),
    };

    let sign = |key: &SigningKey, validity, first, count| {
        sign_batch(key, &spec, validity, first, count).map_err(|err| err.to_string())
    };
    // Token numbers do not overlap between files, so no two files share a token.
    let valid = sign(&key, Validity::Valid, 0, 1)?;
    let unique = sign(&key, Validity::Valid, 1, args.unique)?;
    let expired = sign(&key, Validity::Expired, 1 + args.unique, args.invalid)?;
    let forged = sign(
        &forger,
        Validity::Valid,
        1 + args.unique + args.invalid,
        args.invalid,
    )?;

    let jwks = jwks_document(&[&key]);
    write_file(
        &args.out,
        "jwks.json",
        jwks.to_string().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_file(
        &args.out,
        "public-key.pem",
        key.public_pem().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    write_tokens(&args.out, "valid.txt", &valid)?;
    write_tokens(&args.out, "unique.txt", &unique)?;
    write_tokens(&args.out, "expired.txt", &expired)?;
    write_tokens(&args.out, "forged.txt", &forged)?;

    let description = json!({
        "algorithm": args.alg.name(),
        "kid": args.kid,
        "issuer": args.issuer,
        "audience": args.audience,
        "issued_at": spec.now,
        "expires_at": spec.now + spec.lifetime_secs,
        "unique": args.unique,
        "invalid": args.invalid,
    });
    write_file(
        &args.out,
        "tokens.json",
        description.to_string().as_bytes(),
        PUBLIC_FILE_MODE,
    )?;
    println!(
        "wrote {} {} tokens to {} in {:.1} s",
        1 + args.unique + 2 * args.invalid,
        args.alg.name(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_tokens(folder: &Path, name: &str, tokens: &[String]) -> Result<(), String> {
    let mut text = tokens.join("\n");
    text.push('\n');
    write_file(folder, name, text.as_bytes(), PUBLIC_FILE_MODE)
}

fn write_file(folder: &Path, name: &str, contents: &[u8], mode: u32) -> Result<(), String> {
    let path = folder.join(name);
    write_atomically(&path, contents, mode)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}
