//! The command line: `rhai-mp [options] script.rhai [args..]`, `rhai-mp -e CODE`,
//! `rhai-mp -` (the script on standard input), and `rhai-mp` alone for the REPL. Usage
//! errors exit with code 2.

use crate::Runtime;
use clap::Parser;
use rhai_mp_core::tree::state::StartMethod;

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
    #[arg(long, value_name = "METHOD", value_parser = ["spawn", "fork", "forkserver", "mpi"])]
    start_method: Option<String>,

    /// The interpreter that runs script code: `ast` (the tree walker, the default) or `vm`
    /// (Rhai's bytecode VM, experimental); also chosen by RHAI_MP_INTERPRETER
    #[arg(long, value_name = "NAME", value_parser = ["ast", "vm"])]
    interpreter: Option<String>,

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
    if let Some(choice) = cli.interpreter.as_deref().and_then(rhai_mp_core::base::vm::Interpreter::parse) {
        runtime.set_interpreter(choice);
    }
    let method = cli.start_method.as_deref().and_then(StartMethod::parse);
    if let Some(m) = method {
        if m == StartMethod::Mpi && !under_launcher() {
            eprintln!("rhai-mp: {}", rhai_mp_core::tree::place::unavailable().message);
            return 2;
        }
        runtime.set_start_method(m);
    }
    // Under an MPI launcher only rank 0 reads the script (the others get it from rank 0).
    #[cfg(feature = "mpi")]
    if crate::mpi::launched() {
        return crate::mpi::run(runtime, move || job(cli), method.is_some());
    }
    match job(cli) {
        Job::Script { name, text, argv } => runtime.main_code(&name, &text, argv),
        Job::Repl => runtime.repl(),
        Job::Failed(code) => code,
    }
}

/// Whether an MPI launcher started this process (and this binary can serve it).
fn under_launcher() -> bool {
    #[cfg(feature = "mpi")]
    return crate::mpi::launched();
    #[cfg(not(feature = "mpi"))]
    return false;
}

#[cfg(feature = "mpi")]
use crate::mpi::Job;

/// What the command line asks for.
#[cfg(not(feature = "mpi"))]
enum Job {
    Script { name: String, text: String, argv: Vec<String> },
    Repl,
    Failed(i32),
}

/// Reads the script the command line names (a message and exit code 2 if it cannot).
fn job(cli: Cli) -> Job {
    if let Some(code) = cli.eval {
        return Job::Script { name: "<-e>".into(), text: code, argv: cli.rest };
    }
    let mut rest = cli.rest.into_iter();
    match rest.next() {
        None => Job::Repl,
        Some(dash) if dash == "-" => {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => Job::Script { name: "<stdin>".into(), text, argv: rest.collect() },
                Err(e) => {
                    eprintln!("rhai-mp: can't read the script from standard input: {e}");
                    Job::Failed(2)
                }
            }
        }
        Some(script) => match std::fs::read_to_string(&script) {
            Ok(text) => Job::Script { name: script, text, argv: rest.collect() },
            Err(e) => {
                eprintln!("rhai-mp: can't open file '{script}': {e}");
                Job::Failed(2)
            }
        },
    }
}
