//! /proc, /sys and /sys/fs/cgroup inside the container, sysctls, and docker's masked and
//! read-only kernel paths.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use std::path::Path;

use super::path::{Kind, Root, fd_path};
use super::{Context, Failure, rootfs};
use crate::runtime::cgroups::{BERTH_DIR, CgroupMount, host_cgroup_mounts, v1_name};

/// Paths docker hides (moby `oci/defaults.go`): a tmpfs over directories, /dev/null over files.
const MASKED: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths docker makes read-only.
const READ_ONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

pub(super) const NO_SUID_DEV_EXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

pub(super) fn mount_proc(root: &Root) -> Result<(), Failure> {
    let at = root.ensure("/proc", Kind::Dir)?;
    root.sys().mount(Some("proc"), &fd_path(&at), Some("proc"), NO_SUID_DEV_EXEC, None).context(|| "mount /proc".into())
}

/// Writes namespaced sysctls through the container's /proc (they apply to the namespaces of
/// the writer, which are the container's).
pub(super) fn write_sysctls(root: &Root, sysctls: &BTreeMap<String, String>) -> Result<(), Failure> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let fd = root.open_at(&path, OFlag::O_WRONLY).context(|| format!("sysctl {key}"))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(value.as_bytes()).context(|| format!("sysctl {key}={value}"))?;
    }
    Ok(())
}

/// A read-only sysfs of the container's network namespace.
pub(super) fn mount_sys(root: &Root) -> Result<(), Failure> {
    let at = root.ensure("/sys", Kind::Dir)?;
    root.sys()
        .mount(Some("sysfs"), &fd_path(&at), Some("sysfs"), NO_SUID_DEV_EXEC | MsFlags::MS_RDONLY, None)
        .context(|| "mount /sys".into())
}

/// The container's view of its cgroups, read-only: each hierarchy where berth made the
/// container's directory is that directory bind-mounted (what docker does on v1; cheaper than a
/// new cgroup mount); the rest (a named `systemd` hierarchy, a hybrid host's empty unified
/// tree) mounted fresh, which the cgroup namespace roots at the process's own cgroup. On a v2
/// host one mount at /sys/fs/cgroup; on a v1 or hybrid host a tmpfs with every hierarchy the
/// host mounts.
pub(super) fn mount_cgroups(root: &Root, id: &str) -> Result<(), Failure> {
    let Some(at) = root.lookup("/sys/fs/cgroup")? else { return Ok(()) };
    let sys = root.sys();
    let ro = NO_SUID_DEV_EXEC | MsFlags::MS_RDONLY;
    let hierarchies = host_cgroup_mounts().map_err(|kind| Failure(format!("read /proc/self/mountinfo: {kind}")))?;
    if let [CgroupMount { point, fstype, .. }] = hierarchies
        && point == Path::new("/sys/fs/cgroup")
        && fstype == "cgroup2"
    {
        let source = point.join(BERTH_DIR).join(id);
        if !source.is_dir() {
            return sys
                .mount(Some("cgroup2"), &fd_path(&at), Some("cgroup2"), ro, None)
                .context(|| "mount /sys/fs/cgroup".into());
        }
        // The container's own cgroup directory, read-only from the first moment it is seen.
        return rootfs::attach(root, rustix::fs::CWD, &source.to_string_lossy(), &at, rootfs::SEALED)
            .map(drop)
            .context(|| "bind /sys/fs/cgroup".into());
    }
    sys.mount(Some("tmpfs"), &fd_path(&at), Some("tmpfs"), NO_SUID_DEV_EXEC, Some("mode=755"))
        .context(|| "mount /sys/fs/cgroup".into())?;
    let own = v1_name(id);
    for CgroupMount { point, fstype, options } in hierarchies {
        let Ok(name) = point.strip_prefix("/sys/fs/cgroup/") else { continue };
        let target = format!("/sys/fs/cgroup/{}", name.display());
        let dir = root.ensure(&target, Kind::Dir)?;
        let source = point.join(&own);
        if source.is_dir() {
            sys.mount(Some(&source.to_string_lossy()), &fd_path(&dir), None, MsFlags::MS_BIND, None)
                .context(|| format!("bind {target}"))?;
        } else {
            let data = (fstype == "cgroup").then_some(options.as_str());
            sys.mount(Some(fstype.as_str()), &fd_path(&dir), Some(fstype.as_str()), ro, data)
                .context(|| format!("mount {target}"))?;
        }
    }
    // The host's alias links (cpu -> cpu,cpuacct).
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        let base = root.lookup("/sys/fs/cgroup")?.ok_or_else(|| Failure("/sys/fs/cgroup vanished".into()))?;
        for entry in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_symlink())) {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let _ = sys.symlink(&target.to_string_lossy(), base.as_fd(), &entry.file_name().to_string_lossy());
            }
        }
    }
    // The binds are read-only, like the rest (the fresh mounts already are).
    rootfs::seal_tree(root, "/sys/fs/cgroup")
}

/// Docker's masked and read-only paths (not for privileged containers).
pub(super) fn mask(root: &Root) -> Result<(), Failure> {
    let sys = root.sys();
    let null = root.lookup("/dev/null")?.ok_or_else(|| Failure("/dev/null is missing".into()))?;
    for path in MASKED {
        let Some(at) = root.lookup(path)? else { continue };
        let is_dir = nix::sys::stat::fstat(&at).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false);
        let result = if is_dir {
            sys.mount(Some("tmpfs"), &fd_path(&at), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
        } else {
            sys.mount(Some(&fd_path(&null)), &fd_path(&at), None, MsFlags::MS_BIND, None)
        };
        result.context(|| format!("mask {path}"))?;
    }
    for path in READ_ONLY {
        let Some(at) = root.lookup(path)? else { continue };
        // A read-only copy of the path's own tree over itself, resolved once.
        rootfs::attach(root, at.as_fd(), "", &at, rootfs::SEALED).context(|| format!("make {path} read-only"))?;
    }
    Ok(())
}
