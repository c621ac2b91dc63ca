//! `meshguard`: review and dry-run a meshguard policy in CI, before it reaches
//! a mesh, with the same code the filter runs.
//!
//! Exit status: 0 success; 1 an invalid configuration (or a scan that could
//! not run on it); 2 a usage error or an unreadable file.

mod scan;
mod source;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshguard_core::CompiledConfig;

use source::ConfigSource;

#[derive(Debug, Parser)]
#[command(name = "meshguard", version, about = "Validate and dry-run meshguard policies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check configurations exactly as the filter does at plugin start.
    ///
    /// Each FILE is a JSON configuration, or YAML manifests: every WasmPlugin
    /// `spec.pluginConfig`, EnvoyFilter Wasm `configuration` and ConfigMap
    /// `plugin.json` in it is checked.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show what the filter would do to a body read from standard input:
    /// verdict, findings (never the matched text), the rewritten body or the
    /// client error, as JSON.
    Scan {
        /// A JSON configuration, or a manifest carrying exactly one (see --object).
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
        /// The policy to apply; default: the configuration's `default_policy`.
        #[arg(long)]
        policy: Option<String>,
        /// The request path, which decides the API dialect.
        #[arg(long, default_value = "/v1/chat/completions")]
        path: String,
        /// Scan the body as the upstream's (non-streamed) answer instead of a request.
        #[arg(long)]
        response: bool,
        /// The body's content-type.
        #[arg(long, default_value = "application/json")]
        content_type: String,
        /// In a manifest with several configurations, the `metadata.name` to use.
        #[arg(long)]
        object: Option<String>,
        /// Read the body from this file instead of standard input.
        #[arg(long, value_name = "FILE")]
        body: Option<PathBuf>,
    },
}

/// Why a command failed, and with which exit status.
enum Failure {
    Invalid(String),
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => validate(&files),
        Command::Scan { config, policy, path, response, content_type, object, body } => {
            let options = ScanOptions { policy, path, response, content_type, object, body };
            run_scan(&config, &options)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("meshguard: {message}");
            ExitCode::from(2)
        }
    }
}

fn validate(files: &[PathBuf]) -> Result<(), Failure> {
    let mut invalid = 0usize;
    let mut checked = 0usize;
    let mut unreadable = Vec::new();
    for file in files {
        let sources = match source::load(file) {
            Ok(sources) => sources,
            Err(message) => {
                unreadable.push(message);
                continue;
            }
        };
        if sources.is_empty() {
            eprintln!("SKIP {}: no meshguard configuration in it", file.display());
        }
        for found in sources {
            checked += 1;
            match compile(&found) {
                Ok(config) => println!("OK {}: {}", found.label, summary(&config)),
                Err(message) => {
                    invalid += 1;
                    eprintln!("INVALID {}: {message}", found.label);
                }
            }
        }
    }
    if !unreadable.is_empty() {
        return Err(Failure::Usage(unreadable.join("\n")));
    }
    if invalid > 0 {
        return Err(Failure::Invalid(format!("{invalid} of {checked} meshguard configuration(s) invalid")));
    }
    if checked == 0 {
        // Checking nothing must not pass silently in CI.
        return Err(Failure::Usage(format!("no meshguard configuration found (looked for {})", source::LOOKED_FOR)));
    }
    Ok(())
}

/// Runs the filter's configure-time validation: `CompiledConfig::from_json`.
fn compile(found: &ConfigSource) -> Result<CompiledConfig, String> {
    let document = found.document.as_ref().map_err(|e| e.clone())?;
    CompiledConfig::from_json(document).map_err(|err| {
        let text = err.to_string();
        if found.from_manifest {
            source::strip_position(&text).to_string()
        } else {
            text
        }
    })
}

fn summary(config: &CompiledConfig) -> String {
    let names: Vec<&str> = config.policies.keys().map(String::as_str).collect();
    format!("policies {} (default {}), policy_hash {}", names.join(", "), config.default_policy, config.config_hash)
}

struct ScanOptions {
    policy: Option<String>,
    path: String,
    response: bool,
    content_type: String,
    object: Option<String>,
    body: Option<PathBuf>,
}

fn run_scan(config_path: &Path, options: &ScanOptions) -> Result<(), Failure> {
    let found = pick(source::load(config_path).map_err(Failure::Usage)?, options.object.as_deref())?;
    let config = compile(&found).map_err(|message| Failure::Invalid(format!("INVALID {}: {message}", found.label)))?;
    let body = read_body(options.body.as_deref())?;
    let request = scan::ScanRequest {
        policy: options.policy.as_deref(),
        path: &options.path,
        content_type: &options.content_type,
        response: options.response,
        body: &body,
    };
    let report = scan::scan(&config, &request).map_err(Failure::Usage)?;
    let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Usage(format!("cannot print the report: {e}")))?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        // `meshguard scan ... | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Usage(format!("cannot write the report: {e}"))),
        _ => Ok(()),
    }
}

fn pick(sources: Vec<ConfigSource>, object: Option<&str>) -> Result<ConfigSource, Failure> {
    let labels = |sources: &[ConfigSource]| sources.iter().map(|s| s.label.as_str()).collect::<Vec<_>>().join("; ");
    let matching: Vec<ConfigSource> = match object {
        Some(name) => {
            let all = labels(&sources);
            let chosen: Vec<_> = sources.into_iter().filter(|s| s.object.as_deref() == Some(name)).collect();
            if chosen.is_empty() {
                return Err(Failure::Usage(format!("no configuration from an object named `{name}` (found: {all})")));
            }
            chosen
        }
        None => sources,
    };
    if matching.len() > 1 {
        return Err(Failure::Usage(format!(
            "{} configurations found; choose one with --object NAME: {}",
            matching.len(),
            labels(&matching)
        )));
    }
    matching
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Usage(format!("no meshguard configuration found (looked for {})", source::LOOKED_FOR)))
}

fn read_body(path: Option<&Path>) -> Result<Vec<u8>, Failure> {
    match path {
        Some(path) => std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display()))),
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| Failure::Usage(format!("cannot read the body from standard input: {e}")))?;
            Ok(body)
        }
    }
}
