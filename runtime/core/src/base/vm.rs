//! The interpreter switch: script code runs on Rhai's tree-walking interpreter (the AST,
//! the default) or on Rhai's bytecode VM (`rhai::grain`, opt-in, a prototype: see
//! `VM_NOTES.md` beside this crate's `Cargo.toml`).
//!
//! Every place that runs script code — the main script, a spawn or forkserver child's top
//! level, a REPL entry, a host's `eval` — goes through [`run`] (or [`eval`]), and code that
//! travels as text gets its functions from [`library`]. On the VM, a program is the AST
//! lowered once per process ([`rhai::grain::Compiler`]); what does not lower stays an AST
//! fragment the VM hands back to Rhai's interpreter. The program's functions are installed
//! as script functions whose body is VM code ([`Vm::eval_with_callbacks`]), so a native
//! function that calls a function pointer from inside the run — a pool worker's loop, a
//! Process's target, `hold()`, `map()` — runs it on the VM too, through
//! `FnPtr::call_raw` and `NativeCallContext::call_fn_raw` as before.
//!
//! The choice is process-wide and inherited by children: [`set_interpreter`] also sets
//! [`INTERPRETER_ENV`], which a spawn child reads, and a fork child is a copy.

use rhai::grain::{Compiler, SharedProgram, Vm};
use rhai::{Dynamic, Engine, EvalAltResult, Module, NativeCallContext, Scope, Shared, AST};

/// A library of functions, as the runtime state holds it.
type SharedModule = Shared<Module>;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that chooses the interpreter (`ast` or `vm`) when nothing set
/// it in this process; [`set_interpreter`] sets it for children.
pub const INTERPRETER_ENV: &str = "RHAI_MP_INTERPRETER";

/// When set (to anything), every lowering prints one line on stderr: its time, the number
/// of functions lowered and of AST fragments left (a diagnostic of the prototype).
const STATS_ENV: &str = "RHAI_MP_VM_STATS";

/// Which interpreter runs script code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpreter {
    /// Rhai's tree-walking interpreter (the default).
    #[default]
    Ast,
    /// Rhai's bytecode VM (`rhai::grain`).
    Vm,
}

impl Interpreter {
    /// Its name (`"ast"`, `"vm"`).
    pub fn name(self) -> &'static str {
        match self {
            Interpreter::Ast => "ast",
            Interpreter::Vm => "vm",
        }
    }

    /// The interpreter named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ast" => Some(Interpreter::Ast),
            "vm" => Some(Interpreter::Vm),
            _ => None,
        }
    }
}

/// 0: not decided yet (read [`INTERPRETER_ENV`]); 1: AST; 2: VM.
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// The interpreter of this process: the one set last, else [`INTERPRETER_ENV`]'s, else AST.
pub fn interpreter() -> Interpreter {
    match CHOICE.load(Ordering::Relaxed) {
        1 => Interpreter::Ast,
        2 => Interpreter::Vm,
        _ => {
            let chosen = std::env::var(INTERPRETER_ENV).ok().and_then(|v| Interpreter::parse(&v)).unwrap_or_default();
            CHOICE.store(if chosen == Interpreter::Vm { 2 } else { 1 }, Ordering::Relaxed);
            chosen
        }
    }
}

/// Chooses the interpreter of this process and of the children it starts from now on.
/// Call it before any script code runs (it sets an environment variable: before threads
/// start, too).
pub fn set_interpreter(choice: Interpreter) {
    CHOICE.store(if choice == Interpreter::Vm { 2 } else { 1 }, Ordering::Relaxed);
    std::env::set_var(INTERPRETER_ENV, choice.name());
}

/// How often (in operations: `ops & mask == 0`) the progress hook looks for a signal.
///
/// The VM counts an operation per loop iteration, function call and backward jump, the AST
/// one per statement and expression as well: about five times as many for the same code
/// (a `loop { sleep(0.01) }` counts about 5 per iteration on the AST, 1 on the VM). The
/// VM's mask is smaller, so that Ctrl-C is noticed about as soon.
pub fn progress_mask() -> u64 {
    match interpreter() {
        Interpreter::Ast => 0xff,
        Interpreter::Vm => 0x3f,
    }
}

/// Runs `ast`'s statements in `scope` (as `Engine::run_ast_with_scope`), on this
/// process's interpreter.
pub fn run(engine: &Engine, scope: &mut Scope, ast: &AST) -> Result<(), Box<EvalAltResult>> {
    match interpreter() {
        Interpreter::Ast => engine.run_ast_with_scope(scope, ast),
        Interpreter::Vm => eval_on_vm(engine, scope, ast).map(|_| ()),
    }
}

/// Evaluates `ast` in `scope` (as `Engine::eval_ast_with_scope::<Dynamic>`), on this
/// process's interpreter.
pub fn eval(engine: &Engine, scope: &mut Scope, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
    match interpreter() {
        Interpreter::Ast => engine.eval_ast_with_scope::<Dynamic>(scope, ast),
        Interpreter::Vm => eval_on_vm(engine, scope, ast),
    }
}

/// Lowers `ast` (all of it: its statements and every function; what does not lower stays
/// an AST fragment inside the program).
fn lower(ast: &AST) -> SharedProgram {
    let start = std::time::Instant::now();
    let program = Compiler::new().compile(ast);
    if std::env::var_os(STATS_ENV).is_some() {
        let first = program.first_unsupported().map(|(what, pos)| format!(", first: {what} at {pos}"));
        crate::base::output::stderr_line(&format!(
            "rhai-mp vm: lowered in {} µs: {} functions, {} fragments ({} nodes){}",
            start.elapsed().as_micros(),
            program.num_functions(),
            program.residual_count(),
            program.residual_nodes(),
            first.unwrap_or_default()
        ));
    }
    program.into_shared()
}

/// The runtime state a VM run starts from.
///
/// Its first library is an empty module, on purpose: Rhai links a function pointer made
/// from a function definition (`FnPtr::from`, as [`crate::wire::set_program`] makes the
/// closures a process can receive) to the *first* library only, and the VM would put the
/// AST's own functions there whenever a fragment or an unlowered function needs them. With
/// nothing to link to, such a pointer is looked up by name like every pointer the VM makes
/// itself, and the VM's functions are found first.
fn fresh_state(engine: &Engine) -> rhai::GlobalRuntimeState {
    let mut global = engine.new_global_runtime_state();
    global.lib.push(Module::new().into());
    global
}

fn eval_on_vm(engine: &Engine, scope: &mut Scope, ast: &AST) -> Result<Dynamic, Box<EvalAltResult>> {
    let program = lower(ast);
    Vm::with_global_state(engine, fresh_state(engine)).eval_with_callbacks(scope, &program)
}

/// The native function [`library`] runs at the end of a functions-only program.
const CAPTURE: &str = "__rhai_mp_vm_capture";

thread_local! {
    /// The libraries [`CAPTURE`] saw.
    static CAPTURED: RefCell<Option<Vec<SharedModule>>> = const { RefCell::new(None) };
    /// The engine [`library`] runs its programs with (nothing but [`CAPTURE`]).
    static CAPTURER: Engine = {
        let mut engine = Engine::new_raw();
        engine.register_fn(CAPTURE, |ctx: NativeCallContext| {
            let lib = ctx.global_runtime_state().lib.iter().cloned().collect();
            CAPTURED.with(|c| *c.borrow_mut() = Some(lib));
        });
        engine
    };
}

/// The functions of `ast` (code that travelled as text, see `wire/code.rs`) as libraries a
/// caller pushes onto the runtime state to call them: on the AST, `ast`'s own; on the VM,
/// the lowered functions (and the AST functions that did not lower, if any).
///
/// Rhai builds the VM's function table only for the length of a run, so this lowers `ast`
/// with a call to a native function at its end, runs it, and keeps what that function sees.
pub(crate) fn library(ast: &AST) -> Result<Vec<SharedModule>, Box<EvalAltResult>> {
    if interpreter() == Interpreter::Ast {
        return Ok(vec![ast.shared_lib().clone()]);
    }
    let tail = CAPTURER.with(|e| e.compile(format!("{CAPTURE}()")))?;
    let mut whole = ast.clone_functions_only().merge(&tail);
    // The functions' errors name the code's source, as they do on the AST.
    if let Some(source) = ast.source() {
        whole.set_source(source);
    }
    let program = lower(&whole);
    CAPTURER.with(|e| {
        Vm::with_global_state(e, e.new_global_runtime_state())
            .eval_with_callbacks(&mut Scope::new(), &program)
            .map(|_| ())
    })?;
    CAPTURED.with(|c| c.borrow_mut().take()).ok_or_else(|| "the VM did not run the functions it lowered".into())
}
