//! The device policy on cgroup v2: a `BPF_CGROUP_DEVICE` program made from the same rules the
//! v1 `devices` controller is given, attached to the container's v2 cgroup, as runc's and
//! crun's device filters do. cgroup v2 has no devices controller; without the program a
//! container with `CAP_MKNOD` can make and open any host device.
//!
//! The program is small and built here instruction by instruction (no crate emits
//! cgroup-device programs without pulling in libbpf and a C toolchain): it reads the access
//! type, major and minor from its context and tests the rules newest first, so the last rule
//! that matches decides, as in the v1 controller; nothing matching is a denial.
//! Each attachment holds its own reference to the program and goes with its cgroup; a berth
//! process loads the program once and keeps that one descriptor (see `attach_device_program`).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One v1-style device rule: `a *:* rwm`, `c 1:3 rwm`, `c 136:* rwm` ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (`devices.allow`) or deny (`devices.deny`).
    pub allow: bool,
    /// `Some(b'c')` or `Some(b'b')`; `None` for `a` (every type).
    pub kind: Option<u8>,
    /// `None` for `*`.
    pub major: Option<u32>,
    /// `None` for `*`.
    pub minor: Option<u32>,
    /// [`ACC_MKNOD`] | [`ACC_READ`] | [`ACC_WRITE`].
    pub access: u32,
}

/// `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: u32 = 4;
/// `BPF_DEVCG_DEV_BLOCK`.
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;

/// Why a rule did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("device rule {rule:?}: {reason}")]
pub struct RuleError {
    rule: String,
    reason: &'static str,
}

impl DeviceRule {
    /// Parses the v1 form (`c 1:3 rwm`); `allow` says which file it would be written to.
    pub fn parse(allow: bool, text: &str) -> Result<Self, RuleError> {
        let fail = |reason| RuleError { rule: text.to_owned(), reason };
        let mut fields = text.split_ascii_whitespace();
        let (Some(kind), Some(numbers), Some(access), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(fail("expected `TYPE MAJOR:MINOR ACCESS`"));
        };
        let kind = match kind {
            "a" => None,
            "c" => Some(b'c'),
            "b" => Some(b'b'),
            _ => return Err(fail("the type is not a, b or c")),
        };
        let (major, minor) = numbers.split_once(':').ok_or_else(|| fail("expected MAJOR:MINOR"))?;
        let number = |n: &str| match n {
            "*" => Ok(None),
            n => n.parse::<u32>().map(Some).map_err(|_| fail("a device number is not a number or *")),
        };
        let mut bits = 0;
        for c in access.chars() {
            bits |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => return Err(fail("the access is not made of r, w and m")),
            };
        }
        if bits == 0 {
            return Err(fail("no access given"));
        }
        Ok(Self { allow, kind, major: number(major)?, minor: number(minor)?, access: bits })
    }

    /// Whether the rule covers a request (what the v1 controller checks): same type, same
    /// numbers, and every requested access among the rule's.
    pub fn matches(&self, kind: u8, major: u32, minor: u32, access: u32) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// What the v1 controller decides for a request under `rules` (the reference the program is
/// tested against): the last rule that covers it, else denied.
pub fn decide(rules: &[DeviceRule], kind: u8, major: u32, minor: u32, access: u32) -> bool {
    rules.iter().rev().find(|r| r.matches(kind, major, minor, access)).is_some_and(|r| r.allow)
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register in the low nibble, source in the high one.
    pub regs: u8,
    /// Jump offset or memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

/// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
pub const LDX_W: u8 = 0x61;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub const AND32_K: u8 = 0x54;
/// `BPF_ALU | BPF_RSH | BPF_K`.
pub const RSH32_K: u8 = 0x74;
/// `BPF_ALU | BPF_MOV | BPF_X`.
pub const MOV32_X: u8 = 0xbc;
/// `BPF_ALU | BPF_MOV | BPF_K`.
pub const MOV32_K: u8 = 0xb4;
/// `BPF_JMP | BPF_JNE | BPF_K`: if dst != imm, skip `off` instructions.
pub const JNE_K: u8 = 0x55;
/// `BPF_JMP | BPF_EXIT`.
pub const EXIT: u8 = 0x95;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

/// The program for `rules`. Registers after the prologue: r2 the device type, r3 the
/// requested access, r4 the major, r5 the minor (r1 is the context, then scratch).
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut insns = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        if let Some(kind) = rule.kind {
            block.push(insn(JNE_K, 2, 0, 0, if kind == b'b' { DEV_BLOCK } else { DEV_CHAR }));
        }
        let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
        if rule.access & all != all {
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, (!rule.access & all) as i32));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        // Device numbers are at most 32 bits wide in the context and 12/20 in the kernel, so
        // they fit the sign-extended immediate.
        for (register, number) in [(4, rule.major), (5, rule.minor)] {
            if let Some(n) = number {
                block.push(insn(JNE_K, register, 0, 0, n as i32));
            }
        }
        let unconditional = block.is_empty();
        block.push(insn(MOV32_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                // To the first instruction after the block.
                ins.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
            }
        }
        insns.extend(block);
        if unconditional {
            // Nothing after it can run, and the verifier refuses unreachable code.
            return insns;
        }
    }
    insns.push(insn(MOV32_K, 0, 0, 0, 0));
    insns.push(insn(EXIT, 0, 0, 0, 0));
    insns
}

/// Runs `program` on a request the way the kernel would, for the opcodes [`program`] emits;
/// `None` for anything else (an opcode it does not know, a jump out of the program).
pub fn interpret(program: &[Insn], kind: u8, major: u32, minor: u32, access: u32) -> Option<bool> {
    let dev_type = if kind == b'b' { DEV_BLOCK as u32 } else { DEV_CHAR as u32 };
    let context = [dev_type | (access << 16), major, minor];
    // Every register the program uses holds 32 bits (ldxw and the alu32 ops zero-extend).
    let mut regs = [0u32; 11];
    let mut pc = 0usize;
    loop {
        let ins = program.get(pc)?;
        let (dst, src) = (usize::from(ins.regs & 0x0f), usize::from(ins.regs >> 4));
        pc += 1;
        match ins.code {
            LDX_W if src == 1 => regs[dst] = *context.get(usize::try_from(ins.off).ok()? / 4)?,
            AND32_K => regs[dst] &= ins.imm as u32,
            RSH32_K => regs[dst] >>= ins.imm,
            MOV32_X => regs[dst] = regs[src],
            MOV32_K => regs[dst] = ins.imm as u32,
            // A 64-bit compare: the zero-extended register against the sign-extended immediate.
            JNE_K if i64::from(regs[dst]) != i64::from(ins.imm) => pc = pc.checked_add_signed(isize::from(ins.off))?,
            JNE_K => {}
            EXIT => return Some(regs[0] != 0),
            _ => return None,
        }
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the cgroup's ancestors still run (all must allow), and a later attach to the
/// same cgroup is not refused, as runc attaches.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i32> {
    // SAFETY: `attr` is a live, initialised `repr(C)` prefix of `union bpf_attr` for `cmd`, and
    // its size is passed, so the kernel reads and writes only within it; any pointers inside
    // point at buffers the caller keeps alive for the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T as *mut c_void, size_of::<T>()) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { i32::try_from(ret).map_err(io::Error::other) }
}

/// Loads `program` as a cgroup device program; a refusal by the verifier comes with its log.
pub fn load(program: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"berth_devcg");
    let attr = |log: &mut Vec<u8>| LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(program.len()).unwrap_or(u32::MAX),
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: u32::try_from(log.len()).unwrap_or(u32::MAX),
        log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..LoadAttr::default()
    };
    let mut no_log = Vec::new();
    match bpf(BPF_PROG_LOAD, &mut attr(&mut no_log)) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EINVAL)) => {
            let mut log = vec![0u8; 16 * 1024];
            let again = bpf(BPF_PROG_LOAD, &mut attr(&mut log));
            if let Ok(fd) = again {
                // SAFETY: as above.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            Err(io::Error::new(e.kind(), format!("{e}; verifier: {}", tail.join(" / "))))
        }
        Err(e) => Err(e),
    }
}

/// Attaches a loaded device program to the cgroup directory `dir` (a cgroup v2 directory).
pub fn attach(program: &OwnedFd, dir: &Path) -> io::Result<()> {
    let cgroup = open_dir(dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// How many device programs are attached to the cgroup directory `dir` itself.
pub fn attached(dir: &Path) -> io::Result<u32> {
    let cgroup = open_dir(dir)?;
    let mut attr =
        QueryAttr { target_fd: cgroup.as_raw_fd() as u32, attach_type: BPF_CGROUP_DEVICE, ..QueryAttr::default() };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok(attr.prog_cnt)
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)?;
    Ok(OwnedFd::from(file))
}

/// Loads the program for `rules` and attaches it to `dir`.
pub fn apply(rules: &[DeviceRule], dir: &Path) -> io::Result<()> {
    let fd = load(&program(rules))?;
    attach(&fd, dir)
}
