//! The seccomp-bpf program, compiled from the policy's [`SeccompPolicy`]:
//! for each ABI the program can use (x86-64, and i386 through `int 0x80` or a
//! 32-bit binary) it refuses the denied calls and namespace flags of `clone`
//! with EPERM, answers `clone3` with ENOSYS (C libraries then fall back to
//! `clone`, whose flags the filter can read), stops (SECCOMP_RET_TRACE) on
//! the traced file calls when tracing, and lets everything else run at full
//! speed — or, when recording every call for a seccomp profile, stops on every
//! call it does not refuse. x32 numbers are refused, any other ABI kills the process.
//!
//! Written out rather than built with a filter crate so that the traced and
//! refused sets of both ABIs share one program whose every jump is checked.

use libc::sock_filter;

use crate::policy::SeccompPolicy;
use crate::syscalls::Abi;
use crate::TraceError;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// The bit that marks an x32 call on the x86-64 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_TRACE: u32 = libc::SECCOMP_RET_TRACE;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// `offsetof(struct seccomp_data, args[i])`, low 32 bits (little endian).
fn arg_offset(i: u32) -> u32 {
    16 + 8 * i
}

/// Calls that, with `AT_EMPTY_PATH` in their flags, are about an open fd (glibc's
/// `fstat` is `newfstatat(fd, "", st, AT_EMPTY_PATH)`): not stopped, which spares a
/// stop per opened file. (syscall, index of the flags argument)
fn empty_path_exempt(abi: Abi) -> &'static [(&'static str, u32)] {
    match abi {
        Abi::X86_64 => &[("newfstatat", 3), ("statx", 2)],
        Abi::I386 => &[("fstatat64", 3), ("statx", 2)],
    }
}

/// Where a jump goes, resolved per section.
#[derive(Clone, Copy)]
enum Target {
    Next,
    Skip(usize),
    Ret(u32),
}

enum Ins {
    Load(u32),
    /// An unconditional jump to one of the section's returns.
    Return(u32),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
}

/// The returns every section ends with, in this order.
const RETURNS: [u32; 4] = [RET_ALLOW, RET_TRACE, RET_EPERM, RET_ENOSYS];

/// Which calls stop for the tracer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stops {
    /// None: the filter only refuses (build steps).
    Never,
    /// The file calls that name a path.
    FileCalls,
    /// Every call the filter does not refuse (for a seccomp profile of the run).
    EveryCall,
}

fn eq(k: u32, jt: Target, jf: Target) -> Ins {
    Ins::Jump {
        code: BPF_JEQ_K,
        k,
        jt,
        jf,
    }
}

/// The instructions for one ABI, with its own returns at the end so that
/// every jump stays short.
fn section(abi: Abi, policy: &SeccompPolicy, stops: Stops) -> Result<Vec<sock_filter>, TraceError> {
    let nr = |name: &str| abi.number(name);
    // What a call the filter neither refuses nor singles out gets.
    let pass = if stops == Stops::EveryCall {
        RET_TRACE
    } else {
        RET_ALLOW
    };
    let mut ins = vec![Ins::Load(NR_OFFSET)];
    if abi == Abi::X86_64 {
        ins.push(Ins::Jump {
            code: BPF_JGE_K,
            k: X32_SYSCALL_BIT,
            jt: Target::Ret(RET_EPERM),
            jf: Target::Next,
        });
    }
    if stops == Stops::FileCalls {
        for (name, arg) in empty_path_exempt(abi) {
            let Some(n) = nr(name) else { continue };
            ins.push(eq(n, Target::Next, Target::Skip(2)));
            ins.push(Ins::Load(arg_offset(*arg)));
            ins.push(Ins::Jump {
                code: BPF_JSET_K,
                k: libc::AT_EMPTY_PATH as u32,
                jt: Target::Ret(RET_ALLOW),
                jf: Target::Ret(RET_TRACE),
            });
        }
    }
    if policy.deny_clone_flags != 0 {
        if let Some(n) = nr("clone") {
            ins.push(eq(n, Target::Next, Target::Skip(2)));
            ins.push(Ins::Load(arg_offset(0)));
            ins.push(Ins::Jump {
                code: BPF_JSET_K,
                // The namespace bits all lie in the low 32 bits of the flags.
                k: policy.deny_clone_flags as u32,
                jt: Target::Ret(RET_EPERM),
                jf: Target::Ret(pass),
            });
        }
    }
    if policy.clone3_enosys {
        if let Some(n) = nr("clone3") {
            ins.push(eq(n, Target::Ret(RET_ENOSYS), Target::Next));
        }
    }
    for name in &policy.deny {
        if let Some(n) = nr(name) {
            ins.push(eq(n, Target::Ret(RET_EPERM), Target::Next));
        }
    }
    if stops == Stops::FileCalls {
        for call in abi.traced() {
            ins.push(eq(call.nr, Target::Ret(RET_TRACE), Target::Next));
        }
    }
    // Falls through to the first return: ALLOW (TRACE when every call stops).
    if stops == Stops::EveryCall {
        ins.push(Ins::Return(RET_TRACE));
    }
    let first_ret = ins.len();
    let mut out = Vec::with_capacity(ins.len() + RETURNS.len());
    for (at, i) in ins.iter().enumerate() {
        out.push(match i {
            Ins::Load(k) => stmt(BPF_LD_W_ABS, *k),
            // BPF_JA takes its (32-bit) offset in `k`.
            Ins::Return(r) => {
                let to = first_ret + RETURNS.iter().position(|x| x == r).unwrap_or(0);
                stmt(BPF_JA, (to - at - 1) as u32)
            }
            Ins::Jump { code, k, jt, jf } => {
                let rel = |t: &Target| -> Result<u8, TraceError> {
                    let to = match t {
                        Target::Next => at + 1,
                        Target::Skip(n) => at + 1 + n,
                        Target::Ret(r) => {
                            first_ret + RETURNS.iter().position(|x| x == r).unwrap_or(0)
                        }
                    };
                    u8::try_from(to - at - 1).map_err(|_| {
                        TraceError::Config("the seccomp filter has a jump too long for BPF".into())
                    })
                };
                sock_filter {
                    code: *code,
                    jt: rel(jt)?,
                    jf: rel(jf)?,
                    k: *k,
                }
            }
        });
    }
    out.extend(RETURNS.iter().map(|r| stmt(BPF_RET_K, *r)));
    Ok(out)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// The filter program, built before forking (the child must not allocate).
/// `stops` says which calls of both ABIs stop for the tracer.
pub fn program(policy: &SeccompPolicy, stops: Stops) -> Result<Vec<sock_filter>, TraceError> {
    let sections: Vec<Vec<sock_filter>> = Abi::ALL
        .iter()
        .map(|abi| section(*abi, policy, stops))
        .collect::<Result<_, _>>()?;
    // Header: load arch; per ABI `jeq arch ? next : skip 1` then `ja section`; else kill.
    let header_len = 1 + 2 * sections.len() + 1;
    let mut prog = vec![stmt(BPF_LD_W_ABS, ARCH_OFFSET)];
    let mut start = header_len;
    for (abi, body) in Abi::ALL.iter().zip(&sections) {
        prog.push(sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: abi.audit_arch(),
        });
        let here = prog.len();
        prog.push(stmt(BPF_JA, (start - here - 1) as u32));
        start += body.len();
    }
    prog.push(stmt(BPF_RET_K, RET_KILL));
    for body in sections {
        prog.extend(body);
    }
    if prog.len() > libc::BPF_MAXINSNS as usize {
        return Err(TraceError::Config(
            "the seccomp filter is longer than the kernel allows".into(),
        ));
    }
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, DENIED_SYSCALLS};

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
                BPF_JEQ_K => pc += if acc == ins.k { ins.jt } else { ins.jf } as usize,
                BPF_JGE_K => pc += if acc >= ins.k { ins.jt } else { ins.jf } as usize,
                BPF_JSET_K => pc += if acc & ins.k != 0 { ins.jt } else { ins.jf } as usize,
                BPF_JA => pc += ins.k as usize,
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other}"),
            }
            pc += 1;
        }
    }

    fn verdict(prog: &[sock_filter], abi: Abi, name: &str) -> u32 {
        let nr = abi.number(name).unwrap_or_else(|| panic!("{name}"));
        run(prog, abi.audit_arch(), nr, [0; 6])
    }

    fn policy() -> SeccompPolicy {
        Policy::docker_default(crate::idmap::IdMapping::single(0, 0, 0, 0)).seccomp
    }

    #[test]
    fn traces_file_calls_of_both_abis() {
        let prog = program(&policy(), Stops::FileCalls).unwrap();
        for abi in Abi::ALL {
            for call in abi.traced() {
                assert_eq!(
                    verdict(&prog, abi, call.name),
                    RET_TRACE,
                    "{abi:?} {}",
                    call.name
                );
            }
        }
        let x64 = Abi::X86_64.audit_arch();
        for nr in [0, 1, 9, 3] {
            // read, write, mmap, close
            assert_eq!(run(&prog, x64, nr, [0; 6]), RET_ALLOW);
        }
        // fstat through newfstatat(fd, "", st, AT_EMPTY_PATH) names no path.
        let fstat = [3, 0, 0, libc::AT_EMPTY_PATH as u32, 0, 0];
        assert_eq!(run(&prog, x64, 262, fstat), RET_ALLOW);
        let lstat = [libc::AT_FDCWD as u32, 0, 0, 0x100, 0, 0];
        assert_eq!(run(&prog, x64, 262, lstat), RET_TRACE);
        assert_eq!(
            run(&prog, x64, 332, [3, 0, libc::AT_EMPTY_PATH as u32, 0, 0, 0]),
            RET_ALLOW
        );
        let i386 = Abi::I386.audit_arch();
        assert_eq!(run(&prog, i386, 300, fstat), RET_ALLOW);
        assert_eq!(run(&prog, i386, 5, [0; 6]), RET_TRACE);
    }

    #[test]
    fn recording_stops_on_every_call_it_does_not_refuse() {
        let prog = program(&policy(), Stops::EveryCall).unwrap();
        let x64 = Abi::X86_64.audit_arch();
        for nr in [0, 1, 9, 3, 257, 262, 435 - 1] {
            assert_eq!(run(&prog, x64, nr, [0; 6]), RET_TRACE, "{nr}");
        }
        let fstat = [3, 0, 0, libc::AT_EMPTY_PATH as u32, 0, 0];
        assert_eq!(run(&prog, x64, 262, fstat), RET_TRACE);
        assert_eq!(run(&prog, Abi::I386.audit_arch(), 3, [0; 6]), RET_TRACE);
        assert_eq!(verdict(&prog, Abi::X86_64, "mount"), RET_EPERM);
        assert_eq!(verdict(&prog, Abi::I386, "clone3"), RET_ENOSYS);
    }

    #[test]
    fn refuses_what_docker_refuses_on_both_abis_traced_or_not() {
        for stops in [Stops::FileCalls, Stops::Never, Stops::EveryCall] {
            let trace = stops != Stops::Never;
            let prog = program(&policy(), stops).unwrap();
            for abi in Abi::ALL {
                for name in DENIED_SYSCALLS {
                    if abi.number(name).is_some() {
                        assert_eq!(verdict(&prog, abi, name), RET_EPERM, "{abi:?} {name}");
                    }
                }
                assert_eq!(verdict(&prog, abi, "clone3"), RET_ENOSYS);
                let clone = abi.number("clone").unwrap();
                let pass = if stops == Stops::EveryCall {
                    RET_TRACE
                } else {
                    RET_ALLOW
                };
                let fork_like = [libc::SIGCHLD as u32, 0, 0, 0, 0, 0];
                assert_eq!(run(&prog, abi.audit_arch(), clone, fork_like), pass);
                let thread = [(libc::CLONE_VM | libc::CLONE_THREAD) as u32, 0, 0, 0, 0, 0];
                assert_eq!(run(&prog, abi.audit_arch(), clone, thread), pass);
                for flag in [
                    libc::CLONE_NEWUSER,
                    libc::CLONE_NEWNS,
                    libc::CLONE_NEWPID,
                    libc::CLONE_NEWNET,
                ] {
                    let args = [flag as u32 | libc::SIGCHLD as u32, 0, 0, 0, 0, 0];
                    assert_eq!(run(&prog, abi.audit_arch(), clone, args), RET_EPERM);
                }
            }
            let x64 = Abi::X86_64.audit_arch();
            // Untraced, file calls run freely; x32 numbers are refused; other ABIs die.
            if !trace {
                assert_eq!(verdict(&prog, Abi::X86_64, "openat"), RET_ALLOW);
            }
            assert_eq!(run(&prog, x64, X32_SYSCALL_BIT | 257, [0; 6]), RET_EPERM);
            assert_eq!(run(&prog, 0x4000_0028, 5, [0; 6]), RET_KILL);
        }
    }
}
