//! The `affectd` binary: parses the command line, calls the library, maps errors to exit codes.

use clap::Parser;

fn main() {
    let cli = affectd::cli::Cli::parse();
    // The daemon logs its life cycle; one-shot commands only warnings. RUST_LOG overrides both.
    let default = if matches!(cli.command, affectd::cli::Command::Run { .. }) { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(affectd::secrets::log_format)
        .init();
    match affectd::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", affectd::secrets::redact(&e.to_string()));
            std::process::exit(e.exit_code());
        }
    }
}
