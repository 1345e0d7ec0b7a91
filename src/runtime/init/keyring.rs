//! A new session keyring for every process started in a container, as runc makes one: without
//! it the process inherits the caller's session keyring, and the kernel's keyrings are not
//! namespaced, so `keyctl` inside could read or change the keys of whoever ran berth.

use super::Failure;

/// `KEYCTL_JOIN_SESSION_KEYRING` (linux/keyctl.h).
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;

/// Replaces the session keyring with a new anonymous one that only this process (and what it
/// starts) holds. A kernel built without keys has nothing to leak (ENOSYS).
pub(super) fn join_new() -> Result<(), Failure> {
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) reads no memory: a null name asks for an
    // anonymous keyring.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    if r < 0 {
        let error = nix::Error::last();
        if error != nix::Error::ENOSYS {
            return Err(Failure(format!("join a new session keyring: {error}")));
        }
    }
    Ok(())
}
