//! The command line: `rhai-mp [options] script.rhai [args..]`, `rhai-mp -e CODE`,
//! `rhai-mp -` (the script on standard input), and `rhai-mp` alone for the REPL. Usage
//! errors exit with code 2.

use crate::Runtime;
use clap::Parser;
use rhai_mp_core::StartMethod;

#[derive(Parser, Debug)]
#[command(
    name = "rhai-mp",
    version,
    about = "Run Rhai scripts with the primitives of Python's multiprocessing",
    after_help = "With no SCRIPT and no -e, opens the interactive REPL. SCRIPT `-` reads the script from standard input.\n\nExamples:\n  rhai-mp scripts/seed004_hello.rhai\n  rhai-mp --start-method fork scripts/seed004_pool_map.rhai\n  rhai-mp --start-method fork -e 'print(cpu_count())'"
)]
struct Cli {
    /// Evaluate CODE instead of a script file (remaining arguments go to ARGV)
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    eval: Option<String>,

    /// The default start method
    #[arg(long, value_name = "METHOD", value_parser = ["spawn", "fork", "forkserver"])]
    start_method: Option<String>,

    /// The script to run, then its arguments (in ARGV)
    #[arg(value_name = "SCRIPT [ARGS]", trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

/// Parses the command line and runs it. Returns the process exit code.
pub fn main(runtime: &Runtime) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Some(m) = cli.start_method.as_deref().and_then(StartMethod::parse) {
        runtime.set_start_method(m);
    }
    if let Some(code) = cli.eval {
        return runtime.main_code("<-e>", &code, cli.rest);
    }
    let mut rest = cli.rest.into_iter();
    match rest.next() {
        None => runtime.repl(),
        Some(dash) if dash == "-" => {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => runtime.main_code("<stdin>", &text, rest.collect()),
                Err(e) => {
                    eprintln!("rhai-mp: can't read the script from standard input: {e}");
                    2
                }
            }
        }
        Some(script) => match runtime.main_file(std::path::Path::new(&script), rest.collect()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("rhai-mp: can't open file '{script}': {e}");
                2
            }
        },
    }
}
