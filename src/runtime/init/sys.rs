//! The init's mount, pivot and device steps behind a narrow trait (youki's `Syscall` seam):
//! [`Kernel`] makes the system calls; the recording fake in the tests keeps the sequence, so
//! the mount logic (root, /dev, /proc masking, volumes, binds) is tested without root.
//!
//! Only the calls that need privilege or change the mount table go through here; path
//! resolution (`openat2` on the root's descriptor) stays real in both, which is what lets the
//! fake run on a temporary directory.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// `move_mount(2)`: the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
/// `move_mount(2)`: the target is the descriptor itself.
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// The privileged steps of a container's setup.
pub(super) trait Sys: Sync + std::fmt::Debug {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// `umount2(2)`.
    fn umount(&self, target: &str, flags: MntFlags) -> nix::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &str, put_old: &str) -> nix::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// `open_tree(2)` with `OPEN_TREE_CLONE | AT_RECURSIVE`: a detached copy of the mount tree
    /// at `path` below `dir` (`dir` itself when `path` is empty).
    fn clone_tree(&self, dir: BorrowedFd<'_>, path: &str) -> nix::Result<OwnedFd>;
    /// `mount_setattr(2)` on the mount `tree` is (every mount below it too when `recursive`).
    fn set_attr(&self, tree: BorrowedFd<'_>, attr_set: u64, recursive: bool) -> nix::Result<()>;
    /// `move_mount(2)` of the tree `tree` onto the directory or file `target` is.
    fn move_tree(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()>;
    /// `mknodat(2)` of a device.
    fn mknod(&self, dir: BorrowedFd<'_>, name: &str, kind: SFlag, mode: Mode, dev: libc::dev_t) -> nix::Result<()>;
    /// `symlinkat(2)`.
    fn symlink(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> nix::Result<()>;
}

/// The real thing.
#[derive(Debug)]
pub(super) struct Kernel;

/// The instance a container's init uses.
pub(super) static KERNEL: Kernel = Kernel;

fn cstring(s: &str) -> nix::Result<std::ffi::CString> {
    std::ffi::CString::new(s).map_err(|_| Errno::EINVAL)
}

impl Sys for Kernel {
    fn mount(
        &self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount(&self, target: &str, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &str, put_old: &str) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn clone_tree(&self, dir: BorrowedFd<'_>, path: &str) -> nix::Result<OwnedFd> {
        let c_path = cstring(path)?;
        let mut flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
        if path.is_empty() {
            flags |= libc::AT_EMPTY_PATH as libc::c_uint;
        }
        // SAFETY: `dir` is a live descriptor, `c_path` a NUL-terminated string that outlives the
        // call; open_tree returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c_path.as_ptr(), flags) };
        if fd < 0 {
            return Err(Errno::last());
        }
        let fd = libc::c_int::try_from(fd).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn set_attr(&self, tree: BorrowedFd<'_>, attr_set: u64, recursive: bool) -> nix::Result<()> {
        let attr = libc::mount_attr { attr_set, attr_clr: 0, propagation: 0, userns_fd: 0 };
        let mut flags = libc::AT_EMPTY_PATH;
        if recursive {
            flags |= libc::AT_RECURSIVE;
        }
        // SAFETY: `tree` is a live descriptor, the path an empty NUL-terminated string (with
        // AT_EMPTY_PATH the call acts on the descriptor), and `attr` a live, initialised
        // mount_attr whose size is passed along; the kernel only reads it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                flags,
                &raw const attr,
                size_of::<libc::mount_attr>(),
            )
        };
        if r < 0 { Err(Errno::last()) } else { Ok(()) }
    }

    fn move_tree(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()> {
        let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
        // SAFETY: both descriptors are live; both paths are empty NUL-terminated strings, so
        // the call acts on the descriptors themselves.
        let r = unsafe {
            libc::syscall(libc::SYS_move_mount, tree.as_raw_fd(), c"".as_ptr(), target.as_raw_fd(), c"".as_ptr(), flags)
        };
        if r < 0 { Err(Errno::last()) } else { Ok(()) }
    }

    fn mknod(&self, dir: BorrowedFd<'_>, name: &str, kind: SFlag, mode: Mode, dev: libc::dev_t) -> nix::Result<()> {
        nix::sys::stat::mknodat(dir, name, kind, mode, dev)
    }

    fn symlink(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> nix::Result<()> {
        nix::unistd::symlinkat(target, dir, name)
    }
}

#[cfg(test)]
pub(super) mod fake {
    //! A `Sys` that records each call, with descriptors and `/proc/self/fd/N` paths shown as
    //! the path they name (inside the root as `/…`), and changes nothing but the harmless:
    //! `mknod` makes an empty file, `symlink` a real link, `clone_tree` a descriptor of the
    //! source.

    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use nix::mount::{MntFlags, MsFlags};
    use nix::sys::stat::{Mode, SFlag};

    use super::Sys;

    #[derive(Debug)]
    pub(crate) struct Recorder {
        root: PathBuf,
        calls: Mutex<Vec<String>>,
    }

    impl Recorder {
        /// A recorder for a container whose root is `root`; leaked, as the real one is static.
        pub(crate) fn leak(root: &Path) -> &'static Recorder {
            let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
            Box::leak(Box::new(Recorder { root, calls: Mutex::new(Vec::new()) }))
        }

        pub(crate) fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }

        fn record(&self, call: String) {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(call);
            }
        }

        /// A path as the test reads it: `/proc/self/fd/N` resolved, the root shown as `/`.
        fn show(&self, path: &str) -> String {
            let real = if path.starts_with("/proc/self/fd/") {
                std::fs::read_link(path).unwrap_or_else(|_| PathBuf::from(path))
            } else {
                PathBuf::from(path)
            };
            match real.strip_prefix(&self.root) {
                Ok(rel) => format!("/{}", rel.display()),
                Err(_) => real.display().to_string(),
            }
        }

        fn show_fd(&self, fd: BorrowedFd<'_>) -> String {
            self.show(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
        }
    }

    impl Sys for Recorder {
        fn mount(
            &self,
            source: Option<&str>,
            target: &str,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> nix::Result<()> {
            let source = source.map(|s| self.show(s)).unwrap_or_else(|| "-".into());
            let flags = if flags.is_empty() { String::new() } else { format!("{flags:?}") };
            let flags = flags.trim_start_matches("MsFlags(").trim_end_matches(')');
            self.record(format!(
                "mount {source} {} {} [{flags}] {}",
                self.show(target),
                fstype.unwrap_or("-"),
                data.unwrap_or("-")
            ));
            Ok(())
        }

        fn umount(&self, target: &str, _flags: MntFlags) -> nix::Result<()> {
            self.record(format!("umount {target}"));
            Ok(())
        }

        fn pivot_root(&self, new_root: &str, put_old: &str) -> nix::Result<()> {
            self.record(format!("pivot_root {new_root} {put_old}"));
            Ok(())
        }

        fn chdir(&self, path: &Path) -> nix::Result<()> {
            self.record(format!("chdir {}", self.show(&path.to_string_lossy())));
            Ok(())
        }

        fn clone_tree(&self, dir: BorrowedFd<'_>, path: &str) -> nix::Result<OwnedFd> {
            let fd = if path.is_empty() {
                dir.try_clone_to_owned().map_err(|_| nix::errno::Errno::EBADF)?
            } else {
                let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
                nix::fcntl::openat(dir, path, flags, Mode::empty())?
            };
            self.record(format!("open_tree {}", self.show_fd(fd.as_fd())));
            Ok(fd)
        }

        fn set_attr(&self, tree: BorrowedFd<'_>, attr_set: u64, recursive: bool) -> nix::Result<()> {
            let names = [
                (libc::MOUNT_ATTR_RDONLY, "ro"),
                (libc::MOUNT_ATTR_NOSUID, "nosuid"),
                (libc::MOUNT_ATTR_NODEV, "nodev"),
                (libc::MOUNT_ATTR_NOEXEC, "noexec"),
            ];
            let set: Vec<&str> = names.iter().filter(|(bit, _)| attr_set & bit != 0).map(|(_, n)| *n).collect();
            let scope = if recursive { " recursive" } else { "" };
            self.record(format!("mount_setattr {} {}{scope}", self.show_fd(tree), set.join(",")));
            Ok(())
        }

        fn move_tree(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()> {
            self.record(format!("move_mount {} {}", self.show_fd(tree), self.show_fd(target)));
            Ok(())
        }

        fn mknod(
            &self,
            dir: BorrowedFd<'_>,
            name: &str,
            _kind: SFlag,
            mode: Mode,
            dev: libc::dev_t,
        ) -> nix::Result<()> {
            let flags = nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_EXCL | nix::fcntl::OFlag::O_CLOEXEC;
            drop(nix::fcntl::openat(dir, name, flags, mode)?);
            let (major, minor) = (libc::major(dev), libc::minor(dev));
            self.record(format!("mknod {}/{name} {major}:{minor}", self.show_fd(dir)));
            Ok(())
        }

        fn symlink(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> nix::Result<()> {
            nix::unistd::symlinkat(target, dir, name)?;
            self.record(format!("symlink {}/{name} -> {target}", self.show_fd(dir)));
            Ok(())
        }
    }
}
