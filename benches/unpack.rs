//! Layer unpacking speed: a 105 MB layer of 25,600 files of 4 KiB in 256 directories, unpacked
//! into a fresh directory each time (root only: the unpacker sets owners and device nodes).
//! The directory is on tmpfs (`/dev/shm`) so the number is the unpacker's, not the disk's: on
//! this project's VM disk, creating a file costs ~0.4 ms whoever creates it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use berth::image::unpack::unpack;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let body = vec![b'x'; 4096];
    for d in 0..256 {
        let mut dir = header(tar::EntryType::Directory, 0o755, 0);
        builder.append_data(&mut dir, format!("d{d}/"), std::io::empty()).unwrap();
        for f in 0..100 {
            let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
            builder.append_data(&mut h, format!("d{d}/f{f}"), body.as_slice()).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

fn bench_unpack(c: &mut Criterion) {
    if !nix::unistd::geteuid().is_root() {
        // Criterion has no skip; say why and measure nothing rather than measure a failure.
        eprintln!("benches/unpack.rs: unpacking sets owners and needs root; not measured");
        return;
    }
    let tar = layer();
    let mut group = c.benchmark_group("unpack");
    group.sample_size(10).throughput(Throughput::Bytes(tar.len() as u64));
    group.bench_function("25600 files of 4 KiB", |b| {
        b.iter_batched(
            || {
                let tmpfs = std::path::Path::new("/dev/shm");
                let base = if tmpfs.is_dir() { tmpfs.to_path_buf() } else { std::env::temp_dir() };
                tempfile::Builder::new().prefix("berth-bench-unpack-").tempdir_in(base).unwrap()
            },
            |dir| {
                let dest = dir.path().join("layer");
                std::fs::create_dir(&dest).unwrap();
                unpack(tar.as_slice(), &dest).unwrap();
                dir
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_unpack);
criterion_main!(benches);
