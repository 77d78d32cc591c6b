//! Script output: each `print` line is one `write(2)` of the whole line to fd 1 (`debug`
//! to fd 2), with no buffer in between.
//!
//! So a line is never torn by another process's output (pipes write up to 4 KiB, PIPE_BUF,
//! atomically; longer lines on a pipe shared with other writers may interleave), and nothing
//! is buffered to be lost at `_exit` or printed twice after `fork`.

use std::os::fd::BorrowedFd;

fn write_line(fd: BorrowedFd, text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    // A closed stdout (`rhai-mp x | head -1`) is not the script's error: drop the line.
    let _ = crate::base::sys::write_all(fd, line.as_bytes());
}

/// Writes one line to stdout.
pub fn stdout_line(text: &str) {
    write_line(crate::base::sys::borrow_fd(1), text)
}

/// Writes one line to stderr.
pub fn stderr_line(text: &str) {
    write_line(crate::base::sys::borrow_fd(2), text)
}
