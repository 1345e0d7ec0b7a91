//! /dev: a small tmpfs with the standard character devices, the usual links, a private devpts
//! instance (so ptys allocated in the container are the container's), /dev/shm and /dev/mqueue.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, makedev};

use super::path::{Kind, Root, fd_path};
use super::{Context, Failure};

/// (name, major, minor) of the devices every container gets, all mode 0666.
const DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const LINKS: [(&str, &str); 6] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("core", "/proc/kcore"),
    ("ptmx", "pts/ptmx"),
];

pub(super) fn populate(root: &Root, shm_size: u64) -> Result<(), Failure> {
    let sys = root.sys();
    let at = root.ensure("/dev", Kind::Dir)?;
    sys.mount(
        Some("tmpfs"),
        &fd_path(&at),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .context(|| "mount /dev".into())?;
    let dev = root.open_at("/dev", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    for (name, major, minor) in DEVICES {
        sys.mknod(dev.as_fd(), name, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), makedev(major, minor))
            .context(|| format!("mknod /dev/{name}"))?;
        // The umask inherited from berth would leave 0644.
        fchmodat(dev.as_fd(), name, Mode::from_bits_truncate(0o666), FchmodatFlags::FollowSymlink)
            .context(|| format!("chmod /dev/{name}"))?;
    }
    for (name, target) in LINKS {
        sys.symlink(target, dev.as_fd(), name).context(|| format!("link /dev/{name}"))?;
    }
    let pts = root.ensure("/dev/pts", Kind::Dir)?;
    sys.mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .context(|| "mount /dev/pts".into())?;
    let shm = root.ensure("/dev/shm", Kind::Dir)?;
    let shm_data = format!("mode=1777,size={shm_size}");
    sys.mount(
        Some("shm"),
        &fd_path(&shm),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(shm_data.as_str()),
    )
    .context(|| "mount /dev/shm".into())?;
    let mqueue = root.ensure("/dev/mqueue", Kind::Dir)?;
    sys.mount(
        Some("mqueue"),
        &fd_path(&mqueue),
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
    .context(|| "mount /dev/mqueue".into())
}

/// Opens a pty pair in the container's devpts (after `pivot_root`): (master, slave).
pub(super) fn open_pty() -> Result<(OwnedFd, OwnedFd), Failure> {
    use nix::pty::{grantpt, posix_openpt, unlockpt};
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).context(|| "open /dev/ptmx".into())?;
    grantpt(&master).context(|| "grantpt".into())?;
    unlockpt(&master).context(|| "unlockpt".into())?;
    let name = nix::pty::ptsname_r(&master).context(|| "ptsname".into())?;
    let slave = nix::fcntl::open(name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty())
        .context(|| format!("open {name}"))?;
    Ok((master.into(), slave))
}
