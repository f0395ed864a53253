//! Sources shared across replicas (issue 18, item 1): real `ccdc run --replica I/N` processes of one
//! configuration (32 Comm100 sources on the built-in simulator, stdout output), each with its own
//! state directory, for N = 1, 2, 3, 4, 3 again and 5. In every round each source is polled by
//! exactly one replica — the one rendezvous hashing names — told by the distinct source names in
//! the replicas' outputs. From 3 to 4 only sources that move to the new replica move; from 4 back
//! to 3 the replicas that take them back drop their stale snapshots of them (logged) and publish
//! `initial` events on the first poll, never a diff against what they saw two rounds ago.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccdc::shard::owner;
use ccdc::simulator::{SimMode, SimServer, SimState};

const SOURCES: usize = 32;
const TOKEN: &str = "c100-replicas-token";

fn names() -> Vec<String> {
    (0..SOURCES).map(|i| format!("acct-{i:02}")).collect()
}

fn config(dir: &Path, sim: &SimServer) -> PathBuf {
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let base = sim.comm100_base_url();
    let mut text = String::from(
        "output = \"stdout\"\nshutdown_timeout = \"5s\"\n[observability]\nlisten = \"127.0.0.1:0\"\nheartbeat_every_polls = 1\n",
    );
    for name in names() {
        text += &format!(
            "[[sources]]\nvendor = \"comm100\"\nname = \"{name}\"\nbase_url = \"{base}\"\ntoken = {{ file = \"{}\" }}\naway_statuses_url = \"{base}/agentAwayStatuses\"\nallow_insecure_http = true\nrequest_timeout = \"5s\"\n[sources.agents]\ninterval = \"200ms\"\nmax_backoff = \"500ms\"\n[sources.queue]\nenabled = false\n[sources.today]\nenabled = false\n[sources.right_now]\nenabled = false\n",
            token_file.display()
        );
    }
    let path = dir.join("ccdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One `ccdc run --replica index/count` process, its state in `state-<index>`.
struct Replica {
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Replica {
    fn start(dir: &Path, config: &Path, index: u32, count: u32, round: usize) -> Replica {
        let out = dir.join(format!("round{round}-replica{index}.jsonl"));
        let log = dir.join(format!("round{round}-replica{index}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_ccdc"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--replica", &format!("{index}/{count}")])
            .env("CCDC_STATE_DIR", dir.join(format!("state-{index}")))
            .env("CCDC_LOG", "info")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ccdc");
        Replica { child, out, log }
    }

    /// Every JSON line printed so far.
    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn sources(&self) -> BTreeSet<String> {
        self.events()
            .iter()
            .filter_map(|e| e["source"].as_str().map(str::to_string))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) -> Replica {
        // SAFETY: kill(2) on a child we spawned.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let st = self.child.wait().unwrap();
        assert!(st.success(), "replica exited with {st}:\n{}", self.log());
        self
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `count` replicas until every source was polled (and a second longer: nobody else polls
/// them), stop them, and return them.
fn round(dir: &Path, config: &Path, count: u32, round: usize) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..count)
        .map(|i| Replica::start(dir, config, i, count, round))
        .collect();
    let started = Instant::now();
    loop {
        let seen: BTreeSet<String> = replicas.iter().flat_map(|r| r.sources()).collect();
        if seen.len() == SOURCES {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "round {round} ({count} replicas): only {seen:?} polled\n{}",
            replicas
                .iter()
                .map(Replica::log)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    replicas.into_iter().map(Replica::stop).collect()
}

/// Each source polled by exactly its rendezvous owner; returns who polled what.
fn check_ownership(replicas: &[Replica], count: u32) -> BTreeMap<String, u32> {
    let mut polled_by: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (i, r) in replicas.iter().enumerate() {
        for s in r.sources() {
            polled_by.entry(s).or_default().push(i as u32);
        }
        assert!(
            r.log().contains("this replica polls these sources") || count == 1,
            "{}",
            r.log()
        );
    }
    let mut owners = BTreeMap::new();
    for name in names() {
        let by = polled_by.remove(&name).unwrap_or_default();
        assert_eq!(
            by,
            vec![owner(&name, count)],
            "{name} with {count} replicas: polled by {by:?}"
        );
        owners.insert(name, by[0]);
    }
    assert!(polled_by.is_empty(), "unknown sources {polled_by:?}");
    owners
}

/// The agent events of `source`'s first poll in `replica`'s output are all derived from an initial
/// snapshot (`agent-status-changed` with `initial`, and `agent-state` when enabled).
fn first_poll_is_initial(replica: &Replica, source: &str) {
    let statuses: Vec<serde_json::Value> = replica
        .events()
        .into_iter()
        .filter(|e| e["source"] == source && e.get("agent_id").is_some())
        .collect();
    let first_observed = statuses
        .first()
        .unwrap_or_else(|| panic!("no agent-status events of {source}"))["observed_at"]
        .clone();
    let first: Vec<&serde_json::Value> = statuses
        .iter()
        .filter(|e| e["observed_at"] == first_observed)
        .collect();
    assert!(
        first.iter().all(|e| e["derivation"] == "INITIAL_SNAPSHOT"
            && e.get("initial").is_none_or(|i| i == true)
            && e["status"] != "ABSENT"),
        "{source}: the first poll after the takeover is not all `initial`: {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_is_polled_by_exactly_one_replica_for_1_to_5_replicas_and_across_changes() {
    let sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimState::new(
            TOKEN,
            SimMode::Random {
                seed: 18,
                agents: 4,
            },
        ),
    )
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &sim);
    let (d, c) = (dir.path().to_path_buf(), config.clone());
    let rounds = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (i, n) in [1u32, 2, 3, 4, 3, 5].into_iter().enumerate() {
            let replicas = round(&d, &c, n, i);
            let owners = check_ownership(&replicas, n);
            out.push((n, owners, replicas));
        }
        out
    })
    .await
    .unwrap();

    // 3 → 4: only sources whose winner is the new replica move.
    let (three, four) = (&rounds[2].1, &rounds[3].1);
    let moved: Vec<&String> = three.keys().filter(|s| three[*s] != four[*s]).collect();
    assert!(
        !moved.is_empty(),
        "with 32 sources some move to the 4th replica"
    );
    for s in &moved {
        assert_eq!(four[*s], 3, "{s} moved between replicas that stayed");
    }
    eprintln!(
        "3 -> 4 replicas: {} of {SOURCES} sources moved (all to replica 3)",
        moved.len()
    );

    // 4 → 3: the sources come back to the replica that had them two rounds ago; it drops its
    // stale snapshots of them and its first poll publishes `initial` events only.
    let back = &rounds[4];
    assert_eq!(
        &back.1, three,
        "back to 3 replicas: the same assignment as before"
    );
    for s in &moved {
        let taker = &back.2[back.1[*s] as usize];
        first_poll_is_initial(taker, s);
        let log = taker.log();
        assert!(
            log.lines().any(|l| l.contains("stale stored snapshots are dropped") && l.contains(s.as_str())),
            "{s}: no takeover line in\n{log}"
        );
    }
    // A source that never moved is not dropped: its replica goes on from its own snapshot.
    let stayed = three.keys().find(|s| !moved.contains(s)).unwrap();
    let keeper = &back.2[back.1[stayed] as usize];
    assert!(
        !keeper.log().lines().any(
            |l| l.contains("stale stored snapshots are dropped") && l.contains(stayed.as_str())
        ),
        "{stayed} never moved"
    );
    sim.stop().await;
}
