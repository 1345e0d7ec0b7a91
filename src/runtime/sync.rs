//! Messages between berth, its spawner and a container being set up: `SOCK_SEQPACKET`
//! socket pairs (one message per `send`, EOF when the other side closes or execs), JSON payloads,
//! and file descriptors passed with `SCM_RIGHTS`.
//!
//! The container's end of its sync socket is close-on-exec, so a successful `execve` shows up
//! as EOF on the parent's end: no message is needed to say "started".

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg,
    socketpair as nix_socketpair,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::spec::ContainerSpec;

/// The largest message: a container spec with many mounts and a long environment fits easily.
const MAX_MESSAGE: usize = 1 << 20;
/// The most descriptors one message carries.
const MAX_FDS: usize = 8;

/// A close-on-exec `SOCK_SEQPACKET` pair.
pub fn socketpair() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix_socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// Sends one message with `fds` attached.
pub fn send(socket: BorrowedFd<'_>, payload: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(payload)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(socket.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one message; `None` when the other side is gone.
pub fn recv(socket: BorrowedFd<'_>) -> nix::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    // Learn the next message's size first: zeroing a megabyte per message costs more than the
    // extra system call.
    let size = loop {
        let mut probe = [IoSliceMut::new(&mut [])];
        match recvmsg::<()>(socket.as_raw_fd(), &mut probe, None, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
            Ok(msg) => break msg.bytes,
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    if size == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; size.min(MAX_MESSAGE)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        for fd in raw {
                            // SAFETY: SCM_RIGHTS hands this process new descriptors that nothing else owns.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    if len == 0 {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, fds)))
}

/// Sends a JSON message.
pub fn send_json<T: Serialize>(socket: BorrowedFd<'_>, message: &T, fds: &[RawFd]) -> nix::Result<()> {
    let payload = serde_json::to_vec(message).map_err(|_| nix::Error::EINVAL)?;
    send(socket, &payload, fds)
}

/// Receives a JSON message; `None` on EOF, `EBADMSG` on a malformed one.
pub fn recv_json<T: DeserializeOwned>(socket: BorrowedFd<'_>) -> nix::Result<Option<(T, Vec<OwnedFd>)>> {
    match recv(socket)? {
        None => Ok(None),
        Some((payload, fds)) => {
            let message = serde_json::from_slice(&payload).map_err(|_| nix::Error::EBADMSG)?;
            Ok(Some((message, fds)))
        }
    }
}

/// A request to the spawner. Descriptors travel with it in the order the variant documents.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Clone a new container. Descriptors: the container's end of its sync socket, then
    /// stdin, stdout and stderr when `stdio` is true, then its cgroup directory when
    /// `cgroup_fd` is true.
    Create(Box<CreateRequest>),
    /// Clone a process into a running container. Descriptors: the sync socket end, a pidfd of the
    /// container's PID 1, then stdin, stdout, stderr when `stdio` is true, then the container's
    /// cgroup directory when `cgroup_fd` is true.
    Exec(Box<ExecRequest>),
}

/// What the spawner needs to clone a container.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The container.
    pub spec: ContainerSpec,
    /// Its directories on the host.
    pub dirs: super::state::ContainerDirs,
    /// Host PIDs whose namespaces are joined, per kind (`net`, `ipc`, `pid`, `uts`).
    pub join: Vec<(String, i32)>,
    /// Whether stdin, stdout and stderr descriptors are attached.
    pub stdio: bool,
    /// SIGKILL the container when the process that asked for it dies (foreground `run`).
    pub die_with_parent: bool,
    /// A cgroup v2 directory descriptor comes last: clone the process into it
    /// (`CLONE_INTO_CGROUP`) when the kernel can.
    #[serde(default)]
    pub cgroup_fd: bool,
}

/// What the spawner needs to clone a process into a running container.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The container's service and name, for error messages.
    pub service: String,
    /// The container's name.
    pub container: String,
    /// The process; its `capabilities` and `no_new_privileges` are the container's.
    pub process: super::spec::Process,
    /// Whether stdin, stdout and stderr descriptors are attached.
    pub stdio: bool,
    /// As [`CreateRequest::cgroup_fd`].
    #[serde(default)]
    pub cgroup_fd: bool,
}

/// The spawner's answer. On success the message carries the new process's pidfd.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Cloned; the pid is in berth's PID namespace.
    Spawned {
        /// Host PID.
        pid: i32,
        /// Born in the requested cgroup: the parent writes no `cgroup.procs`.
        #[serde(default)]
        in_cgroup: bool,
    },
    /// The clone itself failed.
    Failed {
        /// Why.
        message: String,
    },
}

/// From the parent to a process being set up.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// cgroups (and later networking) are ready: go on.
    Go,
}

/// From a process being set up to its parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The pty master (carried as a descriptor): relay it.
    Pty,
    /// Setup failed; the process exits.
    Failed {
        /// What failed, in words a user understands.
        message: String,
    },
}
