//! What each fuzz target does with one input, shared by the libFuzzer targets
//! (fuzz/fuzz_targets/*.rs) and the corpus replay in the main crate's tests/fuzz_corpus.rs, so
//! that CI runs the checked-in corpus through exactly the fuzzed code without libFuzzer.
//!
//! Every function must return for any input; a panic here is a finding (or, for the unpacker's
//! sentinel check, an escape from the layer directory). Each says whether the input got past the
//! first gate (loaded, parsed, answered, unpacked), so the replay can check that its corpus still
//! reaches the code behind it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth::build::dockerfile;
use berth::network::dns::{self, Records};
use berth::spec::{ProjectOptions, load};

/// Decompressed bytes one unpack input may expand to: a gzip or zstd bomb in 64 KiB would
/// otherwise spend the run writing gigabytes; the unpacker's own limits are tested elsewhere.
const MAX_LAYER: u64 = 64 << 20;

/// Any bytes as a stack file: every loader stage, the dependency graph and serialisation.
pub fn load_stack(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let opts = ProjectOptions {
        files: vec![PathBuf::from("-")],
        stdin: Some(text.to_owned()),
        profiles: vec!["*".into()],
        interpolate: true,
        consistency: true,
        working_dir: PathBuf::from("/nonexistent/berth-fuzz"),
        os_env: BTreeMap::from([("SET".to_owned(), "1".to_owned()), ("EMPTY".to_owned(), String::new())]),
        ..ProjectOptions::default()
    };
    if let Ok(loaded) = load(&opts) {
        if let Ok(graph) = berth::spec::validate::dependency_graph(&loaded.project) {
            let _ = graph.start_waves();
        }
        let _ = serde_json::to_string(&loaded.project);
        return true;
    }
    false
}

/// Any bytes as a Dockerfile: the parser, then what the builder does with a parsed file before
/// any I/O (stages, global args, target selection, word expansion of the values it expands).
pub fn dockerfile(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(df) = dockerfile::parse(text) else { return false };
    let stages = dockerfile::stages(&df);
    let _ = dockerfile::global_args(&df);
    let mut targets: Vec<Option<&str>> = vec![None];
    targets.extend(stages.iter().filter_map(|s| s.name.as_deref().map(Some)));
    for target in targets {
        if let Ok(needed) = dockerfile::needed_stages(&stages, target) {
            assert!(
                needed.iter().all(|&i| i < stages.len()),
                "needed_stages gave an index past the stages: {needed:?}"
            );
        }
    }
    let vars = |name: &str| match name {
        "SET" => Some("value with spaces".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let expand = |word: &str| {
        let _ = dockerfile::expand(word, &vars, df.escape);
    };
    for ins in &df.instructions {
        use dockerfile::InstructionKind as K;
        match &ins.kind {
            K::From { image, platform, .. } => {
                expand(image);
                platform.as_deref().map(expand);
            }
            K::Copy(args) | K::Add(args) => {
                args.sources.iter().for_each(|s| expand(s));
                expand(&args.dest);
                args.chown.as_deref().map(expand);
            }
            K::Env(pairs) | K::Label(pairs) => pairs.iter().for_each(|(k, v)| {
                expand(k);
                expand(v);
            }),
            K::Arg(args) => args.iter().filter_map(|(_, v)| v.as_deref()).for_each(expand),
            K::Workdir(w) | K::User(w) | K::Stopsignal(w) => expand(w),
            K::Expose(words) | K::Volume(words) => words.iter().for_each(|w| expand(w)),
            _ => {}
        }
        for doc in ins.heredocs.iter().filter(|d| d.expand) {
            expand(&doc.content);
        }
    }
    true
}

/// A project's records: a service with both address families, one with no address on the
/// client's networks, and a PTR for the first.
struct Table;

const WEB_V4: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
const WEB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

impl Records for Table {
    fn lookup(&self, _client: IpAddr, name: &str) -> Option<Vec<IpAddr>> {
        match name {
            "web" | "proj-web-1" | "alias.example" => Some(vec![WEB_V4.into(), WEB_V6.into()]),
            "db" => Some(Vec::new()),
            // Many records: the reply must be cut to the client's size, not overflow it.
            "many" => Some((0..=255).map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 1, i))).collect()),
            _ => None,
        }
    }

    fn reverse(&self, _client: IpAddr, address: IpAddr) -> Option<String> {
        (address == IpAddr::V4(WEB_V4) || address == IpAddr::V6(WEB_V6)).then(|| "proj-web-1".to_owned())
    }

    fn upstreams(&self, _client: IpAddr) -> Vec<SocketAddr> {
        Vec::new()
    }
}

/// A DNS message as the server gets it: byte 0 holds flags (bit 0: over TCP; bit 1: an upstream
/// answer follows), then with bit 1 a 2-byte big-endian query length, the query, and the
/// upstream's answer; without it, the rest is the query. Replies must fit what the client takes.
pub fn dns_message(data: &[u8]) -> bool {
    let Some((&flags, rest)) = data.split_first() else { return false };
    let tcp = flags & 1 != 0;
    let (query, upstream) = if flags & 2 != 0 {
        let Some((len, rest)) = rest.split_first_chunk::<2>() else { return false };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (query, answer) = rest.split_at(len);
        (query, Some(answer))
    } else {
        (rest, None)
    };
    let client = IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3));
    let Some(reply) = dns::respond(&Table, client, query, tcp, upstream) else { return false };
    let limit = if tcp { usize::from(u16::MAX) } else { 4096 };
    assert!(reply.len() <= limit, "a {}-byte reply over {}", reply.len(), if tcp { "TCP" } else { "UDP" });
    // A reply carries the query's id, so the client can match it.
    assert_eq!(reply.get(..2), query.get(..2), "the reply's id is not the query's");
    true
}

static SANDBOXES: AtomicU64 = AtomicU64::new(0);

/// `<base>/layer`, empty, where a layer unpacks, and `<base>/outside/canary`, which it must
/// never touch; `<base>` is removed on drop. The base is under `$BERTH_FUZZ_TMP` if set (fuzz/run.sh
/// points it at a tmpfs directory it removes afterwards), else the system's temp dir.
struct Sandbox {
    base: PathBuf,
}

/// Inode, mode, owner, group, link count, size, mtime (seconds and nanoseconds) and ctime.
type Stat = (u64, u32, u32, u32, u64, u64, i64, i64, i64);

/// What must not change outside the layer: every name in the base and in `outside/`, and the
/// canary's and the outside directory's identity, owner, mode, link count, size, times and content.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    base: Vec<String>,
    outside: Vec<String>,
    stats: Vec<Stat>,
    canary: Vec<u8>,
}

impl Sandbox {
    fn new() -> Self {
        let root = std::env::var_os("BERTH_FUZZ_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        let n = SANDBOXES.fetch_add(1, Ordering::Relaxed);
        let base = root.join(format!("berth-fuzz-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("layer")).expect("create the layer directory");
        fs::create_dir_all(base.join("outside/sub")).expect("create the sentinel directory");
        fs::write(base.join("outside/canary"), b"do not touch").expect("write the canary");
        Self { base }
    }

    fn snapshot(&self) -> Snapshot {
        let names = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            names.sort();
            names
        };
        let stat = |path: &Path| {
            fs::symlink_metadata(path).map_or((0, 0, 0, 0, 0, 0, 0, 0, 0), |m| {
                (m.ino(), m.mode(), m.uid(), m.gid(), m.nlink(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime())
            })
        };
        let outside = self.base.join("outside");
        Snapshot {
            base: names(&self.base),
            outside: names(&outside),
            stats: vec![stat(&outside), stat(&outside.join("canary")), stat(&outside.join("sub"))],
            canary: fs::read(outside.join("canary")).unwrap_or_default(),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Any bytes as a layer blob (plain, gzip or zstd): decompressed and unpacked into an empty
/// directory; whatever the outcome, nothing beside that directory may have changed.
pub fn unpack_layer(data: &[u8]) -> bool {
    let sandbox = Sandbox::new();
    let before = sandbox.snapshot();
    let unpacked = berth::image::unpack::decompress(Cursor::new(data.to_vec()))
        .and_then(|stream| berth::image::unpack::unpack(stream.take(MAX_LAYER), &sandbox.base.join("layer")))
        .is_ok();
    let after = sandbox.snapshot();
    assert_eq!(before, after, "unpacking changed something outside the layer directory");
    unpacked
}

/// Any bytes as one control-socket line: `decode_request`, then, for what decodes, encoding it
/// again must decode to the same request (the client and the server share these types).
pub fn control_line(data: &[u8]) -> bool {
    use berth::supervisor::control::decode_request;
    let Ok(request) = decode_request(data) else { return false };
    let again = serde_json::to_vec(&request).expect("a decoded request encodes");
    let decoded = decode_request(&again).expect("an encoded request decodes");
    assert_eq!(
        serde_json::to_value(&decoded).expect("encodes"),
        serde_json::to_value(&request).expect("encodes"),
        "a request changed through encode and decode"
    );
    true
}
