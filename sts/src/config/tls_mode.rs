//! The `tls` setting, which is either a boolean or a table of certificate files.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// TLS mode of the listener.
///
/// In TOML, `[tls]` with `cert` and `key` selects [`TlsMode::Files`], `tls = false` selects
/// [`TlsMode::Disabled`], and `tls = true` or no `tls` at all selects [`TlsMode::Generated`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// A server certificate issued on first start by a local CA, both kept in
    /// `<data_dir>/tls/`; clients trust `<data_dir>/tls/sts-ca.pem`.
    #[default]
    Generated,
    /// PEM files supplied by the operator.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// PKCS#8, PKCS#1 or SEC1 private key of the leaf certificate.
        key: PathBuf,
    },
    /// Plain HTTP, for deployments where another component terminates TLS. Tokens and
    /// client secrets then cross the network unencrypted unless that component protects them.
    Disabled,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl<'de> Deserialize<'de> for TlsMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TlsMode, D::Error> {
        deserializer.deserialize_any(TlsModeVisitor)
    }
}

struct TlsModeVisitor;

impl<'de> Visitor<'de> for TlsModeVisitor {
    type Value = TlsMode;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("`true`, `false`, or a table with `cert` and `key` file paths")
    }

    fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<TlsMode, E> {
        Ok(if enabled {
            TlsMode::Generated
        } else {
            TlsMode::Disabled
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TlsMode, A::Error> {
        let files = TlsFiles::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(TlsMode::Files {
            cert: files.cert,
            key: files.key,
        })
    }
}
