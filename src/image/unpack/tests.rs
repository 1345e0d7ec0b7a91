use super::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// A scratch tree: `dest` (empty) and a sentinel `outside` sibling that must never change.
struct Fixture {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let euid = nix::unistd::geteuid();
        assert!(euid.is_root(), "unpack tests chown, mknod and set trusted.* xattrs: run as root, not {euid}");
        let tmp = tempfile::tempdir().unwrap();
        let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "sentinel").unwrap();
        Self { tmp, dest, outside }
    }

    /// Everything under the fixture but `dest`: names, modes, sizes, link counts, contents.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)> {
        let (mut out, mut todo) = (BTreeMap::new(), vec![self.tmp.path().to_owned()]);
        while let Some(dir) = todo.pop() {
            for path in fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| *p != self.dest) {
                let md = fs::symlink_metadata(&path).unwrap();
                let body = if md.is_file() { fs::read(&path).unwrap() } else { Vec::new() };
                if md.is_dir() {
                    todo.push(path.clone());
                }
                out.insert(path, (md.mode(), md.size(), md.nlink(), body));
            }
        }
        out
    }

    /// A hostile layer must fail, name `entry`, and leave everything outside `dest` untouched.
    fn refuses(&self, layer: Layer, entry: &str) -> UnpackError {
        let before = self.snapshot();
        let err = unpack(layer.build().as_slice(), &self.dest).expect_err("hostile layer was accepted");
        assert!(err.to_string().contains(&format!("{entry:?}")), "error {err} does not name {entry:?}");
        assert_eq!(before, self.snapshot(), "{err}: something outside dest changed");
        assert_eq!(fs::read_to_string(self.outside.join("keep")).unwrap(), "sentinel");
        err
    }
}

/// Entries with raw GNU names (bypassing the tar crate's path checks) and PAX records.
type Pax = Vec<(String, Vec<u8>)>;

#[derive(Default)]
struct Layer(Vec<(tar::Header, Vec<u8>, Pax)>);

impl Layer {
    fn entry(mut self, kind: EntryType, name: &str, data: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        self.0.push((h, data.as_bytes().to_vec(), Vec::new()));
        self
    }
    fn file(self, name: &str, data: &str) -> Self {
        self.entry(EntryType::Regular, name, data)
    }
    fn dir(self, name: &str) -> Self {
        self.entry(EntryType::Directory, name, "")
    }
    fn link(self, kind: EntryType, name: &str, target: &str) -> Self {
        self.entry(kind, name, "").with(|h| h.set_link_name_literal(target).unwrap())
    }
    fn with(mut self, edit: impl FnOnce(&mut tar::Header)) -> Self {
        edit(&mut self.0.last_mut().unwrap().0);
        self
    }
    fn pax(mut self, key: &str, value: &[u8]) -> Self {
        self.0.last_mut().unwrap().2.push((key.to_owned(), value.to_vec()));
        self
    }
    fn build(self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (mut h, data, pax) in self.0 {
            if !pax.is_empty() {
                b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
            }
            h.set_cksum();
            b.append(&h, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }
}

fn getxattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
    let (path, mut buf) = (CString::new(path.as_os_str().as_encoded_bytes()).unwrap(), vec![0u8; 256]);
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its full length.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(usize::try_from(n).ok()?);
    Some(buf)
}

#[test]
fn normal_layer_round_trips() {
    let fx = Fixture::new();
    // cap_net_raw+ep in VFS_CAP_REVISION_2 layout.
    let cap = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let layer = Layer::default()
        .dir("etc/")
        .with(|h| h.set_mtime(1_000_000))
        .file("etc/hosts", "127.0.0.1")
        .with(|h| {
            h.set_uid(1000);
            h.set_gid(1001);
        })
        .pax("mtime", b"1234567.5")
        .pax("SCHILY.xattr.user.note", b"hello")
        .file("bin/ping", "ok")
        .with(|h| h.set_mode(0o4755))
        .pax("SCHILY.xattr.security.capability", &cap)
        .dir("tmp/")
        .with(|h| h.set_mode(0o1777))
        .link(EntryType::Symlink, "etc/localtime", "/usr/share/zoneinfo/UTC")
        .with(|h| h.set_uid(5))
        .link(EntryType::Link, "etc/hosts.bak", "etc/hosts")
        .entry(EntryType::Char, "dev/null", "")
        .with(|h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
        })
        .entry(EntryType::Fifo, "run/fifo", "")
        .with(|h| h.set_mode(0o640));
    let stats = unpack(layer.build().as_slice(), &fx.dest).unwrap();
    assert_eq!(stats, UnpackStats { entries: 8, bytes: 11, whiteouts: 0, opaque_dirs: 0 });

    let md = |p: &str| fs::symlink_metadata(fx.dest.join(p)).unwrap();
    let hosts = md("etc/hosts");
    assert_eq!((hosts.uid(), hosts.gid(), hosts.mode() & 0o7777), (1000, 1001, 0o644));
    assert_eq!((hosts.mtime(), hosts.mtime_nsec()), (1_234_567, 500_000_000), "PAX mtime wins");
    assert_eq!(fs::read_to_string(fx.dest.join("etc/hosts")).unwrap(), "127.0.0.1");
    assert_eq!(getxattr(&fx.dest.join("etc/hosts"), c"user.note").unwrap(), b"hello");
    assert_eq!((md("etc/hosts.bak").ino(), md("etc/hosts.bak").nlink()), (hosts.ino(), 2));
    assert_eq!(md("bin/ping").mode() & 0o7777, 0o4755, "setuid must survive chown");
    assert_eq!(getxattr(&fx.dest.join("bin/ping"), c"security.capability").unwrap(), cap);
    assert_eq!(md("bin").mode() & 0o7777, 0o755, "implicit parents are 0755");
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("etc").mtime(), 1_000_000, "directory mtimes are applied last");
    assert_eq!(fs::read_link(fx.dest.join("etc/localtime")).unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
    assert_eq!(md("etc/localtime").uid(), 5);
    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (makedev(1, 3), 0o666));
    assert!(md("run/fifo").file_type().is_fifo());
    assert_eq!(md("run/fifo").mode() & 0o7777, 0o640);
}

#[test]
fn whiteouts_become_overlay_form() {
    let fx = Fixture::new();
    let layer = Layer::default()
        .dir("a/")
        .file("a/.wh.gone", "")
        .file("a/.wh..wh..opq", "")
        .file("b/.wh..wh..opq", "")
        .file("c/keep", "x")
        .file(".wh.c", "")
        .file(".wh..wh.plnk/123", "aufs bookkeeping");
    let stats = unpack(layer.build().as_slice(), &fx.dest).unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 2));
    for hidden in ["a/gone", "c"] {
        let md = fs::symlink_metadata(fx.dest.join(hidden)).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0, "{hidden} is not a 0/0 whiteout");
    }
    for dir in ["a", "b"] {
        assert_eq!(getxattr(&fx.dest.join(dir), OPAQUE_XATTR).unwrap(), b"y");
    }
    let mut names: Vec<_> = fs::read_dir(&fx.dest).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"], "markers and AUFS metadata must not be written");
    assert_eq!(fs::read_dir(fx.dest.join("a")).unwrap().count(), 1);
}

#[test]
fn later_entries_replace_earlier_ones_without_following_symlinks() {
    let fx = Fixture::new();
    let outside = fx.outside.to_str().unwrap();
    let layer = Layer::default()
        .file("x/deep/child", "1")
        .file("x", "file now")
        .link(EntryType::Symlink, "s", &format!("{outside}/keep"))
        .file("s", "replaced")
        .link(EntryType::Symlink, "d", outside)
        .dir("d/")
        .file("d/inside", "ok")
        .file("dup", "first")
        .file("dup", "second");
    let before = fx.snapshot();
    unpack(layer.build().as_slice(), &fx.dest).unwrap();
    assert_eq!(before, fx.snapshot());
    let read = |p: &str| fs::read_to_string(fx.dest.join(p)).unwrap();
    assert_eq!(
        (read("x"), read("s"), read("d/inside"), read("dup")),
        ("file now".into(), "replaced".into(), "ok".into(), "second".into())
    );
    assert!(fs::symlink_metadata(fx.dest.join("d")).unwrap().is_dir());
}

#[test]
fn dotdot_escapes_are_refused() {
    let err = Fixture::new().refuses(Layer::default().file("../escape", "x"), "../escape");
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    Fixture::new().refuses(Layer::default().file("a/../../escape", "x"), "a/../../escape");
    Fixture::new().refuses(Layer::default().file("../outside/keep", "pwned"), "../outside/keep");
}

#[test]
fn absolute_names_are_relative_to_the_layer() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    unpack(Layer::default().file("/abs/path", "x").build().as_slice(), &fx.dest).unwrap();
    assert_eq!(fs::read_to_string(fx.dest.join("abs/path")).unwrap(), "x");
    assert_eq!(before, fx.snapshot());
}

#[test]
fn writes_through_escaping_symlinks_are_refused() {
    let fx = Fixture::new();
    let layer = Layer::default().link(EntryType::Symlink, "evil", fx.outside.to_str().unwrap());
    let err = fx.refuses(layer.file("evil/pwned", "x"), "evil/pwned");
    assert!(matches!(err, UnpackError::SymlinkEscape { .. }), "{err}");
    let chain = Layer::default().link(EntryType::Symlink, "a", "b").link(EntryType::Symlink, "b", "../..");
    Fixture::new().refuses(chain.file("a/x", "x"), "a/x");
    let up = Layer::default().link(EntryType::Symlink, "up", "../outside");
    Fixture::new().refuses(up.dir("up/sub/"), "up/sub/");
}

#[test]
fn hard_links_outside_the_layer_are_refused() {
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    Fixture::new().refuses(Layer::default().link(EntryType::Link, "pw", "/etc/passwd"), "pw");
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
    let err = Fixture::new().refuses(Layer::default().link(EntryType::Link, "ln", "../outside/keep"), "ln");
    assert!(matches!(err, UnpackError::LinkEscape { .. }), "{err}");
    let fx = Fixture::new();
    let layer = Layer::default().link(EntryType::Symlink, "evil", fx.outside.to_str().unwrap());
    fx.refuses(layer.link(EntryType::Link, "ln", "evil/keep"), "ln");
}

#[test]
fn forged_overlay_xattrs_are_refused() {
    let layer = Layer::default().dir("d/").pax("SCHILY.xattr.trusted.overlay.opaque", b"y");
    let err = Fixture::new().refuses(layer, "d/");
    assert!(matches!(err, UnpackError::ForbiddenXattr { .. }), "{err}");
}

#[test]
fn damaged_or_oversized_streams_are_refused() {
    let fx = Fixture::new();
    let mut layer = Layer::default().file("big", &"x".repeat(4096)).build();
    layer.truncate(1024);
    let err = unpack(layer.as_slice(), &fx.dest).unwrap_err();
    assert!(matches!(err, UnpackError::Contents { .. }) && err.to_string().contains("\"big\""), "{err}");

    let fx = Fixture::new();
    let layer = Layer::default().file("ok", "").file("f", "").pax("comment", &vec![b'a'; 17 << 20]).build();
    let err = unpack(layer.as_slice(), &fx.dest).unwrap_err();
    assert!(err.to_string().contains("16 MiB") && err.to_string().contains("\"ok\""), "{err}");

    fs::write(fx.dest.join("stale"), "").unwrap();
    let err = unpack(&[][..], &fx.dest).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn decompress_sniffs_gzip_and_zstd() {
    let fx = Fixture::new();
    let tar = Layer::default().file("f", "payload").build();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let (gz, zst) = (gz.finish().unwrap(), zstd::encode_all(tar.as_slice(), 3).unwrap());
    assert_eq!(
        [&gz, &zst, &tar].map(|b| Compression::detect(b)),
        [Compression::Gzip, Compression::Zstd, Compression::None]
    );
    for blob in [tar.clone(), gz, zst.clone(), Vec::new()] {
        let mut out = Vec::new();
        decompress(Cursor::new(blob.clone())).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, if blob.is_empty() { Vec::new() } else { tar.clone() });
    }
    assert_eq!(unpack(decompress(Cursor::new(zst)).unwrap(), &fx.dest).unwrap().bytes, 7);
    assert_eq!(fs::read_to_string(fx.dest.join("f")).unwrap(), "payload");
}
