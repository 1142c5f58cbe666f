//! End-to-end tests of `whittle fleet` (docs/CLI.md, "fleet"): a plan of the slim
//! fixtures' images (tests/fixtures/slim-images.sh and the Debian nginx fixture), run as
//! two shards as two pods of a Kubernetes Indexed Job would; every output is loaded into
//! dockerd and run; a second run skips everything; a changed source is slimmed again
//! alone; a job whose probe fails is reported failed while the others land.
//! Without docker or the fixtures the tests print `SKIP: ...` and pass, unless `CI` is set.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::docker_e2e::{reference, serve_and_fetch, whittle_ok, DockerCleanup};
use common::slim_e2e::{
    docker_load, docker_run_offline, expected_output, fixtures, nginx_include_args, run_whittle,
    tempdir, Run, PAGE,
};

/// The JSON lines of a fleet run, by job index.
fn outcomes(run: &Run) -> BTreeMap<u64, serde_json::Value> {
    run.stdout()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", run.describe()));
            (v["job"].as_u64().unwrap(), v)
        })
        .collect()
}

/// Runs both shards, each as its own process told its index as Kubernetes tells it.
fn both_shards(plan: &Path) -> BTreeMap<u64, serde_json::Value> {
    let mut all = BTreeMap::new();
    for index in ["0", "1"] {
        let run = common::slim_e2e::run_whittle_env(
            &["fleet".to_string(), plan.to_string_lossy().into_owned()],
            &[("JOB_COMPLETION_INDEX", index), ("JOB_COMPLETIONS", "2")],
        );
        // Shard 1 holds job 5, which fails; the exit status says so.
        let want = if index == "1" { 1 } else { 0 };
        assert_eq!(run.code(), Some(want), "{}", run.describe());
        assert!(
            run.stderr().contains(&format!("(shard {index}/2)")),
            "{}",
            run.describe()
        );
        all.extend(outcomes(&run));
    }
    all
}

fn statuses(all: &BTreeMap<u64, serde_json::Value>) -> Vec<String> {
    all.values()
        .map(|v| v["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_plan_in_two_shards_slims_everything_then_skips_and_redoes_only_what_changed() {
    let Some(fx) = fixtures() else { return };
    let tmp = tempdir();
    let mut cleanup = DockerCleanup::default();
    // Sources copied, so that one can be changed.
    let names = ["nginx", "musl", "busybox", "cxx", "loader"];
    for name in names {
        let from = if name == "nginx" {
            fx.nginx.join("nginx.tar")
        } else {
            fx.slim.join(format!("{name}.tar"))
        };
        fs::copy(&from, tmp.path().join(format!("{name}-src.tar"))).unwrap();
    }
    let quote = |s: &str| format!("{s:?}");
    let mut plan = String::from("[defaults]\nargs = []\n");
    for name in names {
        let tag = format!("whittle-e2e/fleet:{name}");
        cleanup.images.push(tag.clone());
        let src = reference(
            "docker-archive",
            &tmp.path().join(format!("{name}-src.tar")),
            None,
        );
        let dst = reference(
            "docker-archive",
            &tmp.path().join(format!("{name}.tar")),
            Some(&tag),
        );
        plan.push_str(&format!(
            "\n[[job]]\nsrc = {}\ndst = {}\n",
            quote(&src),
            quote(&dst)
        ));
        if name == "nginx" {
            let args: Vec<String> = nginx_include_args().iter().map(|a| quote(a)).collect();
            plan.push_str(&format!("args = [{}]\n", args.join(", ")));
        }
    }
    // A job whose probe cannot answer (the C++ demo prints and exits).
    let bad = reference("docker-archive", &tmp.path().join("bad.tar"), None);
    let cxx = reference("docker-archive", &tmp.path().join("cxx-src.tar"), None);
    plan.push_str(&format!(
        "\n[[job]]\nsrc = {}\ndst = {}\nargs = [\"--http-probe\", \"9/\"]\n",
        quote(&cxx),
        quote(&bad)
    ));
    let plan_path = tmp.path().join("plan.toml");
    fs::write(&plan_path, &plan).unwrap();

    let first = both_shards(&plan_path);
    assert_eq!(first.len(), 6, "{first:?}");
    assert_eq!(
        statuses(&first),
        ["slimmed", "slimmed", "slimmed", "slimmed", "slimmed", "failed"]
    );
    assert!(
        first[&5]["error"].as_str().unwrap().contains("probe"),
        "{:?}",
        first[&5]
    );
    assert!(
        !tmp.path().join("bad.tar").exists(),
        "a failed job wrote its output"
    );
    for (i, name) in names.iter().enumerate() {
        let v = &first[&(i as u64)];
        assert!(
            v["output_bytes"].as_u64().unwrap() < v["source_bytes"].as_u64().unwrap(),
            "{v}"
        );
        let tag = format!("whittle-e2e/fleet:{name}");
        docker_load(&tmp.path().join(format!("{name}.tar")), &tag);
        if *name == "nginx" {
            let body = serve_and_fetch(&tag, &mut cleanup).expect("nginx reachable");
            assert!(body.contains(PAGE), "{body}");
        } else {
            let (ok, got, err) = docker_run_offline(&tag);
            assert!(ok, "{name}: {got} {err}");
            assert_eq!(got, expected_output(fx.slim, name), "{name}");
        }
    }

    // Again: nothing to do but the failing job.
    let second = both_shards(&plan_path);
    assert_eq!(
        statuses(&second),
        ["skipped", "skipped", "skipped", "skipped", "skipped", "failed"]
    );
    for i in 0..5u64 {
        assert_eq!(second[&i]["output"], first[&i]["output"], "job {i}");
        assert!(
            second[&i]["seconds"].as_f64().unwrap() < 1.0,
            "{}",
            second[&i]
        );
    }

    // A new busybox source (the same files as one layer): only its job runs again.
    let squashed = tmp.path().join("squashed.tar");
    whittle_ok([
        "squash".to_string(),
        reference("docker-archive", &fx.slim.join("busybox.tar"), None),
        reference("docker-archive", &squashed, None),
    ]);
    fs::rename(&squashed, tmp.path().join("busybox-src.tar")).unwrap();
    let third = both_shards(&plan_path);
    assert_eq!(
        statuses(&third),
        ["skipped", "skipped", "slimmed", "skipped", "skipped", "failed"]
    );
    assert_ne!(third[&2]["source"], first[&2]["source"]);
}

#[test]
fn bad_plans_and_shards_are_errors_in_words() {
    let tmp = tempdir();
    let plan = tmp.path().join("plan.toml");
    fs::write(
        &plan,
        "[[job]]\nsrc = \"oci:a\"\ndst = \"oci:b\"\nflags = []\n",
    )
    .unwrap();
    let run = run_whittle(["fleet", plan.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(run.stderr().contains("flags"), "{}", run.describe());
    fs::write(&plan, "[defaults]\nargs = []\n").unwrap();
    let run = run_whittle(["fleet", plan.to_str().unwrap()]);
    assert!(run.stderr().contains("no [[job]]"), "{}", run.describe());
    fs::write(&plan, "[[job]]\nsrc = \"oci:a\"\ndst = \"oci:b\"\n").unwrap();
    let run = run_whittle(["fleet", plan.to_str().unwrap(), "--shard", "2/2"]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr().contains("below the count"),
        "{}",
        run.describe()
    );
    let missing = run_whittle(["fleet", "/nonexistent/plan.toml"]);
    assert!(
        missing.stderr().contains("cannot read the plan"),
        "{}",
        missing.describe()
    );
}
