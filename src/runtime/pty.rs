//! The client side of a container's terminal: our terminal in raw mode, its size copied to the
//! container's pty and kept in step on SIGWINCH, bytes relayed both ways until the container's
//! side closes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

use super::RuntimeError;

/// Puts a terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` when it is a terminal; `None` otherwise.
    pub fn enable(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.try_clone_to_owned().ok()?, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of `from` (a terminal) to `to` (a pty master).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into a live struct.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0 {
        // SAFETY: TIOCSWINSZ reads one live winsize.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

/// Relays stdin → `master` and `master` → stdout until the container closes its side.
/// Call from a process (or thread) that may block SIGWINCH.
pub fn relay(master: &OwnedFd) -> Result<(), RuntimeError> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let _raw = RawMode::enable(stdin.as_fd());
    copy_window_size(stdin.as_fd(), master.as_fd());
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&winch), None).map_err(|e| RuntimeError::sys("sigmask", e))?;
    let signals = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC).map_err(|e| RuntimeError::sys("signalfd", e))?;
    let mut stdin_open = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds =
            vec![PollFd::new(master.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::sys("poll", e)),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
        let (master_ready, signal_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if signal_ready.contains(PollFlags::POLLIN) {
            let _ = signals.read_signal();
            copy_window_size(stdin.as_fd(), master.as_fd());
        }
        if !master_ready.is_empty() {
            match nix::unistd::read(master.as_fd(), &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => return Ok(()),
                Ok(n) => write_all(stdout.as_fd(), &buf[..n])?,
                Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                Err(e) => return Err(RuntimeError::sys("read the pty", e)),
            }
        }
        if stdin_open && !stdin_ready.is_empty() {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n])?,
            }
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), RuntimeError> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(RuntimeError::sys("relay", e)),
        }
    }
    Ok(())
}
