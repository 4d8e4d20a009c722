use std::process::ExitCode;

use clap::Parser;
use tracedapp_cli::{Cli, run};

fn main() -> ExitCode {
    // Output piped into `head` and closed early: stop quietly, as other tools do (exit 141,
    // SIGPIPE's), instead of a panic message.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    // Bare `tracedapp`: the help, as a question answered (exit 0), not a usage error.
    if std::env::args_os().len() == 1 {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    }
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
