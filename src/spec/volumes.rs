//! Service `volumes` short syntax (`[SOURCE:]TARGET[:MODE]`) and service-level `tmpfs`
//! entries (`TARGET[:OPTIONS]`), parsed into compose's long (mount) form.
//!
//! Classification and defaults follow compose-go `format/volume.go`. Paths are left as
//! written: resolving `.` and `~` against the project directory is the caller's job.

use super::units::{self, UnitError};

/// Kind of mount, serialized as compose's lowercase `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host path.
    Bind,
    /// A named or anonymous volume.
    Volume,
    /// A memory-backed filesystem.
    Tmpfs,
    /// The filesystem of an image.
    Image,
    /// A Windows named pipe.
    Npipe,
    /// A cluster (CSI) volume.
    Cluster,
}

/// One service mount in compose's long form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    /// Mount kind.
    pub r#type: MountType,
    /// Host path, volume name or image; absent for anonymous volumes and tmpfs. An empty
    /// source is not printed, as compose does not.
    #[serde(skip_serializing_if = "blank")]
    pub source: Option<String>,
    /// Absolute path inside the container.
    pub target: String,
    /// Mount read-only.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// macOS consistency hint (`cached`, `delegated`, `consistent`); no effect on Linux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind-specific options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume-specific options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// Tmpfs-specific options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Image-specific options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOptions>,
}

/// Options of a bind mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BindOptions {
    /// SELinux relabeling: `z` (shared) or `Z` (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Mount propagation such as `rprivate` or `shared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create a missing host path: implied by the short syntax, off in the long one unless
    /// written. Printed only when true, as compose does.
    #[serde(skip_serializing_if = "is_false")]
    pub create_host_path: bool,
    /// Recursive read-only handling (`enabled`, `disabled`, `writable`, `readonly`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
}

/// Options of a volume mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct VolumeOptions {
    /// Do not copy image content into an empty volume.
    #[serde(skip_serializing_if = "is_false")]
    pub nocopy: bool,
    /// Mount only this path inside the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// Labels for a volume this mount creates.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Options of a tmpfs mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TmpfsOptions {
    /// Size limit in bytes; compose prints it as a decimal string.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "size_as_string")]
    pub size: Option<u64>,
    /// File mode of the mount root (the value, not its octal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Options of an image mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageOptions {
    /// Mount only this path inside the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A service-level `tmpfs` entry: its mount plus mount flags that have no field in the
/// compose model (`noexec`, `uid=1000`, ...), kept in order for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsEntry {
    /// The mount, with `size`, `mode` and `ro` applied.
    pub mount: Mount,
    /// Remaining mount options, verbatim.
    pub flags: Vec<String>,
}

const VOLUME_SYNTAX: &str = "expected [SOURCE:]TARGET[:MODE]";

/// A volume or tmpfs entry that docker compose would reject.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VolumeError {
    /// The entry is an empty string.
    #[error("invalid volume \"\": the entry is empty; {VOLUME_SYNTAX}")]
    Empty,
    /// Two adjacent colons, or a leading or trailing one.
    #[error("invalid volume {spec:?}: empty section between colons; {VOLUME_SYNTAX}")]
    EmptySection {
        /// The entry as written.
        spec: String,
    },
    /// More than three colon-separated sections.
    #[error("invalid volume {spec:?}: too many colons; {VOLUME_SYNTAX}")]
    TooManyColons {
        /// The entry as written.
        spec: String,
    },
    /// A volume target that is not an absolute path.
    #[error("invalid volume {spec:?}: target {target:?} must be an absolute path inside the container")]
    RelativeTarget {
        /// The entry as written.
        spec: String,
        /// The offending target.
        target: String,
    },
    /// A mode that is not one compose knows.
    #[error(
        "invalid volume {spec:?}: unknown mode {mode:?}; expected ro, rw, z, Z, nocopy, \
         shared, rshared, slave, rslave, private, rprivate, cached, delegated or consistent"
    )]
    UnknownMode {
        /// The entry as written.
        spec: String,
        /// The offending mode.
        mode: String,
    },
    /// A tmpfs target that is not an absolute path.
    #[error("invalid tmpfs {spec:?}: target {target:?} must be an absolute path inside the container")]
    TmpfsRelativeTarget {
        /// The entry as written.
        spec: String,
        /// The offending target.
        target: String,
    },
    /// A tmpfs `size=` that is not a byte size.
    #[error("invalid tmpfs {spec:?}: {source}")]
    TmpfsSize {
        /// The entry as written.
        spec: String,
        /// Why the size is invalid.
        source: UnitError,
    },
    /// A tmpfs `mode=` that is not an octal file mode.
    #[error("invalid tmpfs {spec:?}: mode {mode:?} is not an octal file mode such as 1777")]
    TmpfsMode {
        /// The entry as written.
        spec: String,
        /// The offending mode.
        mode: String,
    },
    /// A tmpfs option that is neither a mount flag nor a known `key=value`.
    #[error(
        "invalid tmpfs {spec:?}: unknown option {option:?}; expected size=, mode=, uid=, gid=, \
         nr_inodes=, nr_blocks=, mpol= or a mount flag such as ro, noexec or nosuid"
    )]
    TmpfsOption {
        /// The entry as written.
        spec: String,
        /// The offending option.
        option: String,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

fn size_as_string<S: serde::Serializer>(size: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match size {
        Some(bytes) => serializer.collect_str(bytes),
        None => serializer.serialize_none(),
    }
}

/// Normalizes an absolute path lexically, as Go's `path.Clean` does (`/a/./b/../c/` → `/a/c`).
pub(crate) fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Splits at colons that are not inside a `${...}` reference, so uninterpolated
/// defaults like `${DATA:-./data}:/data` stay whole.
fn split_sections(spec: &str) -> Vec<&str> {
    let bytes = spec.as_bytes();
    let mut sections = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'$' if bytes.get(i + 1) == Some(&b'{') => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => {
                sections.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    sections.push(&spec[start..]);
    sections
}

fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~'])
}

fn apply_mode(spec: &str, modes: &str, mount: &mut Mount) -> Result<(), VolumeError> {
    for mode in modes.split(',') {
        match mode {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "nocopy" => {
                mount.volume = Some(VolumeOptions { nocopy: true, ..VolumeOptions::default() });
            }
            "z" | "Z" => mount.bind.get_or_insert_with(BindOptions::default).selinux = Some(mode.to_owned()),
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                mount.bind.get_or_insert_with(BindOptions::default).propagation = Some(mode.to_owned());
            }
            // macOS hints: accepted and, as compose does, dropped.
            "cached" | "delegated" | "consistent" => {}
            _ => {
                return Err(VolumeError::UnknownMode { spec: spec.to_owned(), mode: mode.to_owned() });
            }
        }
    }
    Ok(())
}

fn absolute_target(spec: &str, target: &str) -> Result<String, VolumeError> {
    if !target.starts_with('/') {
        return Err(VolumeError::RelativeTarget { spec: spec.to_owned(), target: target.to_owned() });
    }
    Ok(clean_absolute(target))
}

fn empty_mount(r#type: MountType, target: String) -> Mount {
    Mount {
        r#type,
        source: None,
        target,
        read_only: false,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
        image: None,
    }
}

/// Parses a short-syntax service volume such as `./data:/data:ro`, `db:/var/lib/db` or `/cache`.
///
/// A source starting with `/`, `.` or `~` makes a bind mount (with `create_host_path`),
/// anything else names a volume; a lone target is an anonymous volume. The target is
/// cleaned as compose does (`/data/` becomes `/data`); the source is left as written.
pub fn parse_volume_short(spec: &str) -> Result<Mount, VolumeError> {
    if spec.is_empty() {
        return Err(VolumeError::Empty);
    }
    // compose-go takes any one- or two-byte entry as a bare target and skips its defaults.
    if spec.len() <= 2 {
        return Ok(empty_mount(MountType::Volume, absolute_target(spec, spec)?));
    }
    let sections = split_sections(spec);
    if sections.len() > 3 {
        return Err(VolumeError::TooManyColons { spec: spec.to_owned() });
    }
    if sections.iter().any(|s| s.is_empty()) {
        return Err(VolumeError::EmptySection { spec: spec.to_owned() });
    }
    let (source, target, modes) = match sections.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, modes] => (Some(*source), *target, Some(*modes)),
        _ => {
            return Err(VolumeError::TooManyColons { spec: spec.to_owned() });
        }
    };
    let mut mount = empty_mount(MountType::Volume, absolute_target(spec, target)?);
    mount.source = source.map(str::to_owned);
    if let Some(modes) = modes {
        apply_mode(spec, modes, &mut mount)?;
    }
    if source.is_some_and(is_host_path) {
        mount.r#type = MountType::Bind;
        mount.bind.get_or_insert_with(BindOptions::default).create_host_path = true;
    } else {
        mount.volume.get_or_insert_with(VolumeOptions::default);
    }
    Ok(mount)
}

/// Parses a service-level `tmpfs` entry such as `/run:size=64m,mode=1777,noexec`,
/// keeping flags the mount model has no field for.
pub fn parse_tmpfs_entry(spec: &str) -> Result<TmpfsEntry, VolumeError> {
    // docker compose splits at the first colon; the rest is a mount option list.
    let (target, options) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') {
        return Err(VolumeError::TmpfsRelativeTarget { spec: spec.to_owned(), target: target.to_owned() });
    }
    let mut mount = empty_mount(MountType::Tmpfs, clean_absolute(target));
    let mut tmpfs = TmpfsOptions::default();
    let mut flags = Vec::new();
    // Empty items are skipped, as the docker engine does.
    for option in options.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (option, None),
        };
        match (key, value) {
            ("ro", None) => mount.read_only = true,
            ("rw", None) => mount.read_only = false,
            ("size", Some(size)) => {
                let bytes = units::parse_bytes(size)
                    .map_err(|source| VolumeError::TmpfsSize { spec: spec.to_owned(), source })?;
                tmpfs.size = Some(bytes);
            }
            ("mode", Some(mode)) => {
                let bits = u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|bits| *bits <= 0o7777 && !mode.starts_with('+'))
                    .ok_or_else(|| VolumeError::TmpfsMode { spec: spec.to_owned(), mode: mode.to_owned() })?;
                tmpfs.mode = Some(bits);
            }
            ("uid" | "gid" | "nr_inodes" | "nr_blocks" | "mpol", Some(value)) if !value.is_empty() => {
                flags.push(option.to_owned());
            }
            (
                "defaults" | "suid" | "nosuid" | "dev" | "nodev" | "exec" | "noexec" | "sync" | "async" | "dirsync"
                | "mand" | "nomand" | "atime" | "noatime" | "diratime" | "nodiratime" | "relatime" | "norelatime"
                | "strictatime" | "nostrictatime",
                None,
            ) => flags.push(option.to_owned()),
            _ => {
                return Err(VolumeError::TmpfsOption { spec: spec.to_owned(), option: option.to_owned() });
            }
        }
    }
    if tmpfs != TmpfsOptions::default() {
        mount.tmpfs = Some(tmpfs);
    }
    Ok(TmpfsEntry { mount, flags })
}

/// Parses a service-level `tmpfs` entry into a tmpfs mount; flags without a field in the
/// mount model are validated and dropped (use [`parse_tmpfs_entry`] to keep them).
pub fn parse_tmpfs_short(spec: &str) -> Result<Mount, VolumeError> {
    parse_tmpfs_entry(spec).map(|entry| entry.mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &str, target: &str) -> Mount {
        Mount {
            source: Some(source.to_owned()),
            bind: Some(BindOptions { create_host_path: true, ..BindOptions::default() }),
            ..empty_mount(MountType::Bind, target.to_owned())
        }
    }

    fn volume(source: Option<&str>, target: &str) -> Mount {
        Mount {
            source: source.map(str::to_owned),
            volume: Some(VolumeOptions::default()),
            ..empty_mount(MountType::Volume, target.to_owned())
        }
    }

    #[test]
    fn short_volumes_classify_like_compose() {
        let cases: Vec<(&str, Mount)> = vec![
            ("/data", volume(None, "/data")),
            ("/a", empty_mount(MountType::Volume, "/a".to_owned())),
            ("/", empty_mount(MountType::Volume, "/".to_owned())),
            ("db:/var/lib/db", volume(Some("db"), "/var/lib/db")),
            ("/host:/container", bind("/host", "/container")),
            ("./data:/data", bind("./data", "/data")),
            ("../up:/up", bind("../up", "/up")),
            (".env:/app/.env", bind(".env", "/app/.env")),
            ("~/cfg:/cfg", bind("~/cfg", "/cfg")),
            ("data/dir:/d", volume(Some("data/dir"), "/d")),
            ("c:/x", volume(Some("c"), "/x")),
            ("/src:/data/", bind("/src", "/data")),
            ("v:/a//b/./c/../d", volume(Some("v"), "/a/b/d")),
            ("v:/..", volume(Some("v"), "/")),
            ("${DATA:-./data}:/data", volume(Some("${DATA:-./data}"), "/data")),
            ("${A:-${B:-x:y}}:/t", volume(Some("${A:-${B:-x:y}}"), "/t")),
            ("$HOME:/h", volume(Some("$HOME"), "/h")),
            ("}:/t", volume(Some("}"), "/t")),
        ];
        for (spec, expected) in cases {
            assert_eq!(parse_volume_short(spec), Ok(expected), "{spec}");
        }
    }

    #[test]
    fn short_volume_modes() {
        let ro_bind = Mount { read_only: true, ..bind("./c", "/c") };
        let selinux_bind = Mount {
            bind: Some(BindOptions {
                selinux: Some("Z".to_owned()),
                propagation: Some("rslave".to_owned()),
                create_host_path: true,
                ..BindOptions::default()
            }),
            ..bind("/h", "/c")
        };
        let nocopy_volume = Mount {
            volume: Some(VolumeOptions { nocopy: true, ..VolumeOptions::default() }),
            ..volume(Some("v"), "/c")
        };
        let labelled_volume = Mount {
            bind: Some(BindOptions { selinux: Some("z".to_owned()), ..BindOptions::default() }),
            ..volume(Some("v"), "/c")
        };
        let nocopy_bind =
            Mount { volume: Some(VolumeOptions { nocopy: true, ..VolumeOptions::default() }), ..bind("/h", "/c") };
        let cached = bind("./src", "/src");
        let cases: Vec<(&str, Mount)> = vec![
            ("./c:/c:ro", ro_bind),
            ("./c:/c:rw", bind("./c", "/c")),
            ("./c:/c:ro,rw", bind("./c", "/c")),
            ("/h:/c:Z,rslave", selinux_bind),
            ("v:/c:nocopy", nocopy_volume),
            ("v:/c:z", labelled_volume),
            ("/h:/c:nocopy", nocopy_bind),
            ("./src:/src:cached", cached),
        ];
        for (spec, expected) in cases {
            assert_eq!(parse_volume_short(spec), Ok(expected), "{spec}");
        }
        for mode in ["shared", "rshared", "slave", "rslave", "private", "rprivate"] {
            let mount = parse_volume_short(&format!("/h:/c:{mode}")).expect(mode);
            assert_eq!(mount.bind.and_then(|b| b.propagation).as_deref(), Some(mode));
        }
        for mode in ["delegated", "consistent"] {
            let mount = parse_volume_short(&format!("v:/c:ro,{mode}")).expect(mode);
            assert_eq!((mount.read_only, mount.consistency), (true, None), "compose drops {mode}");
        }
    }

    #[test]
    fn short_volume_errors() {
        const SYNTAX: &str = "expected [SOURCE:]TARGET[:MODE]";
        let relative = |target: &str| format!("target {target:?} must be an absolute path inside the container");
        let unknown = |mode: &str| {
            format!(
                "unknown mode {mode:?}; expected ro, rw, z, Z, nocopy, shared, rshared, slave, rslave, private, rprivate, cached, delegated or consistent"
            )
        };
        let cases: Vec<(&str, String)> = vec![
            ("a", relative("a")),
            ("./", relative("./")),
            ("data", relative("data")),
            ("v:data", relative("data")),
            ("v:~/x", relative("~/x")),
            ("/h:${T}", relative("${T}")),
            ("v::/c", format!("empty section between colons; {SYNTAX}")),
            (":/c", format!("empty section between colons; {SYNTAX}")),
            ("v:/c:", format!("empty section between colons; {SYNTAX}")),
            ("v:/c:ro:x", format!("too many colons; {SYNTAX}")),
            ("C:\\x:/c:ro:x", format!("too many colons; {SYNTAX}")),
            ("v:/c:rx", unknown("rx")),
            ("v:/c:RO", unknown("RO")),
            ("v:/c:ro,", unknown("")),
            ("v:/c:ro, rw", unknown(" rw")),
        ];
        for (spec, reason) in cases {
            let err = parse_volume_short(spec).expect_err(spec);
            assert_eq!(err.to_string(), format!("invalid volume {spec:?}: {reason}"));
        }
        assert_eq!(parse_volume_short(""), Err(VolumeError::Empty));
        assert_eq!(VolumeError::Empty.to_string(), format!("invalid volume \"\": the entry is empty; {SYNTAX}"));
        let expected = VolumeError::UnknownMode { spec: "v:/c:x".to_owned(), mode: "x".to_owned() };
        assert_eq!(parse_volume_short("v:/c:x"), Err(expected));
    }

    #[test]
    fn tmpfs_entries() {
        let plain = parse_tmpfs_entry("/run").expect("plain");
        assert_eq!(plain.mount, empty_mount(MountType::Tmpfs, "/run".to_owned()));
        assert!(plain.flags.is_empty());

        let full = parse_tmpfs_entry("/run/:rw,size=64m,mode=1777,noexec,nosuid,uid=1000,,ro").expect("full");
        let expected = Mount {
            read_only: true,
            tmpfs: Some(TmpfsOptions { size: Some(64 << 20), mode: Some(0o1777) }),
            ..empty_mount(MountType::Tmpfs, "/run".to_owned())
        };
        assert_eq!(full.mount, expected);
        assert_eq!(full.flags, ["noexec", "nosuid", "uid=1000"]);

        assert_eq!(
            parse_tmpfs_short("/tmp:size=100000").map(|m| m.tmpfs),
            Ok(Some(TmpfsOptions { size: Some(100_000), mode: None }))
        );
        assert_eq!(parse_tmpfs_short("/tmp:mode=0").map(|m| m.tmpfs.and_then(|t| t.mode)), Ok(Some(0)));
        assert_eq!(parse_tmpfs_short("/tmp:").map(|m| (m.target, m.tmpfs)), Ok(("/tmp".to_owned(), None)));
    }

    #[test]
    fn tmpfs_errors() {
        let relative = |target: &str| format!("target {target:?} must be an absolute path inside the container");
        let mode = |mode: &str| format!("mode {mode:?} is not an octal file mode such as 1777");
        let option = |option: &str| {
            format!(
                "unknown option {option:?}; expected size=, mode=, uid=, gid=, nr_inodes=, nr_blocks=, mpol= or a mount flag such as ro, noexec or nosuid"
            )
        };
        let cases: Vec<(&str, String)> = vec![
            ("", relative("")),
            ("run", relative("run")),
            (":size=1m", relative("")),
            ("/t:size=1x", "invalid size \"1x\": unknown unit \"x\"; valid units are b, k, m, g, t and p, optionally followed by b or ib".to_owned()),
            ("/t:mode=9", mode("9")),
            ("/t:mode=", mode("")),
            ("/t:mode=+7", mode("+7")),
            ("/t:mode=-7", mode("-7")),
            ("/t:mode=17777", mode("17777")),
            ("/t:mode=99999999999", mode("99999999999")),
            ("/t:bogus", option("bogus")),
            ("/t:size", option("size")),
            ("/t:noexec=1", option("noexec=1")),
            ("/t:uid=", option("uid=")),
            ("/t:bind", option("bind")),
        ];
        for (spec, reason) in cases {
            let err = parse_tmpfs_entry(spec).expect_err(spec);
            assert_eq!(err.to_string(), format!("invalid tmpfs {spec:?}: {reason}"));
            assert_eq!(parse_tmpfs_short(spec), Err(err), "{spec}");
        }
        let source = units::parse_bytes("lots").expect_err("not a size");
        let expected = VolumeError::TmpfsSize { spec: "/t:size=lots".to_owned(), source };
        assert_eq!(parse_tmpfs_short("/t:size=lots"), Err(expected));
    }

    #[test]
    fn serializes_like_compose_config() {
        let json = |mount: &Mount| serde_json::to_string(mount).expect("serialize");
        assert_eq!(
            json(&parse_volume_short("./data:/data:ro").expect("bind")),
            r#"{"type":"bind","source":"./data","target":"/data","read_only":true,"bind":{"create_host_path":true}}"#
        );
        assert_eq!(
            json(&parse_volume_short("/var/lib/anonymous").expect("anonymous")),
            r#"{"type":"volume","target":"/var/lib/anonymous","volume":{}}"#
        );
        assert_eq!(
            json(&parse_volume_short("v:/c:z,nocopy").expect("volume")),
            r#"{"type":"volume","source":"v","target":"/c","bind":{"selinux":"z"},"volume":{"nocopy":true}}"#
        );
        assert_eq!(
            json(&parse_tmpfs_short("/opt/tmpfs:size=10000,mode=755").expect("tmpfs")),
            r#"{"type":"tmpfs","target":"/opt/tmpfs","tmpfs":{"size":"10000","mode":493}}"#
        );
        let image = Mount {
            source: Some("alpine".to_owned()),
            image: Some(ImageOptions { subpath: Some("etc".to_owned()) }),
            ..empty_mount(MountType::Image, "/img".to_owned())
        };
        assert_eq!(json(&image), r#"{"type":"image","source":"alpine","target":"/img","image":{"subpath":"etc"}}"#);
        let kinds = [MountType::Npipe, MountType::Cluster];
        assert_eq!(serde_json::to_string(&kinds).expect("serialize"), r#"["npipe","cluster"]"#);
    }
}
