//! `lo` up in a new network namespace, as docker and crun leave it: one ioctl pair from inside,
//! far cheaper than a netlink socket from outside.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::Failure;

pub(super) fn bring_up() -> Result<(), Failure> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Failure::new(format!("bring lo up: socket: {}", nix::Error::last())));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags of the interface named in `request` into it.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(Failure::new(format!("bring lo up: {}", nix::Error::last())));
    }
    // SAFETY: the union's flags member is the one SIOCGIFFLAGS filled in.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags = flags | libc::c_short::try_from(libc::IFF_UP).unwrap_or(1);
    // SAFETY: SIOCSIFFLAGS sets the flags of the interface named in `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(Failure::new(format!("bring lo up: {}", nix::Error::last())));
    }
    Ok(())
}
