//! Files: CSV and Parquet tables, and the append-only evaluation log (JSON lines).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use polars::prelude::{CsvWriter, DataFrame, ParquetReader, ParquetWriter, SerReader, SerWriter};

use crate::experiment::EvalRecord;
use crate::util::atomic_write;
use crate::{Error, Result};

/// Writes `df` as CSV with a header (nulls as empty fields), through a temporary file.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .include_header(true)
        .finish(df)
        .map_err(|e| Error::data(path, format!("cannot encode table as CSV: {e}")))?;
    atomic_write(path, &bytes)
}

/// Writes `df` as Parquet, through a temporary file.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(df)
        .map_err(|e| Error::data(path, format!("cannot encode table as Parquet: {e}")))?;
    atomic_write(path, &bytes)
}

/// Reads a Parquet file into a frame.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::data(path, format!("not a readable Parquet file: {e}")))
}

/// Parses one log line.
fn parse_line(bytes: &[u8]) -> serde_json::Result<EvalRecord> {
    serde_json::from_slice(bytes)
}

/// True when a line holds nothing but whitespace.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Reads the evaluation log, one JSON record per line; blank lines are skipped.
///
/// A last line without its newline that does not parse (a run killed mid-write) is
/// ignored; any other line that does not parse is an error naming the file and line.
pub fn read_evals_jsonl(path: &Path) -> Result<Vec<EvalRecord>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut records = Vec::new();
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        // `split` yields the text after the last newline as the final piece.
        let unterminated = lines.peek().is_none();
        if is_blank(line) {
            continue;
        }
        match parse_line(line) {
            Ok(record) => records.push(record),
            Err(_) if unterminated => {}
            Err(e) => return Err(Error::data(path, format!("line {}: {e}", i + 1))),
        }
    }
    Ok(records)
}

/// Appends one record as a line and syncs it to disk; creates the file (and its
/// folder) if absent. An unterminated last line left by a killed run is completed
/// with its newline if it parses, else cut off, so the new line starts cleanly.
pub fn append_eval(path: &Path, record: &EvalRecord) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut line = serde_json::to_vec(record)
        .map_err(|e| Error::data(path, format!("cannot encode evaluation record: {e}")))?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    repair_tail(&mut file).map_err(|e| Error::io(path, e))?;
    file.write_all(&line).map_err(|e| Error::io(path, e))?;
    file.flush().map_err(|e| Error::io(path, e))?;
    file.sync_data().map_err(|e| Error::io(path, e))
}

/// Makes `file` end with a newline (or be empty) before an append.
fn repair_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let tail = &bytes[start..];
    if !is_blank(tail) && parse_line(tail).is_ok() {
        // A complete record that only lost its newline: keep it.
        file.write_all(b"\n")?;
    } else {
        // A partial record, which `read_evals_jsonl` ignores anyway.
        file.set_len(start as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::report::evals::tests::sample_records;
    use crate::report::{evals_frame, paper_table1, table1_frame};

    /// A fresh, empty folder for one test.
    fn tmp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("safs-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn csv_header_and_row() {
        let dir = tmp_dir("csv");
        let path = dir.join("sub/table1.csv");
        let mut rows = paper_table1();
        rows[1].stage1 = None;
        let mut df = table1_frame(&rows).unwrap();
        write_csv(&mut df, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "model,dataset,prune_rate,seed,budget,dense,magnitude_pruning,stage1,stage2,safs,gain"
        );
        let cells: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(
            &cells[..10],
            ["lenet5", "mnist", "0.99", "0", "paper", "98.49", "46.69", "61.63", "60.2", "62.22"]
        );
        let gain: f64 = cells[10].parse().unwrap();
        assert!((gain - 15.53).abs() < 1e-9, "{gain}");
        // A missing arm is an empty field.
        assert_eq!(lines[2].split(',').nth(7), Some(""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parquet_round_trip() {
        let dir = tmp_dir("parquet");
        let path = dir.join("evals.parquet");
        let mut df = evals_frame(&sample_records()).unwrap();
        write_parquet(&mut df, &path).unwrap();
        let back = ParquetReader::new(File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert!(back.equals_missing(&df), "{back}\n!=\n{df}");
        assert_eq!(back.get_column_names(), df.get_column_names());
        assert_eq!(back.schema(), df.schema());
        assert!(read_parquet(&path).unwrap().equals_missing(&df));

        let mut t1 = table1_frame(&paper_table1()).unwrap();
        write_parquet(&mut t1, &path).unwrap();
        assert!(read_parquet(&path).unwrap().equals_missing(&t1));

        std::fs::write(&path, b"not parquet").unwrap();
        let err = read_parquet(&path).unwrap_err().to_string();
        assert!(err.contains("evals.parquet"), "{err}");
        let err = read_parquet(&dir.join("missing.parquet"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.parquet"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jsonl_append_and_read_back() {
        let dir = tmp_dir("jsonl");
        let path = dir.join("run/evals.jsonl");
        let records = sample_records();
        for r in &records {
            append_eval(&path, r).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with('\n'));
        assert_eq!(read_evals_jsonl(&path).unwrap(), records);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jsonl_truncated_last_line_is_ignored() {
        let dir = tmp_dir("jsonl-trunc");
        let path = dir.join("evals.jsonl");
        let records = sample_records();
        append_eval(&path, &records[0]).unwrap();
        append_eval(&path, &records[1]).unwrap();
        // A third write killed halfway.
        let full = serde_json::to_string(&records[2]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);
        assert_eq!(read_evals_jsonl(&path).unwrap(), records[..2]);

        // Appending after the crash cuts the partial line and starts cleanly.
        append_eval(&path, &records[2]).unwrap();
        assert_eq!(read_evals_jsonl(&path).unwrap(), records);

        // A complete last record that lost only its newline is kept, and completed.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(full.as_bytes()).unwrap();
        drop(f);
        assert_eq!(read_evals_jsonl(&path).unwrap().len(), 4);
        append_eval(&path, &records[0]).unwrap();
        let back = read_evals_jsonl(&path).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back[3], records[2]);
        assert_eq!(back[4], records[0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jsonl_corrupt_middle_line_names_file_and_line() {
        let dir = tmp_dir("jsonl-corrupt");
        let path = dir.join("evals.jsonl");
        let records = sample_records();
        let good = |r: &EvalRecord| serde_json::to_string(r).unwrap();
        let text = format!(
            "{}\n{{\"stage\": \"dense\", broken\n{}\n",
            good(&records[0]),
            good(&records[1])
        );
        std::fs::write(&path, text).unwrap();
        let err = read_evals_jsonl(&path).unwrap_err().to_string();
        assert!(
            err.contains("evals.jsonl") && err.contains("line 2"),
            "{err}"
        );

        // A corrupt last line that did get its newline is also an error (not a torn write).
        let text = format!("{}\nnot json\n", good(&records[0]));
        std::fs::write(&path, text).unwrap();
        let err = read_evals_jsonl(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");

        let err = read_evals_jsonl(&dir.join("absent.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.jsonl"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
