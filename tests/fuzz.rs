//! Mutation-based fuzz tests (stable Rust, seeded) of every parser of outside data: IDX
//! (plain and gzip), CIFAR-10 (binary and pickle), the pickle reader, ImageNet-16's npz,
//! tar archives, safetensors checkpoints and their JSON metadata, saved training runs, the
//! experiment and sweep TOML, the evaluation log (`evals.jsonl`, torn last line included)
//! and `squeue` output.
//!
//! Each parser gets `SAFS_FUZZ_INPUTS` inputs (default 2000), mutated from valid seed
//! inputs written by the crate's own writers, under the campaign seed `SAFS_FUZZ_SEED`
//! (default fixed, so CI is reproducible). Every input must parse without a panic, within
//! `SAFS_FUZZ_SLOW_MS` milliseconds (default 2000), with no single allocation larger than
//! the input justifies (a counting global allocator records the largest request), and every
//! error of a parser that reads a file must name that file. A failure prints the seed, the
//! iteration and a hex dump, saves the input, and says how to replay it
//! (`SAFS_FUZZ_ONLY=<parser> SAFS_FUZZ_START=<iteration> SAFS_FUZZ_INPUTS=1`).
//! `scripts/fuzz.sh` runs the long campaign; docs/fuzzing.md has its figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use safs::data::cifar10::{read_cifar10_bin, read_cifar10_py, CIFAR10_PIXELS};
use safs::data::extract::extract_tar;
use safs::data::idx::{encode_idx, read_idx};
use safs::data::imagenet16::read_imagenet16_batch;
use safs::data::pickle::parse_pickle;
use safs::data::{ImageSet, Normalize};
use safs::experiment::{EvalRecord, ExperimentConfig};
use safs::model::{LeNet5, Network};
use safs::prune::layerwise_magnitude;
use safs::report::{append_eval, read_evals_jsonl};
use safs::sweep::slurm::parse_squeue;
use safs::sweep::SweepSpec;
use safs::train::checkpoint::{MAX_CLASSES, MAX_WIDTH};
use safs::train::{
    load_checkpoint, load_trainer, save_checkpoint, save_trainer, CheckpointMeta, DecayScope,
    FitData, OptimizerConfig, ScheduleConfig, TrainConfig, Trainer,
};
use safs_e2e::fuzz::{hex_dump, Mutator};
use safs_e2e::pickle_write::{dumps, Py, Style};
use safs_e2e::temp_dir;

// ---------------------------------------------------------------------------------------
// The counting allocator.

/// The system allocator, recording the largest single request of each thread.
struct CountingAlloc;

thread_local! {
    /// The largest allocation request (bytes) of this thread since the last reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The case this thread is running: parser, campaign seed, iteration.
    static CASE: Cell<(&'static str, u64, u64)> = const { Cell::new(("", 0, 0)) };
}

/// Requests above this are refused (and the process aborts, naming the case): the machine
/// could not serve them, and a parser must never make them.
const HARD_CAP: usize = 2 << 30;

/// A fixed buffer for a message the allocator writes without allocating.
struct StackBuf {
    buf: [u8; 400],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Records a request of `size` bytes; false (refuse it) above [`HARD_CAP`].
fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size)
        }
    });
    if size <= HARD_CAP {
        return true;
    }
    use std::fmt::Write as _;
    let (p, s, i) = CASE.try_with(Cell::get).unwrap_or(("?", 0, 0));
    let mut b = StackBuf {
        buf: [0; 400],
        len: 0,
    };
    let _ = write!(
        b,
        "\nfuzz {p}: iteration {i} (seed {s}) requested {size} bytes in one allocation; \
         replay with SAFS_FUZZ_SEED={s} SAFS_FUZZ_ONLY={p} SAFS_FUZZ_START={i} \
         SAFS_FUZZ_INPUTS=1\n"
    );
    let _ = std::io::stderr().write_all(&b.buf[..b.len]);
    false
}

// SAFETY: every call forwards to `System` with the same arguments; `note` neither
// allocates on its success path nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------
// The campaign runner.

/// What the environment asks for.
struct Settings {
    inputs: u64,
    seed: u64,
    start: u64,
    only: Option<String>,
    slow: Duration,
    hang: Duration,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn settings() -> Settings {
    Settings {
        inputs: env_u64("SAFS_FUZZ_INPUTS", 2000),
        seed: env_u64("SAFS_FUZZ_SEED", 0x5AF5),
        start: env_u64("SAFS_FUZZ_START", 0),
        only: std::env::var("SAFS_FUZZ_ONLY")
            .ok()
            .filter(|s| !s.is_empty()),
        slow: Duration::from_millis(env_u64("SAFS_FUZZ_SLOW_MS", 2000)),
        hang: Duration::from_millis(env_u64("SAFS_FUZZ_HANG_MS", 60_000)),
    }
}

/// How a parser took an input it did not choke on.
enum Verdict {
    /// Parsed, and the result holds what the format promises.
    Accepted,
    /// Refused with an error that says what is wrong (and names the file).
    Rejected,
}

/// A property violation: the message of a failed case.
type Violation = String;

/// The default allocation bound: 16 bytes per input byte, at least 4 MiB.
fn default_bound(input: &[u8]) -> usize {
    (16 * input.len()).max(4 << 20)
}

/// An error must name `path` (the whole path, as `Display` writes it).
fn named(e: &dyn std::fmt::Display, path: &Path) -> Result<Verdict, Violation> {
    let msg = e.to_string();
    if msg.contains(&path.display().to_string()) {
        Ok(Verdict::Rejected)
    } else {
        Err(format!("the error does not name {}: {msg}", path.display()))
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Runs `settings().inputs` cases of parser `name`: `gen` builds an input from the case's
/// mutator, `check` parses it; `bound` is the largest single allocation the input justifies.
fn campaign(
    name: &'static str,
    bound: impl Fn(&[u8]) -> usize,
    mut gen: impl FnMut(&mut Mutator) -> Vec<u8>,
    mut check: impl FnMut(&[u8]) -> Result<Verdict, Violation>,
) {
    let s = settings();
    if s.only.as_deref().is_some_and(|o| o != name) {
        println!("fuzz {name}: skipped (SAFS_FUZZ_ONLY)");
        return;
    }
    let t0 = Instant::now();
    let busy_since = AtomicU64::new(0);
    let current = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let (mut accepted, mut rejected, mut largest) = (0u64, 0u64, 0usize);
    let (mut largest_input, mut slowest) = (0usize, Duration::ZERO);
    std::thread::scope(|scope| {
        // A hang (an endless loop) never returns to the checks below: a watchdog names it.
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let since = busy_since.load(Ordering::Relaxed);
                if since != 0
                    && t0.elapsed().as_millis() as u64 - (since - 1) > s.hang.as_millis() as u64
                {
                    let i = current.load(Ordering::Relaxed);
                    eprintln!(
                        "fuzz {name}: iteration {i} (seed {}) runs for more than {:?}: a hang; \
                         replay with SAFS_FUZZ_SEED={} SAFS_FUZZ_ONLY={name} \
                         SAFS_FUZZ_START={i} SAFS_FUZZ_INPUTS=1",
                        s.seed, s.hang, s.seed
                    );
                    std::process::abort();
                }
            }
        });
        let result = (|| {
            for iter in s.start..s.start + s.inputs {
                let mut m = Mutator::for_case(s.seed, name, iter);
                let input = gen(&mut m);
                largest_input = largest_input.max(input.len());
                current.store(iter, Ordering::Relaxed);
                CASE.with(|c| c.set((name, s.seed, iter)));
                LARGEST.with(|l| l.set(0));
                busy_since.store(t0.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
                let start = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
                let mut took = start.elapsed();
                if took > s.slow {
                    // A busy machine stalls a parse now and then; a slow parser is slow
                    // every time. Time the case once more before calling it a hang.
                    let again = Instant::now();
                    let _ = catch_unwind(AssertUnwindSafe(|| check(&input)));
                    took = took.min(again.elapsed());
                }
                let peak = LARGEST.with(Cell::get);
                busy_since.store(0, Ordering::Relaxed);
                slowest = slowest.max(took);
                largest = largest.max(peak);
                let limit = bound(&input);
                let why = match outcome {
                    Err(p) => Some(format!("panicked: {}", panic_text(p.as_ref()))),
                    Ok(_) if took > s.slow => Some(format!("took {took:?} (limit {:?})", s.slow)),
                    Ok(_) if peak > limit => Some(format!(
                        "allocated {peak} bytes in one request; {} input bytes justify {limit}",
                        input.len()
                    )),
                    Ok(Err(v)) => Some(v),
                    Ok(Ok(Verdict::Accepted)) => {
                        accepted += 1;
                        None
                    }
                    Ok(Ok(Verdict::Rejected)) => {
                        rejected += 1;
                        None
                    }
                };
                if let Some(why) = why {
                    return Err((iter, why, input));
                }
            }
            Ok(())
        })();
        done.store(true, Ordering::Relaxed);
        if let Err((iter, why, input)) = result {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            std::fs::create_dir_all(&dir).expect("failure folder");
            let file = dir.join(format!("{name}-seed{}-iter{iter}.bin", s.seed));
            std::fs::write(&file, &input).expect("save the failing input");
            panic!(
                "fuzz {name}: iteration {iter} (seed {}): {why}\n\
                 the input ({} bytes) is saved in {}\n\
                 replay: SAFS_FUZZ_SEED={} SAFS_FUZZ_ONLY={name} SAFS_FUZZ_START={iter} \
                 SAFS_FUZZ_INPUTS=1 cargo test --release --test fuzz\n{}",
                s.seed,
                input.len(),
                file.display(),
                s.seed,
                hex_dump(&input, 512)
            );
        }
    });
    println!(
        "fuzz-stats parser={name} inputs={} accepted={accepted} rejected={rejected} \
         largest_alloc={largest} largest_input={largest_input} slowest_ms={:.1} wall_s={:.1} \
         seed={} start={}",
        s.inputs,
        slowest.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64(),
        s.seed,
        s.start
    );
}

// ---------------------------------------------------------------------------------------
// Seeds and helpers.

/// A deterministic byte pattern.
fn pattern(n: usize, salt: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + salt * 7) % 251) as u8).collect()
}

/// Deflate's largest expansion of one input byte (about 1032:1).
const DEFLATE_MAX_RATIO: usize = 1032;

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(raw).unwrap();
    enc.finish().unwrap()
}

/// Bytes a gzip stream decompresses to before it ends or breaks.
fn gunzipped_len(bytes: &[u8]) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = std::io::copy(&mut flate2::read::MultiGzDecoder::new(bytes), &mut c);
    c.0
}

fn idx_seeds() -> Vec<Vec<u8>> {
    vec![
        encode_idx(&[10], &pattern(10, 0)),
        encode_idx(&[3, 28, 28], &pattern(3 * 784, 1)),
        encode_idx(&[2, 3, 4], &pattern(24, 2)),
        encode_idx(&[0], &[]),
        encode_idx(&[1, 1, 1, 1, 1], &[7]),
        encode_idx(&[4, 0, 9], &[]),
    ]
}

const IDX_DICT: &[&[u8]] = &[
    &[0, 0, 8, 1],
    &[0, 0, 8, 3],
    &[0x1f, 0x8b],
    &[0, 0, 0x0d, 2],
];

/// Checks an IDX read: its data fills its dimensions exactly.
fn check_idx(path: &Path) -> Result<Verdict, Violation> {
    match read_idx(path) {
        Ok(a) => {
            let n = a.dims.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
            if n == Some(a.data.len()) {
                Ok(Verdict::Accepted)
            } else {
                Err(format!(
                    "accepted dims {:?} with {} data bytes",
                    a.dims,
                    a.data.len()
                ))
            }
        }
        Err(e) => named(&e, path),
    }
}

/// `n` CIFAR-10 records: a label byte (0-9), then 3072 pixel bytes.
fn cifar_records(n: usize, salt: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(((i + salt) % 10) as u8);
        v.extend(pattern(CIFAR10_PIXELS, i + salt));
    }
    v
}

/// Images and labels that agree in length, with labels below `classes` (and at least
/// `min_label`).
fn check_images(
    got: (Vec<u8>, Vec<u32>),
    pixels: usize,
    labels_in: std::ops::RangeInclusive<u32>,
) -> Result<Verdict, Violation> {
    let (x, y) = got;
    if x.len() != y.len() * pixels {
        return Err(format!(
            "accepted {} image bytes for {} labels",
            x.len(),
            y.len()
        ));
    }
    if let Some(l) = y.iter().find(|l| !labels_in.contains(l)) {
        return Err(format!("accepted label {l}, outside {labels_in:?}"));
    }
    Ok(Verdict::Accepted)
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("safs/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Pickle opcodes and numpy names that mutations insert.
const PICKLE_DICT: &[&[u8]] = &[
    b"\x80\x02",
    b"\x80\x04\x95",
    b"(",
    b"t",
    b"l",
    b"d",
    b"e",
    b"u",
    b"s",
    b"a",
    b"R",
    b"b",
    b"0",
    b"2",
    b"h\x00",
    b"q\x00",
    b"j\x00\x00\x00\x00",
    b"r\xff\xff\xff\xff",
    b"\x94",
    b"]",
    b"}",
    b")",
    b"\x85",
    b"\x86",
    b"\x87",
    b"N",
    b"\x88",
    b"K\x01",
    b"M\xff\xff",
    b"J\xff\xff\xff\x7f",
    b"\x8a\x08",
    b"\x8b\xff\xff\xff\x7f",
    b"T\xff\xff\xff\x7f",
    b"B\xff\xff\xff\xff",
    b"\x8e\xff\xff\xff\xff\xff\xff\xff\xff",
    b"X\x00\x00\x00\x80",
    b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy\nndarray\n",
    b"cnumpy\ndtype\n",
    b"c_codecs\nencode\n",
    b"U\x02u1",
    b"U\x02f8",
    b"U\x03>f8",
    b".",
];

fn cifar_py_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (n, style) in [
        (1, Style::Py2),
        (2, Style::Py3Proto2),
        (2, Style::Py3Proto3),
    ] {
        let key = |s: &str| match style {
            Style::Py2 => Py::Str(s.into()),
            _ => Py::Bytes(s.as_bytes().to_vec()),
        };
        let labels: Vec<i64> = (0..n as i64).map(|i| (i * 3) % 10).collect();
        let d = Py::Dict(vec![
            (key("batch_label"), Py::Str("training batch 1 of 5".into())),
            (key("labels"), Py::ints(&labels)),
            (
                key("data"),
                Py::u8_array(&[n, CIFAR10_PIXELS], &pattern(n * CIFAR10_PIXELS, n)),
            ),
            (
                key("filenames"),
                Py::List((0..n).map(|i| Py::Str(format!("img_{i}.png"))).collect()),
            ),
        ]);
        seeds.push(dumps(&d, style));
    }
    seeds.push(fixture("cifar10_py3_proto2.pkl"));
    seeds.push(fixture("cifar10_py2_style.pkl"));
    seeds
}

fn pickle_seeds() -> Vec<Vec<u8>> {
    let mut seeds = cifar_py_seeds();
    for name in [
        "imagenet16_proto2.pkl",
        "imagenet16_proto3.pkl",
        "imagenet16_proto4.pkl",
        "imagenet16_py2_style.pkl",
    ] {
        seeds.push(fixture(name));
    }
    // pickle.dumps({'a': (None, True, False, 1.5, -2, 70000, 2**40, -2**40)}, 2)
    seeds.push(b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01(NK\x01\x89G?\xf8\x00\x00\x00\x00\x00\x00J\xfe\xff\xff\xffJp\x11\x01\x00\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\xfftq\x02s.".to_vec());
    // pickle.dumps([x, x], 4) with x = [7]: the memo shares one list.
    seeds.push(b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94K\x07ah\x01e.".to_vec());
    // Protocol 0 text opcodes.
    seeds.push(b"(dp0\nS'k'\np1\n(lp2\nI1\naI-7\naL12L\naF0.5\nasI01\nI00\ns.".to_vec());
    let xs: Vec<i64> = (0..1200).map(|i| i * 1_000_003 - 7).collect();
    seeds.push(dumps(
        &Py::Dict(vec![
            (Py::Str("xs".into()), Py::ints(&xs)),
            (Py::Str("a".into()), Py::i64_array(&[3], &[-1, 5, 1 << 40])),
            (Py::Str("f".into()), Py::f64_array(&[2], &[0.5, -2.0])),
        ]),
        Style::Py3Proto3,
    ));
    seeds
}

fn npz_seeds() -> Vec<Vec<u8>> {
    let dir = temp_dir("fuzz-npz-seeds");
    let mut seeds = vec![
        fixture("imagenet16_train_data_batch_1.npz"),
        fixture("imagenet16_compressed.npz"),
    ];
    let dev = Device::Cpu;
    for (i, dtype) in [DType::I64, DType::U8, DType::U32, DType::I32]
        .into_iter()
        .enumerate()
    {
        let n = 1 + i % 3;
        let data = Tensor::from_vec(pattern(n * 768, i), (n, 768), &dev).unwrap();
        let labels: Vec<i64> = (0..n as i64).map(|j| 1 + j * 7).collect();
        let labels = Tensor::new(labels.as_slice(), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let p = dir.join(format!("seed{i}.npz"));
        if i == 0 {
            let mean = Tensor::zeros(768, DType::F64, &dev).unwrap();
            Tensor::write_npz(&[("data", &data), ("labels", &labels), ("mean", &mean)], &p)
                .unwrap();
        } else {
            Tensor::write_npz(&[("labels", &labels), ("data", &data)], &p).unwrap();
        }
        seeds.push(std::fs::read(&p).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    seeds
}

/// A `.npy` entry: numpy's header dict padded to a multiple of 64 bytes, then `data`.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

/// A zip archive of stored entries with right CRCs and sizes (what np.savez writes, less
/// its zip64 extras).
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, method, time, date
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&[0, 0]); // extra length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0]);
        common(&mut central);
        central.extend_from_slice(&[0; 8]); // comment length, disk, attributes
        central.extend_from_slice(&[0; 2]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// The arrays of an ImageNet-16 npz batch with one of them mutated, zipped with right
/// CRCs so the mutation reaches the `.npy` reader.
fn mutated_npz_arrays(m: &mut Mutator) -> Vec<u8> {
    let n = 1 + m.below(3);
    let labels: Vec<i64> = (0..n as i64).map(|i| 1 + i * 333).collect();
    let (descr, bytes): (&str, Vec<u8>) = match m.below(4) {
        0 => ("<i8", labels.iter().flat_map(|l| l.to_le_bytes()).collect()),
        1 => (
            "<i4",
            labels
                .iter()
                .flat_map(|&l| (l as i32).to_le_bytes())
                .collect(),
        ),
        2 => (
            "<u2",
            labels
                .iter()
                .flat_map(|&l| (l as u16).to_le_bytes())
                .collect(),
        ),
        _ => ("|u1", labels.iter().map(|&l| l as u8).collect()),
    };
    let mut entries = vec![
        (
            "data.npy".to_string(),
            npy("|u1", &[n, 768], &pattern(n * 768, n)),
        ),
        ("labels.npy".to_string(), npy(descr, &[n], &bytes)),
        ("mean.npy".to_string(), npy("<f8", &[4], &[0; 32])),
    ];
    let i = m.below(entries.len());
    let seeds: Vec<Vec<u8>> = entries.iter().map(|(_, b)| b.clone()).collect();
    let b = &entries[i].1;
    entries[i].1 = if m.chance(0.5) {
        m.mutate_from(b, &seeds, Some(0..128))
    } else {
        // The header dict as text (shapes, dtypes, keys), mostly with its length right.
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        let text = m.mutate_text(&[b[10..10 + hl].to_vec()]);
        let len = if m.chance(0.9) { text.len() } else { hl };
        let mut v = b[..8].to_vec();
        v.extend_from_slice(&(len as u16).to_le_bytes());
        v.extend_from_slice(&text);
        v.extend_from_slice(&b[10 + hl..]);
        v
    };
    match m.below(6) {
        0 => {
            entries.swap(0, 1);
        }
        1 => {
            let dup = entries[i].clone();
            entries.push(dup);
        }
        2 => {
            entries.remove(m.below(3));
        }
        _ => {}
    }
    zip_stored(&entries)
}

const NPZ_DICT: &[&[u8]] = &[
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"PK\x06\x06",
    b"PK\x06\x07",
    b"\x93NUMPY\x01\x00",
    b"\x93NUMPY\x02\x00",
    b"'descr': '<i8'",
    b"'descr': '|u1'",
    b"'descr': '>i4'",
    b"'shape': (1000000000000, 768)",
    b"'shape': (),",
    b"'fortran_order': True",
    b"\x01\x00\x10\x00",
];

// Tar archives, built here (the crate's test helpers are private).

fn tar_header(name: &str, kind: u8, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0001750");
    h[116..123].copy_from_slice(b"0001750");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"14717375170");
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link.as_bytes()[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_tar_sum(&mut h);
    h
}

/// Rewrites the checksum of a tar header (after a mutation, so the body of the header is
/// reached).
fn fix_tar_sum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h[..512].iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

fn tar_entry(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut v = tar_header(name, kind, data.len() as u64, link).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn tar_seeds() -> Vec<Vec<u8>> {
    let long = format!("top/{}/deep.bin", "d".repeat(110));
    let rec = " path=top/pax-name.txt\n";
    let rec = format!("{}{rec}", rec.len() + 2);
    let mut a = Vec::new();
    a.extend(tar_entry("top/", b'5', b"", ""));
    a.extend(tar_entry("top/a.bin", b'0', &pattern(700, 1), ""));
    a.extend(tar_entry("top/empty", b'0', b"", ""));
    a.extend(tar_entry(
        "././@LongLink",
        b'L',
        format!("{long}\0").as_bytes(),
        "",
    ));
    a.extend(tar_entry("top/ddd-truncated", b'0', b"long", ""));
    a.extend(tar_entry("PaxHeaders/x", b'x', rec.as_bytes(), ""));
    a.extend(tar_entry("top/short", b'0', b"pax", ""));
    a.extend(tar_entry("./top/exact512", b'0', &[1u8; 512], ""));
    a.extend(vec![0u8; 1024]);
    let mut b = Vec::new();
    b.extend(tar_entry("cifar-10-batches-bin/", b'5', b"", ""));
    b.extend(tar_entry(
        "cifar-10-batches-bin/link",
        b'2',
        b"",
        "../../outside",
    ));
    b.extend(tar_entry(
        "cifar-10-batches-bin/hard",
        b'1',
        b"",
        "/etc/passwd",
    ));
    b.extend(tar_entry(
        "cifar-10-batches-bin/data_batch_1.bin",
        b'0',
        &cifar_records(1, 0),
        "",
    ));
    b.extend(vec![0u8; 1024]);
    let mut c = tar_entry("x/../y", b'0', b"zz", "");
    c.extend(tar_entry("/abs", b'0', b"zz", ""));
    let seeds = vec![a.clone(), b.clone(), c, gzip(&a), gzip(&b)];
    seeds
}

const TAR_DICT: &[&[u8]] = &[
    b"../",
    b"/",
    b"./",
    b"..",
    b"ustar\0",
    b"ustar  \0",
    b"././@LongLink",
    b"\x80\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff",
    b"77777777777",
    b" path=../../x\n",
];

/// Every path under `root` (files, folders, links), depth first.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            }
        }
    }
}

// Checkpoints.

fn lenet(seed: u64) -> LeNet5 {
    LeNet5::new(10, seed, &Device::Cpu).unwrap()
}

fn meta_of(m: &dyn Network) -> CheckpointMeta {
    CheckpointMeta {
        model: m.name().into(),
        num_classes: 10,
        width: 1.0,
        plan: m.plan(),
        epoch: 3,
        valid_acc: Some(97.5),
        note: "fuzz seed".into(),
        safs_version: "0.1.0".into(),
    }
}

/// The JSON header of a safetensors file: `8..8 + n` with `n` its little-endian prefix.
fn st_header(bytes: &[u8]) -> std::ops::Range<usize> {
    if bytes.len() < 8 {
        return 0..bytes.len();
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    8..(8 + n).min(bytes.len())
}

/// A safetensors mutation: bytes (mostly in the length prefix and the JSON header), or the
/// header's JSON text mutated and framed again (mostly with its right length).
fn mutate_safetensors(m: &mut Mutator, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[m.below(seeds.len())];
    let h = st_header(seed);
    if m.chance(0.5) {
        return m.mutate_from(seed, seeds, Some(0..h.end + 16));
    }
    let header = seed[h.clone()].to_vec();
    let text = m.mutate_text(&[header]);
    let mut out = if m.chance(0.85) {
        (text.len() as u64).to_le_bytes().to_vec()
    } else {
        m.interesting().to_le_bytes().to_vec()
    };
    out.extend_from_slice(&text);
    out.extend_from_slice(&seed[h.end..]);
    out
}

/// A training configuration small enough for a seed run in a second.
fn tiny_train_config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 16,
        eval_batch_size: 32,
        max_batches: Some(2),
        optimizer: OptimizerConfig::adam(1e-3),
        schedule: ScheduleConfig::Constant.into(),
        decay: DecayScope::Weights,
        restore_best: false,
    }
}

fn tiny_images(n: usize) -> ImageSet {
    let data = pattern(n * 784, 3);
    let labels = (0..n as u32).map(|i| i % 10).collect();
    ImageSet::new(data, labels, [1, 28, 28], 10, Normalize::identity(1)).unwrap()
}

// Evaluation logs.

fn eval_lines() -> Vec<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_seeds/evals.jsonl");
    let text = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn debug_all(rs: &[EvalRecord]) -> Vec<String> {
    rs.iter().map(|r| format!("{r:?}")).collect()
}

// ---------------------------------------------------------------------------------------
// The campaigns, one test each.

#[test]
fn fuzz_idx_plain() {
    let seeds = idx_seeds();
    let dir = temp_dir("fuzz-idx-plain");
    let path = dir.join("case-idx3-ubyte");
    campaign(
        "idx_plain",
        default_bound,
        |m| {
            m.add_dict(IDX_DICT);
            m.mutate(&seeds)
        },
        |input| {
            std::fs::write(&path, input).unwrap();
            check_idx(&path)
        },
    );
}

#[test]
fn fuzz_idx_gzip() {
    let plain = idx_seeds();
    let mut seeds: Vec<Vec<u8>> = plain.iter().map(|s| gzip(s)).collect();
    // Two members, which MultiGzDecoder joins.
    let (a, b) = plain[1].split_at(700);
    seeds.push([gzip(a), gzip(b)].concat());
    let dir = temp_dir("fuzz-idx-gzip");
    let path = dir.join("case-idx3-ubyte.gz");
    campaign(
        "idx_gzip",
        // Decompression grows its buffer by doubling (up to twice what comes out), from a
        // reserve the trailer may set as high as deflate's ratio allows for the input.
        |input| {
            default_bound(input)
                .max(4 * gunzipped_len(input))
                .max(input.len() * DEFLATE_MAX_RATIO)
        },
        |m| {
            let mut v = m.mutate(&seeds);
            // The trailer's size field is the capacity hint: aim at it often.
            if v.len() >= 4 && m.chance(0.3) {
                let n = v.len();
                let x = m.interesting() as u32;
                v[n - 4..].copy_from_slice(&x.to_le_bytes());
            }
            v
        },
        |input| {
            std::fs::write(&path, input).unwrap();
            check_idx(&path)
        },
    );
}

#[test]
fn fuzz_cifar10_bin() {
    let seeds = vec![
        cifar_records(1, 0),
        cifar_records(2, 5),
        cifar_records(3, 9),
    ];
    let dir = temp_dir("fuzz-cifar-bin");
    let path = dir.join("data_batch_1.bin");
    campaign(
        "cifar10_bin",
        default_bound,
        |m| m.mutate(&seeds),
        |input| {
            std::fs::write(&path, input).unwrap();
            match read_cifar10_bin(&path) {
                Ok(got) => check_images(got, CIFAR10_PIXELS, 0..=9),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_cifar10_py() {
    let seeds = cifar_py_seeds();
    let dir = temp_dir("fuzz-cifar-py");
    let path = dir.join("data_batch_1");
    campaign(
        "cifar10_py",
        default_bound,
        |m| {
            m.add_dict(PICKLE_DICT);
            m.mutate(&seeds)
        },
        |input| {
            std::fs::write(&path, input).unwrap();
            match read_cifar10_py(&path) {
                Ok(got) => check_images(got, CIFAR10_PIXELS, 0..=9),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_pickle() {
    let seeds = pickle_seeds();
    let path = Path::new("fuzz-case.pkl");
    campaign(
        "pickle",
        default_bound,
        |m| {
            m.add_dict(PICKLE_DICT);
            m.mutate(&seeds)
        },
        |input| match parse_pickle(input, path) {
            Ok(_) => Ok(Verdict::Accepted),
            Err(e) => named(&e, path),
        },
    );
}

#[test]
fn fuzz_npz() {
    let seeds = npz_seeds();
    let dir = temp_dir("fuzz-npz");
    let path = dir.join("train_data_batch_1.npz");
    campaign(
        "npz",
        default_bound,
        |m| {
            m.add_dict(NPZ_DICT);
            if m.chance(0.5) {
                m.mutate(&seeds)
            } else {
                mutated_npz_arrays(m)
            }
        },
        |input| {
            std::fs::write(&path, input).unwrap();
            match read_imagenet16_batch(&path) {
                Ok(got) => check_images(got, 768, 1..=1000),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_tar() {
    let seeds = tar_seeds();
    let dir = temp_dir("fuzz-tar");
    let archive = dir.join("archive.tar");
    let dest = dir.join("out");
    campaign(
        "tar",
        default_bound,
        |m| {
            m.add_dict(TAR_DICT);
            let mut v = m.mutate(&seeds);
            // Most mutations break a header's checksum; mend it half of the time so the
            // header's fields are exercised.
            if !v.starts_with(&[0x1f, 0x8b]) && m.chance(0.5) {
                let mut at = 0;
                while at + 512 <= v.len() {
                    if v[at..at + 512].iter().any(|&b| b != 0) {
                        fix_tar_sum(&mut v[at..at + 512]);
                    }
                    at += 512;
                }
            }
            v
        },
        |input| {
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::write(&archive, input).unwrap();
            let result = extract_tar(&archive, &dest);
            // Nothing outside `dest`, no links anywhere.
            let mut all = Vec::new();
            walk(&dir, &mut all);
            for p in &all {
                if p != &archive && !p.starts_with(&dest) {
                    return Err(format!(
                        "extraction wrote {} outside {}",
                        p.display(),
                        dest.display()
                    ));
                }
                if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!("extraction made the link {}", p.display()));
                }
            }
            match result {
                Ok(files) => {
                    if let Some(f) = files.iter().find(|f| !f.starts_with(&dest) || !f.is_file()) {
                        return Err(format!("reported {} as extracted", f.display()));
                    }
                    Ok(Verdict::Accepted)
                }
                Err(e) => named(&e, &archive),
            }
        },
    );
}

#[test]
fn fuzz_checkpoint_tensors() {
    let dir = temp_dir("fuzz-ckpt-seeds");
    let mut seeds = Vec::new();
    let a = lenet(1);
    let meta = meta_of(&a);
    for (i, masked) in [false, true].into_iter().enumerate() {
        let p = dir.join(format!("seed{i}.safetensors"));
        let masks = masked.then(|| layerwise_magnitude(&a, 0.9).unwrap());
        save_checkpoint(&p, &a, masks.as_ref(), &meta).unwrap();
        seeds.push(std::fs::read(&p).unwrap());
    }
    let case = temp_dir("fuzz-ckpt");
    let path = case.join("case.safetensors");
    save_checkpoint(&path, &a, None, &meta).unwrap();
    // Metadata without the tensors' MD5 (as checkpoints written before it was recorded),
    // so the mutated tensors reach the safetensors reader instead of the MD5 check.
    std::fs::write(case.join("case.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    let mut model = lenet(2);
    campaign(
        "checkpoint_tensors",
        default_bound,
        |m| mutate_safetensors(m, &seeds),
        |input| {
            std::fs::write(&path, input).unwrap();
            match load_checkpoint(&path, &mut model, &Device::Cpu) {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_checkpoint_meta() {
    let case = temp_dir("fuzz-ckpt-meta");
    let path = case.join("case.safetensors");
    let meta_path = case.join("case.json");
    let a = lenet(3);
    let mut seeds = Vec::new();
    let mut meta = meta_of(&a);
    save_checkpoint(&path, &a, None, &meta).unwrap();
    seeds.push(std::fs::read(&meta_path).unwrap());
    meta.valid_acc = None;
    meta.note = String::new();
    meta.epoch = 0;
    let other = temp_dir("fuzz-ckpt-meta-seed").join("other.safetensors");
    save_checkpoint(&other, &a, None, &meta).unwrap();
    seeds.push(json_compact(
        &std::fs::read(other.with_extension("json")).unwrap(),
    ));
    let mut model = lenet(4);
    campaign(
        "checkpoint_meta",
        default_bound,
        |m| m.mutate_text_or_bytes(&seeds, 0.8),
        |input| {
            std::fs::write(&meta_path, input).unwrap();
            match load_checkpoint(&path, &mut model, &Device::Cpu) {
                Ok((meta, _)) => {
                    let classes_ok = (1..=MAX_CLASSES).contains(&meta.num_classes);
                    let width_ok = meta.width > 0.0 && meta.width <= MAX_WIDTH;
                    if !(classes_ok && width_ok) {
                        return Err(format!(
                            "accepted {} classes at width {}",
                            meta.num_classes, meta.width
                        ));
                    }
                    Ok(Verdict::Accepted)
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg.contains(&meta_path.display().to_string()) {
                        Ok(Verdict::Rejected)
                    } else {
                        named(&e, &path)
                    }
                }
            }
        },
    );
}

/// The pretty-printed JSON `bytes` on one line (whitespace outside strings dropped).
fn json_compact(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_str = false;
    let mut esc = false;
    for &b in bytes {
        if in_str {
            out.push(b);
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            out.push(b);
        }
    }
    out
}

#[test]
fn fuzz_trainer_state() {
    let dev = Device::Cpu;
    let cfg = tiny_train_config();
    let dir = temp_dir("fuzz-trainer-seeds");
    let seed_path = dir.join("seed.safetensors");
    let mut first = lenet(5);
    first.set_scales_trainable(true);
    let masks = layerwise_magnitude(&first, 0.5).unwrap();
    let mut t = Trainer::new(&first, &cfg).unwrap();
    let train = tiny_images(32);
    let valid = tiny_images(16);
    let data = FitData {
        masks: Some(&masks),
        train: &train,
        valid: Some(&valid),
        seed: 1,
        device: &dev,
    };
    t.train_until(&mut first, &data, 1, &mut |_, _| Ok(()))
        .unwrap();
    save_trainer(&seed_path, &first, Some(&masks), &t).unwrap();
    let seed = std::fs::read(&seed_path).unwrap();
    // The JSON of `fit_state`, mutated as text and saved again.
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&seed_path, &dev)
        .unwrap()
        .into_iter()
        .collect();
    let state = tensors
        .remove("fit_state")
        .unwrap()
        .to_vec1::<u8>()
        .unwrap();
    let seeds = vec![seed];
    let states = vec![state];
    let reframe = dir.join("reframe.safetensors");
    let case = temp_dir("fuzz-trainer");
    let path = case.join("run.safetensors");
    let mut model = lenet(6);
    model.set_scales_trainable(true);
    campaign(
        "trainer_state",
        default_bound,
        |m| {
            if m.chance(0.6) {
                return mutate_safetensors(m, &seeds);
            }
            let json = m.mutate_text(&states);
            let mut ts = tensors.clone();
            let n = json.len();
            ts.insert(
                "fit_state".into(),
                Tensor::from_vec(json, n, &Device::Cpu).unwrap(),
            );
            candle_core::safetensors::save(&ts, &reframe).unwrap();
            std::fs::read(&reframe).unwrap()
        },
        |input| {
            std::fs::write(&path, input).unwrap();
            match load_trainer(&path, &mut model, &cfg, &Device::Cpu) {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => named(&e, &path),
            }
        },
    );
}

/// The real experiment files (not the sweeps).
fn experiment_files(sweeps: bool) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".toml") && n.ends_with(".sweep.toml") == sweeps
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no experiment files in {}",
        dir.display()
    );
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn fuzz_experiment_toml() {
    let seeds = experiment_files(false);
    let dir = temp_dir("fuzz-experiment");
    let path = dir.join("case.toml");
    campaign(
        "experiment_toml",
        default_bound,
        |m| m.mutate_text_or_bytes(&seeds, 0.8),
        |input| {
            std::fs::write(&path, input).unwrap();
            match ExperimentConfig::from_file(&path) {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_sweep_toml() {
    let mut seeds = experiment_files(true);
    seeds.push(
        b"name = \"s\"\nexperiments = [\"a.toml\", \"b.toml\"]\n\n[[axes]]\nfield = \"prune.rate\"\n\
          values = [0.5, 0.9]\n\n[resources]\ncpus = 4\nmem = \"8G\"\ntime = \"01:00:00\"\n\n\
          [slurm]\npartition = \"gpu\"\naccount = \"proj-1\"\nmax_parallel = 3\n\
          extra = [\"#SBATCH --gres=gpu:1\"]\n"
            .to_vec(),
    );
    let dir = temp_dir("fuzz-sweep");
    let path = dir.join("case.sweep.toml");
    campaign(
        "sweep_toml",
        default_bound,
        |m| m.mutate_text_or_bytes(&seeds, 0.8),
        |input| {
            std::fs::write(&path, input).unwrap();
            match SweepSpec::from_file(&path) {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => named(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_evals_jsonl() {
    let lines = eval_lines();
    let whole = |ls: &[Vec<u8>]| -> Vec<u8> {
        let mut v = ls.join(&b'\n');
        v.push(b'\n');
        v
    };
    let mut seeds = vec![whole(&lines), whole(&lines[1..2])];
    let mut torn = whole(&lines[..2]);
    torn.extend_from_slice(&lines[2][..lines[2].len() / 2]);
    seeds.push(torn);
    let dir = temp_dir("fuzz-evals");
    let path = dir.join("evals.jsonl");
    campaign(
        "evals_jsonl",
        default_bound,
        |m| m.mutate_text_or_bytes(&seeds, 0.7),
        |input| {
            std::fs::write(&path, input).unwrap();
            match read_evals_jsonl(&path) {
                Ok(_) => Ok(Verdict::Accepted),
                Err(e) => named(&e, &path),
            }
        },
    );
}

/// A log of complete records and a torn last line (a run killed mid-write): reading gives
/// every complete record, and an append after it leaves a log of those records and the new
/// one.
#[test]
fn fuzz_evals_torn_tail() {
    let lines = eval_lines();
    let records: Vec<EvalRecord> = {
        let dir = temp_dir("fuzz-torn-seeds");
        let p = dir.join("evals.jsonl");
        let mut v = lines.join(&b'\n');
        v.push(b'\n');
        std::fs::write(&p, v).unwrap();
        read_evals_jsonl(&p).unwrap()
    };
    assert_eq!(records.len(), lines.len());
    let dir = temp_dir("fuzz-torn");
    let path = dir.join("evals.jsonl");
    let tail_path = dir.join("tail.jsonl");
    campaign(
        "evals_torn_tail",
        default_bound,
        |m| {
            // A header byte: how many complete lines come first (their indices follow).
            let k = m.below(4);
            let mut v = vec![k as u8];
            for _ in 0..k {
                v.push(m.below(lines.len()) as u8);
            }
            v.push(m.below(lines.len()) as u8); // the record appended
            let t = &lines[m.below(lines.len())];
            let mut tail = if m.chance(0.7) {
                let cut = m.below(t.len() + 1);
                t[..cut].to_vec()
            } else {
                m.mutate(std::slice::from_ref(t))
            };
            if let Some(nl) = tail.iter().position(|&b| b == b'\n') {
                tail.truncate(nl);
            }
            v.extend_from_slice(&tail);
            v
        },
        |input| {
            let k = input[0] as usize;
            let complete: Vec<usize> = input[1..1 + k].iter().map(|&i| i as usize).collect();
            let new = &records[input[1 + k] as usize];
            let tail = &input[2 + k..];
            let mut file: Vec<u8> = Vec::new();
            for &i in &complete {
                file.extend_from_slice(&lines[i]);
                file.push(b'\n');
            }
            file.extend_from_slice(tail);
            std::fs::write(&path, &file).unwrap();
            // The tail alone, terminated: a record or not.
            let mut t = tail.to_vec();
            t.push(b'\n');
            std::fs::write(&tail_path, &t).unwrap();
            let tail_records = read_evals_jsonl(&tail_path).unwrap_or_default();
            let mut want: Vec<EvalRecord> = complete.iter().map(|&i| records[i].clone()).collect();
            want.extend(tail_records);
            let got = match read_evals_jsonl(&path) {
                Ok(got) => got,
                Err(e) => return Err(format!("a log with a torn last line is refused: {e}")),
            };
            if debug_all(&got) != debug_all(&want) {
                return Err(format!(
                    "read {} records, expected {} (the complete lines{})",
                    got.len(),
                    want.len(),
                    if want.len() > complete.len() {
                        " and the tail"
                    } else {
                        ""
                    }
                ));
            }
            append_eval(&path, new).map_err(|e| format!("append failed: {e}"))?;
            want.push(new.clone());
            match read_evals_jsonl(&path) {
                Ok(after) if debug_all(&after) == debug_all(&want) => Ok(Verdict::Accepted),
                Ok(after) => Err(format!(
                    "after the append the log holds {} records, expected {}",
                    after.len(),
                    want.len()
                )),
                Err(e) => Err(format!("after the append the log is unreadable: {e}")),
            }
        },
    );
}

#[test]
fn fuzz_squeue() {
    let seeds: Vec<Vec<u8>> = vec![
        b"4242_0 RUNNING\n4242_3 PENDING\n  4242_12   COMPLETING\n99_1 RUNNING\n4242 RUNNING\n\n"
            .to_vec(),
        b"4242_[4-9%2] PENDING\n4242_1 COMPLETED\n".to_vec(),
    ];
    campaign(
        "squeue",
        default_bound,
        |m| m.mutate(&seeds),
        |input| {
            let text = String::from_utf8_lossy(input);
            let got = parse_squeue(&text, 4242);
            for (i, state) in &got {
                let ok = text.lines().any(|l| {
                    let Some((id, rest)) = l.trim().split_once(char::is_whitespace) else {
                        return false;
                    };
                    id.strip_prefix("4242_").and_then(|x| x.parse().ok()) == Some(*i)
                        && rest.trim() == state
                });
                if !ok || state.is_empty() {
                    return Err(format!("index {i} -> {state:?} is on no line of the input"));
                }
            }
            Ok(Verdict::Accepted)
        },
    );
}

/// The fuzz harness can fail: an allocation beyond the bound, a panic and an error that
/// does not name its file are each reported.
#[test]
fn harness_catches_its_three_failures() {
    if settings().only.is_some() {
        return;
    }
    let run = |check: fn(&[u8]) -> Result<Verdict, Violation>| {
        catch_unwind(AssertUnwindSafe(|| {
            campaign("selftest", default_bound, |_| vec![1, 2, 3], check)
        }))
        .err()
        .map(|p| panic_text(p.as_ref()))
    };
    let big = run(|_| {
        let v: Vec<u8> = Vec::with_capacity(64 << 20);
        std::hint::black_box(&v);
        Ok(Verdict::Accepted)
    });
    assert!(
        big.as_deref()
            .is_some_and(|m| m.contains("allocated 67108864 bytes")),
        "{big:?}"
    );
    let boom = run(|_| panic!("boom"));
    assert!(
        boom.as_deref()
            .is_some_and(|m| m.contains("panicked: boom")),
        "{boom:?}"
    );
    let unnamed = run(|_| named(&"bad header", Path::new("/x/file.bin")));
    assert!(
        unnamed
            .as_deref()
            .is_some_and(|m| m.contains("does not name /x/file.bin")),
        "{unnamed:?}"
    );
}
