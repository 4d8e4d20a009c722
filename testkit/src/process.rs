//! Child processes with logs, temporary directories, ports, waiting.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A directory removed when dropped (kept when the test panicked, for its logs).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tracedapp-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running program whose stdout and stderr go to `<log>`; killed when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd`, logging to `log`.
    pub fn start(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; panics if it does not exit.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {timeout:?} of SIGTERM; last log lines:\n{}",
                self.name,
                self.log_tail(30)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Where the log is written.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a [`Process`] dropped during a panic prints its log (a test's failure shows it);
/// a user-facing command turns this off and says what explains the failure itself.
static DUMP_LOGS_ON_PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Stops processes from printing their logs when a panic unwinds past them.
pub fn quiet_on_panic() {
    DUMP_LOGS_ON_PANIC.store(false, std::sync::atomic::Ordering::Relaxed);
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() && DUMP_LOGS_ON_PANIC.load(std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.name,
                self.log.display(),
                self.log_tail(60)
            );
        }
    }
}

/// Starts a program on ports picked by [`free_port`] and waits until `ready(&ports)`. A picked
/// port can be taken by another process (an outgoing connection's source port, say) before the
/// program binds it, since `free_port` must release it first; when the program then stops
/// because an address is in use, `launch` picks new ports and starts it again (3 tries).
pub fn start_on_free_ports<T>(
    what: &str,
    timeout: Duration,
    mut launch: impl FnMut() -> (Process, T),
    ready: impl Fn(&T) -> bool,
) -> (Process, T) {
    const TRIES: u32 = 3;
    for attempt in 1..=TRIES {
        let (mut process, ports) = launch();
        let deadline = Instant::now() + timeout;
        loop {
            if ready(&ports) {
                return (process, ports);
            }
            if process.exited() {
                if attempt < TRIES && process.log().contains("address already in use") {
                    eprintln!("{what}: a picked port was taken meanwhile; new ports");
                    break;
                }
                process.assert_running();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last log lines:\n{}",
                process.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    unreachable!("the last try returns or panics")
}

/// A process's memory from `/proc/<pid>/status`, in MiB: `VmRSS` (resident now) or `VmHWM`
/// (peak resident). 0 when the process is gone (benchmarks print it, never assert it).
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command (in parentheses): the state, ..., utime and stime (12th and 13th),
    // in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A free port on 127.0.0.1 (bound, then released for the program to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `ready` every 100 ms until it returns true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `ready` every 100 ms for at most `timeout`; whether it became true.
pub fn try_wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The repository root (for tests: `testdata/`, `manifests/`, ...).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Files in `dir` whose names end with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}
