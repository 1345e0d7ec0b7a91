//! The host's cgroup mounts, from the text of /proc/self/mountinfo: one parser for the cgroup
//! code (where each v1 controller lives) and the container's /sys/fs/cgroup (what to show).

use std::path::PathBuf;

/// A `cgroup` (v1) or `cgroup2` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Its super options without `rw`/`ro`: the controllers of a v1 hierarchy, `name=systemd`…
    pub options: String,
}

/// Every cgroup mount in `mountinfo`, in its order.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(point) = left.split(' ').nth(4) else { continue };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let options = right.nth(1).unwrap_or_default();
        let options: Vec<&str> = options.split(',').filter(|o| *o != "rw" && *o != "ro").collect();
        found.push(CgroupMount {
            point: PathBuf::from(unescape_octal(point)),
            fstype: fstype.to_owned(),
            options: options.join(","),
        });
    }
    found
}

/// The host's cgroup mounts; none when /proc/self/mountinfo cannot be read.
pub fn host_cgroup_mounts() -> Vec<CgroupMount> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|text| cgroup_mounts(&text)).unwrap_or_default()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_are_found_with_their_options_and_escaped_paths() {
        let info = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
35 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
36 31 0:31 / /sys/fs/cgroup/odd\\040dir rw - cgroup cgroup rw,name=systemd
";
        let found = cgroup_mounts(info);
        let summary: Vec<(&str, &str, &str)> =
            found.iter().map(|m| (m.point.to_str().unwrap(), m.fstype.as_str(), m.options.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("/sys/fs/cgroup/unified", "cgroup2", "nsdelegate"),
                ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                ("/sys/fs/cgroup/odd dir", "cgroup", "name=systemd"),
            ]
        );
    }
}
