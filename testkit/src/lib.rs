//! Test support shared by the `portcullis` crate's unit tests and its integration tests:
//! real signing keys of every family the verifier accepts, signed tokens, and a key server
//! on 127.0.0.1. It does not depend on `portcullis`, so both kinds of tests can use it.

pub mod key_server;
pub mod ports;
pub mod signing;

pub use key_server::KeyServer;
pub use signing::{jwks, TestKey};
