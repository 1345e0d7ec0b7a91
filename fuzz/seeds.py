#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/seeds/<target>/ (not checked in; run.sh
merges them into fuzz/corpus/<target>, which is). Stdlib only.

  unpack      small layers: the two-layer test image's upper layer (tests/fixtures/upper-layer.py),
              a busybox-like tree, and hostile ones (../, absolute names, symlinks followed by
              writes, hard links out, whiteouts, long GNU/PAX names, xattrs, devices), each also
              gzip- and zstd-compressed
  dns         queries built by hand (A, AAAA, ANY, PTR, MX, EDNS, two questions, compression
              pointers, TCP flag, with an upstream answer)
  dockerfile  the repo's Dockerfiles, the Dockerfile texts in its tests, and hand-written ones
  control     one JSON line per control request, and broken ones
"""
import gzip
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
OUT = FUZZ / "seeds"


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# ---------------------------------------------------------------- layers


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for e in entries:
            name, kind = e[0], e[1]
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = e[3] if len(e) > 3 else 0o644
            info.mtime = 1700000000
            payload = None
            if kind == tarfile.REGTYPE:
                data = e[2] or b""
                info.size = len(data)
                payload = io.BytesIO(data)
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = e[2]
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = e[2]
            if len(e) > 4:
                info.pax_headers = e[4]
            tar.addfile(info, payload)
    return buf.getvalue()


R, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

LAYERS = {
    "upper": [("etc", D, None, 0o755), ("etc/.wh.motd", R, b""), ("data", D, None, 0o755),
              ("data/.wh..wh..opq", R, b""), ("data/c", R, b"c\n")],
    "busybox": [("bin", D, None, 0o755), ("bin/busybox", R, b"\x7fELF" + b"\0" * 60, 0o755),
                ("bin/sh", S, "busybox"), ("bin/ls", S, "busybox"), ("bin/ln", H, "bin/busybox"),
                ("etc", D, None, 0o755), ("etc/passwd", R, b"root:x:0:0:root:/root:/bin/sh\n"),
                ("tmp", D, None, 0o1777), ("data/a", R, b"a\n"), ("dev/null", tarfile.CHRTYPE, (1, 3)),
                ("run/fifo", tarfile.FIFOTYPE, None)],
    "dotdot": [("../outside/canary", R, b"pwned"), ("a/../../outside/x", R, b"x")],
    "absolute": [("/etc/passwd", R, b"x"), ("/../outside/canary", R, b"y"), ("/", D, None)],
    "symlink-write": [("l", S, "../outside"), ("l/canary", R, b"pwned"), ("abs", S, "/tmp"),
                      ("abs/x", R, b"x"), ("in", S, "sub"), ("sub/f", R, b"ok"), ("in/g", R, b"ok")],
    "symlink-replace": [("f", R, b"one"), ("f", S, "../outside/canary"), ("f", R, b"two"),
                        ("d", D, None), ("d", S, ".."), ("d/x", R, b"x")],
    "hardlink": [("h", H, "../outside/canary"), ("h2", H, "/etc/passwd"), ("s", S, "../outside"),
                 ("h3", H, "s/canary"), ("real", R, b"r"), ("h4", H, "real"), ("h4", R, b"w")],
    "whiteouts": [("x/.wh.y", R, b""), ("x/.wh..wh..opq", R, b""), (".wh..wh..opq", R, b""),
                  (".wh...", R, b""), (".wh.x/y", R, b""), (".wh..wh.plnk/1", R, b"l"),
                  ("x/.wh.", R, b""), (".wh.l", R, b"")],
    "meta": [("x", R, b"x", 0o4755, {"SCHILY.xattr.user.a": "b", "mtime": "1700000000.5"}),
             ("y", R, b"y", 0o644, {"SCHILY.xattr.trusted.overlay.opaque": "y"}),
             ("z", R, b"z", 0o644, {"GNU.sparse.size": "10"}),
             ("d", D, None, 0o755, {"uid": "4294967295"})],
    "long": [("a/" * 60 + "f", R, b"deep"), ("n" * 300, R, b"long name"), ("l" * 200, S, "t" * 300)],
}


def layers():
    for name, entries in LAYERS.items():
        data = tar_bytes(entries)
        write("unpack", name, data)
        write("unpack", name + ".gz", gzip.compress(data, mtime=0))
        if shutil.which("zstd"):
            z = subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
            write("unpack", name + ".zst", z)
    write("unpack", "gnu-longname", tar_bytes(LAYERS["long"], fmt=tarfile.GNU_FORMAT))
    write("unpack", "ustar", tar_bytes(LAYERS["busybox"], fmt=tarfile.USTAR_FORMAT))
    script = REPO / "tests/fixtures/upper-layer.py"
    if script.exists():
        tmp = OUT / "upper-layer.tar"
        subprocess.run([sys.executable, str(script), str(tmp)], check=True)
        write("unpack", "two-layer-upper", tmp.read_bytes())
        tmp.unlink()


# ---------------------------------------------------------------- DNS


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, qname, qtype, qclass=1, flags=0x0100, edns=None, questions=1, opcode=0):
    flags |= opcode << 11
    arcount = 1 if edns is not None else 0
    msg = struct.pack(">HHHHHH", qid, flags, questions, 0, 0, arcount)
    for _ in range(questions):
        msg += name(qname) + struct.pack(">HH", qtype, qclass)
    if edns is not None:
        size, version = edns
        msg += b"\0" + struct.pack(">HHBBHH", 41, size, 0, version, 0, 0)
    return msg


def answer_to(q, address):
    qid, flags = struct.unpack(">HH", q[:4])
    body = q[12:]
    head = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    qend = body.index(b"\0") + 5
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(address)
    return head + body[:qend] + rr


A, AAAA, PTR, MX, ANY, TXT = 1, 28, 12, 15, 255, 16


def dns():
    seeds = {
        "a-web": query(1, "web", A),
        "aaaa-web": query(2, "WeB.", AAAA),
        "any-web": query(3, "proj-web-1", ANY),
        "mx-web": query(4, "web", MX),
        "a-db": query(5, "db", A),
        "a-many": query(6, "many", A),
        "a-many-edns": query(7, "many", A, edns=(4096, 0)),
        "edns-v1": query(8, "web", A, edns=(1232, 1)),
        "ptr-v4": query(9, "2.0.18.172.in-addr.arpa", PTR),
        "ptr-v6": query(10, ".".join("2" + "0" * 29 + "df") + ".ip6.arpa", PTR),
        "two-questions": query(11, "web", A, questions=2),
        "notify": query(12, "web", A, opcode=4),
        "chaos": query(13, "version.bind", TXT, qclass=3),
        "root": query(14, ".", A),
        "forward": query(15, "example.com", A),
        "response": query(16, "web", A, flags=0x8180),
    }
    # A name through a compression pointer, and a pointer loop.
    seeds["pointer"] = struct.pack(">HHHHHH", 17, 0x0100, 1, 0, 0, 0) + b"\x03web\xc0\x0c" + struct.pack(">HH", A, 1)
    seeds["pointer-loop"] = struct.pack(">HHHHHH", 18, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack(">HH", A, 1)
    for key, q in seeds.items():
        write("dns", key + ".udp", b"\0" + q)
        write("dns", key + ".tcp", b"\1" + q)
    for key in ("forward", "ptr-v4", "a-many-edns"):
        q = seeds[key]
        up = answer_to(q, [93, 184, 216, 34])
        write("dns", key + ".upstream", b"\2" + struct.pack(">H", len(q)) + q + up)
        big = up + b"".join(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, i]) for i in range(60))
        big = big[:6] + struct.pack(">H", 61) + big[8:]
        write("dns", key + ".upstream-big", b"\2" + struct.pack(">H", len(q)) + q + big)


# ---------------------------------------------------------------- Dockerfiles

HANDWRITTEN = {
    "multi-stage": """# syntax=docker/dockerfile:1
ARG BASE=alpine:3.20
FROM ${BASE} AS build
ENV A=1 B="two words" C=${A:-x}
WORKDIR /src
COPY --chown=1000:1000 --chmod=0755 ["a b", "c", "/dst/"]
RUN --mount=type=cache,target=/root/.cache \\
    echo building && \\
    make
FROM scratch AS final
COPY --from=build /src/out /out
LABEL org.opencontainers.image.title="x" maintainer=me
EXPOSE 80/tcp 53/udp
VOLUME ["/data"]
USER app:app
HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD ["wget", "-q", "http://localhost/"]
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
ENTRYPOINT ["/out"]
CMD --help
""",
    "heredoc": """FROM busybox
RUN <<EOF
set -e
echo "$HOME"
EOF
RUN <<-"EOT" cat >/x && <<B sh
\techo literal $x
\tEOT
echo second
B
COPY <<conf /etc/app.conf
key=${VALUE}
conf
""",
    "escape": """# escape=`
FROM mcr.microsoft.com/windows
RUN dir `
    c:\\
ADD --link --checksum=sha256:abc http://x/y /y
""",
    "misc": """from busybox as Base
maintainer someone
arg X
env K V W
healthcheck none
onbuild run x
cmd ["a",
run echo \\

# comment in continuation
  done
""",
}


def dockerfiles():
    for key, text in HANDWRITTEN.items():
        write("dockerfile", key, text.encode())
    for path in list((REPO / "examples").rglob("Dockerfile*")) + list(Path("/work/shared/corpus").rglob("Dockerfile*")):
        if path.is_file() and path.stat().st_size < 65536:
            write("dockerfile", "repo-" + str(abs(hash(str(path)))), path.read_bytes())
    # Raw-string Dockerfiles in the tests.
    pattern = re.compile(r'r#"(.*?)"#', re.S)
    plain = re.compile(r'(?<![#r])"((?:[^"\\]|\\.)*)"', re.S)
    for src in [REPO / "src/build/dockerfile_tests.rs", REPO / "tests/build.rs"]:
        if not src.exists():
            continue
        for i, m in enumerate(pattern.finditer(src.read_text())):
            text = m.group(1)
            if re.search(r"(?im)^\s*FROM\s", text):
                write("dockerfile", f"{src.stem}-raw{i}", text.encode())
        for i, m in enumerate(plain.finditer(src.read_text())):
            text = unescape(m.group(1))
            if re.search(r"(?i)FROM ", text) and "\n" in text:
                write("dockerfile", f"{src.stem}-{i}", text.encode())


def unescape(literal):
    """A Rust string literal's text: continuation lines joined, the common escapes decoded."""
    literal = re.sub(r"\\\n\s*", "", literal)
    table = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(0)), literal)


# ---------------------------------------------------------------- control


def control():
    lines = {
        'ping': '"ping"',
        'ps': '"ps"',
        'unwatch': '"unwatch"',
        'up': '{"up":{"options":{"files":["compose.yaml"],"project_name":"p","project_directory":null,"env_files":[],"profiles":["*"],"services":[],"interpolate":true,"consistency":true,"working_dir":"/srv","os_env":{"HOME":"/root"},"stdin":null,"schema_cache":null},"services":["web","db"],"force_recreate":true,"no_recreate":false,"remove_orphans":false,"no_deps":false,"scale":{"web":2},"timeout":3,"watch":false,"renew_anon_volumes":false,"resume":false}}',
        'down': '{"down":{"timeout":10,"volumes":true}}',
        'halt': '{"halt":{"timeout":null}}',
        'stop': '{"stop":{"timeout":5,"services":["web","db"]}}',
        'restart': '{"restart":{"timeout":null,"services":[]}}',
        'start': '{"start":{"services":["web"]}}',
        'rm': '{"rm":{"volumes":false,"services":["web"]}}',
        'kill': '{"kill":{"signal":"SIGHUP","services":[]}}',
        'watch': '{"watch":{"services":["web"]}}',
        "truncated": '{"stop":{"timeout":5,"serv',
        "wrong-type": '{"down":{"timeout":"10","volumes":1}}',
        "old-text": "down 10 v",
    }
    for key, line in lines.items():
        write("control", key, (line + "\n").encode())


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    layers()
    dns()
    dockerfiles()
    control()
    for target in sorted(os.listdir(OUT)):
        print(target, len(os.listdir(OUT / target)))
