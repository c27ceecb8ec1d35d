//! The crash journal (`data/journal/`): what a `kill -9` must not erase.
//!
//! The batch writer commits to the database every [`super::BATCH_WINDOW`]; a client may have its whole answer
//! before that. So every record is first appended, as one JSON line, to a journal segment file, with a plain
//! `write(2)` before the last bytes of its answer leave: once the kernel has the line, a process crash cannot
//! erase it. A second line is written when a request is forwarded (`start`), so a request in flight at a crash
//! is known too.
//!
//! * **Order.** Lines carry a sequence number, and a record is queued for the writer under the same lock that
//!   numbered it, so the database commits `end` lines in sequence order. Each commit stores the highest number
//!   it holds (`ledger_journal.committed_seq`): at start-up, `end` lines above it are the rows to add, those at
//!   or below are already stored. A request whose latest line is a `start` or `progress` line is recorded as
//!   interrupted unless the database already has its request id (its `end` line may sit in a segment deleted
//!   since). Replay is idempotent.
//! * **Segments** rotate at [`SEGMENT_BYTES`] and are deleted once nothing they hold is pending: a queued record
//!   or an in-flight request keeps a [`Hold`] on the segment of its latest line. A long stream therefore keeps
//!   one small segment, not every segment written after it.
//! * **Not fsynced.** A process crash loses nothing; a power loss or kernel crash can lose the lines (and the
//!   SQLite WAL commits, `synchronous=NORMAL`) the OS had not yet written back, normally the last few seconds.

use super::{Outcome, Record};
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A segment is sealed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 1 << 20;

/// After a failed write (a full disk), the next attempt to start a segment waits this long: a failing disk must
/// not cost every request a doomed `open(2)`.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// Error class of a request found in flight in the journal at start-up.
pub const CRASH_CLASS: &str = "gateway_crashed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The request was forwarded; the record holds what is known then (tenant, model, upstream, time).
    Start,
    /// The usage the upstream reported so far (its `message_start`), priced.
    Progress,
    /// The finished record, as queued for the database.
    End,
}

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    kind: Kind,
    rec: &'a Record,
}

#[derive(Deserialize)]
struct LineIn {
    seq: u64,
    kind: Kind,
    rec: Record,
}

struct Segment {
    path: PathBuf,
}

/// Keeps a segment on disk while something it holds is not yet stored in the database.
pub struct Hold(Arc<Segment>);

impl Hold {
    /// Whether `other` holds the same segment.
    pub fn same_segment(&self, other: &Hold) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The finished records (`end` lines) with these sequence numbers in this hold's segment: the ledger reads
    /// back what it spilled (see `ledger::Spill`).
    pub fn read_back(
        &self,
        seqs: &std::collections::HashSet<u64>,
    ) -> std::io::Result<HashMap<u64, Record>> {
        let bytes = std::fs::read(&self.0.path)?;
        let mut found = HashMap::with_capacity(seqs.len());
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(l) = serde_json::from_slice::<LineIn>(line) {
                if l.kind == Kind::End && seqs.contains(&l.seq) {
                    found.insert(l.seq, l.rec);
                }
            }
        }
        Ok(found)
    }
}

pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// `None` after a failed write, until a new segment could be started.
    file: Option<File>,
    current: Option<Arc<Segment>>,
    sealed: VecDeque<Arc<Segment>>,
    written: u64,
    next_seq: u64,
    next_number: u64,
    retry_at: Instant,
    /// Why the last write failed, while writes fail.
    error: Option<String>,
    buf: Vec<u8>,
}

/// What the journal held at start-up.
#[derive(Debug, Default)]
pub struct Replay {
    /// Finished records past the committed sequence: to store.
    pub rows: Vec<Record>,
    /// Requests whose latest line is `start` or `progress`, as [`Outcome::Interrupted`]: to store unless the
    /// database has their request id already.
    pub in_flight: Vec<Record>,
    /// The highest sequence number seen.
    pub max_seq: u64,
    /// Lines that could not be read (the one being written at the crash, or a disk that filled up mid-line).
    pub unreadable: usize,
    /// The segment files read; delete them once `rows` are stored.
    pub files: Vec<PathBuf>,
}

/// The file in the journal folder that names it (see [`journal_id`]).
const ID_FILE: &str = "id";

/// The journal's id, created on first use: a shared database keeps one high-water mark per journal under this
/// key. It lives with the segments, so it follows them (a wiped folder starts a new journal and a new mark).
pub fn journal_id(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = uuid::Uuid::now_v7().to_string();
    // Written aside and renamed: a crash never leaves a half-written id behind.
    let tmp = dir.join(format!(".{ID_FILE}.tmp"));
    std::fs::write(&tmp, &id)?;
    std::fs::rename(&tmp, &path)?;
    Ok(id)
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".jsonl")?.parse().ok()
}

fn segments_in(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(n) = segment_number(&path) {
            found.push((n, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads every segment in `dir` (created if missing). `committed_seq` is the database's
/// `ledger_journal.committed_seq`.
pub fn read(dir: &Path, committed_seq: u64) -> std::io::Result<Replay> {
    std::fs::create_dir_all(dir)?;
    let mut latest: HashMap<String, LineIn> = HashMap::new();
    let mut replay = Replay::default();
    for (_, path) in segments_in(dir)? {
        let bytes = std::fs::read(&path)?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<LineIn>(line) {
                Ok(l) => {
                    replay.max_seq = replay.max_seq.max(l.seq);
                    match latest.get(&l.rec.request_id) {
                        Some(seen) if seen.seq > l.seq => {}
                        _ => {
                            latest.insert(l.rec.request_id.clone(), l);
                        }
                    }
                }
                Err(_) => replay.unreadable += 1,
            }
        }
        replay.files.push(path);
    }
    let mut rows: Vec<(u64, Record)> = Vec::new();
    let mut in_flight: Vec<(u64, Record)> = Vec::new();
    for line in latest.into_values() {
        match line.kind {
            Kind::End if line.seq > committed_seq => rows.push((line.seq, line.rec)),
            Kind::End => {}
            Kind::Start | Kind::Progress => in_flight.push((line.seq, interrupted(line.rec))),
        }
    }
    rows.sort_by_key(|(seq, _)| *seq);
    in_flight.sort_by_key(|(seq, _)| *seq);
    replay.rows = rows.into_iter().map(|(_, r)| r).collect();
    replay.in_flight = in_flight.into_iter().map(|(_, r)| r).collect();
    Ok(replay)
}

/// A request the crash cut: recorded with the usage and cost last journaled (none before its `message_start`),
/// so it counts against the tenant's budgets like any other.
fn interrupted(mut rec: Record) -> Record {
    rec.outcome = Outcome::Interrupted;
    rec.error_class = Some(CRASH_CLASS.to_owned());
    rec
}

impl Journal {
    /// Starts a journal in `dir` whose sequence numbers continue after `last_seq`. Fails if the first segment
    /// cannot be created: a ledger that cannot write its journal is refused at start-up.
    pub fn open(dir: &Path, last_seq: u64) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let next_number = segments_in(dir)?.last().map_or(1, |(n, _)| n + 1);
        let mut state = State {
            file: None,
            current: None,
            sealed: VecDeque::new(),
            written: 0,
            next_seq: last_seq + 1,
            next_number,
            retry_at: Instant::now(),
            error: None,
            buf: Vec::with_capacity(1024),
        };
        state.start_segment(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            state: Mutex::new(state),
        })
    }

    /// The journal, locked: append lines and hand records on while holding it, so that sequence order is
    /// queue order.
    pub fn lock(&self) -> JournalGuard<'_> {
        JournalGuard {
            dir: &self.dir,
            state: self.state.lock(),
        }
    }

    /// Deletes the sealed segments nothing holds any more.
    pub fn prune(&self) {
        let mut st = self.state.lock();
        st.sealed.retain(|seg| {
            if Arc::strong_count(seg) > 1 {
                return true;
            }
            if let Err(e) = std::fs::remove_file(&seg.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %seg.path.display(), error = %e, "cannot delete a journal segment");
                }
            }
            false
        });
    }

    /// Seals the current segment: called once every record is stored, so a clean stop leaves no segment behind.
    pub fn seal(&self) {
        {
            let mut st = self.state.lock();
            st.file = None;
            if let Some(seg) = st.current.take() {
                st.sealed.push_back(seg);
            }
        }
        self.prune();
    }

    /// Why journal writes fail, while they do.
    pub fn error(&self) -> Option<String> {
        self.state.lock().error.clone()
    }
}

impl State {
    fn start_segment(&mut self, dir: &Path) -> std::io::Result<()> {
        if let Some(old) = self.current.take() {
            self.sealed.push_back(old);
        }
        self.file = None;
        let path = dir.join(format!("{:012}.jsonl", self.next_number));
        self.next_number += 1;
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        self.file = Some(file);
        self.current = Some(Arc::new(Segment { path }));
        self.written = 0;
        Ok(())
    }

    fn fail(&mut self, what: &str, e: &std::io::Error) {
        let msg = format!("{what}: {e}");
        if self.error.as_deref() != Some(msg.as_str()) {
            tracing::error!(
                "ledger journal: {msg}; rows are kept in memory until the database takes them"
            );
        }
        self.error = Some(msg);
        self.file = None;
        self.retry_at = Instant::now() + REOPEN_BACKOFF;
    }
}

pub struct JournalGuard<'a> {
    dir: &'a Path,
    state: MutexGuard<'a, State>,
}

impl JournalGuard<'_> {
    /// Appends one line; returns its sequence number and, if the line reached the kernel, a hold on its segment.
    pub fn append(&mut self, kind: Kind, rec: &Record) -> (u64, Option<Hold>) {
        let st = &mut *self.state;
        let seq = st.next_seq;
        st.next_seq += 1;
        if st.file.is_none() || st.written >= SEGMENT_BYTES {
            if st.file.is_none() && Instant::now() < st.retry_at {
                return (seq, None);
            }
            if let Err(e) = st.start_segment(self.dir) {
                st.fail("cannot start a segment", &e);
                return (seq, None);
            }
        }
        st.buf.clear();
        if serde_json::to_writer(&mut st.buf, &LineOut { seq, kind, rec }).is_err() {
            return (seq, None);
        }
        st.buf.push(b'\n');
        let (Some(file), Some(seg)) = (st.file.as_mut(), st.current.as_ref()) else {
            return (seq, None);
        };
        match file.write_all(&st.buf) {
            Ok(()) => {
                let hold = Hold(seg.clone());
                st.written += st.buf.len() as u64;
                if st.error.take().is_some() {
                    tracing::info!("ledger journal: writing again");
                }
                (seq, Some(hold))
            }
            Err(e) => {
                // A partial line may be on disk: the next line goes to a new segment so it cannot be glued to it.
                st.fail("write failed", &e);
                (seq, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, cost: i64) -> Record {
        Record {
            request_id: id.into(),
            tenant_id: "t".into(),
            protocol: "anthropic",
            endpoint: "messages",
            cost_nanousd: cost,
            ..Default::default()
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("ccgate-journal-{}", uuid::Uuid::now_v7()))
    }

    #[test]
    fn replay_adds_uncommitted_ends_and_in_flight_starts_only() {
        let dir = temp_dir();
        let j = Journal::open(&dir, 0).unwrap();
        let mut holds = Vec::new();
        {
            let mut g = j.lock();
            for (kind, id, cost) in [
                (Kind::Start, "a", 0),
                (Kind::Start, "b", 0),
                (Kind::End, "a", 5), // seq 3: committed below
                (Kind::Progress, "b", 2),
                (Kind::Start, "c", 0),
                (Kind::End, "c", 7), // seq 6: not committed
            ] {
                holds.push(g.append(kind, &rec(id, cost)).1.unwrap());
            }
        }
        let replay = read(&dir, 3).unwrap();
        let mut got: Vec<(String, Outcome, i64)> = replay
            .rows
            .iter()
            .chain(&replay.in_flight)
            .map(|r| (r.request_id.clone(), r.outcome, r.cost_nanousd))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("b".into(), Outcome::Interrupted, 2),
                ("c".into(), Outcome::Ok, 7)
            ]
        );
        assert_eq!((replay.in_flight.len(), replay.max_seq), (1, 6));
        assert_eq!(replay.rows[0].protocol, "anthropic");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A journal written by an older version (fewer record fields) still replays: missing fields default.
    #[test]
    fn lines_from_an_older_record_shape_still_read() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("000000000001.jsonl"),
            br#"{"seq":1,"kind":"end","rec":{"request_id":"x","tenant_id":"t","protocol":"openai","cost_nanousd":9}}
"#,
        )
        .unwrap();
        let replay = read(&dir, 0).unwrap();
        assert_eq!(replay.unreadable, 0);
        assert_eq!(replay.rows.len(), 1);
        assert_eq!(replay.rows[0].protocol, "openai");
        assert_eq!(replay.rows[0].cost_nanousd, 9);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = temp_dir();
        let j = Journal::open(&dir, 0).unwrap();
        let _h = j.lock().append(Kind::End, &rec("a", 1));
        let seg = segments_in(&dir).unwrap().pop().unwrap().1;
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(br#"{"seq":2,"kind":"end","rec":{"requ"#)
            .unwrap();
        let replay = read(&dir, 0).unwrap();
        assert_eq!(replay.rows.len(), 1);
        assert_eq!(replay.unreadable, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_goes_once_nothing_holds_it() {
        let dir = temp_dir();
        let j = Journal::open(&dir, 0).unwrap();
        let first = j.lock().append(Kind::Start, &rec("a", 0)).1;
        j.state.lock().written = SEGMENT_BYTES;
        let second = j.lock().append(Kind::End, &rec("b", 1)).1;
        j.state.lock().written = SEGMENT_BYTES;
        let _third = j.lock().append(Kind::End, &rec("c", 1)).1;
        assert_eq!(segments_in(&dir).unwrap().len(), 3);
        drop(second);
        j.prune();
        assert_eq!(
            segments_in(&dir).unwrap().len(),
            2,
            "the second goes although the first is held (a long stream pins only its own segment)"
        );
        drop(first);
        j.prune();
        assert_eq!(segments_in(&dir).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
