//! This process's place in an MPI job (see the reference, "Across machines: MPI"): its
//! rank and the job's size, and whether this binary can run under a launcher at all.
//!
//! The runtime (built with its `mpi` feature) sets the place once, before any script runs.
//! Without a launcher the place is rank 0 of 1 and the `"mpi"` start method is refused with
//! a `ValueError` that says what is missing. (How a `Process` starts on another rank is
//! `start/remote.rs`.)

use crate::base::error::MpError;
use crate::mp_err;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::OnceLock;

/// This process's place in an MPI job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Its rank (0 runs the script).
    pub rank: u32,
    /// How many ranks the job has.
    pub size: u32,
}

static PLACE: OnceLock<Place> = OnceLock::new();
static SUPPORTED: AtomicBool = AtomicBool::new(false);

/// Records that this binary was built with MPI support (the runtime's `mpi` feature).
pub fn set_supported() {
    SUPPORTED.store(true, SeqCst);
}

/// Whether this binary was built with MPI support.
pub fn supported() -> bool {
    SUPPORTED.load(SeqCst)
}

/// Records this process's place in a job started by an MPI launcher (once; later calls are
/// ignored).
pub fn set_place(place: Place) {
    let _ = PLACE.set(place);
}

/// This process's place, if an MPI launcher started it.
pub fn place() -> Option<Place> {
    PLACE.get().copied()
}

/// Its rank (`0` without a launcher).
pub fn rank() -> u32 {
    place().map_or(0, |p| p.rank)
}

/// The job's size (`1` without a launcher).
pub fn size() -> u32 {
    place().map_or(1, |p| p.size)
}

/// Whether the `"mpi"` start method can be used here: on rank 0 of a job with MPI support.
pub fn mpi_available() -> bool {
    supported() && place().is_some_and(|p| p.rank == 0)
}

/// The `ValueError` for the `"mpi"` start method where it cannot be used.
pub fn unavailable() -> MpError {
    if !supported() {
        return mp_err!(
            ValueError,
            "this rhai-mp was built without MPI support: rebuild it with `cargo build --release --features mpi` \
             (it needs an MPI library: apt-get install openmpi-bin libopenmpi-dev libclang-dev) and run the \
             script under a launcher: mpirun -n 4 rhai-mp script.rhai"
        );
    }
    match place() {
        None => mp_err!(
            ValueError,
            "the 'mpi' start method needs an MPI launcher: run the script with mpirun -n 4 rhai-mp script.rhai \
             (or mpiexec, srun)"
        ),
        Some(p) => mp_err!(
            ValueError,
            "the 'mpi' start method starts work on other ranks from rank 0 only (this is rank {}); here, use \
             'spawn', 'fork' or 'forkserver'",
            p.rank
        ),
    }
}
