//! Waiting for descriptors to become readable (`poll(2)`), with a timeout that is never
//! rounded down: waking early would report a timeout before it passed.

use crate::base::deadline::Deadline;
use crate::base::sys::io_error as io_err;
use std::os::fd::BorrowedFd;

/// Waits until `fd` is readable (or hung up), at most until `deadline`. Returns whether it
/// is.
pub fn wait_readable(fd: BorrowedFd, deadline: Deadline) -> std::io::Result<bool> {
    Ok(wait_any(&[fd], deadline)?[0])
}

/// Whether `fd` is readable (or hung up) now.
pub fn readable_now(fd: BorrowedFd) -> std::io::Result<bool> {
    wait_readable(fd, Deadline::now())
}

/// Waits until at least one of `fds` is readable (or hung up), at most until `deadline`.
/// Returns which are.
pub fn wait_any(fds: &[BorrowedFd], deadline: Deadline) -> std::io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        crate::base::interrupt::io_check()?;
        // Round up: waking early would report a timeout before it passed.
        let ms = deadline.slice(crate::base::interrupt::SLICE).as_micros().div_ceil(1000);
        let left = PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX);
        let mut polls: Vec<PollFd> = fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
        match poll(&mut polls, left) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
            Ok(0) if !deadline.passed() => continue, // a slice ended: look at the signals
            Ok(_) => return Ok(polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect()),
        }
    }
}

/// Waits until `fd` can be written to (or is hung up), looking at the signals between
/// slices.
pub fn wait_writable(fd: BorrowedFd) -> std::io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        crate::base::interrupt::io_check()?;
        let mut polls = [PollFd::new(fd, PollFlags::POLLOUT)];
        match poll(&mut polls, PollTimeout::from(crate::base::interrupt::SLICE.as_millis() as u16)) {
            Err(nix::Error::EINTR) | Ok(0) => continue,
            Err(e) => return Err(io_err(e)),
            Ok(_) => return Ok(()),
        }
    }
}
