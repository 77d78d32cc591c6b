//! The static module `mpi::`: this process's place in an MPI job.

use rhai::plugin::*;

/// The static module `mpi::` (see the reference, "Across machines: MPI").
#[export_module]
pub mod mpi_functions {
    use rhai::INT;

    /// This process's rank in the MPI job (`0` without a launcher; rank 0 runs the script).
    ///
    /// ```rhai
    /// print(`rank ${mpi::rank()} of ${mpi::size()}`);
    /// ```
    ///
    /// Throws when: never.
    pub fn rank() -> INT {
        rhai_mp_core::tree::place::rank() as INT
    }

    /// How many ranks the MPI job has (`1` without a launcher).
    ///
    /// ```rhai
    /// let workers = mpi::size() - 1;
    /// ```
    ///
    /// Throws when: never.
    pub fn size() -> INT {
        rhai_mp_core::tree::place::size() as INT
    }
}
