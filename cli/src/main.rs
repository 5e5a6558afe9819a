//! `carnet`: the customs officer's command line. Parses arguments, runs one command
//! through [`carnet_cli::run`] and exits with the code its outcome calls for.
//!
//! Exit codes (docs/interfaces.md): 0 ok, 2 bad input, 3 denied, 4 not found or erased,
//! 5 node unavailable, a wait that timed out, or a lost event stream.

use carnet_cli::args::Cli;
use carnet_cli::output;
use carnet_cli::run::{self, Io};
use clap::Parser;
use std::io::{IsTerminal, Write};

fn main() {
    let cli = Cli::parse();
    let format = run::format_of(&cli);
    let stdout = std::io::stdout();
    let out_is_terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let mut err = std::io::stderr();
    let result = run::run(
        &cli,
        &mut Io {
            out: &mut out,
            err: &mut err,
            out_is_terminal,
        },
    );
    drop(out);
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            output::print_error(format, &e);
            e.exit_code()
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
