//! Independent installs run side by side, each with its output in a log file of its own, and
//! one progress line every 30 s naming what is still being built and how long it usually takes.
//!
//! A job's commands go through [`run`]: on a job's thread they write to that job's log (shown,
//! its end, when the command fails); elsewhere they write to the terminal as usual.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How often the progress line is printed while something is being built.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// How many lines of a failed command's log are shown.
const LOG_TAIL: usize = 40;

thread_local! {
    /// The log file of the job running on this thread, if any.
    static LOG: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// What is being built now: `(name, started, usual cold time)`.
static BUILDING: Mutex<Vec<(String, Instant, String)>> = Mutex::new(Vec::new());

/// A job: a name for errors, and the work.
pub type Job<'a> = (&'static str, Box<dyn FnOnce() -> Result<()> + Send + 'a>);

/// Runs every job on a thread of its own and waits for all of them; the progress line is
/// printed meanwhile. Every failure is reported, not only the first.
pub fn run_all(jobs: Vec<Job<'_>>) -> Result<()> {
    let done = AtomicBool::new(false);
    let failures: Vec<String> = std::thread::scope(|s| {
        let ticker = s.spawn(|| progress(&done));
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(name, job)| (name, s.spawn(job)))
            .collect();
        let failures = handles
            .into_iter()
            .filter_map(|(name, h)| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{name}: {e:#}")),
                Err(_) => Some(format!("{name}: the install panicked")),
            })
            .collect();
        done.store(true, Ordering::SeqCst);
        let _ = ticker.join();
        failures
    });
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("\n"))
    }
}

/// A job running in the background (see [`spawn`]).
#[derive(Debug)]
pub struct Background {
    name: &'static str,
    handle: std::thread::JoinHandle<Result<()>>,
}

impl Background {
    /// Whether the job has ended (then [`join`] returns at once).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Starts a job on a thread of its own and returns at once; [`join`] waits for it.
pub fn spawn((name, work): Job<'static>) -> Background {
    Background {
        name,
        handle: std::thread::spawn(work),
    }
}

/// Waits for a background job, with the progress line meanwhile.
pub fn join(job: Background) -> Result<()> {
    join_unless(job, &AtomicBool::new(false)).map(drop)
}

/// [`join`], unless `stop` is set first (Ctrl-C): then returns `Ok(false)` at once and leaves
/// the job to end with the process.
pub fn join_unless(job: Background, stop: &AtomicBool) -> Result<bool> {
    let done = AtomicBool::new(false);
    let finished = std::thread::scope(|s| {
        let ticker = s.spawn(|| progress(&done));
        while !job.handle.is_finished() && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        done.store(true, Ordering::SeqCst);
        let _ = ticker.join();
        job.handle.is_finished()
    });
    // Ctrl-C reaches the job's commands too: a job that failed because of it is no failure.
    if !finished || stop.load(Ordering::SeqCst) {
        return Ok(false);
    }
    match job.handle.join() {
        Ok(r) => r.with_context(|| job.name).map(|()| true),
        Err(_) => bail!("{}: the install panicked", job.name),
    }
}

/// Marks `name` as being built (for the progress line) while `build` runs, with the commands
/// it runs on this thread writing to `log` when the job runs beside others.
pub fn building<T>(
    name: &str,
    usually: &str,
    log: &Path,
    build: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let entry = (name.to_owned(), Instant::now(), usually.to_owned());
    lock().push(entry);
    let quiet = ON_A_JOB_THREAD.with(|on| *on.borrow());
    if quiet {
        LOG.with(|l| *l.borrow_mut() = Some(log.to_owned()));
    }
    let result = build();
    LOG.with(|l| *l.borrow_mut() = None);
    lock().retain(|(n, _, _)| n != name);
    result
}

thread_local! {
    /// Whether this thread is one of [`run_all`]'s (its commands then write to a log).
    static ON_A_JOB_THREAD: RefCell<bool> = const { RefCell::new(false) };
}

/// Wraps a job so that its commands write to log files rather than the terminal.
pub fn job<'a>(name: &'static str, work: impl FnOnce() -> Result<()> + Send + 'a) -> Job<'a> {
    (
        name,
        Box::new(move || {
            ON_A_JOB_THREAD.with(|on| *on.borrow_mut() = true);
            work()
        }),
    )
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(String, Instant, String)>> {
    BUILDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints what is being built every [`PROGRESS_EVERY`] until `done`.
fn progress(done: &AtomicBool) {
    let mut last = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() < PROGRESS_EVERY {
            continue;
        }
        last = Instant::now();
        let now: Vec<String> = lock()
            .iter()
            .map(|(name, started, usually)| {
                format!("{name} ({} of about {usually})", minutes(started.elapsed()))
            })
            .collect();
        if !now.is_empty() {
            eprintln!("setup: still building {}", now.join(", "));
        }
    }
}

/// `1 min 5 s`, `42 s`.
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// Runs a command to success. On a job's thread its output goes to the job's log, whose end
/// is part of the error when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let log = LOG.with(|l| l.borrow().clone());
    let Some(log) = log else {
        let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
        if !status.success() {
            bail!("{cmd:?} failed with {status}");
        }
        return Ok(());
    };
    let file = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
    Err(anyhow!(
        "{cmd:?} failed with {status}; the end of {}:\n{tail}",
        log.display()
    ))
}
