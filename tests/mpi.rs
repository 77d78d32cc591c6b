//! Across machines on MPI: the binary under `mpirun -n 3` on localhost (Pool, Process,
//! Manager, per-task timeouts and cancel on ranks, the refusal of shared memory, a killed
//! worker rank, errors on worker ranks, the exit code, Ctrl-C), the same under Slurm
//! (`under_slurm`: ignored unless asked for, as they need a cluster), and the build without
//! MPI support. The `mpirun` tests need the `mpi` feature and Open MPI (`.ci/run` installs
//! it and runs them: `cargo test --release --features mpi --test integration -- mpi::`).

use crate::common::run;

/// Without a launcher, a binary behaves as without MPI: rank 0 of 1, no `"mpi"` method.
#[test]
fn without_a_launcher() {
    let out = run(&[
        "-e",
        r#"print(mpi::rank()); print(mpi::size()); print(os::hostname() != "");
           print(get_all_start_methods());
           try { get_context("mpi"); } catch (e) { print(`${e.type}: ${e.message}`); }"#,
    ]);
    let s = out.ok();
    assert!(s.starts_with("0\n1\ntrue\n[\"fork\", \"spawn\", \"forkserver\"]\nValueError: "), "{s}");
    if cfg!(feature = "mpi") {
        assert!(s.contains("needs an MPI launcher: run the script with mpirun"), "{s}");
    } else {
        assert!(s.contains("built without MPI support: rebuild it with `cargo build --release --features mpi`"), "{s}");
    }
    let out = run(&["--start-method", "mpi", "-e", "print(1)"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("'mpi'") || out.stderr.contains("MPI support"), "{out:?}");
}

#[cfg(feature = "mpi")]
mod under_mpirun {
    use crate::common::{bin, finish, write_script, Out};
    use std::process::{Command, Stdio};

    /// `mpirun -n N [extra..] rhai-mp SCRIPT` in its own process group, with Open MPI's
    /// environment for a container (root, more ranks than cores) and piped stdout.
    fn command(n: usize, extra: &[&str], script: &std::path::Path) -> Command {
        let mut cmd = Command::new("mpirun");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["-n", &n.to_string()]).args(extra).arg(bin()).arg(script);
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `mpirun -n N [extra..] rhai-mp SCRIPT` (bounded).
    fn mpirun(n: usize, extra: &[&str], src: &str) -> Out {
        let script = write_script(src);
        let child = command(n, extra, &script.0)
            .spawn()
            .expect("mpirun not found: install Open MPI (apt-get install openmpi-bin)");
        finish(child)
    }

    #[test]
    fn ranks_run_the_script_and_serve_pools() {
        serve_pools(|src| mpirun(3, &[], src));
    }

    /// Rank 0 runs the script, the other ranks their top level and then a Pool's tasks: a
    /// job of 3 ranks, which `launch` starts with the script (`mpirun` here, or Slurm).
    pub(super) fn serve_pools(launch: impl Fn(&str) -> Out) {
        let out = launch(
            r#"
            fn sq(x) { x * x }
            fn add(a, b) { a + b }
            fn place(x) { [x, mpi::rank(), os::hostname() != ""] }
            fn init(v) { print(`init ${v} on rank ${mpi::rank()}`); }
            if __name__ != "__main__" { print(`top level on rank ${mpi::rank()} as ${__name__}`); }
            if __name__ == "__main__" {
                print(`main on rank ${mpi::rank()} of ${mpi::size()}, ${get_start_method()}, ${get_all_start_methods()}`);
                let p = Pool(#{initializer: init, initargs: ["x"]});
                print(`pool ${p}`);
                print(p.map(sq, 0..10));
                print(p.map(sq, 0..20, 3).len());
                let ranks = p.map(place, 0..8, 1).map(|r| r[1]);
                ranks.sort();
                print(`ranks ${ranks[0]} ${ranks[ranks.len - 1]}`);
                print(p.starmap(add, [[1, 2], [3, 4]]));
                let k = 100;
                print(p.map(|x| x + k, [1, 2]));
                let got = []; for x in p.imap(sq, 0..5) { got.push(x); } print(got);
                let u = []; for x in p.imap_unordered(sq, [1, 2, 3], 1).progress() { u.push(x); } u.sort(); print(u);
                let done = [];
                let r = p.apply_async(sq, [9], #{callback: |v| done.push(v)});
                print(r.get(30));
                print(p.map_async(sq, [1, 2]).get(30));
                print(p.starmap_async(add, [[5, 5]]).get(30));
                print(p.apply(add, [20, 22]));
                p.close(); p.join();
                let two = Pool(2); print(two.map(sq, [7])); two.terminate();
            }"#,
        );
        let s = out.ok();
        // Rank 0's own lines (the other ranks' output may come between them, and does when
        // the ranks are on different nodes: it travels another way).
        let mine: Vec<&str> =
            s.lines().filter(|l| !l.starts_with("top level on rank") && !l.starts_with("init x on")).collect();
        let mine = mine.join("\n");
        for want in [
            "main on rank 0 of 3, mpi, [\"fork\", \"spawn\", \"forkserver\", \"mpi\"]",
            "pool <Pool state=RUN pool_size=2>",
            "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n20\nranks 1 2\n[3, 7]\n[101, 102]\n[0, 1, 4, 9, 16]\n[1, 4, 9]\n81\n[1, 4]\n[10]\n42\n[49]",
        ] {
            assert!(mine.contains(want), "missing {want:?} in\n{s}\n{}", out.stderr);
        }
        for rank in [1, 2] {
            assert!(s.contains(&format!("top level on rank {rank} as __mp_main__")), "{s}");
            assert!(s.contains(&format!("init x on rank {rank}")), "{s}");
        }
        assert!(!s.contains("top level on rank 0"), "{s}");
    }

    #[test]
    fn processes_run_on_free_ranks() {
        run_processes(|src| mpirun(3, &[], src));
    }

    /// `Process` runs on a free worker rank (none free: `ProcessError`): a job of 3 ranks,
    /// which `launch` starts with the script (`mpirun` here, or Slurm).
    pub(super) fn run_processes(launch: impl Fn(&str) -> Out) {
        let out = launch(
            r#"
            if __name__ == "__main__" {
                let p = Process(|a| print(`process on rank ${mpi::rank()} got ${a} as ${current_process().name}`), [42]);
                p.start(); p.join(30); print(`exitcode ${p.exitcode} alive ${p.is_alive()}`);
                let spin = Process(|| { let t = 0; loop { t += 1; } });
                spin.start();
                spin.join(0.2);
                print(`spinning ${spin.is_alive()}`);
                let other = Process(|| sleep(0.2)); other.start();
                let third = Process(|| 1);
                try { third.start(); } catch (e) { print(`${e.type}: ${e.message}`); }
                spin.terminate(); spin.join(30); print(`terminated ${spin.exitcode}`);
                other.join(30); print(`other ${other.exitcode}`);
                let bad = Process(|| throw "oops on a rank"); bad.start(); bad.join(30); print(`bad ${bad.exitcode}`);
                let quit = Process(|| exit(3)); quit.start(); quit.join(30); print(`quit ${quit.exitcode}`);
            }"#,
        );
        let s = out.ok();
        assert!(s.contains("got 42 as Process-1"), "{s}");
        // Rank 0's own lines, in order (the ranks' output interleaves with them).
        let mine: Vec<&str> = s.lines().filter(|l| !l.starts_with("process on rank")).collect();
        assert_eq!(mine.len(), 7, "{s}");
        assert_eq!(mine[..2], ["exitcode 0 alive false", "spinning true"], "{s}");
        assert!(mine[2].starts_with("ProcessError: no free worker rank"), "{s}");
        assert_eq!(mine[3..], ["terminated -15", "other 0", "bad 1", "quit 3"], "{s}");
        // The error report names the process, its rank and its host.
        assert!(out.stderr.contains("[rank ") && out.stderr.contains("RuntimeError: oops on a rank"), "{}", out.stderr);
    }

    #[test]
    fn managers_serve_every_rank() {
        serve_managers(|src| mpirun(3, &[], src));
    }

    /// A `Manager()`'s proxies work on every rank: a job of 3 ranks, which `launch` starts
    /// with the script (`mpirun` here, or Slurm).
    pub(super) fn serve_managers(launch: impl Fn(&str) -> Out) {
        let out = launch(
            r#"
            if __name__ == "__main__" {
                let m = Manager();
                print(type_of(m.address));
                let d = m.dict();
                let q = m.Queue();
                let lock = m.Lock();
                let n = m.Value("i", 0);
                let p = Pool();
                p.map(|i| { d[`k${i}`] = mpi::rank(); q.put(i); hold(lock, || n.value += 1); }, 0..6, 1);
                print(d.keys().len()); print(q.qsize()); print(n.value);
                let seen = d.values(); seen.sort(); print(seen[0] >= 1 && seen[seen.len - 1] <= 2);
                p.close(); p.join();
                m.shutdown();
            }"#,
        );
        assert_eq!(out.ok(), "string\n6\n6\n6\ntrue\n", "{}", out.stderr);
    }

    #[test]
    fn shared_memory_objects_are_refused() {
        let out = mpirun(
            2,
            &[],
            r#"
            if __name__ == "__main__" {
                let p = Pool();
                for make in [|| Lock(), || Queue(), || Value("i", 1), || Event(), || SharedMemory(#{create: true, size: 8})] {
                    let obj = make.call();
                    try { p.apply(|o| 1, [obj]); } catch (e) { print(`${e.type}: ${e.message}`); }
                }
                try { p.map(|x| Queue(), [1]); } catch (e) { print(`${e.type}: ${e.message}`); }
                let pr = Process(|l| 1, [Lock()]);
                try { pr.start(); } catch (e) { print(`${e.type}: ${e.message}`); }
                print(p.map(|x| x + 1, [1]));
            }"#,
        );
        let s = out.ok();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 8, "{s}");
        for l in &lines[..7] {
            assert!(l.starts_with("SerializationError: a "), "{l}");
            assert!(l.contains("cannot be sent to another machine or MPI rank: use a TCP manager's m."), "{l}");
            assert!(l.contains("Manager() under MPI"), "{l}");
        }
        assert!(lines[5].contains("(at result"), "{s}");
        assert_eq!(lines[7], "[2]");
    }

    #[test]
    fn ranks_time_out_and_cancel_tasks_and_go_on_serving() {
        bound_tasks(|src| mpirun(3, &[], src));
    }

    /// Per-task timeouts and cancel on worker ranks (Pool and ProcessPoolExecutor): a rank
    /// stops its task (a Rhai loop, a sleep, a wait on a manager's queue) with
    /// `TimeoutError` or `CancelledError` and goes on serving: a job of 3 ranks, which
    /// `launch` starts with the script (`mpirun` here, or Slurm).
    pub(super) fn bound_tasks(launch: impl Fn(&str) -> Out) {
        let out = launch(
            r#"
            fn spin(x) { if x == 2 { loop {} } x }
            fn nap(x) { if x == 2 { time::sleep(1e9) } x }
            fn ranks(p) { let r = p.map(|x| { time::sleep(0.01); mpi::rank() }, 0..8, 1); r.sort(); `${r[0]} ${r[r.len - 1]}` }
            if __name__ == "__main__" {
                let m = Manager();
                let q = m.Queue();
                let p = Pool();
                for f in [|q| loop {}, |q| time::sleep(1e9), |q| q.get()] {
                    try { p.apply(f, [q], #{timeout: 0.2}); print("no") } catch (e) { print(`${e.type} ${e.task} ${e.timeout} ${e.pid > 0}`) }
                }
                try { p.apply_async(|| loop {}, [], #{timeout: 0.2}).get(30) } catch (e) { print(`async ${e.type}`) }
                for f in [spin, nap] {
                    let it = p.imap(f, 0..6, #{chunksize: 3, timeout: 0.2});
                    let got = [];
                    loop { try { got.push(it.next()) } catch (e) { if e.type == "StopIteration" { break } got.push(e.type) } }
                    print(got);
                }
                // Races of a timeout against completion: each item one outcome.
                let it = p.imap(|x| { let t = time::perf_counter(); while time::perf_counter() - t < 0.002 * (x % 5) {} x }, 0..40, #{timeout: 0.004});
                let n = 0; let bad = 0;
                loop {
                    try { let v = it.next(); if v != n { bad += 1 } } catch (e) { if e.type == "StopIteration" { break } if e.type != "TimeoutError" { bad += 1 } }
                    n += 1;
                }
                print(`race ${n} ${bad}`);
                print(`ranks ${ranks(p)}`);
                // Cancel before the task starts, while it runs, after it finished.
                let one = Pool(1);
                let busy = one.apply_async(|| time::sleep(1e9));
                let never = one.apply_async(|q| q.put("ran"), [q]);
                print(never.cancel());
                time::sleep(0.2);
                print(busy.cancel());
                try { busy.get(30) } catch (e) { print(e.type) }
                print(`${busy.cancelled()} ${never.cancelled()}`);
                let done = one.apply_async(|| 5);
                print(done.get(30));
                print(done.cancel());
                let spinning = one.imap(|x| if x == 1 { loop {} } else { x }, 0..5);
                print(spinning.next(30));
                print(spinning.cancel());
                try { spinning.next(30) } catch (e) { print(e.type) }
                print(one.apply(|| 9));
                one.close(); one.join();
                try { print(q.get(true, 0.3)) } catch (e) { print(e.type) }
                let pp = Pool(#{task_timeout: 0.2});
                try { pp.map(spin, [2]) } catch (e) { print(`pool ${e.type}`) }
                print(pp.map(spin, [0, 1]));
                pp.close(); pp.join();
                let ex = ProcessPoolExecutor();
                print(ex.submit(|| loop {}, [], #{timeout: 0.2}).exception().type);
                let slow = ex.submit(|| time::sleep(1e9));
                let t = 0;
                while !slow.running() { time::sleep(0.01); t += 1; if t > 3000 { throw "never ran" } }
                print(`${slow.cancel()} ${slow.cancelled()} ${slow.done()}`);
                try { slow.result(30) } catch (e) { print(e.type) }
                try { let it = ex.map(|x| time::sleep(1e9), [1], #{timeout: 0.2}); it.next() } catch (e) { print(e.type) }
                print(ex.submit(|x| x + 1, [41]).result(30));
                let all = []; for x in ex.map(|x| x * x, 0..6, #{chunksize: 2}) { all.push(x) } print(all);
                ex.shutdown();
                print(`ranks ${ranks(p)}`);
                p.close(); p.join();
                m.shutdown();
            }"#,
        );
        let s = out.ok();
        assert_eq!(
            s,
            "TimeoutError 0 0.2 true\nTimeoutError 0 0.2 true\nTimeoutError 0 0.2 true\nasync TimeoutError\n\
             [0, 1, \"TimeoutError\", 3, 4, 5]\n[0, 1, \"TimeoutError\", 3, 4, 5]\nrace 40 0\nranks 1 2\n\
             true\ntrue\nCancelledError\ntrue true\n5\nfalse\n0\ntrue\nCancelledError\n9\nEmpty\n\
             pool TimeoutError\n[0, 1]\n\
             TimeoutError\ntrue true true\nCancelledError\nTimeoutError\n42\n[0, 1, 4, 9, 16, 25]\nranks 1 2\n",
            "{}",
            out.stderr
        );
    }

    pub(super) const KILLER: &str = r#"
        fn f(x) { if x == 3 { os::kill(os::getpid(), "SIGKILL"); sleep(30); } sleep(0.02); x }
        if __name__ == "__main__" {
            let p = Pool();
            let rs = [];
            for i in 0..8 { rs.push(p.apply_async(f, [i])); }
            for r in rs {
                try { print(r.get(30)); }
                catch (e) { print(`${e.type} rank=${e.rank} pid=${e.pid} host=${e.host != ""}`); }
            }
            print(p.map(|x| x * 2, 0..4));
            print("rank 0 went on");
        }"#;

    /// With a launcher that keeps the job alive, the dead rank's tasks fail with
    /// WorkerLostError naming it, and the pool goes on with the other ranks.
    #[test]
    fn a_killed_worker_rank_fails_its_tasks() {
        let out = mpirun(3, &["--enable-recovery"], KILLER);
        let s = &out.stdout;
        assert!(s.contains("WorkerLostError rank="), "{s}\n{}", out.stderr);
        assert!(s.contains("[0, 2, 4, 6]\nrank 0 went on"), "{s}\n{}", out.stderr);
        // Task 3 and the ones queued behind it at the dead rank fail; the others ran.
        let lost = s.lines().filter(|l| l.starts_with("WorkerLostError")).count();
        assert!((1..=8).contains(&lost), "{s}");
        assert!(out.stderr.contains("was lost: its connection to rank 0 closed"), "{}", out.stderr);
    }

    /// With a launcher that ends the job, rank 0 names the dead rank first, and nothing
    /// hangs.
    #[test]
    fn a_killed_worker_rank_is_reported_before_the_job_ends() {
        let out = mpirun(3, &[], KILLER);
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(out.stderr.contains("rhai-mp: worker rank ") && out.stderr.contains("was lost"), "{}", out.stderr);
    }

    #[test]
    fn errors_on_worker_ranks_name_the_rank_and_host() {
        let out = mpirun(
            3,
            &[],
            r#"
            fn boom(x) { if x == 1 { throw "bad one" } x }
            if __name__ == "__main__" {
                let p = Pool(1);
                try { p.map(boom, [0, 1]); } catch (e) { print(`caught ${e}`); }
                p.apply(boom, [1]);
            }"#,
        );
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stdout.contains("caught bad one"), "{out:?}");
        assert!(out.stderr.contains("Process Rank-1@"), "{}", out.stderr);
        assert!(out.stderr.contains("bad one"), "{}", out.stderr);

        // A worker rank whose top level fails: rank 0's pool says which rank and host.
        let out = mpirun(
            3,
            &[],
            r#"
            if mpi::rank() == 2 { throw "no top level here" }
            if __name__ == "__main__" {
                try { Pool(); } catch (e) { print(`${e.type}: ${e.message}`); }
                let p = Process(|| print("a process still runs")); p.start(); p.join(30);
            }"#,
        );
        let s = out.ok();
        assert!(
            s.contains("RuntimeError: the worker ranks cannot start: the script's top level fails on rank 2"),
            "{s}"
        );
        assert!(s.contains("a process still runs"), "{s}");
        assert!(out.stderr.contains("Process Rank-2@") && out.stderr.contains("no top level here"), "{}", out.stderr);
    }

    #[test]
    fn the_job_exits_with_rank_0s_code() {
        let out = mpirun(2, &[], r#"if __name__ == "__main__" { print(Pool().map(|x| x, [1])); exit(3); }"#);
        assert_eq!(out.code, Some(3), "{out:?}");
        assert_eq!(out.stdout, "[1]\n");
        let out = mpirun(3, &[], r#"if __name__ == "__main__" { try { Pool(5) } catch (e) { print(e.message) } }"#);
        assert!(out.ok().contains("Pool(5) needs 5 worker ranks, but this MPI job has 2"), "{out:?}");
        // A job of one rank has no worker ranks for a pool, and says so.
        let out = mpirun(1, &[], r#"try { Pool() } catch (e) { print(`${e.type}: ${e.message}`) }"#);
        assert!(out.ok().contains("ValueError: this MPI job has no worker ranks"), "{out:?}");
    }

    /// Code typed at rank 0's REPL travels to the worker ranks, redefinitions too.
    #[test]
    fn code_typed_later_travels_to_the_ranks() {
        use std::io::Write;
        let mut cmd = Command::new("mpirun");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(["-n", "3"]).arg(bin());
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
            .env("RHAI_MP_HISTORY", std::env::temp_dir().join("rhai-mp-test-history"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("mpirun");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                b"let p = Pool();\nfn f(x) { x + 1 }\np.map(f, [1, 2])\nfn f(x) { x * 100 }\np.map(f, [1, 2])\nlet k = 7;\np.map(|x| x + k, [1])\n",
            )
            .unwrap();
        drop(stdin);
        let out = finish(child);
        let s = out.ok();
        assert!(s.contains("[2, 3]") && s.contains("[100, 200]") && s.contains("[8]"), "{s}\n{}", out.stderr);
    }

    /// Ctrl-C to mpirun ends every rank, even while they run tasks.
    #[test]
    fn ctrl_c_ends_every_rank() {
        use std::io::BufRead;
        let script = write_script(
            r#"
            fn spin(x) { let t = 0; loop { t += 1; } }
            if __name__ == "__main__" { let p = Pool(); print("started"); p.map(spin, 0..4, 1); }"#,
        );
        let mut child = command(3, &[], &script.0).stderr(Stdio::null()).spawn().expect("mpirun");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("started"));
        let pgid = child.id() as i32;
        // SAFETY: kill(2) on the process this test started.
        unsafe { libc::kill(pgid, libc::SIGINT) };
        if crate::common::wait_bounded(&mut child, crate::common::LIMIT).is_none() {
            panic!("mpirun did not end after Ctrl-C");
        }
        // Every rank is gone with it.
        let path = script.0.to_str().unwrap().to_string();
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&path))
            .count();
        assert_eq!(left, 0, "ranks left running after Ctrl-C");
    }
}

/// Under Slurm: the Pool, Process and Manager tests' scripts under `srun -n 3 --mpi=pmix`
/// and under `mpirun` inside `salloc -n 3`, the timeouts and cancel on ranks under `srun`, a
/// worker rank killed under `srun`, and the wrong PMI plugin. They need a running Slurm cluster (the one `SLURM_CONF` names, or
/// /etc/slurm/slurm.conf) with 3 free CPUs: `.ci/slurm.sh` starts one here and runs them
/// (`cargo test --release --features mpi --test integration -- --ignored mpi::under_slurm`).
#[cfg(feature = "mpi")]
mod under_slurm {
    use super::under_mpirun::{bound_tasks, run_processes, serve_managers, serve_pools, KILLER};
    use crate::common::{bin, finish, write_script, Out};
    use std::process::{Command, Stdio};

    /// Runs `PROGRAM --time=2 ARGS.. rhai-mp SCRIPT` (`srun`, `salloc`), bounded, in its own
    /// process group; Slurm ends the job too after 2 minutes, should it outlive the command.
    fn slurm(program: &str, args: &[&str], src: &str) -> Out {
        let script = write_script(src);
        let mut cmd = Command::new(program);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.arg("--time=2").args(args).arg(bin()).arg(&script.0);
        // For `mpirun` (as root in a container); `srun` passes them on, and they do nothing.
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e} (install Slurm: apt-get install slurm-wlm)"));
        finish(child)
    }

    /// `srun -n 3 --mpi=pmix rhai-mp SCRIPT`: Slurm starts the ranks (PMIx).
    fn srun(src: &str) -> Out {
        slurm("srun", &["-n", "3", "--mpi=pmix"], src)
    }

    /// `salloc -n 3 mpirun -n 3 rhai-mp SCRIPT`: Open MPI starts its daemons through `srun`.
    fn salloc_mpirun(src: &str) -> Out {
        slurm("salloc", &["-n", "3", "mpirun", "-n", "3"], src)
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn srun_pools() {
        serve_pools(srun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn srun_processes() {
        run_processes(srun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn srun_managers() {
        serve_managers(srun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn salloc_mpirun_pools() {
        serve_pools(salloc_mpirun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn salloc_mpirun_processes() {
        run_processes(salloc_mpirun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn salloc_mpirun_managers() {
        serve_managers(salloc_mpirun);
    }

    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn srun_bounds() {
        bound_tasks(srun);
    }

    /// `srun` lets the job go on when a task dies: the dead rank's tasks fail with
    /// WorkerLostError naming it, and the pool goes on with the other ranks.
    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn srun_a_killed_worker_rank_fails_its_tasks() {
        let out = srun(KILLER);
        let s = &out.stdout;
        assert!(s.contains("WorkerLostError rank="), "{s}\n{}", out.stderr);
        assert!(s.contains("[0, 2, 4, 6]\nrank 0 went on"), "{s}\n{}", out.stderr);
        assert!(out.stderr.contains("was lost: its connection to rank 0 closed"), "{}", out.stderr);
    }

    /// With the wrong PMI plugin no task runs the script. Each task would start alone, as
    /// "rank 0 of 1" (Open MPI 5 does: open-mpi/ompi#13523); rhai-mp sees that Slurm started
    /// 3 and stops them all, with one message naming the plugin to pass. Open MPI 4 (Debian
    /// 12's) instead refuses, with its own message, a task that `srun` started without PMIx
    /// (it looks for `SLURM_NODELIST`); without that variable it starts singletons, as 5 does.
    #[test]
    #[ignore = "needs a Slurm cluster: .ci/slurm.sh"]
    fn a_wrong_pmi_plugin_runs_nothing() {
        let top = r#"print(`${__name__} on rank ${mpi::rank()} of ${mpi::size()}`);"#;
        let out = slurm("srun", &["-n", "3", "--mpi=none"], top);
        assert_ne!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout, "", "{out:?}");

        let singletons = ["-n", "3", "--mpi=none", "env", "-u", "SLURM_NODELIST", "-u", "SLURM_JOB_NODELIST"];
        let out = slurm("srun", &singletons, top);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stdout, "", "{out:?}");
        let message = "rhai-mp: srun started 3 tasks, but MPI_Init gave each a world of 1: srun's PMI plugin \
                       (--mpi=none here) is not the one this MPI library speaks. No task ran the script. Pass it \
                       to srun: `srun --mpi=pmix -n 3 rhai-mp ..`";
        assert_eq!(out.stderr.matches(message).count(), 1, "{}", out.stderr);
    }
}
