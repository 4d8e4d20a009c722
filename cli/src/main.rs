use std::process::ExitCode;

use clap::Parser;
use tracedapp_cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracedapp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(tracedapp_cli::CliError::Differs) => ExitCode::from(1),
        Err(e) => {
            // Errors quote files and servers: print them as data.
            eprintln!(
                "tracedapp: {}",
                traceview::terminal_safe_text(&e.to_string())
            );
            ExitCode::from(e.exit_code())
        }
    }
}
