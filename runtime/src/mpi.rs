//! Running under an MPI launcher (the `mpi` feature): `mpirun -n N rhai-mp script.rhai`,
//! `mpiexec`, `srun`. This is the only place that talks to MPI itself (through rsmpi):
//!
//! 1. every rank calls `MPI_Init` and learns its rank and the job's size (under `srun`, a
//!    size other than Slurm's task count means the wrong PMI plugin: every rank stops);
//! 2. rank 0 reads the script, opens its listening socket (`rhai-mp-stdlib`'s `cluster`)
//!    and broadcasts an [`Invitation`]: its addresses, a random key, the script and `ARGV`
//!    (so the other ranks need not read the file, nor have it);
//! 3. rank 0 runs the script as `__main__`, with `"mpi"` as the default start method; every
//!    other rank runs its top level as `__mp_main__` and then serves rank 0 until the job
//!    is over (`cluster/rank.rs`);
//! 4. rank 0 tells the ranks the job is over, and every rank calls `MPI_Finalize`. The job's
//!    exit code is rank 0's (the others exit 0). `MPI_Finalize` waits for every rank, so
//!    when one died during the job the others leave without it (see [`finalize`]).
//!
//! After the broadcast, MPI carries nothing: the ranks talk over TCP, which lets rank 0
//! notice a worker rank that died (its connection closes) instead of hanging in MPI.

use crate::Runtime;
use mpi::traits::{Communicator, Root};
use rhai_mp_core::tree::boot::{Boot, Call, Mode};
use rhai_mp_core::tree::place::{self, Place};
use rhai_mp_core::tree::state::{ChildInfo, ParentInfo, Script, StartMethod};
use rhai_mp_stdlib::cluster::{Invitation, RankArgs};

/// What the command line asked for.
pub(crate) enum Job {
    /// Run this script (its name in messages, its text) with these arguments.
    Script { name: String, text: String, argv: Vec<String> },
    /// Open the REPL (on rank 0; the other ranks serve it).
    Repl,
    /// The command line could not be served (the message was printed): exit with this code.
    Failed(i32),
}

/// Whether an MPI launcher started this process (Open MPI, MPICH / Hydra, PMIx, Slurm).
pub(crate) fn launched() -> bool {
    let has = |v: &str| std::env::var_os(v).is_some();
    has("OMPI_COMM_WORLD_SIZE") || has("PMI_SIZE") || has("PMIX_RANK") || (has("SLURM_STEP_ID") && has("SLURM_PROCID"))
}

/// How many tasks `srun` started, when this process is one of them: a task of a Slurm step
/// (`SLURM_STEP_ID`, `SLURM_PROCID`) that no other launcher started. Under `mpirun` (or
/// MPICH's `mpiexec`) inside an allocation, the ranks carry the variables of the step that
/// runs the launcher's daemons, one task per node: then `None`, and the launcher's own size
/// (`OMPI_COMM_WORLD_SIZE`, or a `PMI_SIZE` other than Slurm's) is the world's.
fn slurm_tasks() -> Option<u32> {
    let var = |v: &str| std::env::var(v).ok();
    var("SLURM_STEP_ID")?;
    var("SLURM_PROCID")?;
    let tasks: u32 = var("SLURM_NTASKS").or_else(|| var("SLURM_NPROCS"))?.parse().ok()?;
    let other_launcher =
        var("OMPI_COMM_WORLD_SIZE").is_some() || var("PMI_SIZE").is_some_and(|s| s.parse() != Ok(tasks));
    (!other_launcher).then_some(tasks)
}

/// The error for a Slurm step whose tasks do not make one MPI world: `srun`'s PMI plugin
/// is not the one the MPI library speaks, so each task started alone, as rank 0 of 1
/// (open-mpi/ompi#13523).
fn wrong_pmi(tasks: u32, size: u32) -> String {
    // Slurm sets it for every plugin but `none`.
    let plugin = std::env::var("SLURM_MPI_TYPE").unwrap_or_else(|_| "none".into());
    format!(
        "rhai-mp: srun started {tasks} tasks, but MPI_Init gave each a world of {size}: srun's PMI plugin \
         (--mpi={plugin} here) is not the one this MPI library speaks. No task ran the script. Pass it to srun: \
         `srun --mpi=pmix -n {tasks} rhai-mp ..` (Open MPI; `srun --mpi=list` lists the plugins), or set \
         `MpiDefault=pmix` in slurm.conf."
    )
}

/// Broadcasts `bytes` from rank 0 (length first); returns them on every rank.
fn broadcast<C: Communicator>(world: &C, bytes: Vec<u8>) -> Vec<u8> {
    let root = world.process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    let mut buf = if world.rank() == 0 { bytes } else { vec![0u8; len as usize] };
    if len > 0 {
        root.broadcast_into(&mut buf[..]);
    }
    buf
}

/// Runs the job on this rank (`job` reads the command line's script: rank 0 only); returns
/// this process's exit code.
pub(crate) fn run(runtime: &Runtime, job: impl FnOnce() -> Job, method_given: bool) -> i32 {
    let Some(universe) = mpi::initialize() else {
        eprintln!("rhai-mp: MPI was already initialized");
        return 1;
    };
    let world = universe.world();
    let (rank, size) = (world.rank() as u32, world.size() as u32);
    if let Some(tasks) = slurm_tasks().filter(|&n| n != size) {
        // Every task sees the same numbers, so every rank of this world leaves here, before
        // the broadcast; the first task says why.
        if std::env::var("SLURM_PROCID").as_deref() == Ok("0") {
            eprintln!("{}", wrong_pmi(tasks, size));
        }
        return finalize(universe, rank, 1, true);
    }
    place::set_place(Place { rank, size });
    if rank == 0 {
        let job = job();
        let invitation = match invite(size, &job) {
            Ok(inv) => inv,
            Err(code) => {
                broadcast(&world, Vec::new());
                return code;
            }
        };
        let bytes = match rhai_mp_core::wire::encode_remote(&invitation) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("rhai-mp: {e}");
                broadcast(&world, Vec::new());
                return 1;
            }
        };
        broadcast(&world, bytes);
        if !method_given {
            runtime.set_start_method(StartMethod::Mpi);
        }
        let code = match job {
            Job::Script { name, text, argv } => runtime.main_code(&name, &text, argv),
            #[cfg(feature = "cli")]
            Job::Repl => runtime.repl(),
            _ => 2,
        };
        let lost = rhai_mp_stdlib::cluster::close_head();
        finalize(universe, 0, code, lost.is_empty())
    } else {
        let bytes = broadcast(&world, Vec::new());
        if bytes.is_empty() {
            // Rank 0 could not start (it says why).
            return 0;
        }
        let invitation: Invitation = match rhai_mp_core::wire::decode_message(&bytes, Vec::new()) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("rhai-mp: rank {rank}: {e}");
                return 1;
            }
        };
        serve(runtime, invitation, rank);
        finalize(universe, rank, 0, !rhai_mp_stdlib::cluster::peers_lost())
    }
}

/// How long `MPI_Finalize` may take before this rank leaves without it.
const FINALIZE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Ends MPI on this rank and returns `code`. `MPI_Finalize` waits for every rank, so a
/// rank that knows one was lost (`all_there` false) leaves without it; and in case one was
/// lost unnoticed, a watchdog ends the process after [`FINALIZE_LIMIT`].
fn finalize(universe: mpi::environment::Universe, rank: u32, code: i32, all_there: bool) -> i32 {
    if !all_there {
        std::process::exit(code);
    }
    std::thread::spawn(move || {
        std::thread::sleep(FINALIZE_LIMIT);
        eprintln!(
            "rhai-mp: rank {rank}: MPI_Finalize did not return within {}s (a rank died?); leaving without it",
            FINALIZE_LIMIT.as_secs()
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // Not `exit`: the main thread is inside the MPI library, whose exit handlers could
        // wait for it.
        // SAFETY: `_exit` ends the process at once; it touches no memory of this program.
        unsafe { libc::_exit(code) }
    });
    drop(universe);
    code
}

/// Rank 0's invitation (reading the script), or the exit code after a message.
fn invite(size: u32, job: &Job) -> Result<Invitation, i32> {
    let key = rhai_mp_core::base::sys::random_bytes(32).map_err(|e| {
        eprintln!("rhai-mp: no random key: {e}");
        1
    })?;
    let (script, argv) = match job {
        Job::Script { name, text, argv } => (Script::Source { name: name.clone(), text: text.clone() }, argv.clone()),
        Job::Repl => (Script::Session, Vec::new()),
        Job::Failed(code) => return Err(*code),
    };
    let addresses = rhai_mp_stdlib::cluster::open_head(size, key.clone()).map_err(|e| {
        eprintln!("rhai-mp: rank 0 cannot listen for the other ranks: {e}");
        1
    })?;
    Ok(Invitation { addresses, key, script, argv })
}

/// A worker rank: the top level as `__mp_main__`, then serve rank 0.
fn serve(runtime: &Runtime, inv: Invitation, rank: u32) {
    let args = RankArgs { addresses: inv.addresses, key: inv.key, rank };
    let payload = match rhai_mp_core::wire::encode_message(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rhai-mp: rank {rank}: {e}");
            return;
        }
    };
    let boot = Boot {
        mode: Mode::Child,
        info: ChildInfo {
            identity: Vec::new(),
            name: format!("Rank-{rank}@{}", rhai_mp_stdlib::cluster::hostname()),
            daemon: false,
            parent: ParentInfo { pid: nix::unistd::getppid().as_raw(), name: "MainProcess".into() },
            method: StartMethod::Spawn,
        },
        script: inv.script,
        argv: inv.argv,
        forkserver: None,
        call: Call::encode_native(rhai_mp_stdlib::cluster::RANK_ENTRY, payload),
    };
    let code = rhai_mp_core::run::child::run_as_rank(&|| runtime.engine(), boot);
    if !rhai_mp_stdlib::cluster::rank_served() {
        // The top level failed (or ended the process) before this rank could serve: rank 0
        // hears it, so that it does not wait for this rank.
        let code = if code == 0 { rhai_mp_core::tree::start::popen::EXIT_BOOT_FAILED } else { code };
        rhai_mp_stdlib::cluster::report_failed_boot(&args, code);
    }
}
