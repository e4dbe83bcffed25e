//! The service under test: the release binary `npc-dialogue` beside the bench's own
//! executable, started as a child process on a free port of 127.0.0.1, configured by
//! environment variables only, stopped with SIGTERM (killed if it lingers, and when the
//! bench fails).

use anyhow::{Context, bail};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::time::Instant;

/// Quotas, budgets and the HTTP rate limit out of the way: the benchmark measures the
/// turn, not the refusals.
const HUGE_LIMITS: [(&str, &str); 4] = [
    ("PLAYER_LLM_CALLS_PER_HOUR", "1000000000"),
    ("PLAYER_MONTHLY_BUDGET_USD", "100000"),
    ("HTTP_RATE_PER_SECOND", "1000000"),
    ("HTTP_RATE_BURST", "1000000"),
];

/// How a service is started.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub llm_base_url: String,
    /// `JOB_WORKERS`: `None` keeps the default (2).
    pub job_workers: Option<u32>,
    /// Pushes housekeeping (`HOUSEKEEPING_INTERVAL_MS`) past the run, so that nothing but
    /// turns touches the database (for counting statements).
    pub no_housekeeping: bool,
    /// More variables (the memory benchmark's `EMBEDDING_*`).
    pub extra: Vec<(&'static str, String)>,
}

impl Settings {
    /// The variables the service gets, nothing else.
    pub fn vars(&self, port: u16) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("LLM_BASE_URL", self.llm_base_url.clone()),
            ("LLM_API_KEY", "x".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            // Everything stays on 127.0.0.1, whatever proxy the machine names.
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ];
        vars.extend(HUGE_LIMITS.map(|(name, value)| (name, value.to_owned())));
        if let Some(workers) = self.job_workers {
            vars.push(("JOB_WORKERS", workers.to_string()));
        }
        if self.no_housekeeping {
            vars.push(("HOUSEKEEPING_INTERVAL_MS", "86400000".to_owned()));
        }
        vars.extend(self.extra.iter().cloned());
        vars
    }
}

pub struct Service {
    child: Child,
    pub base_url: String,
    log: PathBuf,
}

impl Service {
    /// Starts `binary` and waits until `/readyz` says the database answers.
    pub async fn start(
        binary: &Path,
        settings: &Settings,
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let log = std::env::temp_dir().join(format!(
            "npc-bench-service-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("creating the service's log {}", log.display()))?;
        let child = Command::new(binary)
            .env_clear()
            .envs(settings.vars(port))
            // Away from any `.env` in the repository.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut service = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        service.wait_until_ready(client).await?;
        Ok(service)
    }

    async fn wait_until_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the service exited with {status} before it was ready; its log:\n{}",
                    self.log_tail()
                );
            }
            let ready = client
                .get(format!("{}/readyz", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > give_up {
                bail!(
                    "the service was not ready within 60 s; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The resident set of the process (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading the service's /proc/<pid>/status")?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .context("no VmRSS in /proc/<pid>/status")?;
        Ok(kib * 1024)
    }

    /// Everything the service wrote so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines the service wrote.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, as an orchestrator would, then up to 30 s to finish; killed after that.
    /// Its log is removed when it stopped cleanly (unless `BENCH_KEEP_LOGS` is set).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status();
        let give_up = Instant::now() + Duration::from_secs(30);
        if matches!(signalled, Ok(status) if status.success()) {
            while Instant::now() < give_up {
                if let Some(status) = self.child.try_wait()? {
                    if !status.success() {
                        bail!(
                            "the service stopped with {status}; its log is {}",
                            self.log.display()
                        );
                    }
                    // `BENCH_KEEP_LOGS=1` keeps it, e.g. to read the turns' phases.
                    if std::env::var_os("BENCH_KEEP_LOGS").is_some() {
                        eprintln!("the service's log: {}", self.log.display());
                    } else {
                        let _ = std::fs::remove_file(&self.log);
                    }
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        bail!(
            "the service did not stop on SIGTERM within 30 s (killed); its log is {}",
            self.log.display()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Stopped already, or the bench is failing: make sure nothing is left running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `npc-dialogue` next to this executable (`target/<profile>/`), which
/// `cargo build --release` builds with it. (Not built from here: a cargo run inside
/// `cargo run` sees other environment variables and rebuilds half the dependencies.)
pub fn binary() -> anyhow::Result<PathBuf> {
    let bench = std::env::current_exe().context("locating the bench executable")?;
    let binary = bench.with_file_name("npc-dialogue");
    if !binary.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release)",
            binary.display()
        );
    }
    Ok(binary)
}

/// CPU time (user + system, all threads, exited ones included) a process has used, from
/// `/proc/<pid>/stat`; `None` when it cannot be read (another machine's database).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ: 100 on every Linux the bench runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// CPU used by the service, MariaDB and the bench itself (mock provider and load
/// generator) between `start` and `per_turn`.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    service: Option<(u32, Duration)>,
    database: Option<(u32, Duration)>,
    bench: Option<Duration>,
}

/// Milliseconds of CPU per turn, by process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerTurn {
    pub service: Option<f64>,
    pub database: Option<f64>,
    pub bench: Option<f64>,
}

impl CpuMeter {
    pub fn start(service: Option<u32>, database: Option<u32>) -> Self {
        let snapshot = |pid: Option<u32>| pid.and_then(|pid| Some((pid, cpu_time(pid)?)));
        Self {
            service: snapshot(service),
            database: snapshot(database),
            bench: cpu_time(std::process::id()),
        }
    }

    pub fn per_turn(&self, turns: u64) -> CpuPerTurn {
        let turns = turns.max(1) as f64;
        let used = |start: Option<(u32, Duration)>| {
            let (pid, before) = start?;
            Some((cpu_time(pid)?.saturating_sub(before)).as_secs_f64() * 1_000.0 / turns)
        };
        CpuPerTurn {
            service: used(self.service),
            database: used(self.database),
            bench: used(self.bench.map(|before| (std::process::id(), before))),
        }
    }
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
