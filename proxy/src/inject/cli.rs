//! The `portcullis inject` and `portcullis injector` subcommands: arguments and the code that
//! runs them, so `main.rs` only dispatches.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::injector::{self, InjectorConfig};
use super::{inject_yaml, InjectOptions, Outcome, DEFAULT_IMAGE};
use crate::shutdown::Signals;

/// Arguments of `portcullis inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// YAML files to read, in order; `-` or no file reads standard input. The result goes to
    /// standard output, files separated by `---`.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Container image of the injected sidecar.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,
}

/// Arguments of `portcullis injector`.
#[derive(Debug, clap::Args)]
pub struct InjectorArgs {
    /// Address of the HTTPS listener.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// PEM certificate chain of the webhook, valid for the name of its Service
    /// (`SERVICE.NAMESPACE.svc`).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,

    /// PEM private key of the certificate.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// Container image of the injected sidecar.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    pub image: String,

    /// Seconds in-flight reviews may take to finish after SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,
}

/// Runs `portcullis inject`: prints the injected YAML on standard output and one line per
/// opted-in workload on standard error. Writes nothing to standard output when any input
/// fails, so a pipe into `kubectl apply -f -` never applies half a change.
pub fn run_inject(args: &InjectArgs) -> ExitCode {
    let options = InjectOptions {
        image: args.image.clone(),
    };
    let stdin_only = [PathBuf::from("-")];
    let files: &[PathBuf] = if args.files.is_empty() {
        &stdin_only
    } else {
        &args.files
    };

    let mut outputs = Vec::new();
    let (mut injected, mut already, mut skipped) = (0, 0, 0);
    for file in files {
        let text = match read_input(file) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", display(file));
                return ExitCode::FAILURE;
            }
        };
        let result = match inject_yaml(&text, &options) {
            Ok(result) => result,
            Err(error) => {
                eprintln!("error: {}: {error}", display(file));
                return ExitCode::FAILURE;
            }
        };
        for report in &result.reports {
            match report.outcome {
                Outcome::Injected => {
                    injected += 1;
                    eprintln!("{}: injected", report.workload);
                }
                Outcome::AlreadyInjected => {
                    already += 1;
                    eprintln!("{}: already has the sidecar, unchanged", report.workload);
                }
                Outcome::NotOptedIn => skipped += 1,
            }
        }
        outputs.push(result.yaml);
    }
    eprintln!(
        "{injected} injected, {already} already injected, {skipped} without the {} annotation",
        super::INJECT_ANNOTATION
    );

    let mut stdout = io::stdout().lock();
    for (index, yaml) in outputs.iter().enumerate() {
        let separator = if index > 0 { "---\n" } else { "" };
        let newline = if yaml.is_empty() || yaml.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        if let Err(error) = write!(stdout, "{separator}{yaml}{newline}") {
            eprintln!("error: cannot write to standard output: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn read_input(file: &Path) -> io::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}

fn display(file: &Path) -> String {
    if file == Path::new("-") {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    }
}

/// Runs `portcullis injector` until SIGTERM or SIGINT. Logging must be set up by the caller.
pub fn run_injector(args: InjectorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut signals = match Signals::register() {
            Ok(signals) => signals,
            Err(error) => {
                tracing::error!(%error, "cannot install SIGTERM/SIGINT handlers");
                return ExitCode::FAILURE;
            }
        };
        let config = InjectorConfig {
            listen: args.listen,
            cert: args.cert,
            key: args.key,
            options: InjectOptions { image: args.image },
        };
        let running = match injector::start(config).await {
            Ok(running) => running,
            Err(error) => {
                tracing::error!(%error, "failed to start the injector");
                return ExitCode::FAILURE;
            }
        };
        let signal = signals.recv().await;
        tracing::info!(signal, "received signal; draining connections");
        running
            .shutdown(Duration::from_secs(args.shutdown_grace_secs))
            .await;
        ExitCode::SUCCESS
    })
}
