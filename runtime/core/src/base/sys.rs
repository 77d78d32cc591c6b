//! Thin wrappers over the few system calls that need `unsafe` or that nix does not offer,
//! and whole-buffer reads and writes on a descriptor.
//!
//! `unsafe` in rhai-mp's core lives in a few small wrappers: here (system calls and signal
//! handlers), `shm.rs` (memory mapped in shared regions) and the memfd mappings of
//! `transport/seqpacket`. Each block is small and carries its
//! `SAFETY` note; `clippy::undocumented_unsafe_blocks` is denied for the workspace.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The outcome of [`fork`].
pub(crate) enum Forked {
    Parent(libc::pid_t),
    Child,
}

/// Forks this process.
///
/// Caveat: only the calling thread survives in the child. rhai-mp runs scripts on one
/// thread and starts its helper threads (if any) lazily, after any fork they could disturb.
pub(crate) fn fork() -> std::io::Result<Forked> {
    // SAFETY: the child only touches memory it owns (a copy of ours) on this one thread;
    // rhai-mp keeps no lock held across this call.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            refresh_pid();
            Ok(Forked::Child)
        }
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends this process at once, running no destructors and no `atexit` handlers (the right way
/// to leave a forked child, whose copies of the parent's resources are not its own).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// A file descriptor that becomes readable when process `pid` ends (Linux ≥ 5.3).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Asks the kernel to send `signal` to this process when its parent ends.
pub(crate) fn set_parent_death_signal(signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers are involved.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores a signal (SIGPIPE: a write to a closed pipe then fails with `EPIPE` instead).
pub fn ignore_signal(signal: libc::c_int) {
    // SAFETY: SIG_IGN is always a valid disposition.
    unsafe {
        libc::signal(signal, libc::SIG_IGN);
    }
}

/// Borrows a raw descriptor the caller knows to be open for the duration of the borrow.
pub fn borrow_fd<'a>(fd: RawFd) -> std::os::fd::BorrowedFd<'a> {
    // SAFETY: callers pass descriptors they own (0, 1, 2 or ones held by a live object).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of a descriptor number inherited from the parent (fd 0 of a spawn child).
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: only called on descriptors this process was handed and nobody else closes.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Puts `/dev/null` on fd 0 (a spawn child's stdin was the boot socket).
pub(crate) fn stdin_from_devnull() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 on two open descriptors; fd 0 is replaced atomically.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sleeps while `word` still holds `expected`, at most `timeout` (`None`: until woken).
/// Returns when woken, on timeout, or at once if the value differs. The word may be in
/// memory shared between processes (a shared futex).
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32, timeout: Option<std::time::Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind a live reference; the timeout pointer is
    // null or points to a local timespec that outlives the call.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr, std::ptr::null::<u32>(), 0);
    }
}

/// Wakes up to `n` processes sleeping in [`futex_wait`] on `word`.
pub fn futex_wake(word: &std::sync::atomic::AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE only uses the address of the aligned u32 behind a live reference.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// Raises the soft limit on open descriptors to the hard limit: every shared object
/// (queue, lock, value …) holds a memfd.
pub(crate) fn raise_fd_limit() {
    if let Ok((_, hard)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Whether process `pid` is gone: no such process, or a zombie waiting to be reaped.
pub fn process_is_dead(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::Error::ESRCH) => true,
        _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('Z') | Some('X')))
            })
            .unwrap_or(true),
    }
}

/// Keeps large freed blocks in the heap for reuse instead of returning them to the OS at
/// once: messages of many megabytes are allocated and freed in a loop, and fresh pages cost
/// a page fault each (most of a large message's transfer time otherwise). The price is a
/// resident size that stays near its peak.
pub(crate) fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// This process's id, cached (glibc's `getpid` is a system call, and locks ask for it on
/// every acquire). The cache is refreshed in every forked child.
pub fn pid() -> u32 {
    match PID.load(std::sync::atomic::Ordering::Relaxed) {
        0 => refresh_pid(),
        p => p,
    }
}

/// Re-reads this process's id (after a fork).
pub(crate) fn refresh_pid() -> u32 {
    let p = std::process::id();
    PID.store(p, std::sync::atomic::Ordering::Relaxed);
    p
}

/// Reads `len` bytes at `offset` of `file` into a new vector, which is not zeroed first (a
/// large message is copied once, by the kernel, into memory malloc hands back).
/// `UnexpectedEof` if the file ends first.
pub fn pread_vec(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| std::io::Error::new(std::io::ErrorKind::OutOfMemory, "message too large"))?;
    let mut done = 0;
    while done < len {
        // SAFETY: the destination is the vector's spare capacity from `done` on, `len - done`
        // bytes, all of them allocated (reserved above); pread writes at most that many.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                v.as_mut_ptr().add(done) as *mut libc::c_void,
                len - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    // SAFETY: the loop above initialized all `len` bytes (pread wrote each of them once).
    unsafe { v.set_len(len) };
    Ok(v)
}

/// `n` random bytes from the kernel (keys).
pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut key = vec![0u8; n];
    getrandom::fill(&mut key)?;
    Ok(key)
}

/// Compares two keys without stopping at the first difference.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `signal` is ignored in this process now.
pub(crate) fn signal_is_ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one into `old`, a
    // zeroed value of the right type.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Calls `handler` on `signal`, without restarting interrupted system calls (a blocking
/// wait then returns at once and can look at what the handler noted).
pub(crate) fn set_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler is an
    // `extern "C"` function that only stores to an atomic (async-signal-safe).
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = handler as *const () as usize;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(signal, &new, std::ptr::null_mut());
    }
}

/// Gives `signal` its default action again.
pub(crate) fn default_signal(signal: libc::c_int) {
    // SAFETY: SIG_DFL is always a valid disposition.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Ends this process by `signal` (with its default action), so that its parent sees which
/// signal ended it; exits with 128 + signal if the signal does not end it.
pub(crate) fn die_of(signal: libc::c_int) -> ! {
    default_signal(signal);
    // SAFETY: unblocking a signal and raising it are always safe to call.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    exit_now(128 + signal)
}

/// Reads exactly `buf.len()` bytes from `fd`; a closed peer mid-way is `UnexpectedEof`.
pub fn read_exact(fd: std::os::fd::BorrowedFd, mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::read(fd, buf) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from_raw_os_error(e as i32)),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Writes all of `buf` to `fd`.
pub fn write_all(fd: std::os::fd::BorrowedFd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from_raw_os_error(e as i32)),
            Ok(n) => buf = &buf[n..],
        }
    }
    Ok(())
}

/// The kernel's limit on descriptors in one message (SCM_MAX_FD).
pub const MAX_FDS: usize = 253;

/// A nix error as a std one.
pub fn io_error(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}
