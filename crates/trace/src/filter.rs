//! The seccomp-bpf program: stop (SECCOMP_RET_TRACE) on the file syscalls of
//! [`crate::syscalls::TRACED`], let everything else run at full speed.
//!
//! Written out rather than built with a filter crate because the one crate made
//! for it kills the process on a foreign architecture (an i386 binary in an
//! amd64 image); here such calls are simply not traced.

use libc::sock_filter;

use crate::syscalls::TRACED;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(not(target_arch = "x86_64"))]
const AUDIT_ARCH: u32 = 0;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The filter program, built before forking (the child must not allocate).
pub fn program() -> Vec<sock_filter> {
    let n = TRACED.len();
    // Layout: [ld arch, jeq arch, ld nr, jeq nr_0 .. jeq nr_{n-1}, ret allow, ret trace].
    let allow = 3 + n;
    let trace = allow + 1;
    let mut prog = Vec::with_capacity(trace + 1);
    prog.push(stmt(BPF_LD_W_ABS, ARCH_OFFSET));
    prog.push(jump(BPF_JEQ_K, AUDIT_ARCH, 0, (allow - 2) as u8));
    prog.push(stmt(BPF_LD_W_ABS, NR_OFFSET));
    for (i, call) in TRACED.iter().enumerate() {
        let at = 3 + i;
        prog.push(jump(BPF_JEQ_K, call.nr as u32, (trace - at - 1) as u8, 0));
    }
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_TRACE));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would for one (arch, nr) pair.
    fn verdict(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => acc = if ins.k == ARCH_OFFSET { arch } else { nr },
                BPF_JEQ_K => {
                    pc += if acc == ins.k { ins.jt } else { ins.jf } as usize;
                }
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other}"),
            }
            pc += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn traces_file_calls_only() {
        let prog = program();
        assert!(prog.len() < 255, "jump offsets must fit a byte");
        for call in TRACED {
            assert_eq!(
                verdict(&prog, AUDIT_ARCH, call.nr as u32),
                libc::SECCOMP_RET_TRACE
            );
        }
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_mmap,
            libc::SYS_close,
        ] {
            assert_eq!(
                verdict(&prog, AUDIT_ARCH, nr as u32),
                libc::SECCOMP_RET_ALLOW
            );
        }
        // A foreign ABI (i386) runs untraced rather than being killed.
        assert_eq!(
            verdict(&prog, 0x4000_0003, libc::SYS_openat as u32),
            libc::SECCOMP_RET_ALLOW
        );
    }
}
