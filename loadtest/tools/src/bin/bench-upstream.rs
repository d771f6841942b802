//! `bench-upstream`: the plain HTTP/1.1 app behind every benchmark contender.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use clap::Parser;
use tokio::net::TcpListener;

use portcullis_loadtest::upstream;

/// Returns 200 and a small JSON body for every request, on one thread.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port, printed as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// JWKS file to serve at /.well-known/jwks.json.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let jwks = match &args.jwks {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(err) => {
                eprintln!("error: cannot read the JWKS file {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // One thread, so the app's share of the machine stays on the core it is pinned to.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("error: cannot listen on {}: {err}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            // The runner reads this line to learn the port.
            Ok(addr) => println!("listening on {addr}"),
            Err(err) => {
                eprintln!("error: cannot read the listening address: {err}");
                return ExitCode::FAILURE;
            }
        }
        upstream::serve(listener, jwks).await;
        ExitCode::SUCCESS
    })
}
