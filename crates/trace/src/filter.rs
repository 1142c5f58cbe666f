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
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
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

/// Calls that, with `AT_EMPTY_PATH` in their flags, are about an open fd (glibc's
/// `fstat` is `newfstatat(fd, "", st, AT_EMPTY_PATH)`): not stopped, which spares a
/// stop per opened file. (syscall, index of the flags argument)
#[cfg(target_arch = "x86_64")]
const EMPTY_PATH_EXEMPT: &[(i64, u32)] = &[(libc::SYS_newfstatat, 3), (libc::SYS_statx, 2)];
#[cfg(not(target_arch = "x86_64"))]
const EMPTY_PATH_EXEMPT: &[(i64, u32)] = &[];

/// `offsetof(struct seccomp_data, args[i])`, low 32 bits (little endian).
fn arg_offset(i: u32) -> u32 {
    16 + 8 * i
}

/// A jump whose targets are absolute instruction indexes until [`resolve`].
enum Ins {
    Stmt(u16, u32),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Skip(usize),
    Allow,
    Trace,
}

/// The filter program, built before forking (the child must not allocate).
pub fn program() -> Vec<sock_filter> {
    let mut ins = vec![
        Ins::Stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        Ins::Jump {
            code: BPF_JEQ_K,
            k: AUDIT_ARCH,
            jt: Target::Next,
            jf: Target::Allow,
        },
        Ins::Stmt(BPF_LD_W_ABS, NR_OFFSET),
    ];
    for (nr, arg) in EMPTY_PATH_EXEMPT {
        ins.push(Ins::Jump {
            code: BPF_JEQ_K,
            k: *nr as u32,
            jt: Target::Next,
            jf: Target::Skip(2),
        });
        ins.push(Ins::Stmt(BPF_LD_W_ABS, arg_offset(*arg)));
        ins.push(Ins::Jump {
            code: BPF_JSET_K,
            k: libc::AT_EMPTY_PATH as u32,
            jt: Target::Allow,
            jf: Target::Trace,
        });
    }
    for call in TRACED {
        ins.push(Ins::Jump {
            code: BPF_JEQ_K,
            k: call.nr as u32,
            jt: Target::Trace,
            jf: Target::Next,
        });
    }
    let allow = ins.len();
    let trace = allow + 1;
    let mut prog: Vec<sock_filter> = ins
        .iter()
        .enumerate()
        .map(|(at, i)| match i {
            Ins::Stmt(code, k) => stmt(*code, *k),
            Ins::Jump { code, k, jt, jf } => {
                let rel = |t: &Target| -> u8 {
                    let to = match t {
                        Target::Next => at + 1,
                        Target::Skip(n) => at + 1 + n,
                        Target::Allow => allow,
                        Target::Trace => trace,
                    };
                    (to - at - 1) as u8
                };
                jump(*code, *k, rel(jt), rel(jf))
            }
        })
        .collect();
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_TRACE));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would for one call.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u32; 6]) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => {
                    acc = match ins.k {
                        ARCH_OFFSET => arch,
                        NR_OFFSET => nr,
                        k => args[((k - 16) / 8) as usize],
                    }
                }
                BPF_JEQ_K => {
                    pc += if acc == ins.k { ins.jt } else { ins.jf } as usize;
                }
                BPF_JSET_K => {
                    pc += if acc & ins.k != 0 { ins.jt } else { ins.jf } as usize;
                }
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other}"),
            }
            pc += 1;
        }
    }

    fn verdict(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run(prog, arch, nr, [0; 6])
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
        // fstat through newfstatat(fd, "", st, AT_EMPTY_PATH) names no path.
        let fstat = [3, 0, 0, libc::AT_EMPTY_PATH as u32, 0, 0];
        assert_eq!(
            run(&prog, AUDIT_ARCH, libc::SYS_newfstatat as u32, fstat),
            libc::SECCOMP_RET_ALLOW
        );
        let lstat = [
            libc::AT_FDCWD as u32,
            0,
            0,
            libc::AT_SYMLINK_NOFOLLOW as u32,
            0,
            0,
        ];
        assert_eq!(
            run(&prog, AUDIT_ARCH, libc::SYS_newfstatat as u32, lstat),
            libc::SECCOMP_RET_TRACE
        );
        let statx_fd = [3, 0, libc::AT_EMPTY_PATH as u32, 0, 0, 0];
        assert_eq!(
            run(&prog, AUDIT_ARCH, libc::SYS_statx as u32, statx_fd),
            libc::SECCOMP_RET_ALLOW
        );
        // A foreign ABI (i386) runs untraced rather than being killed.
        assert_eq!(
            verdict(&prog, 0x4000_0003, libc::SYS_openat as u32),
            libc::SECCOMP_RET_ALLOW
        );
    }
}
