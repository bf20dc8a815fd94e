//! The `affectd` binary: parses the command line, calls the library, maps errors to exit codes.

use clap::Parser;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = affectd::cli::Cli::parse();
    if matches!(cli.command, affectd::cli::Command::Run { .. }) && std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Info);
    }
    match affectd::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
