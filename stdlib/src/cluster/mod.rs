//! Across machines on MPI (see the reference, "Across machines: MPI"): rank 0 runs the
//! script; the other ranks of the job serve it as workers, over one TCP connection each,
//! set up through MPI (rank 0 tells every rank its addresses and a random key).
//!
//! - `protocol.rs`: the typed messages between rank 0 and a worker rank;
//! - `head.rs`: rank 0's connections, and the events it routes to pools and processes;
//! - `rank.rs`: a worker rank's serving loop (the native entry it runs after the top level);
//! - `process.rs`: a `Process` running on a worker rank, as rank 0 sees it;
//! - `bindings.rs`: `mpi::rank()`, `mpi::size()`.
//!
//! The pool's side is `pool/ranks.rs`. MPI itself (the launcher's environment, MPI_Init,
//! the broadcast) is the runtime's (`runtime/src/mpi.rs`), behind its `mpi` feature.

pub(crate) mod bindings;
pub(crate) mod head;
mod process;
pub(crate) mod protocol;
pub(crate) mod rank;

pub use bindings::mpi_functions;
pub use head::{close as close_head, open as open_head};
pub use protocol::Invitation;
pub use rank::{hostname, report_failed_boot, RankArgs};

/// The name of the worker ranks' native entry point (see [`RankArgs`]).
pub const RANK_ENTRY: &str = rank::ENTRY;

/// Whether this worker rank reached its serving loop (false when the script's top level
/// failed or ended the process first).
pub fn rank_served() -> bool {
    rank::SERVED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether rank 0 said, at the end of the job, that a rank was lost: `MPI_Finalize` waits
/// for every rank, so this rank must leave without it.
pub fn peers_lost() -> bool {
    rank::PEERS_LOST.load(std::sync::atomic::Ordering::SeqCst)
}

/// Registers the worker ranks' entry and the `"mpi"` start method's launcher.
fn machinery() {
    rhai_mp_core::run::child::register_entry(rank::ENTRY, rank::entry);
    rhai_mp_core::tree::start::remote::set_launcher(process::launch);
}

/// The address of this host the worker ranks reach it at (rank 0 of a job).
pub(crate) fn reachable_ip() -> rhai_mp_core::prelude::MpResult<std::net::IpAddr> {
    head::with_head(|h| {
        h.wait_joined()?;
        Ok(h.reachable_ip())
    })
}

/// mpi's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::module_section;
    crate::registry::Primitive {
        name: "mpi",
        group: "mpi::",
        sections: &[module_section("mpi")],
        functions: |_| {},
        module: Some(|| rhai::exported_module!(mpi_functions)),
        handles: &[],
        machinery: Some(machinery),
        mirrors: &[],
        managed: &[],
    }
};
