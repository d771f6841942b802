//! The configuration file of a demo sidecar, rendered as `portcullis --config` TOML. The local
//! demo and the network-namespace test differ only in the addresses, the STS's URLs, the
//! certificate paths and the shutdown grace, so those are the parameters.

use std::fmt::Display;
use std::net::SocketAddr;

use crate::certs::DemoCerts;

/// The app a sidecar is in front of. It sets the realm, the token audience and the protected
/// route, and how the sidecar uses the demo certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarRole {
    /// The order app: inbound TLS, and an outbound listener that forwards the app's calls to
    /// `Host: inventory` to `inventory_url` over mutual TLS.
    Orders {
        outbound_listen: SocketAddr,
        inventory_url: String,
    },
    /// The inventory app: inbound mutual TLS, which accepts only clients with a certificate
    /// from the demo CA.
    Inventory,
}

/// The parameters of one sidecar configuration file, which [`SidecarConfig::render`] turns
/// into TOML.
#[derive(Debug, Clone)]
pub struct SidecarConfig<'a> {
    pub role: SidecarRole,
    /// Comment lines for the top of the file, each without its leading `# `.
    pub header: Vec<String>,
    /// Time the sidecar gives open requests to finish on shutdown, in seconds.
    pub shutdown_grace_secs: u64,
    /// Address of the inbound listener.
    pub listen: SocketAddr,
    /// Address of the app, which the sidecar calls over plain HTTP.
    pub upstream: SocketAddr,
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    /// The `iss` claim of the STS's tokens.
    pub issuer: String,
    /// URL of the STS's JWKS.
    pub jwks_uri: String,
    /// The certificate files, written into the configuration as given: a relative path is
    /// relative to the configuration file's folder.
    pub certs: &'a DemoCerts,
}

impl SidecarConfig<'_> {
    /// Renders the configuration as TOML.
    pub fn render(&self) -> String {
        let mut toml = String::new();
        for line in &self.header {
            toml.push_str(&format!("# {line}\n"));
        }
        toml.push_str(&format!(
            "shutdown_grace_secs = {}\n\n",
            self.shutdown_grace_secs
        ));
        toml.push_str(&self.inbound());
        toml.push_str(&self.provider());
        toml.push_str(self.route());
        if let SidecarRole::Orders {
            outbound_listen,
            inventory_url,
        } = &self.role
        {
            toml.push_str(&self.outbound(*outbound_listen, inventory_url));
        }
        toml.push_str(&format!("[admin]\nlisten = {}\n", quoted(self.admin)));
        toml
    }

    fn inbound(&self) -> String {
        let certs = self.certs;
        let (realm, server) = match self.role {
            SidecarRole::Orders { .. } => ("orders", &certs.orders),
            SidecarRole::Inventory => ("inventory", &certs.inventory),
        };
        let mut toml = format!(
            "[inbound]\nlisten = {}\nupstream = {}\nrealm = {}\n\n",
            quoted(self.listen),
            quoted(format!("http://{}", self.upstream)),
            quoted(realm),
        );
        if self.role == SidecarRole::Inventory {
            toml.push_str(
                "# client_ca turns on mutual TLS: only the order sidecar's certificate gets through.\n",
            );
        }
        toml.push_str(&format!(
            "[inbound.tls]\ncert = {}\nkey = {}\n",
            quoted(server.cert.display()),
            quoted(server.key.display()),
        ));
        if self.role == SidecarRole::Inventory {
            toml.push_str(&format!("client_ca = {}\n", quoted(certs.ca.display())));
        }
        toml.push('\n');
        toml
    }

    fn provider(&self) -> String {
        let audience = match self.role {
            SidecarRole::Orders { .. } => "orders",
            SidecarRole::Inventory => "inventory",
        };
        format!(
            "[[providers]]\nissuer = {}\naudiences = [{}]\njwks_uri = {}\nca_file = {}\n\n",
            quoted(&self.issuer),
            quoted(audience),
            quoted(&self.jwks_uri),
            quoted(self.certs.ca.display()),
        )
    }

    fn route(&self) -> &'static str {
        match self.role {
            SidecarRole::Orders { .. } => {
                "# Placing an order needs the `foo` scope; reading one needs only a valid token.\n\
                [[routes]]\nprefix = \"/orders\"\nmethods = [\"POST\"]\nscopes = [\"foo\"]\n\n"
            }
            SidecarRole::Inventory => {
                "[[routes]]\npath = \"/inventory\"\nmethods = [\"PUT\"]\nscopes = [\"foo\"]\n\n"
            }
        }
    }

    fn outbound(&self, listen: SocketAddr, inventory_url: &str) -> String {
        let client = &self.certs.orders_client;
        format!(
            "[outbound]\nlisten = {}\n\n\
             # The order app calls http://inventory/inventory through this listener; the sidecar sends\n\
             # the call to the inventory sidecar over mutual TLS with the caller's token.\n\
             [[outbound.services]]\nname = \"inventory\"\nupstream = {}\n\
             tls = {{ ca = {}, cert = {}, key = {} }}\n\n",
            quoted(listen),
            quoted(inventory_url),
            quoted(self.certs.ca.display()),
            quoted(client.cert.display()),
            quoted(client.key.display()),
        )
    }
}

/// Quotes `value` as a TOML basic string, escaping quotes, backslashes and control
/// characters, so any path can go into the file.
fn quoted(value: impl Display) -> String {
    let mut quoted = String::from("\"");
    for character in value.to_string().chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            control if control.is_control() => {
                quoted.push_str(&format!("\\u{:04X}", u32::from(control)));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(certs: &DemoCerts, role: SidecarRole) -> SidecarConfig<'_> {
        SidecarConfig {
            role,
            header: vec!["A test sidecar.".to_owned()],
            shutdown_grace_secs: 3,
            listen: "0.0.0.0:9443".parse().unwrap(),
            upstream: "127.0.0.1:8081".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            issuer: "https://10.0.0.2:8443".to_owned(),
            jwks_uri: "https://10.0.0.2:8443/.well-known/jwks.json".to_owned(),
            certs,
        }
    }

    #[test]
    fn orders_config_parses() {
        let certs = DemoCerts::paths(Path::new("certs"));
        let role = SidecarRole::Orders {
            outbound_listen: "127.0.0.1:15001".parse().unwrap(),
            inventory_url: "https://10.0.0.4:10443".to_owned(),
        };
        let toml = config(&certs, role).render();
        assert!(toml.starts_with("# A test sidecar.\n"), "{toml}");

        let base = Path::new("/data");
        let parsed = portcullis::config::Config::from_toml(&toml, base).expect(&toml);
        assert_eq!(parsed.shutdown_grace.as_secs(), 3);
        assert_eq!(parsed.inbound.listen.to_string(), "0.0.0.0:9443");
        let tls = parsed.inbound.tls.expect("inbound TLS");
        assert_eq!(tls.client_ca, None);
        let outbound = parsed.outbound.expect("outbound listener");
        assert_eq!(outbound.listen.to_string(), "127.0.0.1:15001");
        assert_eq!(outbound.services[0].name, "inventory");
        assert_eq!(parsed.providers[0].audiences, ["orders"]);
    }

    #[test]
    fn inventory_config_parses() {
        let certs = DemoCerts::paths(Path::new("certs"));
        let toml = config(&certs, SidecarRole::Inventory).render();

        let base = Path::new("/data");
        let parsed = portcullis::config::Config::from_toml(&toml, base).expect(&toml);
        let tls = parsed.inbound.tls.expect("inbound TLS");
        assert_eq!(tls.client_ca, Some(base.join("certs/ca.pem")));
        assert!(parsed.outbound.is_none(), "{toml}");
        assert_eq!(parsed.providers[0].audiences, ["inventory"]);
    }

    #[test]
    fn awkward_paths_survive_quoting() {
        let dir = Path::new("/tmp/a \"quoted\" \\ folder");
        let certs = DemoCerts::paths(dir);
        let toml = config(&certs, SidecarRole::Inventory).render();

        let parsed = portcullis::config::Config::from_toml(&toml, Path::new("/")).expect(&toml);
        let tls = parsed.inbound.tls.expect("inbound TLS");
        assert_eq!(tls.client_ca, Some(dir.join("ca.pem")));
    }
}
