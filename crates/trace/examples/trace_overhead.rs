//! Times one command in whittle's sandbox with and without file-syscall tracing,
//! for bench/trace.sh: `trace_overhead ROOT RUNS CMD [ARGS...]`.
//! Prints `untraced SECONDS` and `traced SECONDS CALLS PATHS` (medians of RUNS).

use std::path::PathBuf;
use std::time::Duration;

use whittle_trace::{run, Exit, IdMapping, Network, Policy, Probes, RunOptions, Sandbox};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, runs, cmd @ ..] = args.as_slice() else {
        return Err("usage: trace_overhead ROOT RUNS CMD [ARGS...]".into());
    };
    let runs: usize = runs.parse()?;
    let logs = tempfile::tempdir()?;
    let once = |trace_files: bool| -> Result<(f64, u64, usize), Box<dyn std::error::Error>> {
        let sandbox = Sandbox {
            root: PathBuf::from(root),
            argv: cmd.to_vec(),
            env: vec!["PATH=/bin:/usr/bin".into()],
            path: vec!["/bin".into(), "/usr/bin".into()],
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            groups: vec![0],
            network: Network::Loopback,
            hostname: "bench".into(),
            trace_files,
            record_syscalls: false,
            policy: Policy::docker_default(IdMapping::for_caller(0, 0)),
            owners: vec![],
        };
        let opts = RunOptions {
            probes: Probes {
                duration: Some(Duration::from_secs(3600)),
                ..Probes::default()
            },
            exposed_ports: vec![],
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(1),
            ready_ports: vec![],
            log_dir: logs.path().to_path_buf(),
        };
        let out = run(sandbox, &opts)?;
        if out.exit != Some(Exit::Code(0)) {
            return Err(format!(
                "{} failed: {:?}\n{}",
                cmd.join(" "),
                out.exit,
                whittle_trace::tail_of(&out.log)
            )
            .into());
        }
        Ok((out.seconds, out.trace.calls, out.trace.paths.len()))
    };
    let mut untraced = Vec::new();
    let mut traced = Vec::new();
    let (mut calls, mut paths) = (0, 0);
    for _ in 0..runs {
        untraced.push(once(false)?.0);
        let (t, c, p) = once(true)?;
        traced.push(t);
        (calls, paths) = (c, p);
    }
    println!("untraced {:.3}", median(untraced));
    println!("traced {:.3} {calls} {paths}", median(traced));
    Ok(())
}
